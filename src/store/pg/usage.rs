//! SQL for usage: the applied usage entries, token usage records, and the daily and hourly
//! rollups (written by the outbox drain, in its transaction), and their reads.

use std::collections::BTreeMap;

use sqlx::{Postgres, QueryBuilder, Row as _};
use time::{Date, OffsetDateTime, Time};

use super::PgTx;
use super::page::{Page, PageSpec, after_of, finish};
use crate::store::StoreResult;

/// A UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub Date);

/// The start of a UTC hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hour(pub OffsetDateTime);

impl Hour {
    pub fn of(at: OffsetDateTime) -> Self {
        let at = at.to_offset(time::UtcOffset::UTC);
        Hour(at.replace_time(Time::from_hms(at.hour(), 0, 0).unwrap_or(Time::MIDNIGHT)))
    }
}

/// One rollup row's counters (a delta when written, a sum when read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollup {
    pub committed: i128,
    pub charged: i128,
    pub reserves: i64,
    pub commits: i64,
    pub events: i64,
    pub releases: i64,
    pub expiries: i64,
    pub denials: i64,
    pub tokens_input: i128,
    pub tokens_output: i128,
}

/// Marks a usage entry applied; false when it was before (a redelivery).
pub async fn claim_entry(tx: &mut PgTx, entry_id: &str, at: OffsetDateTime) -> StoreResult<bool> {
    let done = sqlx::query("INSERT INTO usage_entries (entry_id, recorded_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(entry_id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

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

pub async fn insert_record(tx: &mut PgTx, r: &TokenRecord<'_>) -> StoreResult<()> {
    sqlx::query(
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
    Ok(())
}

type DailyKey = (String, String, String, Day);
type HourlyKey = (String, String, String, Hour);

/// Adds the deltas to their rows, in key order.
pub async fn apply_rollups(
    tx: &mut PgTx,
    daily: &BTreeMap<DailyKey, Rollup>,
    hourly: &BTreeMap<HourlyKey, i128>,
) -> StoreResult<()> {
    for ((tenant, scope, unit, day), r) in daily {
        sqlx::query(
            "INSERT INTO usage_daily AS u (tenant_id, scope, unit, day, committed, charged, reserves, commits, events, \
             releases, expiries, denials, tokens_input, tokens_output) \
             VALUES ($1,$2,$3,$4,$5::numeric,$6::numeric,$7,$8,$9,$10,$11,$12,$13::numeric,$14::numeric) \
             ON CONFLICT (tenant_id, scope, unit, day) DO UPDATE SET committed = u.committed + EXCLUDED.committed, \
             charged = u.charged + EXCLUDED.charged, reserves = u.reserves + EXCLUDED.reserves, \
             commits = u.commits + EXCLUDED.commits, events = u.events + EXCLUDED.events, \
             releases = u.releases + EXCLUDED.releases, expiries = u.expiries + EXCLUDED.expiries, \
             denials = u.denials + EXCLUDED.denials, tokens_input = u.tokens_input + EXCLUDED.tokens_input, \
             tokens_output = u.tokens_output + EXCLUDED.tokens_output",
        )
        .bind(tenant)
        .bind(scope)
        .bind(unit)
        .bind(day.0)
        .bind(r.committed.to_string())
        .bind(r.charged.to_string())
        .bind(r.reserves)
        .bind(r.commits)
        .bind(r.events)
        .bind(r.releases)
        .bind(r.expiries)
        .bind(r.denials)
        .bind(r.tokens_input.to_string())
        .bind(r.tokens_output.to_string())
        .execute(&mut **tx)
        .await?;
    }
    for ((tenant, scope, unit, hour), committed) in hourly {
        sqlx::query(
            "INSERT INTO usage_hourly AS u (tenant_id, scope, unit, hour, committed) VALUES ($1,$2,$3,$4,$5::numeric) \
             ON CONFLICT (tenant_id, scope, unit, hour) DO UPDATE SET committed = u.committed + EXCLUDED.committed",
        )
        .bind(tenant)
        .bind(scope)
        .bind(unit)
        .bind(hour.0)
        .bind(committed.to_string())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

const SUMS: &str = "sum(committed)::text, sum(charged)::text, sum(reserves)::bigint, sum(commits)::bigint, \
    sum(events)::bigint, sum(releases)::bigint, sum(expiries)::bigint, sum(denials)::bigint, \
    sum(tokens_input)::text, sum(tokens_output)::text";

fn big(row: &sqlx::postgres::PgRow, i: usize) -> Result<i128, sqlx::Error> {
    let s: Option<String> = row.try_get(i)?;
    Ok(s.and_then(|s| s.parse().ok()).unwrap_or(0))
}

fn rollup_at(row: &sqlx::postgres::PgRow, o: usize) -> Result<Rollup, sqlx::Error> {
    let n = |i: usize| -> Result<i64, sqlx::Error> { Ok(row.try_get::<Option<i64>, _>(o + i)?.unwrap_or(0)) };
    Ok(Rollup {
        committed: big(row, o)?,
        charged: big(row, o + 1)?,
        reserves: n(2)?,
        commits: n(3)?,
        events: n(4)?,
        releases: n(5)?,
        expiries: n(6)?,
        denials: n(7)?,
        tokens_input: big(row, o + 8)?,
        tokens_output: big(row, o + 9)?,
    })
}

/// One scope's rollups summed per unit over `[from, to]` (days).
pub async fn sum_by_unit(
    pool: &sqlx::PgPool,
    tenant: &str,
    scope: &str,
    from: Date,
    to: Date,
) -> StoreResult<Vec<(String, Rollup)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT unit, {SUMS} FROM usage_daily WHERE tenant_id = $1 AND scope = $2 AND day BETWEEN $3 AND $4 \
         GROUP BY unit ORDER BY unit"
    )))
    .bind(tenant)
    .bind(scope)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push((row.try_get::<String, _>(0)?, rollup_at(&row, 1)?));
    }
    Ok(out)
}

