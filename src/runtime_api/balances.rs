//! `GET /v1/balances`: the caller's budgets whose scope contains every given subject filter
//! as an exact segment; at least one filter is required; pages in scope order with the shared
//! pager.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::common::{require, tenant_header};
use super::wire::{BalanceBody, balances};
use crate::auth::TenantAuth;
use crate::domain::Permission;
use crate::domain::scope::{LEVELS, filter_allows};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::QueryParams;
use crate::http::page::{self, Paging, Position, Sort};
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BalancesQuery {
    tenant: Option<String>,
    workspace: Option<String>,
    app: Option<String>,
    workflow: Option<String>,
    agent: Option<String>,
    toolset: Option<String>,
    /// Accepted and ignored (the spec lets servers ignore it), but must be a boolean.
    include_children: Option<String>,
    /// Page size (the list's bounds apply; a value outside them is a 400).
    #[param(value_type = Option<u32>, minimum = 1)]
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BalanceResponse)]
pub struct BalancesBody {
    balances: Vec<BalanceBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

#[utoipa::path(get, path = "/v1/balances", operation_id = "getBalances", tag = "Balances",
    params(BalancesQuery),
    responses((status = 200, description = "Balances of the matching scopes", body = BalancesBody), crate::http::openapi::E400_401_403_429_500_503),
    security(("ApiKeyAuth" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    QueryParams(q): QueryParams<BalancesQuery>,
) -> ApiResult<impl IntoResponse> {
    require(&caller, Permission::BalancesRead)?;
    if q.include_children.as_deref().is_some_and(|v| !matches!(v, "" | "true" | "false")) {
        return Err(ApiError::invalid_field("include_children", "must be true or false"));
    }
    let tenant = caller.key.tenant_id.as_str();
    let values = [&q.tenant, &q.workspace, &q.app, &q.workflow, &q.agent, &q.toolset];
    let wanted: Vec<String> = LEVELS
        .iter()
        .zip(values)
        .filter_map(|(level, v)| {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|v| format!("{level}:{}", v.to_ascii_lowercase()))
        })
        .collect();
    if wanted.is_empty() {
        return Err(ApiError::invalid("at least one of tenant, workspace, app, workflow, agent, toolset is required"));
    }
    if q.tenant.as_deref().map(str::trim).is_some_and(|t| !t.is_empty() && !t.eq_ignore_ascii_case(tenant)) {
        return Err(ApiError::forbidden("tenant does not match the API key's tenant"));
    }
    let limit = page::limit(q.limit.as_deref(), page::RUNTIME)?;
    let paging = Paging::new(Sort::ascending("scope"), limit, q.cursor.as_deref(), &wanted)?;
    let members: Vec<_> = state
        .ledger
        .budget_members(tenant)
        .await?
        .into_iter()
        .filter(|(scope, _)| {
            wanted.iter().all(|w| scope.split('/').any(|seg| seg == w))
                && filter_allows(&caller.key.scope_filter, scope)
        })
        .collect();
    let page = paging.page(members, |(scope, unit)| Position { key: scope.clone(), id: unit.as_str().to_string() });
    let docs = state.ledger.budgets(tenant, &page.items).await?;
    let list: Vec<_> = docs.into_iter().map(|d| d.balance).collect();
    Ok((
        tenant_header(tenant),
        Json(BalancesBody { balances: balances(&list), next_cursor: page.next_cursor, has_more: page.has_more }),
    ))
}
