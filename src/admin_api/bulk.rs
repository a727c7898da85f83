//! `POST /v1/admin/tenants/bulk-action` and `POST /v1/admin/budgets/bulk-action`: wire types
//! and thin handlers. They validate the whole body (before anything is counted), open the bulk
//! invocation (idempotency replay), match the rows with the same filters as the list endpoints,
//! and hand them to `catalogue::bulk`, which applies the gates and the rows.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::budget_list::{self, Filters, ListQuery};
use super::webhooks::Object;
use crate::auth::AdminAuth;
use crate::catalogue::audit::Actor;
use crate::catalogue::bulk::{Begun, Bulk, BulkFunding, BulkRequest, TenantAction};
use crate::domain::amount::de_opt_int;
use crate::domain::tenant::{ObserveMode, TenantId, TenantStatus};
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::JsonBody;
use crate::http::page::search_param;
use crate::ledger::budgets::FundOp;
use crate::runtime_api::wire::Amount;
use crate::state::AppState;
use crate::store::pg::tenants::Filter;

/// The spec's bound on an idempotency key.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;
/// The spec's bound on a budget bulk action's `reason`.
const REASON_LEN_MAX: usize = 512;

/// The envelope fields every bulk request shares: a 1..128 character key, a non-negative count.
pub fn check_envelope(idempotency_key: &str, expected_count: Option<i64>) -> ApiResult<()> {
    if idempotency_key.is_empty() || idempotency_key.chars().count() > IDEMPOTENCY_KEY_LEN_MAX {
        return Err(ApiError::invalid_field(
            "idempotency_key",
            format!("must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} characters"),
        ));
    }
    if expected_count.is_some_and(|n| n < 0) {
        return Err(ApiError::invalid_field("expected_count", "must not be negative"));
    }
    Ok(())
}

/// SHA-256 of the request as parsed: the same request, however formatted, has one hash.
pub fn fingerprint(req: &impl Serialize) -> ApiResult<String> {
    let canonical = serde_json::to_vec(req).map_err(ApiError::internal)?;
    Ok(hex::encode(Sha256::digest(&canonical)))
}

/// The spec's `TenantBulkActionResponse` and `BudgetBulkActionResponse` (the same shape), as
/// `catalogue::bulk` builds them (and a replay returns them); this type only describes them.
#[derive(utoipa::ToSchema)]
#[schema(as = BulkActionResponse)]
#[allow(dead_code)]
pub struct BulkResponse {
    action: String,
    total_matched: u32,
    /// `{id}` per row changed.
    succeeded: Vec<RowOutcome>,
    /// `{id, error_code, message}` per row that failed.
    failed: Vec<RowOutcome>,
    /// `{id, reason}` per row already in the requested state.
    skipped: Vec<RowOutcome>,
    idempotency_key: String,
}

/// The spec's `BulkActionRowOutcome`.
#[derive(utoipa::ToSchema)]
#[schema(as = BulkActionRowOutcome)]
#[allow(dead_code)]
pub struct RowOutcome {
    id: String,
    error_code: Option<String>,
    message: Option<String>,
    reason: Option<String>,
}

/// The stored response of a replay, or the fresh invocation.
async fn begin(state: &AppState, req: BulkRequest) -> ApiResult<Result<Bulk, Value>> {
    Ok(match state.catalogue.bulk_begin(req).await? {
        Begun::Replay(previous) => Err(previous),
        Begun::Fresh(bulk) => Ok(*bulk),
    })
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantBulkFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observe_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    search: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TenantBulkActionRequest)]
#[serde(deny_unknown_fields)]
pub struct TenantBulkRequest {
    #[schema(value_type = TenantBulkFilter)]
    filter: Object<TenantBulkFilter>,
    /// `SUSPEND`, `REACTIVATE` or `CLOSE`.
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_opt_int")]
    expected_count: Option<i64>,
    idempotency_key: String,
}

