//! `POST /v1/admin/budgets/fund`: credit, debit, reset or repay a budget, with the admin key or a
//! tenant key holding `budgets:fund`.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::budgets::{
    FUND_IDEMPOTENCY_KEY_LEN_MAX, LocateQuery, REASON_LEN_MAX, amount_in, check_len, check_scope_filter, locate,
    rfc3339_ms, route,
};
use crate::auth::AnyAuth;
use crate::catalogue::budgets::Funding;
use crate::domain::Permission;
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, QueryParams};
use crate::ledger::budgets::FundOp;
use crate::runtime_api::wire::{Amount, SignedAmount, amount, request_hash};
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = BudgetFundingRequest)]
#[serde(deny_unknown_fields)]
pub struct FundRequest {
    operation: FundOperation,
    amount: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    spent: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FundOperation {
    Credit,
    Debit,
    Reset,
    ResetSpent,
    RepayDebt,
}

impl From<FundOperation> for FundOp {
    fn from(op: FundOperation) -> Self {
        match op {
            FundOperation::Credit => FundOp::Credit,
            FundOperation::Debit => FundOp::Debit,
            FundOperation::Reset => FundOp::Reset,
            FundOperation::ResetSpent => FundOp::ResetSpent,
            FundOperation::RepayDebt => FundOp::RepayDebt,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BudgetFundingResponse)]
pub struct FundBody {
    operation: String,
    previous_allocated: Amount,
    new_allocated: Amount,
    previous_remaining: SignedAmount,
    new_remaining: SignedAmount,
    previous_debt: Amount,
    new_debt: Amount,
    previous_spent: Amount,
    new_spent: Amount,
    timestamp: String,
}

#[utoipa::path(post, path = "/v1/admin/budgets/fund", operation_id = "fundBudget", tag = "Budgets",
    params(LocateQuery), request_body = FundRequest,
    responses((status = 200, description = "The funding result", body = FundBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn fund(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<LocateQuery>,
    JsonBody(req): JsonBody<FundRequest>,
) -> ApiResult<Json<FundBody>> {
    let admin_tenant = q.tenant_id.clone().filter(|s| !s.is_empty());
    let r = route(caller, ctx, admin_tenant, Permission::BudgetsWrite)?;
    let budget = locate(&q)?;
    let unit = budget.unit;
    check_scope_filter(&r.key, &budget.scope)?;
    let amt = amount_in("amount", &req.amount, unit)?;
    let op: FundOp = req.operation.into();
    let spent = match (&req.spent, op) {
        (None, _) => None,
        (Some(s), FundOp::ResetSpent) => Some(amount_in("spent", s, unit)?),
        (Some(_), _) => {
            return Err(ApiError::invalid_field("spent", "is only accepted with RESET_SPENT"));
        }
    };
    check_len("reason", &req.reason, REASON_LEN_MAX)?;
    if let Some(k) = &req.idempotency_key
        && (k.is_empty() || k.len() > FUND_IDEMPOTENCY_KEY_LEN_MAX)
    {
        return Err(ApiError::invalid_field(
            "idempotency_key",
            format!("must be 1 to {FUND_IDEMPOTENCY_KEY_LEN_MAX} characters"),
        ));
    }
    crate::runtime_api::wire::metadata_json("metadata", &req.metadata)?;
    let hash = request_hash(&req)?;
    let funding = Funding {
        op,
        amount: amt,
        spent,
        reason: req.reason.clone().unwrap_or_default(),
        idempotency: req.idempotency_key.clone().map(|k| (k, hash)),
    };
    let outcome = state.catalogue.fund_budget(&r.actor, &r.tenant, budget, funding).await?;
    let a = |v: i64| amount(unit, v);
    let signed = |v: i64| SignedAmount { unit, amount: v };
    Ok(Json(FundBody {
        operation: outcome.operation,
        previous_allocated: a(outcome.previous.allocated),
        new_allocated: a(outcome.new.allocated),
        previous_remaining: signed(outcome.previous.remaining),
        new_remaining: signed(outcome.new.remaining),
        previous_debt: a(outcome.previous.debt),
        new_debt: a(outcome.new.debt),
        previous_spent: a(outcome.previous.spent),
        new_spent: a(outcome.new.spent),
        timestamp: rfc3339_ms(outcome.applied_at_ms),
    }))
}
