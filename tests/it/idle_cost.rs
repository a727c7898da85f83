//! Background work is proportional to work, not to tenants: an engine whose tenants are all
//! idle makes a handful of Redis commands per second, however many tenants it has. Counted on
//! a Redis only this engine (a process of its own) uses.

use std::time::Duration;

use serde_json::json;

use crate::crash::{free_port, start_engine_with};
use crate::helpers::{ADMIN_KEY, Env, PrivateRedis, eventually, pg_admin_url, send, tenant_id};

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
    let mut env = Env::new().await;
    env.redis_url = url.clone();
    // An engine process of its own: nothing else in this test binary can wake its workers.
    let (runtime, admin) = (free_port(), free_port());
    let _engine = start_engine_with(&env, runtime, admin, &[("TOLLGATE_WEBHOOK_POLL_MS", "250")]).await;
    let client = reqwest::Client::new();
    let admin_url = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    for _ in 0..TENANTS {
        let tenant = tenant_id("idle");
        let r = send(client.post(admin_url("/v1/admin/tenants")).header("x-admin-api-key", ADMIN_KEY).json(&json!({
            "tenant_id": tenant, "name": "idle tenant"
        })))
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let body = json!({"tenant_id": tenant, "scope": format!("tenant:{tenant}"), "unit": "TOKENS",
            "allocated": {"unit": "TOKENS", "amount": 100}});
        let r =
            send(client.post(admin_url("/v1/admin/budgets")).header("x-admin-api-key", ADMIN_KEY).json(&body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // Every tenant's creation events are drained, so the dirty set empties.
    let dirty = format!("{}:{{w}}:dirty", env.redis_prefix);
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

    let (redis_before, pg_before) = (redis_commands(&url).await, pg_transactions(&env.db_name).await);
    tokio::time::sleep(WINDOW).await;
    let (redis_after, pg_after) = (redis_commands(&url).await, pg_transactions(&env.db_name).await);
    let secs = WINDOW.as_secs_f64();
    let redis_rate = (redis_after - redis_before) as f64 / secs;
    let pg_rate = (pg_after - pg_before) as f64 / secs;
    println!("idle with {TENANTS} tenants: {redis_rate:.1} Redis commands/s, {pg_rate:.2} Postgres transactions/s");
    // One read of the dirty set per drain poll (every 50 ms here) and one of the due index per
    // sweep, whatever the number of tenants; before, each tenant cost several commands per poll.
    assert!(redis_rate <= 50.0, "{redis_rate:.1} Redis commands/s with {TENANTS} idle tenants");
    // Postgres counts its own autovacuum and autoanalyze of the freshly written tables as
    // transactions of this database, so its rate is printed, not held to a bound: without
    // them the engine made 0.3–0.7 per second here (the provisioning and import recovery
    // passes, key expiry, the webhook claim when idle).
}