/// The tenant filter as the list reads it (`observe_mode` matches the stored value exactly).
fn tenant_filter(f: &TenantBulkFilter) -> ApiResult<Filter> {
    let status = match f.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            TenantStatus::parse(s)
                .ok_or_else(|| ApiError::invalid_field("filter.status", "must be ACTIVE, SUSPENDED or CLOSED"))?,
        ),
    };
    let observe_mode =
        match f.observe_mode.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(m) => Some(ObserveMode::parse(m).ok_or_else(|| {
                ApiError::invalid_field("filter.observe_mode", "must be DISABLED, OBSERVE or ENFORCE")
            })?),
        };
    let search = search_param(f.search.as_deref()).map_err(|e| ApiError::invalid_field("filter.search", e.message))?;
    let parent_tenant_id = f.parent_tenant_id.clone().filter(|p| !p.is_empty());
    if status.is_none() && parent_tenant_id.is_none() && observe_mode.is_none() && search.is_none() {
        return Err(ApiError::invalid_field(
            "filter",
            "must set at least one of status, parent_tenant_id, observe_mode, search (an empty filter would match \
             every tenant)",
        ));
    }
    Ok(Filter { tenant_id: None, status, parent_tenant_id, observe_mode, search })
}

/// `POST /v1/admin/tenants/bulk-action` (platform principals with `tenants:write`).
#[utoipa::path(post, path = "/v1/admin/tenants/bulk-action", operation_id = "bulkActionTenants", tag = "Tenants",
    request_body = TenantBulkRequest,
    responses((status = 200, description = "What the action did, row by row (a repeated idempotency key replays it)", body = BulkResponse), crate::http::openapi::E400_401_403_409_500_503)
)]
pub async fn tenants(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(Object(req)): JsonBody<Object<TenantBulkRequest>>,
) -> ApiResult<Json<Value>> {
    let action = TenantAction::parse(&req.action)
        .ok_or_else(|| ApiError::invalid_field("action", "must be one of SUSPEND, REACTIVATE, CLOSE"))?;
    check_envelope(&req.idempotency_key, req.expected_count)?;
    let filter = tenant_filter(&req.filter.0)?;
    let spec = BulkRequest {
        operation: "bulkActionTenants",
        scope: String::new(),
        action: req.action.clone(),
        idempotency_key: req.idempotency_key.clone(),
        request_hash: fingerprint(&req)?,
        expected_count: req.expected_count,
        filter: serde_json::to_value(&req.filter.0).map_err(ApiError::internal)?,
        noun: "tenants",
    };
    let bulk = match begin(&state, spec).await? {
        Ok(bulk) => bulk,
        Err(previous) => return Ok(Json(previous)),
    };
    Ok(Json(state.catalogue.bulk_tenants(&Actor::admin(ctx), bulk, action, &filter).await?))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetBulkFilter {
    /// Required: the tenant whose budgets are matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = true)]
    tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    over_limit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    has_debt: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    utilization_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    utilization_max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    search: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = BudgetBulkActionRequest)]
#[serde(deny_unknown_fields)]
pub struct BudgetBulkRequest {
    #[schema(value_type = BudgetBulkFilter)]
    filter: Object<BudgetBulkFilter>,
    /// `CREDIT`, `DEBIT`, `RESET`, `REPAY_DEBT` or `RESET_SPENT`.
    action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spent: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_opt_int")]
    expected_count: Option<i64>,
    idempotency_key: String,
}

fn fund_op(raw: &str) -> ApiResult<FundOp> {
    Ok(match raw {
        "CREDIT" => FundOp::Credit,
        "DEBIT" => FundOp::Debit,
        "RESET" => FundOp::Reset,
        "RESET_SPENT" => FundOp::ResetSpent,
        "REPAY_DEBT" => FundOp::RepayDebt,
        _ => {
            let why = "must be one of CREDIT, DEBIT, RESET, REPAY_DEBT, RESET_SPENT";
            return Err(ApiError::invalid_field("action", why));
        }
    })
}

