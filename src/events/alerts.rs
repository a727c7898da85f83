//! Alerts raised and resolved from the ledger's own events, in the drain's transaction (only
//! events stored for the first time are passed in, so a redelivery raises nothing twice), and
//! by the burn-rate check (`workers::burn_rate`).
//!
//! Severity rule: `critical` when money is at stake now (utilization at 100 %, a budget
//! exhausted, over its overdraft limit); `warning` when it soon will be (95 %, debt incurred,
//! empty within 2 h at the last hour's burn); `info` for the early notice (80 %). One alert per
//! condition while it is open (a unique index); each resolves itself when its condition clears.

use serde_json::{Value as Json, json};
use time::OffsetDateTime;

use crate::domain::event::{Event, EventType};
use crate::store::StoreResult;
use crate::store::pg::PgTx;
use crate::store::pg::alerts::{self as store, Alert, Which};

/// The kinds of alert, as stored and served.
pub const THRESHOLD: &str = "threshold";
pub const EXHAUSTED: &str = "exhausted";
pub const OVER_LIMIT: &str = "over_limit";
pub const DEBT: &str = "debt";
pub const BURN_RATE: &str = "burn_rate";

/// The severity of a utilization threshold crossing.
fn threshold_severity(t: f64) -> &'static str {
    if t >= 1.0 {
        "critical"
    } else if t >= 0.95 {
        "warning"
    } else {
        "info"
    }
}

