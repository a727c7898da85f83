//! SQL for token usage: the records (one per commit and per usage event) and their hourly
//! rollup, both written by the outbox drain in its transaction; the list, and the summary,
//! which answers a window's whole UTC hours from the rollup and only its partial hours at the
//! two edges from the records, so it never scans a month of records at read time.

use std::collections::BTreeMap;

use sqlx::{Postgres, QueryBuilder, Row as _};
use time::{Duration, OffsetDateTime};

use super::PgTx;
use super::page::{Page, PageSpec, after_of, finish};
use super::usage::{Hour, big};
use crate::store::StoreResult;

#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenRecord<'a> {
    pub record_id: &'a str,
    pub tenant_id: &'a str,
    pub api_key_id: Option<&'a str>,
    pub source: &'a str,
    pub reservation_id: Option<&'a str>,
    pub scope: &'a str,
    pub unit: &'a str,
    pub model: &'a str,
    pub tokens_input: Option<i64>,
    pub tokens_output: Option<i64>,
    pub latency_ms: Option<i64>,
    pub charged: i64,
    pub occurred_at: OffsetDateTime,
    pub request_id: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    pub metrics: Option<&'a serde_json::Value>,
}

/// Stores a record; false when one with its id was stored before (it then counts nowhere again).
pub async fn insert_record(tx: &mut PgTx, r: &TokenRecord<'_>) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO token_usage (record_id, tenant_id, api_key_id, source, reservation_id, scope, unit, model, \
         tokens_input, tokens_output, latency_ms, charged, occurred_at, request_id, trace_id, metrics) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16) ON CONFLICT (record_id) DO NOTHING",
    )
    .bind(r.record_id)
    .bind(r.tenant_id)
    .bind(r.api_key_id)
    .bind(r.source)
    .bind(r.reservation_id)
    .bind(r.scope)
    .bind(r.unit)
    .bind(r.model)
    .bind(r.tokens_input)
    .bind(r.tokens_output)
    .bind(r.latency_ms)
    .bind(r.charged)
    .bind(r.occurred_at)
    .bind(r.request_id)
    .bind(r.trace_id)
    .bind(r.metrics)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Tenant, API key id (`""` for none), model, unit and UTC hour: one row of the rollup.
pub type TokenHourKey = (String, String, String, String, Hour);

/// Token totals (a delta when written, a sum when read); a record without a count adds 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenTotals {
    pub tokens_input: i128,
    pub tokens_output: i128,
    pub calls: i64,
    pub charged: i128,
}

impl TokenTotals {
    pub fn add(&mut self, r: &TokenRecord<'_>) {
        self.tokens_input += i128::from(r.tokens_input.unwrap_or(0));
        self.tokens_output += i128::from(r.tokens_output.unwrap_or(0));
        self.calls += 1;
        self.charged += i128::from(r.charged);
    }
}

