//! `GET /v1/admin/overview` (governance spec `getAdminOverview`): counts of tenants, budgets and
//! webhooks, the top offenders, and the last hour's events, in one answer; plus, as an
//! extension, ARES-style `platform_stats` (tenants, reserves and tokens today, open alerts).
//! Budgets live in the ledger and are read tenant by tenant (at most `BUDGETS_SCAN_MAX` each).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value as Json_, json};
use time::{Duration, OffsetDateTime};

use super::token_usage::clamp;
use crate::auth::AdminAuth;
use crate::domain::amount::Unit;
use crate::domain::event::Event;
use crate::error::ApiResult;
use crate::ledger::reads::BudgetDoc;
use crate::state::AppState;

/// The window of `event_counts`, `recent_denials` and `recent_expiries` (the spec's 1 hour).
pub const EVENT_WINDOW_SECONDS: i64 = 3600;
/// Rows of each top list (the spec's maxItems).
const TOP_MAX: usize = 10;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AdminOverviewResponse)]
pub struct OverviewBody {
    #[serde(with = "time::serde::rfc3339")]
    as_of: OffsetDateTime,
    event_window_seconds: i64,
    #[schema(value_type = Object)]
    tenant_counts: Json_,
    #[schema(value_type = Object)]
    budget_counts: Json_,
    #[schema(value_type = Vec<Object>)]
    over_limit_scopes: Vec<Json_>,
    #[schema(value_type = Vec<Object>)]
    debt_scopes: Vec<Json_>,
    #[schema(value_type = Object)]
    webhook_counts: Json_,
    #[schema(value_type = Vec<Object>)]
    failing_webhooks: Vec<Json_>,
    #[schema(value_type = Object)]
    event_counts: Json_,
    recent_denials: Vec<Event>,
    recent_expiries: Vec<Event>,
    #[schema(value_type = Object)]
    recent_denials_by_reason: Json_,
    /// Extension: tenants, reserves and tokens today (UTC), open alerts.
    #[schema(value_type = Object)]
    platform_stats: Json_,
}

/// The budget half: counts, and the top over-limit and indebted budgets.
fn budget_part(docs: &[BudgetDoc]) -> (Json_, Vec<Json_>, Vec<Json_>) {
    let mut by_unit: BTreeMap<&str, i64> = Unit::ALL.iter().map(|u| (u.as_str(), 0)).collect();
    let (mut active, mut frozen, mut closed, mut over, mut debt) = (0, 0, 0, 0, 0);
    for d in docs {
        *by_unit.entry(d.balance.unit.as_str()).or_default() += 1;
        match d.status.as_str() {
            "ACTIVE" => active += 1,
            "FROZEN" => frozen += 1,
            _ => closed += 1,
        }
        over += i64::from(d.balance.is_over_limit);
        debt += i64::from(d.balance.debt > 0);
    }
    let counts = json!({ "total": docs.len(), "active": active, "frozen": frozen, "closed": closed,
        "over_limit": over, "with_debt": debt, "by_unit": by_unit });
    let mut over_limit: Vec<&BudgetDoc> = docs.iter().filter(|d| d.balance.is_over_limit).collect();
    over_limit.sort_by_key(|d| std::cmp::Reverse(d.balance.debt));
    let mut indebted: Vec<&BudgetDoc> = docs.iter().filter(|d| d.balance.debt > 0).collect();
    indebted.sort_by_key(|d| std::cmp::Reverse(d.balance.debt));
    let over_limit = over_limit
        .into_iter()
        .take(TOP_MAX)
        .map(|d| {
            let b = &d.balance;
            json!({ "scope": b.scope, "unit": b.unit.as_str(), "allocated": b.allocated, "remaining": b.remaining(), "debt": b.debt })
        })
        .collect();
    let indebted = indebted
        .into_iter()
        .take(TOP_MAX)
        .map(|d| {
            let b = &d.balance;
            json!({ "scope": b.scope, "unit": b.unit.as_str(), "debt": b.debt, "overdraft_limit": b.overdraft_limit })
        })
        .collect();
    (counts, over_limit, indebted)
}

#[utoipa::path(get, path = "/v1/admin/overview", operation_id = "getAdminOverview", tag = "Dashboard",
    responses((status = 200, description = "Operational overview snapshot", body = OverviewBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn overview(State(state): State<AppState>, _: AdminAuth) -> ApiResult<Json<OverviewBody>> {
    let as_of = crate::domain::clock::now();
    let c = state.catalogue.overview(as_of - Duration::seconds(EVENT_WINDOW_SECONDS)).await?;
    let mut docs = Vec::new();
    for tenant in state.catalogue.tenant_ids().await? {
        let members = state.ledger.budget_members(&tenant).await?;
        docs.extend(state.ledger.budgets(&tenant, &members).await?);
    }
    let (budget_counts, over_limit_scopes, debt_scopes) = budget_part(&docs);
    let (reserves_today, tokens_today, open_alerts) = state.catalogue.platform_stats(as_of.date()).await?;
    let [total, active, suspended, closed, in_observe_mode] = c.tenants;
    let [w_total, w_active, w_disabled, w_failing] = c.webhooks;
    let failing_webhooks = c
        .failing_webhooks
        .into_iter()
        .map(|(id, url, failures, last)| {
            let mut w = json!({ "subscription_id": id, "url": url, "consecutive_failures": failures });
            if let Some(at) = last.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()) {
                w["last_failure_at"] = json!(at);
            }
            w
        })
        .collect();
    let by_category: BTreeMap<String, i64> = c.events_by_category.into_iter().collect();
    let by_reason: BTreeMap<String, i64> = c.denials_by_reason.into_iter().collect();
    Ok(Json(OverviewBody {
        as_of,
        event_window_seconds: EVENT_WINDOW_SECONDS,
        tenant_counts: json!({
            "total": total, "active": active, "suspended": suspended, "closed": closed,
            "in_observe_mode": in_observe_mode,
        }),
        budget_counts,
        over_limit_scopes,
        debt_scopes,
        webhook_counts: json!({ "total": w_total, "active": w_active, "disabled": w_disabled, "with_failures": w_failing }),
        failing_webhooks,
        event_counts: json!({ "total_recent": c.events_total, "by_category": by_category }),
        recent_denials: c.recent_denials,
        recent_expiries: c.recent_expiries,
        recent_denials_by_reason: json!(by_reason),
        platform_stats: json!({ "total_tenants": total, "total_reserves_today": reserves_today,
            "total_tokens_today": clamp(tokens_today), "active_alerts": open_alerts }),
    }))
}
