//! `GET /v1/admin/budgets`: budgets filtered by the query and paged with the shared pager.
//! A tenant key sees its own tenant's budgets that its scope filter allows; the admin key one
//! tenant's (`tenant_id`) or every tenant's. Budgets live in the ledger, so the list reads
//! them whole (at most `BUDGETS_SCAN_MAX` per tenant) and pages in memory.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::budgets::{BudgetBody, unit_param};
use crate::auth::{AnyAuth, Caller, TenantCaller};
use crate::domain::Permission;
use crate::domain::amount::Unit;
use crate::domain::scope::{filter_allows, parse_budget_scope};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::extract::QueryParams;
use crate::http::page::{self, ListParams, Position, search_param};
use crate::ledger::reads::BudgetDoc;
use crate::state::AppState;

#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub(super) tenant_id: Option<String>,
    pub(super) scope_prefix: Option<String>,
    pub(super) unit: Option<String>,
    pub(super) status: Option<String>,
    pub(super) over_limit: Option<String>,
    pub(super) has_debt: Option<String>,
    pub(super) utilization_min: Option<String>,
    pub(super) utilization_max: Option<String>,
    pub(super) search: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    pub(super) page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BudgetListResponse)]
pub struct ListBody {
    ledgers: Vec<BudgetBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

const SORTS: &[&str] = &["tenant_id", "scope", "unit", "status", "commit_overage_policy", "utilization", "debt"];

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The same 400 naming `field` instead (`filter.unit` rather than `unit`).
fn renamed(field: &str, e: ApiError) -> ApiError {
    let problem = e.message.split_once(": ").map_or(e.message.as_str(), |(_, p)| p);
    ApiError::invalid_field(field, problem)
}

fn bool_param(field: &str, v: &Option<String>) -> ApiResult<Option<bool>> {
    match non_empty(v) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid_field(field, "must be true or false")),
    }
}

fn ratio_param(field: &str, v: &Option<String>) -> ApiResult<Option<f64>> {
    non_empty(v)
        .map(|s| {
            s.parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| ApiError::invalid_field(field, "must be a number from 0 to 1"))
        })
        .transpose()
}

/// `spent / allocated` (0 when nothing is allocated), the admin list's utilization.
fn utilization(d: &BudgetDoc) -> f64 {
    let b = &d.balance;
    if b.allocated == 0 { 0.0 } else { b.spent as f64 / b.allocated as f64 }
}

/// A budget's position in the list: the sort column as text that orders like the value, then
/// `tenant|scope|unit`.
fn position(d: &BudgetDoc, by: &str) -> Position {
    let key = match by {
        "tenant_id" => d.tenant.clone(),
        "scope" => d.balance.scope.clone(),
        "unit" => d.balance.unit.as_str().to_string(),
        "status" => d.status.clone(),
        "commit_overage_policy" => d.commit_overage_policy.map(|p| p.as_str().to_string()).unwrap_or_default(),
        "debt" => format!("{:020}", d.balance.debt),
        _ => format!("{:020.6}", utilization(d)),
    };
    Position { key, id: format!("{}|{}|{}", d.tenant, d.balance.scope, d.balance.unit) }
}

/// The validated filters; also what a cursor's fingerprint covers. The budget bulk action
/// parses its body's filter into the same query, so a preview list matches what it changes.
#[derive(Debug)]
pub(super) struct Filters {
    tenant: Option<String>,
    unit: Option<Unit>,
    prefix: Option<String>,
    status: Option<String>,
    over_limit: Option<bool>,
    has_debt: Option<bool>,
    utilization: (Option<f64>, Option<f64>),
    search: Option<String>,
}

