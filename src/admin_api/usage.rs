//! Usage rollups (extensions): `GET /v1/admin/tenants/{tenant_id}/usage` (the current period
//! per unit, the root budget's own period or else the UTC calendar month: the ledger's
//! balances and the rollups' counts) and `.../usage/daily?days=N` (one row per UTC day and
//! unit). The counts come from the rollups the outbox drain keeps; nothing here scans events.
//! One budget's usage is in `budget_usage`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime};

use super::token_usage::clamp;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{PathParam, QueryParams};
use crate::ledger::reads::BudgetDoc;
use crate::state::AppState;
use crate::store::pg::usage::Rollup;

/// `days` accepts 1..=366 (a leap year's worth of daily rows per unit).
pub const DAYS_MAX: i64 = 366;
const DAYS_DEFAULT: i64 = 30;

/// The rollups' counters as served.
#[derive(Serialize, Default, utoipa::ToSchema)]
#[schema(as = UsageCounts)]
pub struct Counts {
    /// What the budgets' spent moved by (commits and usage events, overage included), at this scope.
    committed: i64,
    /// What the operations under this scope charged.
    charged: i64,
    reserves: i64,
    commits: i64,
    events: i64,
    releases: i64,
    expiries: i64,
    denials: i64,
    tokens_input: i64,
    tokens_output: i64,
    tokens: i64,
}

impl From<&Rollup> for Counts {
    fn from(r: &Rollup) -> Self {
        Self {
            committed: clamp(r.committed),
            charged: clamp(r.charged),
            reserves: r.reserves,
            commits: r.commits,
            events: r.events,
            releases: r.releases,
            expiries: r.expiries,
            denials: r.denials,
            tokens_input: clamp(r.tokens_input),
            tokens_output: clamp(r.tokens_output),
            tokens: clamp(r.tokens_input + r.tokens_output),
        }
    }
}

/// One unit of a tenant's usage in the current period.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TenantUnitUsage)]
pub struct UnitUsage {
    unit: String,
    /// The unit's current period: its root budget's (`tenant:<id>`) when that budget has a
    /// period, as the budget shows it (`period_end` excluded), else the UTC calendar month.
    #[serde(with = "time::serde::rfc3339")]
    period_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    period_end: OffsetDateTime,
    /// `budget` or `calendar_month`: where the period comes from.
    #[schema(example = "budget")]
    period_source: &'static str,
    /// Summed over the tenant's outermost budgets in this unit (none nested in another).
    allocated: i64,
    spent: i64,
    reserved: i64,
    debt: i64,
    remaining: i64,
    /// `(spent + reserved) / allocated × 100`, 0 when nothing is allocated.
    percent_used: f64,
    /// The rollups of the UTC days the period overlaps (days are the finest rollups that hold
    /// every count).
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TenantUsageResponse)]
pub struct TenantUsage {
    tenant_id: String,
    /// The UTC calendar month: the period of every unit without a periodic root budget.
    #[serde(with = "time::serde::rfc3339")]
    period_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    period_end: OffsetDateTime,
    total_reserves: i64,
    total_tokens: i64,
    units: Vec<UnitUsage>,
}

/// The current period: the UTC calendar month holding `now`, as days and as instants.
fn month_of(now: OffsetDateTime) -> (Date, Date, OffsetDateTime, OffsetDateTime) {
    let first = now.date().replace_day(1).unwrap_or(now.date());
    let next = first.checked_add(Duration::days(32)).and_then(|d| d.replace_day(1).ok()).unwrap_or(first);
    let last = next.previous_day().unwrap_or(first);
    (first, last, first.midnight().assume_utc(), next.midnight().assume_utc() - Duration::seconds(1))
}

/// A unit's current period: the days its rollups are summed over, and its instants.
#[derive(Clone, Copy)]
pub(super) struct Period {
    pub days: (Date, Date),
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub source: &'static str,
}

impl Period {
    pub fn month(now: OffsetDateTime) -> Self {
        let (first, last, start, end) = month_of(now);
        Self { days: (first, last), start, end, source: "calendar_month" }
    }

    /// The current period (reads show it rolled) of the tenant's root budget in `unit`, if that
    /// budget has one and is not CLOSED (a closed budget no longer rolls).
    fn of_root(docs: &[BudgetDoc], tenant: &str, unit: &str) -> Option<Self> {
        let root = format!("tenant:{tenant}");
        Self::of_budget(docs.iter().find(|d| d.balance.scope == root && d.balance.unit.as_str() == unit)?)
    }

    /// The budget's current period, if it has one and is not CLOSED.
    pub fn of_budget(d: &BudgetDoc) -> Option<Self> {
        if d.period.is_empty() || d.status == "CLOSED" {
            return None;
        }
        let start = OffsetDateTime::parse(&d.period_start, &Rfc3339).ok()?;
        let end = OffsetDateTime::parse(&d.period_end, &Rfc3339).ok()?;
        let last = (end - Duration::milliseconds(1)).date();
        Some(Self { days: (start.date(), last.max(start.date())), start, end, source: "budget" })
    }
}

