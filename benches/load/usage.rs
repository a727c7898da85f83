//! The usage-read step: do the admin plane's usage reads stay fast when a tenant has a month
//! of history? It makes one fresh tenant (with its budgets, through the admin API), seeds
//! `--usage-records` token usage records for it straight into Postgres (one `INSERT … SELECT
//! … FROM generate_series` per chunk), spread over the last 30 days, four models and five API
//! keys, plus the rollup rows the outbox drain would have kept for them (`usage_daily`,
//! `usage_hourly`, `token_usage_hourly`), so every endpoint sees one consistent tenant. Then
//! each read runs from `USAGE_CLIENTS` closed-loop clients for `--duration-s`, reporting its
//! p50/p99 latency and requests/s. No target is set: the figures are reported.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Bench, Pct, Shape, UNIT, expect_status, new_hist, pct};

/// Concurrent clients per read.
pub const USAGE_CLIENTS: usize = 4;
/// Records written per statement (each one transaction, so a seed shows progress).
const CHUNK: usize = 200_000;
/// The history's span.
const DAYS: i64 = 30;

/// One read's figures.
pub struct ReadResult {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    pub latency: Pct,
}

impl ReadResult {
    pub fn per_s(&self) -> f64 {
        self.requests as f64 / self.elapsed_s.max(1e-9)
    }
}

pub struct UsageResult {
    pub records: usize,
    pub seed_s: f64,
    pub reads: Vec<ReadResult>,
}

/// The records: record `g` of `n` at `now - g × (30 days ÷ n)`, model `g % 4`, key `g % 5`.
const SEED_RECORDS: &str = "INSERT INTO token_usage (record_id, tenant_id, api_key_id, source, scope, unit, model, \
     tokens_input, tokens_output, latency_ms, charged, occurred_at) \
     SELECT $1 || '-' || g, $2, 'bench-key-' || (g % 5), 'commit', 'tenant:' || $2, $3, \
     (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet', 'llama-70b'])[(1 + g % 4)::int], \
     100 + g % 900, 10 + g % 90, 50 + g % 450, 1000 + g % 5000, \
     $4::timestamptz - (g::float8 * $6::float8 / $5::float8) * interval '1 second' \
     FROM generate_series($7::bigint, $8::bigint) AS g";

/// The rollups of the tenant's records, as the drain keeps them (its `tenant:<t>` rows; a
/// commit's `committed` is what it charged, the budget's spent moving by it).
const SEED_ROLLUPS: [&str; 3] = [
    "INSERT INTO token_usage_hourly (tenant_id, api_key_id, model, unit, hour, tokens_input, tokens_output, calls, charged) \
     SELECT tenant_id, coalesce(api_key_id, ''), model, unit, \
     date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', \
     coalesce(sum(tokens_input), 0), coalesce(sum(tokens_output), 0), count(*), sum(charged) \
     FROM token_usage WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4, 5",
    "INSERT INTO usage_daily (tenant_id, scope, unit, day, committed, charged, reserves, commits, tokens_input, tokens_output) \
     SELECT tenant_id, scope, unit, (occurred_at AT TIME ZONE 'UTC')::date, sum(charged), sum(charged), count(*), \
     count(*), coalesce(sum(tokens_input), 0), coalesce(sum(tokens_output), 0) \
     FROM token_usage WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4",
    "INSERT INTO usage_hourly (tenant_id, scope, unit, hour, committed) \
     SELECT tenant_id, scope, unit, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', sum(charged) \
     FROM token_usage WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4",
];

async fn seed(pg: &sqlx::PgPool, run: &str, tenant: &str, n: usize) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let span_s = (DAYS * 86_400) as f64;
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        sqlx::query(SEED_RECORDS)
            .bind(format!("bench-usage-{run}"))
            .bind(tenant)
            .bind(UNIT)
            .bind(now)
            .bind(n as f64)
            .bind(span_s)
            .bind(start as i64)
            .bind(end as i64 - 1)
            .execute(pg)
            .await
            .context("seeding token usage records")?;
    }
    for sql in SEED_ROLLUPS {
        sqlx::query(sql).bind(tenant).execute(pg).await.context("seeding the usage rollups")?;
    }
    // What autovacuum would do soon after such a write: the planner sees the tables' sizes.
    sqlx::query("ANALYZE token_usage, token_usage_hourly, usage_daily, usage_hourly")
        .execute(pg)
        .await
        .context("analyzing the usage tables")?;
    Ok(())
}

