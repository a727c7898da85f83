//! Usage the drain keeps, in the transaction that stores the outbox entries it comes from:
//! token usage records (one per commit and per usage event) and the rollups per tenant, scope,
//! unit and UTC day (and hour, for burn rates), and the records' hourly token rollup per
//! tenant, API key, model and unit (what the token usage summary reads).
//!
//! The runtime scripts append `usage.*` entries (Tollgate's own kinds, never events: a reserve,
//! a commit, a usage event, a release) beside the spec's events; denials and expiries are
//! counted from their spec events. Each entry counts once: a `usage.*` entry by its id in
//! `usage_entries`, an event by its row in `events` (only newly stored events are passed in).
//! Counts go to every scope of the operation's subject path (so the `tenant:<t>` row counts the
//! whole tenant); `committed` (what a budget's spent moved by) goes to the budgeted scopes only.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};
use time::OffsetDateTime;

use crate::domain::event::{Event, EventType};
use crate::store::StoreResult;
use crate::store::pg::PgTx;
use crate::store::pg::token_usage::{self as tokens_store, TokenHourKey, TokenRecord, TokenTotals};
use crate::store::pg::usage::{self as store, Day, Hour, Rollup};
use crate::store::redis::streams::StreamEntry;

/// The entry kinds the scripts append for the drain alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Reserved,
    Committed,
    Applied,
    Released,
}

/// One `usage.*` outbox entry, decoded.
#[derive(Debug, Clone)]
pub struct UsageEntry {
    pub entry_id: String,
    pub tenant: String,
    pub kind: Kind,
    pub path: String,
    pub unit: String,
    pub at: OffsetDateTime,
    pub charged: i64,
    /// What each budgeted scope's spent moved by (commits and usage events).
    pub spent: Vec<(String, i64)>,
    pub reservation_id: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    /// The key id, model and metrics the API passed through the script.
    pub key_id: Option<String>,
    pub model: String,
    pub metrics: Option<Json>,
}

/// Whether an outbox entry is one of Tollgate's own usage entries rather than an event.
pub fn is_usage(entry: &StreamEntry) -> bool {
    entry.field("t").is_some_and(|t| t.starts_with("usage."))
}