/// Per unit: the tenant's outermost budgets (no budgeted ancestor in the unit), summed.
fn outermost(docs: &[BudgetDoc]) -> BTreeMap<&'static str, [i128; 4]> {
    let mut out: BTreeMap<&'static str, [i128; 4]> = BTreeMap::new();
    for d in docs {
        let b = &d.balance;
        let nested = docs.iter().any(|o| {
            o.balance.unit == b.unit
                && b.scope.len() > o.balance.scope.len()
                && b.scope.starts_with(&format!("{}/", o.balance.scope))
        });
        if !nested {
            let sums = out.entry(b.unit.as_str()).or_default();
            for (i, v) in [b.allocated, b.spent, b.reserved, b.debt].into_iter().enumerate() {
                sums[i] += i128::from(v);
            }
        }
    }
    out
}

#[utoipa::path(get, path = "/v1/admin/tenants/{tenant_id}/usage", operation_id = "getTenantUsage", tag = "Usage",
    params(("tenant_id" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "The tenant's usage in the current period (extension)", body = TenantUsage), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn tenant(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<TenantUsage>> {
    state.catalogue.get_tenant(&id).await?;
    let month = Period::month(crate::domain::clock::now());
    let members = state.ledger.budget_members(&id).await?;
    let docs = state.ledger.budgets(&id, &members).await?;
    let balances = outermost(&docs);
    let root = format!("tenant:{id}");
    let periods: BTreeMap<&str, Period> =
        balances.keys().filter_map(|u| Period::of_root(&docs, &id, u).map(|p| (*u, p))).collect();
    // One rollup query per distinct span of days (the month, and each periodic root budget's).
    let mut rollups: BTreeMap<(Date, Date), BTreeMap<String, Rollup>> = BTreeMap::new();
    for days in std::iter::once(month.days).chain(periods.values().map(|p| p.days)) {
        if let std::collections::btree_map::Entry::Vacant(slot) = rollups.entry(days) {
            let rows = state.catalogue.usage_by_unit(&id, &root, days.0, days.1).await?;
            slot.insert(rows.into_iter().collect());
        }
    }
    let mut units: Vec<&str> =
        balances.keys().copied().chain(rollups[&month.days].keys().map(String::as_str)).collect();
    units.sort_unstable();
    units.dedup();
    let none = Rollup::default();
    let units: Vec<UnitUsage> = units
        .into_iter()
        .map(|unit| {
            let period = periods.get(unit).copied().unwrap_or(month);
            let [a, s, r, d] = balances.get(unit).copied().unwrap_or_default();
            let percent_used = if a > 0 { (s + r) as f64 / a as f64 * 100.0 } else { 0.0 };
            let counts = Counts::from(rollups.get(&period.days).and_then(|by| by.get(unit)).unwrap_or(&none));
            let remaining = clamp(a - s - r - d);
            UnitUsage {
                unit: unit.to_string(),
                period_start: period.start,
                period_end: period.end,
                period_source: period.source,
                allocated: clamp(a),
                spent: clamp(s),
                reserved: clamp(r),
                debt: clamp(d),
                remaining,
                percent_used,
                counts,
            }
        })
        .collect();
    Ok(Json(TenantUsage {
        tenant_id: id,
        period_start: month.start,
        period_end: month.end,
        total_reserves: units.iter().map(|u| u.counts.reserves).sum(),
        total_tokens: units.iter().fold(0i64, |t, u| t.saturating_add(u.counts.tokens)),
        units,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// Days back from today, today included: 1..=366 (default 30).
    #[param(value_type = Option<u32>)]
    days: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DailyUsageRow)]
pub struct DailyRow {
    /// The UTC day, `YYYY-MM-DD`.
    date: String,
    unit: String,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DailyUsageResponse)]
pub struct Daily {
    tenant_id: String,
    days: i64,
    /// Newest day first; every day of the window for each unit the tenant used in it.
    daily: Vec<DailyRow>,
}

pub fn days_param(raw: Option<&str>) -> ApiResult<i64> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(DAYS_DEFAULT),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=DAYS_MAX).contains(d))
            .ok_or_else(|| ApiError::invalid_field("days", format!("must be an integer from 1 to {DAYS_MAX}"))),
    }
}

#[utoipa::path(get, path = "/v1/admin/tenants/{tenant_id}/usage/daily", operation_id = "getTenantDailyUsage", tag = "Usage",
    params(("tenant_id" = String, Path, description = "The tenant's id"), DailyQuery),
    responses((status = 200, description = "The tenant's usage per UTC day and unit (extension)", body = Daily), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn daily(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<DailyQuery>,
) -> ApiResult<Json<Daily>> {
    let days = days_param(q.days.as_deref())?;
    state.catalogue.get_tenant(&id).await?;
    let today = crate::domain::clock::now().date();
    let first = today - Duration::days(days - 1);
    let rows = state.catalogue.usage_daily(&id, &format!("tenant:{id}"), first, today).await?;
    let mut by: BTreeMap<(Date, String), Rollup> = BTreeMap::new();
    let mut units: Vec<String> = Vec::new();
    for (day, unit, r) in rows {
        if !units.contains(&unit) {
            units.push(unit.clone());
        }
        by.insert((day, unit), r);
    }
    units.sort();
    let none = Rollup::default();
    let mut daily = Vec::with_capacity(units.len() * days as usize);
    let mut day = today;
    while day >= first {
        for unit in &units {
            let counts = Counts::from(by.get(&(day, unit.clone())).unwrap_or(&none));
            daily.push(DailyRow { date: day.to_string(), unit: unit.clone(), counts });
        }
        match day.previous_day() {
            Some(d) => day = d,
            None => break,
        }
    }
    Ok(Json(Daily { tenant_id: id, days, daily }))
}
