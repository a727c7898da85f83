//! `GET /v1/admin/budgets/usage` (an extension after DVARA's budget usage): one budget's spend
//! in its current period, its burn rates over the last hour and day (from the hourly rollups),
//! and when it runs out at the last hour's burn. A periodic budget's current period is its own
//! (reads show it rolled) and its period spend is its `spent`, which a roll starts again from
//! zero; any other budget's period is the UTC calendar month, and its period spend is what the
//! daily rollups say its spent moved by in that month.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::budgets::unit_param;
use super::token_usage::clamp;
use super::usage::Period;
use crate::auth::AdminAuth;
use crate::domain::amount::Unit;
use crate::domain::scope::{parse_budget_scope, scope_tenant};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::extract::QueryParams;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BudgetQuery {
    scope: Option<String>,
    unit: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BudgetUsageResponse)]
pub struct BudgetUsage {
    tenant_id: String,
    scope: String,
    unit: Unit,
    allocated: i64,
    spent: i64,
    reserved: i64,
    debt: i64,
    remaining: i64,
    #[serde(with = "time::serde::rfc3339")]
    period_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    period_end: OffsetDateTime,
    /// `budget` (the budget's own period) or `calendar_month`.
    period_source: &'static str,
    /// A periodic budget's `spent`; else what its spent moved by in the month (the rollups').
    period_spend: i64,
    /// Spend per hour over the last hour (the current UTC hour and the one before it).
    burn_rate_last_hour: f64,
    /// Spend per hour over the last day (the last 24 UTC hours and the current one).
    burn_rate_last_day: f64,
    /// When the budget runs out at the last hour's burn (absent when nothing burns or nothing remains).
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    projected_exhaustion_at: Option<OffsetDateTime>,
}

/// Spend per hour of what moved since the start of the hour `hours` before the current one.
async fn burn(state: &AppState, budget: (&str, &str, &str), now: OffsetDateTime, hours: i64) -> ApiResult<f64> {
    let since = crate::store::pg::usage::Hour::of(now).0 - Duration::hours(hours);
    let moved = state.catalogue.committed_since(budget, since).await?;
    let span_h = ((now - since).as_seconds_f64() / 3600.0).max(1.0 / 60.0);
    Ok(moved as f64 / span_h)
}

#[utoipa::path(get, path = "/v1/admin/budgets/usage", operation_id = "getBudgetUsage", tag = "Usage",
    params(BudgetQuery),
    responses((status = 200, description = "A budget's period spend, burn rates and projected exhaustion (extension)", body = BudgetUsage), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn budget(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<BudgetQuery>,
) -> ApiResult<Json<BudgetUsage>> {
    let raw =
        q.scope.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| ApiError::invalid_field("scope", "is required"))?;
    let scope = parse_budget_scope(raw).map_err(|e| ApiError::invalid_field("scope", e))?;
    let unit = unit_param(q.unit.as_deref())?;
    let tenant = scope_tenant(&scope).to_string();
    let doc =
        state.ledger.budget(&tenant, &scope, unit).await?.ok_or_else(|| {
            ApiError::new(ErrorCode::BudgetNotFound, format!("no budget exists for {scope} in {unit}"))
        })?;
    let now = crate::domain::clock::now();
    let budget = (tenant.as_str(), scope.as_str(), unit.as_str());
    let (period, period_spend) = match Period::of_budget(&doc) {
        Some(p) => (p, doc.balance.spent),
        None => {
            let month = Period::month(now);
            let sums = state.catalogue.usage_by_unit(&tenant, &scope, month.days.0, month.days.1).await?;
            (month, sums.iter().find(|(u, _)| u == unit.as_str()).map_or(0, |(_, r)| clamp(r.committed)))
        }
    };
    let burn_rate_last_hour = burn(&state, budget, now, 1).await?;
    let burn_rate_last_day = burn(&state, budget, now, 24).await?;
    let b = &doc.balance;
    let remaining = b.remaining();
    let projected_exhaustion_at = (burn_rate_last_hour > 0.0 && remaining > 0)
        .then(|| now + Duration::seconds_f64((remaining as f64 / burn_rate_last_hour * 3600.0).min(1e11)));
    Ok(Json(BudgetUsage {
        tenant_id: tenant.clone(),
        scope: scope.clone(),
        unit,
        allocated: b.allocated,
        spent: b.spent,
        reserved: b.reserved,
        debt: b.debt,
        remaining,
        period_start: period.start,
        period_end: period.end,
        period_source: period.source,
        period_spend,
        burn_rate_last_hour,
        burn_rate_last_day,
        projected_exhaustion_at,
    }))
}