fn int(v: Option<&Json>) -> i64 {
    match v {
        Some(Json::String(s)) => s.parse().unwrap_or(0),
        Some(Json::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// Decodes one `usage.*` entry of `tenant` (`Err` names why it is not one).
pub fn parse(tenant: &str, entry: &StreamEntry) -> Result<UsageEntry, String> {
    let kind = match entry.field("t").unwrap_or_default() {
        "usage.reserved" => Kind::Reserved,
        "usage.committed" => Kind::Committed,
        "usage.applied" => Kind::Applied,
        "usage.released" => Kind::Released,
        other => return Err(format!("unknown usage entry {other:?}")),
    };
    let ts: i128 = entry.field("ts").and_then(|s| s.parse().ok()).ok_or("no timestamp")?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(ts * 1_000_000).map_err(|e| e.to_string())?;
    let data: Map<String, Json> = match serde_json::from_str(entry.field("d").unwrap_or("{}")) {
        Ok(Json::Object(m)) => m,
        Ok(Json::Array(a)) if a.is_empty() => Map::new(),
        _ => return Err("data is not a JSON object".into()),
    };
    let spent = match data.get("spent") {
        Some(Json::Object(m)) => m.iter().map(|(scope, v)| (scope.clone(), int(Some(v)))).collect(),
        _ => Vec::new(),
    };
    let usage: Map<String, Json> = match data.get("x").and_then(Json::as_str).map(serde_json::from_str::<Json>) {
        Some(Ok(Json::Object(m))) => m,
        _ => Map::new(),
    };
    let text = |v: Option<&Json>| v.and_then(Json::as_str).filter(|s| !s.is_empty()).map(String::from);
    let model = text(usage.get("model")).or_else(|| text(data.get("action"))).unwrap_or_default();
    Ok(UsageEntry {
        entry_id: super::outbox::event_id_of(tenant, &entry.id),
        tenant: tenant.to_string(),
        kind,
        path: entry.field("s").filter(|s| !s.is_empty()).map_or_else(|| format!("tenant:{tenant}"), String::from),
        unit: entry.field("u").unwrap_or_default().to_string(),
        at,
        charged: int(data.get("charged")),
        spent,
        reservation_id: text(data.get("reservation_id")),
        request_id: entry.field("rq").filter(|s| !s.is_empty()).map(String::from),
        trace_id: entry.field("tr").filter(|s| s.len() == 32).map(String::from),
        key_id: text(usage.get("k")),
        model,
        metrics: usage.get("m").filter(|m| m.is_object()).cloned(),
    })
}

/// Every scope of a subject path, outermost first (`tenant:a`, `tenant:a/workspace:b`, ...).
pub fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(|(i, _)| &path[..i]).chain(std::iter::once(path))
}

/// The rollup deltas of one drained batch, summed per row (sorted, so concurrent drains
/// upsert shared rows in one order).
#[derive(Debug, Default)]
pub struct Deltas {
    pub daily: BTreeMap<(String, String, String, Day), Rollup>,
    pub hourly: BTreeMap<(String, String, String, Hour), i128>,
    /// Token totals of the records this batch stored for the first time.
    pub tokens: BTreeMap<TokenHourKey, TokenTotals>,
}

impl Deltas {
    fn at(&mut self, tenant: &str, scope: &str, unit: &str, at: OffsetDateTime) -> &mut Rollup {
        self.daily.entry((tenant.to_string(), scope.to_string(), unit.to_string(), Day(at.date()))).or_default()
    }

    fn count(&mut self, tenant: &str, path: &str, unit: &str, at: OffsetDateTime, f: impl Fn(&mut Rollup)) {
        for scope in prefixes(path) {
            f(self.at(tenant, scope, unit, at));
        }
    }

    pub fn add_entry(&mut self, u: &UsageEntry) {
        let (tokens_in, tokens_out) = tokens(u.metrics.as_ref());
        let charged = i128::from(u.charged);
        self.count(&u.tenant, &u.path, &u.unit, u.at, |r| match u.kind {
            Kind::Reserved => r.reserves += 1,
            Kind::Released => r.releases += 1,
            Kind::Committed | Kind::Applied => {
                if u.kind == Kind::Committed {
                    r.commits += 1;
                } else {
                    r.events += 1;
                }
                r.charged += charged;
                r.tokens_input += i128::from(tokens_in.unwrap_or(0));
                r.tokens_output += i128::from(tokens_out.unwrap_or(0));
            }
        });
        for (scope, amount) in &u.spent {
            self.at(&u.tenant, scope, &u.unit, u.at).committed += i128::from(*amount);
            let hour = (u.tenant.clone(), scope.clone(), u.unit.clone(), Hour::of(u.at));
            *self.hourly.entry(hour).or_default() += i128::from(*amount);
        }
    }

    /// A newly stored token usage record, in its hour's token rollup.
    pub fn add_record(&mut self, r: &TokenRecord<'_>) {
        let key = (
            r.tenant_id.to_string(),
            r.api_key_id.unwrap_or_default().to_string(),
            r.model.to_string(),
            r.unit.to_string(),
            Hour::of(r.occurred_at),
        );
        self.tokens.entry(key).or_default().add(r);
    }

    /// Denials and expiries, from their (newly stored) spec events.
    pub fn add_event(&mut self, e: &Event) {
        let bump: fn(&mut Rollup) = match e.event_type {
            EventType::ReservationDenied => |r| r.denials += 1,
            EventType::ReservationExpired => |r| r.expiries += 1,
            _ => return,
        };
        let unit = e.data.get("unit").and_then(Json::as_str).unwrap_or_default();
        let path = e.scope.clone().unwrap_or_else(|| format!("tenant:{}", e.tenant_id));
        self.count(&e.tenant_id, &path, unit, e.timestamp, bump);
    }
}

/// A metric counter as an int64 (saturating: the spec bounds none of them).
fn count_of(m: Option<&Json>, name: &str) -> Option<i64> {
    m?.get(name)?.as_f64().map(|f| if f >= i64::MAX as f64 { i64::MAX } else { f as i64 })
}

fn tokens(m: Option<&Json>) -> (Option<i64>, Option<i64>) {
    (count_of(m, "tokens_input"), count_of(m, "tokens_output"))
}

/// Applies a batch's usage in `tx`: the usage entries not applied before, and the rollups of
/// those and of `new_events` (the events this transaction stored for the first time).
pub async fn apply(tx: &mut PgTx, entries: &[UsageEntry], new_events: &[&Event]) -> StoreResult<()> {
    let mut deltas = Deltas::default();
    for u in entries {
        if !store::claim_entry(tx, &u.entry_id, u.at).await? {
            continue;
        }
        if matches!(u.kind, Kind::Committed | Kind::Applied) {
            let (tokens_input, tokens_output) = tokens(u.metrics.as_ref());
            crate::telemetry::tokens(&u.model, tokens_input.unwrap_or(0), tokens_output.unwrap_or(0));
            let record = record_of(u, tokens_input, tokens_output);
            // A record stored before (an entry redelivered after `usage_entries` was pruned)
            // is already in its hourly row.
            if tokens_store::insert_record(tx, &record).await? {
                deltas.add_record(&record);
            }
        }
        deltas.add_entry(u);
    }
    for e in new_events {
        deltas.add_event(e);
    }
    store::apply_rollups(tx, &deltas.daily, &deltas.hourly).await?;
    tokens_store::apply_hourly(tx, &deltas.tokens).await
}

fn record_of(u: &UsageEntry, tokens_input: Option<i64>, tokens_output: Option<i64>) -> TokenRecord<'_> {
    TokenRecord {
        record_id: &u.entry_id,
        tenant_id: &u.tenant,
        api_key_id: u.key_id.as_deref(),
        source: if u.kind == Kind::Committed { "commit" } else { "event" },
        reservation_id: u.reservation_id.as_deref(),
        scope: &u.path,
        unit: &u.unit,
        model: &u.model,
        tokens_input,
        tokens_output,
        latency_ms: count_of(u.metrics.as_ref(), "latency_ms"),
        charged: u.charged,
        occurred_at: u.at,
        request_id: u.request_id.as_deref(),
        trace_id: u.trace_id.as_deref(),
        metrics: u.metrics.as_ref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_yields_each_of_its_scopes_outermost_first() {
        let all: Vec<&str> = prefixes("tenant:a/workspace:b/agent:c").collect();
        assert_eq!(all, ["tenant:a", "tenant:a/workspace:b", "tenant:a/workspace:b/agent:c"]);
        assert_eq!(prefixes("tenant:a").collect::<Vec<_>>(), ["tenant:a"]);
    }
}