/// Adds the deltas to their hourly rows, in key order (so concurrent drains lock shared rows
/// in one order).
pub async fn apply_hourly(tx: &mut PgTx, deltas: &BTreeMap<TokenHourKey, TokenTotals>) -> StoreResult<()> {
    for ((tenant, key, model, unit, hour), t) in deltas {
        sqlx::query(
            "INSERT INTO token_usage_hourly AS h (tenant_id, api_key_id, model, unit, hour, tokens_input, \
             tokens_output, calls, charged) VALUES ($1,$2,$3,$4,$5,$6::numeric,$7::numeric,$8,$9::numeric) \
             ON CONFLICT (tenant_id, hour, api_key_id, model, unit) DO UPDATE SET \
             tokens_input = h.tokens_input + EXCLUDED.tokens_input, \
             tokens_output = h.tokens_output + EXCLUDED.tokens_output, \
             calls = h.calls + EXCLUDED.calls, charged = h.charged + EXCLUDED.charged",
        )
        .bind(tenant)
        .bind(key)
        .bind(model)
        .bind(unit)
        .bind(hour.0)
        .bind(t.tokens_input.to_string())
        .bind(t.tokens_output.to_string())
        .bind(t.calls)
        .bind(t.charged.to_string())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Filters of the token usage list and summary; `from` and `to` both inclusive.
#[derive(Debug, Default, Clone)]
pub struct TokenFilter {
    pub tenant: Option<String>,
    pub api_key_id: Option<String>,
    pub model: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

/// The tenant, key and model filters (columns both tables have).
fn push_identity(qb: &mut QueryBuilder<Postgres>, f: &TokenFilter) {
    for (column, value) in [("tenant_id", &f.tenant), ("api_key_id", &f.api_key_id), ("model", &f.model)] {
        if let Some(v) = value {
            qb.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    }
}

/// Time bounds on `column`, each an operator and an instant.
fn push_bounds(qb: &mut QueryBuilder<Postgres>, column: &str, bounds: &[(&str, Option<OffsetDateTime>)]) {
    for (op, at) in bounds {
        if let Some(at) = at {
            qb.push(format!(" AND {column} {op} ")).push_bind(*at);
        }
    }
}

/// A stored token usage record, as read.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct StoredRecord {
    pub record_id: String,
    pub tenant_id: String,
    pub api_key_id: Option<String>,
    pub source: String,
    pub reservation_id: Option<String>,
    pub scope: String,
    pub unit: String,
    pub model: String,
    pub tokens_input: Option<i64>,
    pub tokens_output: Option<i64>,
    pub latency_ms: Option<i64>,
    pub charged: i64,
    pub occurred_at: OffsetDateTime,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub metrics: Option<serde_json::Value>,
}

pub async fn list_records(pool: &sqlx::PgPool, f: &TokenFilter, page: &PageSpec) -> StoreResult<Page<StoredRecord>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT record_id, tenant_id, api_key_id, source, reservation_id, scope, unit, model, tokens_input, \
         tokens_output, latency_ms, charged, occurred_at, request_id, trace_id, metrics, {} FROM token_usage WHERE TRUE",
        page.cursor_columns()
    ));
    push_identity(&mut qb, f);
    push_bounds(&mut qb, "occurred_at", &[(">=", f.from), ("<=", f.to)]);
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows = qb.build().fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        use sqlx::FromRow as _;
        out.push((StoredRecord::from_row(&row)?, after_of(&row)?));
    }
    Ok(finish(out, page.limit))
}

/// Totals per model and unit: input tokens, output tokens, calls, charged.
#[derive(Debug, Clone)]
pub struct ModelTotals {
    pub model: String,
    pub unit: String,
    pub totals: TokenTotals,
}

/// Models and units a summary reports at most (a limit on the answer, not on the data).
pub const SUMMARY_ROWS_MAX: i64 = 1_000;

/// The whole UTC hours inside the window `[from, to]` (both inclusive, `None` unbounded), as
/// `[lo, hi)`: `lo` is `from` rounded up to an hour (`None` when `from` is), `hi` the start of
/// the hour holding the instant after `to` (`None` when `to` is). `None` when no whole hour
/// fits, or when rounding would leave the representable range: the records answer alone.
/// Instants are whole microseconds (as Postgres stores them), so "after `to`" is `to + 1 µs`.
pub fn whole_hours(
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
) -> Option<(Option<OffsetDateTime>, Option<OffsetDateTime>)> {
    let lo = match from {
        None => None,
        Some(from) => {
            let start = Hour::of(from).0;
            Some(if start == from { start } else { start.checked_add(Duration::HOUR)? })
        }
    };
    let hi = match to {
        None => None,
        Some(to) => Some(Hour::of(to.checked_add(Duration::MICROSECOND)?).0),
    };
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo >= hi => None,
        _ => Some((lo, hi)),
    }
}