/// One scope's rows per day and unit over `[from, to]`, newest day first.
pub async fn daily(
    pool: &sqlx::PgPool,
    tenant: &str,
    scope: &str,
    from: Date,
    to: Date,
) -> StoreResult<Vec<(Date, String, Rollup)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT day, unit, {SUMS} FROM usage_daily WHERE tenant_id = $1 AND scope = $2 AND day BETWEEN $3 AND $4 \
         GROUP BY day, unit ORDER BY day DESC, unit"
    )))
    .bind(tenant)
    .bind(scope)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push((row.try_get::<Date, _>(0)?, row.try_get::<String, _>(1)?, rollup_at(&row, 2)?));
    }
    Ok(out)
}

/// What one budget's spent moved by from `since` on (hourly rows whose hour starts at or after it).
pub async fn committed_since(
    pool: &sqlx::PgPool,
    tenant: &str,
    scope: &str,
    unit: &str,
    since: OffsetDateTime,
) -> StoreResult<i128> {
    let row = sqlx::query(
        "SELECT sum(committed)::text FROM usage_hourly WHERE tenant_id = $1 AND scope = $2 AND unit = $3 AND hour >= $4",
    )
    .bind(tenant)
    .bind(scope)
    .bind(unit)
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok(big(&row, 0)?)
}

/// The budgets whose spent moved since `since`, with what it moved by (the burn-rate check's
/// candidates), at most `limit`.
pub async fn burning_since(
    pool: &sqlx::PgPool,
    since: OffsetDateTime,
    limit: i64,
) -> StoreResult<Vec<(String, String, String, i128)>> {
    let rows = sqlx::query(
        "SELECT tenant_id, scope, unit, sum(committed)::text FROM usage_hourly WHERE hour >= $1 \
         GROUP BY tenant_id, scope, unit HAVING sum(committed) > 0 ORDER BY 1, 2, 3 LIMIT $2",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, big(&row, 3)?));
    }
    Ok(out)
}

/// Reserves and tokens of every tenant on `day` (their `tenant:<t>` rows).
pub async fn platform_day(pool: &sqlx::PgPool, day: Date) -> StoreResult<(i64, i128)> {
    let row = sqlx::query(
        "SELECT sum(reserves)::bigint, (sum(tokens_input) + sum(tokens_output))::text FROM usage_daily \
         WHERE day = $1 AND scope = 'tenant:' || tenant_id",
    )
    .bind(day)
    .fetch_one(pool)
    .await?;
    Ok((row.try_get::<Option<i64>, _>(0)?.unwrap_or(0), big(&row, 1)?))
}

/// Filters of the token usage list and summary.
#[derive(Debug, Default, Clone)]
pub struct TokenFilter {
    pub tenant: Option<String>,
    pub api_key_id: Option<String>,
    pub model: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

fn push_token_filter(qb: &mut QueryBuilder<Postgres>, f: &TokenFilter) {
    for (column, value) in [("tenant_id", &f.tenant), ("api_key_id", &f.api_key_id), ("model", &f.model)] {
        if let Some(v) = value {
            qb.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    if let Some(from) = f.from {
        qb.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        qb.push(" AND occurred_at <= ").push_bind(to);
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
    push_token_filter(&mut qb, f);
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
    pub tokens_input: i128,
    pub tokens_output: i128,
    pub calls: i64,
    pub charged: i128,
}

/// Models and units a summary reports at most (a limit on the answer, not on the data).
pub const SUMMARY_ROWS_MAX: i64 = 1_000;

pub async fn summary(pool: &sqlx::PgPool, f: &TokenFilter) -> StoreResult<Vec<ModelTotals>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT model, unit, coalesce(sum(tokens_input), 0)::text, coalesce(sum(tokens_output), 0)::text, \
         count(*)::bigint, sum(charged)::text FROM token_usage WHERE TRUE",
    );
    push_token_filter(&mut qb, f);
    qb.push(" GROUP BY model, unit ORDER BY model, unit LIMIT ").push_bind(SUMMARY_ROWS_MAX);
    let rows = qb.build().fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(ModelTotals {
            model: row.try_get(0)?,
            unit: row.try_get(1)?,
            tokens_input: big(&row, 2)?,
            tokens_output: big(&row, 3)?,
            calls: row.try_get(4)?,
            charged: big(&row, 5)?,
        });
    }
    Ok(out)
}