impl Filters {
    /// Parses `q`; errors name the field with `at` before it (`filter.` for a bulk body).
    pub(super) fn parse(q: &ListQuery, at: &str) -> ApiResult<Self> {
        let name = |f: &str| format!("{at}{f}");
        let unit =
            non_empty(&q.unit).map(|u| unit_param(Some(u)).map_err(|e| renamed(&name("unit"), e))).transpose()?;
        let prefix = non_empty(&q.scope_prefix)
            .map(|p| parse_budget_scope(p).map_err(|e| ApiError::invalid_field(&name("scope_prefix"), e)))
            .transpose()?;
        let status = non_empty(&q.status).map(String::from);
        if status.as_deref().is_some_and(|s| !matches!(s, "ACTIVE" | "FROZEN" | "CLOSED")) {
            return Err(ApiError::invalid_field(&name("status"), "must be ACTIVE, FROZEN or CLOSED"));
        }
        let over_limit = bool_param(&name("over_limit"), &q.over_limit)?;
        let has_debt = bool_param(&name("has_debt"), &q.has_debt)?;
        let umin = ratio_param(&name("utilization_min"), &q.utilization_min)?;
        let umax = ratio_param(&name("utilization_max"), &q.utilization_max)?;
        if let (Some(a), Some(b)) = (umin, umax)
            && a > b
        {
            return Err(ApiError::invalid_field(&name("utilization_min"), "must not exceed utilization_max"));
        }
        let search =
            search_param(q.search.as_deref()).map_err(|e| renamed(&name("search"), e))?.map(|s| s.to_ascii_lowercase());
        let tenant = non_empty(&q.tenant_id).map(String::from);
        Ok(Self { tenant, unit, prefix, status, over_limit, has_debt, utilization: (umin, umax), search })
    }

    fn member_allowed(&self, key: Option<&TenantCaller>, scope: &str, unit: Unit) -> bool {
        self.unit.is_none_or(|w| w == unit)
            && self.prefix.as_ref().is_none_or(|p| scope == p || scope.starts_with(&format!("{p}/")))
            && key.is_none_or(|k| filter_allows(&k.key.scope_filter, scope))
    }

    fn doc_allowed(&self, d: &BudgetDoc) -> bool {
        let u = utilization(d);
        let (umin, umax) = self.utilization;
        self.status.as_deref().is_none_or(|s| d.status == s)
            && self.over_limit.is_none_or(|o| d.balance.is_over_limit == o)
            && self.has_debt.is_none_or(|h| (d.balance.debt > 0) == h)
            && umin.is_none_or(|m| u >= m)
            && umax.is_none_or(|m| u <= m)
            && self
                .search
                .as_ref()
                .is_none_or(|s| d.tenant.contains(s.as_str()) || d.balance.scope.contains(s.as_str()))
    }
}

/// Every budget the caller may see that the filters keep.
pub(super) async fn read(state: &AppState, key: Option<&TenantCaller>, filters: &Filters) -> ApiResult<Vec<BudgetDoc>> {
    let tenants = match (key, &filters.tenant) {
        (Some(k), _) => vec![k.key.tenant_id.to_string()],
        (None, Some(t)) => vec![t.clone()],
        (None, None) => state.catalogue.tenant_ids().await?,
    };
    let mut docs = Vec::new();
    for tenant in &tenants {
        let members: Vec<_> = state
            .ledger
            .budget_members(tenant)
            .await?
            .into_iter()
            .filter(|(scope, unit)| filters.member_allowed(key, scope, *unit))
            .collect();
        docs.extend(state.ledger.budgets(tenant, &members).await?);
    }
    docs.retain(|d| filters.doc_allowed(d));
    Ok(docs)
}

#[utoipa::path(get, path = "/v1/admin/budgets", operation_id = "listBudgets", tag = "Budgets",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of budgets", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let key = match &caller {
        Caller::Admin => None,
        Caller::Tenant(t) => {
            t.require(Permission::BudgetsRead, ErrorCode::InsufficientPermissions)?;
            Some(t)
        }
    };
    let filters = Filters::parse(&q, "")?;
    let paging =
        page::parse(&q.page, SORTS, "utilization", page::ADMIN, &(key.map(|k| k.key.tenant_id.as_str()), &filters))?;
    let docs = read(&state, key, &filters).await?;
    let page = paging.page(docs, |d| position(d, &paging.sort.by));
    Ok(Json(ListBody {
        ledgers: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        has_more: page.has_more,
    }))
}
