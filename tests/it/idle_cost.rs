//! Background work is proportional to work, not to tenants: an engine whose tenants are all
//! idle makes a handful of Redis commands and under one Postgres transaction per second,
//! however many tenants it has. Counted on a Redis and a database only this engine uses.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{PrivateRedis, TestApp, eventually, pg_admin_url, send, tenant_id};

const TENANTS: usize = 150;
const WINDOW: Duration = Duration::from_secs(10);

async fn redis_commands(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
    info.lines().find_map(|l| l.strip_prefix("total_commands_processed:")).unwrap().trim().parse().unwrap()
}

async fn pg_transactions(db: &str) -> i64 {
    let admin = sqlx::PgPool::connect(&pg_admin_url()).await.unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1")
            .bind(db)
            .fetch_one(&admin)
            .await
            .unwrap();
    admin.close().await;
    n
}

#[tokio::test]
async fn an_engine_with_many_idle_tenants_makes_few_redis_commands_and_postgres_queries() {
    let redis = PrivateRedis::start().await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let app = TestApp::spawn_with(|c| {
        c.redis_url = url.clone();
        // Production pacing, not the suite's short clocks.
        c.outbox_poll_ms = 200;
        c.webhook_poll_ms = 250;
        c.key_usage_flush_ms = 60_000;
    })
    .await;
    for _ in 0..TENANTS {
        let tenant = tenant_id("idle");
        app.create_tenant(&tenant).await;
        let body = json!({"tenant_id": tenant, "scope": format!("tenant:{tenant}"), "unit": "TOKENS",
            "allocated": {"unit": "TOKENS", "amount": 100}});
        let r = send(app.admin(Method::POST, "/v1/admin/budgets").json(&body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // Every tenant's creation events are drained, so the dirty set empties.
    let dirty = format!("{}:{{w}}:dirty", app.env.redis_prefix);
    let client = redis::Client::open(url.as_str()).unwrap();
    let drained = eventually(Duration::from_secs(30), || {
        let (client, dirty) = (client.clone(), dirty.clone());
        async move {
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let n: i64 = redis::cmd("SCARD").arg(&dirty).query_async(&mut c).await.unwrap();
            n == 0
        }
    })
    .await;
    assert!(drained, "the outbox of every tenant was drained");
    // Let the dispatcher's idle wait grow, and Postgres publish the statistics of the creation
    // transactions (an idle backend flushes them within 10 s).
    tokio::time::sleep(Duration::from_secs(12)).await;

    let (redis_before, pg_before) = (redis_commands(&url).await, pg_transactions(&app.env.db_name).await);
    tokio::time::sleep(WINDOW).await;
    let (redis_after, pg_after) = (redis_commands(&url).await, pg_transactions(&app.env.db_name).await);
    let secs = WINDOW.as_secs_f64();
    let redis_rate = (redis_after - redis_before) as f64 / secs;
    let pg_rate = (pg_after - pg_before) as f64 / secs;
    println!("idle with {TENANTS} tenants: {redis_rate:.1} Redis commands/s, {pg_rate:.2} Postgres transactions/s");
    // One read of the dirty set per drain poll and one of the due index per sweep (~6/s),
    // whatever the number of tenants; before, each tenant cost several commands per poll.
    assert!(redis_rate < 20.0, "{redis_rate:.1} Redis commands/s with {TENANTS} idle tenants");
    assert!(pg_rate <= 1.0, "{pg_rate:.2} Postgres transactions/s with {TENANTS} idle tenants");
}