/// One part of the summary's union: records with `bounds` on their time.
fn push_records(qb: &mut QueryBuilder<Postgres>, f: &TokenFilter, bounds: &[(&str, Option<OffsetDateTime>)]) {
    qb.push(
        "SELECT model, unit, tokens_input::numeric AS ti, tokens_output::numeric AS tout, 1::bigint AS calls, \
         charged::numeric AS charged FROM token_usage WHERE TRUE",
    );
    push_identity(qb, f);
    push_bounds(qb, "occurred_at", bounds);
}

/// Totals per model and unit over the filter's window: its whole hours from
/// `token_usage_hourly`, its partial edge hours (at most one at each end) from the records.
/// One statement, so one snapshot: the drain writes a record and its hourly row in one
/// transaction, so the answer equals a scan of every matching record.
pub async fn summary(pool: &sqlx::PgPool, f: &TokenFilter) -> StoreResult<Vec<ModelTotals>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT model, unit, sum(ti)::text, sum(tout)::text, sum(calls)::bigint, sum(charged)::text FROM (",
    );
    match whole_hours(f.from, f.to) {
        None => push_records(&mut qb, f, &[(">=", f.from), ("<=", f.to)]),
        Some((lo, hi)) => {
            qb.push(
                "SELECT model, unit, tokens_input AS ti, tokens_output AS tout, calls, charged \
                 FROM token_usage_hourly WHERE TRUE",
            );
            push_identity(&mut qb, f);
            push_bounds(&mut qb, "hour", &[(">=", lo), ("<", hi)]);
            if lo.is_some() {
                qb.push(" UNION ALL ");
                push_records(&mut qb, f, &[(">=", f.from), ("<", lo)]);
            }
            if hi.is_some() {
                qb.push(" UNION ALL ");
                push_records(&mut qb, f, &[(">=", hi), ("<=", f.to)]);
            }
        }
    }
    qb.push(") AS parts GROUP BY model, unit ORDER BY model, unit LIMIT ").push_bind(SUMMARY_ROWS_MAX);
    let rows = qb.build().fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let totals = TokenTotals {
            tokens_input: big(&row, 2)?,
            tokens_output: big(&row, 3)?,
            calls: row.try_get::<Option<i64>, _>(4)?.unwrap_or(0),
            charged: big(&row, 5)?,
        };
        out.push(ModelTotals { model: row.try_get(0)?, unit: row.try_get(1)?, totals });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_window_splits_into_its_whole_hours_and_the_partial_edges() {
        let at =
            |h: u8, m: u8| datetime!(2026-05-01 00:00 UTC) + Duration::hours(h.into()) + Duration::minutes(m.into());
        let last_us_of = |h: u8| at(h, 0) - Duration::MICROSECOND;
        // Aligned on both ends (an hour's last microsecond ends it): every hour is whole.
        assert_eq!(whole_hours(Some(at(1, 0)), Some(last_us_of(4))), Some((Some(at(1, 0)), Some(at(4, 0)))));
        // Unaligned: rounded inwards.
        assert_eq!(whole_hours(Some(at(1, 10)), Some(at(4, 20))), Some((Some(at(2, 0)), Some(at(4, 0)))));
        // An aligned `to` is the first instant of its hour, which is therefore partial.
        assert_eq!(whole_hours(Some(at(1, 0)), Some(at(3, 0))), Some((Some(at(1, 0)), Some(at(3, 0)))));
        // No whole hour inside: the records answer alone.
        assert_eq!(whole_hours(Some(at(1, 10)), Some(at(2, 20))), None);
        assert_eq!(whole_hours(Some(at(1, 10)), Some(at(1, 20))), None);
        assert_eq!(whole_hours(Some(at(1, 0)), Some(at(1, 0))), None);
        // Open ends stay open.
        assert_eq!(whole_hours(None, Some(at(2, 20))), Some((None, Some(at(2, 0)))));
        assert_eq!(whole_hours(Some(at(2, 20)), None), Some((Some(at(3, 0)), None)));
        assert_eq!(whole_hours(None, None), Some((None, None)));
    }
}
