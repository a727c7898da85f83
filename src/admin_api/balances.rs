//! `GET /v1/balances` on the admin plane (governance spec `getBalances`, normative): the
//! budgets of one tenant as `BudgetLedger` items under `balances`, filtered by `scope_prefix`
//! and `unit`, paged like the budget list. A tenant key sees its own tenant (a `tenant_id`
//! naming another is 403) and what its scope filter allows; the admin key names the tenant
//! with `tenant_id` or sees every tenant's. The answers are the budget list's for the same
//! filters (`budget_list::read`), so both planes agree with the ledger.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::budget_list::{Filters, ListQuery as BudgetQuery, read};
use super::budgets::BudgetBody;
use crate::auth::{AnyAuth, Caller};
use crate::domain::Permission;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::extract::QueryParams;
use crate::http::page::{self, ListParams, Position};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BalanceQuery {
    tenant_id: Option<String>,
    scope_prefix: Option<String>,
    /// USD_MICROCENTS, TOKENS, CREDITS or RISK_POINTS.
    unit: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BalanceListResponse)]
pub struct BalanceListBody {
    balances: Vec<BudgetBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

#[utoipa::path(get, path = "/v1/balances", operation_id = "getBalances", tag = "Balances",
    params(BalanceQuery, crate::http::page::ListParams),
    responses((status = 200, description = "Budget ledgers matching the query filters", body = BalanceListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn balances(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    QueryParams(q): QueryParams<BalanceQuery>,
) -> ApiResult<Json<BalanceListBody>> {
    let key = match &caller {
        Caller::Admin => None,
        Caller::Tenant(t) => {
            t.require(Permission::BalancesRead, ErrorCode::InsufficientPermissions)?;
            let own = t.key.tenant_id.as_str();
            if let Some(other) = q.tenant_id.as_deref().filter(|v| !v.is_empty() && *v != own) {
                return Err(ApiError::new(ErrorCode::Forbidden, format!("tenant_id {other} is not this key's tenant")));
            }
            Some(t)
        }
    };
    let query = BudgetQuery {
        tenant_id: q.tenant_id.clone(),
        scope_prefix: q.scope_prefix.clone(),
        unit: q.unit.clone(),
        ..BudgetQuery::default()
    };
    let filters = Filters::parse(&query, "")?;
    let fingerprint = (key.map(|k| k.key.tenant_id.as_str()), &filters);
    let paging = page::parse(&q.page, &["scope"], "scope", page::ADMIN, &fingerprint)?;
    let docs = read(&state, key, &filters).await?;
    let page = paging.page(docs, |d| Position {
        key: format!("{}|{}", d.tenant, d.balance.scope),
        id: format!("{}|{}|{}", d.tenant, d.balance.scope, d.balance.unit),
    });
    Ok(Json(BalanceListBody {
        balances: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        has_more: page.has_more,
    }))
}
