//! The idle-tenant step: what one engine costs its stores when nobody calls it. Seeds
//! `--idle-tenants` tenants straight into the engine's database and Redis (catalogue rows,
//! the tenant mirror and roster, one budget each — as the admin plane would leave them), lets
//! the engine settle, then counts the Redis commands and Postgres transactions it makes over
//! `--idle-window-s`. Targets: ≤ 50 commands/s and ≤ 1 transaction/s at 100 000 tenants.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Tenants written per pipeline / statement.
const CHUNK: usize = 2_000;
/// Postgres publishes a backend's statistics within 10 s of it going idle; the webhook
/// dispatcher's idle wait grows to 8 s.
const SETTLE: Duration = Duration::from_secs(12);

pub struct IdleResult {
    pub tenants: usize,
    pub seed_s: f64,
    pub redis_per_s: f64,
    pub pg_per_s: f64,
}

fn pg_base(database_url: &str) -> Result<(String, String)> {
    let (base, db) = database_url.rsplit_once('/').context("--database-url has no database name")?;
    Ok((format!("{base}/postgres"), db.to_string()))
}

async fn seed(redis: &redis::Client, pg: &sqlx::PgPool, prefix: &str, run: &str, n: usize) -> Result<()> {
    let mut conn = redis.get_multiplexed_async_connection().await?;
    for start in (0..n).step_by(CHUNK) {
        let ids: Vec<String> = (start..(start + CHUNK).min(n)).map(|i| format!("idle-{run}-{i}")).collect();
        sqlx::query(
            "INSERT INTO tenants (tenant_id, name, status, created_at, updated_at) \
             SELECT id, id, 'ACTIVE', now(), now() FROM unnest($1::text[]) AS id",
        )
        .bind(&ids)
        .execute(pg)
        .await
        .context("seeding tenants")?;
        let mut pipe = redis::pipe();
        for t in &ids {
            let tag = format!("{prefix}:{{t:{t}}}");
            pipe.cmd("HSET").arg(format!("{tag}:tenant")).arg("status").arg("ACTIVE").arg("tier").arg("free").ignore();
            pipe.cmd("HSET")
                .arg(format!("{tag}:ledger"))
                .arg(format!("tenant:{t}|TOKENS|st"))
                .arg("ACTIVE")
                .arg(format!("tenant:{t}|TOKENS|a"))
                .arg("1000000")
                .ignore();
            pipe.cmd("ZADD").arg(format!("{tag}:budgets")).arg(0).arg(format!("tenant:{t}|TOKENS")).ignore();
            pipe.cmd("SADD").arg(format!("{prefix}:tenants")).arg(t).ignore();
        }
        let () = pipe.query_async(&mut conn).await.context("seeding the tenant mirrors")?;
    }
    Ok(())
}

async fn redis_commands(redis: &redis::Client) -> Result<u64> {
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO stats has no total_commands_processed")
}

async fn pg_transactions(admin: &sqlx::PgPool, db: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1")
        .bind(db)
        .fetch_one(admin)
        .await?)
}

pub async fn run(
    redis_url: &str,
    prefix: &str,
    database_url: &str,
    tenants: usize,
    window: Duration,
) -> Result<IdleResult> {
    let redis = redis::Client::open(redis_url)?;
    let (admin_url, db) = pg_base(database_url)?;
    let pg = sqlx::PgPool::connect(database_url).await.context("connecting to the engine's database")?;
    let admin = sqlx::PgPool::connect(&admin_url).await.context("connecting to the postgres database")?;
    let run = format!("{:06x}", uuid::Uuid::new_v4().as_u128() & 0xff_ffff);
    let started = Instant::now();
    seed(&redis, &pg, prefix, &run, tenants).await?;
    let seed_s = started.elapsed().as_secs_f64();
    pg.close().await;
    tokio::time::sleep(SETTLE).await;
    let (r0, p0) = (redis_commands(&redis).await?, pg_transactions(&admin, &db).await?);
    tokio::time::sleep(window).await;
    let (r1, p1) = (redis_commands(&redis).await?, pg_transactions(&admin, &db).await?);
    admin.close().await;
    let secs = window.as_secs_f64();
    // The second INFO is counted in r1; the first is not in the window.
    let redis_per_s = r1.saturating_sub(r0).saturating_sub(1) as f64 / secs;
    let pg_per_s = (p1 - p0).max(0) as f64 / secs;
    Ok(IdleResult { tenants, seed_s, redis_per_s, pg_per_s })
}