/// The reads measured: a name and a path (with its query).
fn reads(tenant: &str) -> Result<Vec<(String, String)>> {
    let now = OffsetDateTime::now_utc();
    // A 30-day window on neither end hour-aligned: whole hours from the rollup, edges scanned.
    let from = (now - time::Duration::days(DAYS) + time::Duration::seconds(17 * 60 + 23)).format(&Rfc3339)?;
    let to = (now - time::Duration::seconds(11 * 60 + 5)).format(&Rfc3339)?;
    let q = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let scope = q(&format!("tenant:{tenant}"));
    Ok(vec![
        ("tenant usage".into(), format!("/v1/admin/tenants/{tenant}/usage")),
        ("tenant daily usage, 30 days".into(), format!("/v1/admin/tenants/{tenant}/usage/daily?days=30")),
        (
            "token usage summary, 30-day window".into(),
            format!("/v1/admin/token-usage/summary?tenant_id={tenant}&from={}&to={}", q(&from), q(&to)),
        ),
        ("token usage list, first page".into(), format!("/v1/admin/token-usage?tenant_id={tenant}")),
        ("budget usage".into(), format!("/v1/admin/budgets/usage?scope={scope}&unit={UNIT}")),
    ])
}

/// One GET on the admin plane; true when it answered 2xx and its body arrived.
async fn get_ok(admin: &reqwest::Client, url: &str, key: &str) -> bool {
    match admin.get(url).header("X-Admin-API-Key", key).send().await {
        Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
        Err(_) => false,
    }
}

impl Bench {
    /// `USAGE_CLIENTS` clients calling `path` back to back for `--duration-s`.
    async fn measure_read(&self, name: String, path: String) -> Result<ReadResult> {
        let url = format!("{}{path}", self.args.admin_url);
        let key = self.args.admin_key.clone().unwrap_or_default();
        // Also the check that the read answers at all.
        let first = self.admin.get(&url).header("X-Admin-API-Key", &key).send().await?;
        expect_status(first, &format!("GET {path}")).await?;
        let duration = Duration::from_secs_f64(self.args.duration_s);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..USAGE_CLIENTS {
            let (admin, url, key) = (self.admin.clone(), url.clone(), key.clone());
            tasks.spawn(async move {
                let (mut hist, mut requests, mut errors) = (new_hist(), 0u64, 0u64);
                let deadline = Instant::now() + duration;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    requests += 1;
                    if get_ok(&admin, &url, &key).await {
                        hist.saturating_record(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX).max(1));
                    } else {
                        errors += 1;
                    }
                }
                (hist, requests, errors)
            });
        }
        let (mut hist, mut requests, mut errors) = (new_hist(), 0, 0);
        while let Some(r) = tasks.join_next().await {
            let (h, n, e) = r?;
            hist.add(&h).ok();
            requests += n;
            errors += e;
        }
        let elapsed_s = started.elapsed().as_secs_f64();
        Ok(ReadResult { name, requests, errors, elapsed_s, latency: pct(&hist) })
    }

    pub(super) async fn usage_step(&self, database_url: &str) -> Result<UsageResult> {
        let records = self.args.usage_records;
        let tenant = format!("lb-{}-usage", self.run_id);
        self.setup_tenant_as(tenant.clone(), Shape::Shared, 1).await?;
        let pg = sqlx::PgPool::connect(database_url).await.context("connecting to the engine's database")?;
        let started = Instant::now();
        seed(&pg, &self.run_id, &tenant, records).await?;
        let seed_s = started.elapsed().as_secs_f64();
        pg.close().await;
        let mut out = Vec::new();
        for (name, path) in reads(&tenant)? {
            let r = self.measure_read(name, path).await?;
            if r.requests == r.errors {
                bail!("usage read {}: every request failed", r.name);
            }
            out.push(r);
        }
        Ok(UsageResult { records, seed_s, reads: out })
    }
}