/// The budget filter as `GET /v1/admin/budgets` reads it, errors naming `filter.<field>`.
fn budget_filters(f: &BudgetBulkFilter) -> ApiResult<(String, Filters)> {
    let tenant = f.tenant_id.clone().filter(|t| !t.is_empty());
    let tenant = tenant.ok_or_else(|| ApiError::invalid_field("filter.tenant_id", "is required"))?;
    TenantId::parse(&tenant).map_err(|e| ApiError::invalid_field("filter.tenant_id", e))?;
    let text = |v: Option<bool>| v.map(|b| b.to_string());
    let ratio = |v: Option<f64>| v.map(|r| r.to_string());
    let q = ListQuery {
        tenant_id: Some(tenant.clone()),
        scope_prefix: f.scope_prefix.clone(),
        unit: f.unit.clone(),
        status: f.status.clone(),
        over_limit: text(f.over_limit),
        has_debt: text(f.has_debt),
        utilization_min: ratio(f.utilization_min),
        utilization_max: ratio(f.utilization_max),
        search: f.search.clone(),
        ..ListQuery::default()
    };
    Ok((tenant, Filters::parse(&q, "filter.")?))
}

/// The operation, validated as a whole before anything is counted.
fn budget_funding(req: &BudgetBulkRequest, tenant: String) -> ApiResult<BulkFunding> {
    let op = fund_op(&req.action)?;
    let amount =
        req.amount.ok_or_else(|| ApiError::invalid_field("amount", format!("is required for {}", req.action)))?;
    let spent = match (op, req.spent) {
        (FundOp::ResetSpent, Some(s)) if s.unit != amount.unit => {
            return Err(ApiError::invalid_field("spent.unit", "must be the unit of amount"));
        }
        (FundOp::ResetSpent, Some(s)) => Some(s.amount),
        // The spec: `spent` is only honoured with RESET_SPENT and ignored otherwise.
        _ => None,
    };
    if req.reason.as_ref().is_some_and(|r| r.chars().count() > REASON_LEN_MAX) {
        return Err(ApiError::invalid_field("reason", format!("must be at most {REASON_LEN_MAX} characters")));
    }
    let reason = req.reason.clone().unwrap_or_default();
    Ok(BulkFunding { tenant, op, amount: amount.amount, unit: amount.unit, spent, reason })
}

/// `POST /v1/admin/budgets/bulk-action` (`budgets:fund`; a tenant-bound principal only on its
/// own tenant, named by `filter.tenant_id`).
#[utoipa::path(post, path = "/v1/admin/budgets/bulk-action", operation_id = "bulkActionBudgets", tag = "Budgets",
    request_body = BudgetBulkRequest,
    responses((status = 200, description = "What the action did, row by row (a repeated idempotency key replays it)", body = BulkResponse), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn budgets(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(Object(req)): JsonBody<Object<BudgetBulkRequest>>,
) -> ApiResult<Json<Value>> {
    fund_op(&req.action)?;
    check_envelope(&req.idempotency_key, req.expected_count)?;
    let (tenant, filters) = budget_filters(&req.filter.0)?;
    let funding = budget_funding(&req, tenant.clone())?;
    state.catalogue.get_tenant(&tenant).await?;
    let spec = BulkRequest {
        operation: "bulkActionBudgets",
        scope: tenant,
        action: req.action.clone(),
        idempotency_key: req.idempotency_key.clone(),
        request_hash: fingerprint(&req)?,
        expected_count: req.expected_count,
        filter: serde_json::to_value(&req.filter.0).map_err(ApiError::internal)?,
        noun: "budgets",
    };
    let bulk = match begin(&state, spec).await? {
        Ok(bulk) => bulk,
        Err(previous) => return Ok(Json(previous)),
    };
    let matched = budget_list::read(&state, None, &filters).await?;
    Ok(Json(state.catalogue.bulk_budgets(&Actor::admin(ctx), bulk, matched, funding).await?))
}