/// A new alert about one budget (`extra` distinguishes conditions of one kind).
pub fn new_alert(
    budget: (&str, &str, &str),
    kind: &str,
    extra: &str,
    severity: &str,
    message: String,
    details: Json,
    at: OffsetDateTime,
) -> Alert {
    let (tenant, scope, unit) = budget;
    Alert {
        alert_id: format!("alrt_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: tenant.to_string(),
        scope: scope.to_string(),
        unit: unit.to_string(),
        kind: kind.to_string(),
        condition: format!("{kind}|{tenant}|{scope}|{unit}|{extra}"),
        severity: severity.to_string(),
        message,
        details,
        created_at: at,
        resolved: false,
        resolved_at: None,
        resolved_by: None,
    }
}

fn num(data: &Json, name: &str) -> Option<i64> {
    data.get(name).and_then(Json::as_i64)
}

/// Raises and resolves what `new_events` say about their budgets.
pub async fn apply(tx: &mut PgTx, new_events: &[&Event]) -> StoreResult<()> {
    for e in new_events {
        let (Some(scope), Some(unit)) = (e.scope.as_deref(), e.data.get("unit").and_then(Json::as_str)) else {
            continue;
        };
        let budget = (e.tenant_id.as_str(), scope, unit);
        let at = e.timestamp;
        let label = format!("{scope} ({unit})");
        let d = &e.data;
        match e.event_type {
            EventType::BudgetThresholdCrossed => {
                let t = d.get("threshold").and_then(Json::as_f64).unwrap_or(0.0);
                if d.get("direction").and_then(Json::as_str) == Some("falling") {
                    store::resolve_budget(tx, budget, Which::ThresholdsFrom(t), at).await?;
                } else {
                    let pct = (t * 100.0).round();
                    let msg = format!("Budget {label} reached {pct}% utilization");
                    let details = json!({ "threshold": t, "utilization": d.get("utilization") });
                    let a = new_alert(budget, THRESHOLD, &t.to_string(), threshold_severity(t), msg, details, at);
                    store::raise(tx, &a, false).await?;
                }
                if num(d, "remaining").is_some_and(|r| r > 0) {
                    store::resolve_budget(tx, budget, Which::Kind(EXHAUSTED), at).await?;
                }
            }
            EventType::BudgetExhausted => {
                let msg = format!("Budget {label} is exhausted");
                let details = json!({ "allocated": d.get("allocated"), "remaining": d.get("remaining") });
                store::raise(tx, &new_alert(budget, EXHAUSTED, "", "critical", msg, details, at), false).await?;
            }
            EventType::BudgetOverLimitEntered => {
                let msg = format!("Budget {label} is over its overdraft limit");
                let details = json!({ "debt": d.get("debt"), "overdraft_limit": d.get("overdraft_limit") });
                store::raise(tx, &new_alert(budget, OVER_LIMIT, "", "critical", msg, details, at), false).await?;
            }
            EventType::BudgetOverLimitExited => {
                store::resolve_budget(tx, budget, Which::Kind(OVER_LIMIT), at).await?;
                if num(d, "debt") == Some(0) {
                    store::resolve_budget(tx, budget, Which::Kind(DEBT), at).await?;
                }
            }
            EventType::BudgetDebtIncurred => {
                let msg = format!("Budget {label} incurred debt");
                let details = json!({ "total_debt": d.get("total_debt"), "overdraft_limit": d.get("overdraft_limit") });
                store::raise(tx, &new_alert(budget, DEBT, "", "warning", msg, details, at), false).await?;
            }
            EventType::BudgetReset
            | EventType::BudgetResetSpent
            | EventType::BudgetClosed
            | EventType::BudgetClosedViaTenantCascade => {
                store::resolve_budget(tx, budget, Which::All, at).await?;
            }
            EventType::BudgetFunded | EventType::BudgetDebtRepaid | EventType::BudgetUpdated => {
                resolve_by_state(tx, budget, d.get("new_state").unwrap_or(d), at).await?;
            }
            EventType::BudgetPeriodRolled => {
                // A new period: its burn is measured afresh, and what the new state no longer
                // shows clears (a roll never forgives debt, so a debt alert stays while owed).
                store::resolve_budget(tx, budget, Which::Kind(BURN_RATE), at).await?;
                resolve_by_state(tx, budget, d.get("new_state").unwrap_or(d), at).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Resolves what a budget's new state no longer shows: thresholds above its utilization,
/// exhaustion once something remains, debt once repaid.
async fn resolve_by_state(tx: &mut PgTx, budget: (&str, &str, &str), s: &Json, at: OffsetDateTime) -> StoreResult<()> {
    if let (Some(a), Some(spent), Some(reserved)) = (num(s, "allocated"), num(s, "spent"), num(s, "reserved"))
        && a > 0
    {
        let utilization = (spent as f64 + reserved as f64) / a as f64;
        store::resolve_budget(tx, budget, Which::ThresholdsFrom(utilization + 1e-9), at).await?;
    }
    if num(s, "remaining").is_some_and(|r| r > 0) {
        store::resolve_budget(tx, budget, Which::Kind(EXHAUSTED), at).await?;
    }
    if num(s, "debt") == Some(0) {
        store::resolve_budget(tx, budget, Which::Kind(DEBT), at).await?;
    }
    Ok(())
}

/// How soon an exhaustion at the last hour's burn raises a `burn_rate` alert.
const BURN_HORIZON_S: f64 = 7_200.0;
/// Budgets one check examines at most (those burning; the rest are idle and cost nothing).
const BURNING_MAX: i64 = 10_000;

/// One pass of the burn-rate check (see `workers::burn_rate`).
pub async fn burn_check(
    pg: &crate::store::pg::PgStore,
    ledger: &crate::ledger::Ledger,
) -> crate::domain::error::Result<()> {
    use crate::store::pg::usage::{Hour, burning_since};
    let now = crate::domain::clock::now();
    let since = Hour::of(now).0 - time::Duration::hours(1);
    let span_h = ((now - since).as_seconds_f64() / 3600.0).max(1.0 / 60.0);
    let month = format!("{}-{:02}", now.year(), u8::from(now.month()));
    let mut eta_min = crate::telemetry::EXHAUSTION_ETA_NONE_SECONDS;
    let mut fast = std::collections::HashSet::new();
    let mut tx = pg.begin().await?;
    for (tenant, scope, unit, moved) in burning_since(pg.pool(), since, BURNING_MAX).await? {
        let Some(u) = crate::domain::amount::Unit::parse(&unit) else { continue };
        let Some(doc) = ledger.budget(&tenant, &scope, u).await? else { continue };
        let (rate_h, remaining) = (moved as f64 / span_h, doc.balance.remaining());
        if rate_h <= 0.0 || remaining <= 0 {
            continue;
        }
        let eta_s = remaining as f64 / rate_h * 3600.0;
        eta_min = eta_min.min(eta_s);
        if eta_s < BURN_HORIZON_S {
            // Once per budget and period: a periodic budget's own, else the calendar month.
            let period = if doc.period.is_empty() { month.clone() } else { doc.period_start.clone() };
            fast.insert((tenant.clone(), scope.clone(), unit.clone()));
            let budget = (tenant.as_str(), scope.as_str(), unit.as_str());
            let msg = format!("Budget {scope} ({unit}) is empty in {:.0} min at the last hour's burn", eta_s / 60.0);
            let details = json!({ "burn_rate_per_hour": rate_h, "remaining": remaining, "eta_seconds": eta_s });
            store::raise(&mut tx, &new_alert(budget, BURN_RATE, &period, "warning", msg, details, now), true).await?;
        }
    }
    for (tenant, scope, unit) in store::open_budgets_of_kind(&mut tx, BURN_RATE).await? {
        if !fast.contains(&(tenant.clone(), scope.clone(), unit.clone())) {
            store::resolve_budget(&mut tx, (&tenant, &scope, &unit), Which::Kind(BURN_RATE), now).await?;
        }
    }
    crate::store::pg::commit(tx).await?;
    let [info, warning, critical] = store::open_counts(pg.pool()).await?;
    crate::telemetry::spend_gauges([("info", info), ("warning", warning), ("critical", critical)], eta_min);
    Ok(())
}
