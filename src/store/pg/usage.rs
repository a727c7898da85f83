//! SQL for usage: the applied usage entries and the daily and hourly rollups (written by the
//! outbox drain, in its transaction), and their reads. Token usage records are in `token_usage`.

use std::collections::BTreeMap;

use sqlx::Row as _;
use time::{Date, OffsetDateTime, Time};

use super::PgTx;
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

pub(super) fn big(row: &sqlx::postgres::PgRow, i: usize) -> Result<i128, sqlx::Error> {
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
