//! Admission before the ledger: per-key and per-tenant rate limits and the priority gate.
//! Both are deterministic here: tiny limits, and in-flight requests held by pausing the
//! engine's own Redis.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::fixture::{Fx, USD, amt};
use crate::helpers::{PrivateRedis, Reply, TestApp, eventually, send, tenant_id};

fn header(r: &Reply, name: &str) -> i64 {
    r.header(name).parse().unwrap_or_else(|_| panic!("{name} in {:?}", r.headers))
}

// R-Q1, R-Q2: a free tenant limited to 1/s with a burst of 2: two calls pass (with the X-RateLimit-*
// headers), the third is 429 LIMIT_EXCEEDED with Retry-After, and never reaches the ledger.
#[tokio::test]
async fn requests_beyond_the_rate_limit_are_429_with_retry_after_and_touch_no_ledger() {
    let app = TestApp::spawn_with(|c| c.rate_limits = "free=1/2,dev=1/2,pro=1/2,enterprise=1/2".into()).await;
    let fx = Fx::on(app).await;
    fx.budget("", 1_000).await;
    let first = fx.reserve("k1", json!({}), 10).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!((header(&first, "x-ratelimit-limit"), header(&first, "x-ratelimit-remaining")), (1, 1));
    assert!(header(&first, "x-ratelimit-reset") > 1_700_000_000);
    let second = fx.reserve("k2", json!({}), 10).await;
    assert_eq!(header(&second, "x-ratelimit-remaining"), 0);
    let third = fx.reserve("k3", json!({}), 10).await;
    third.expect_error(429, "LIMIT_EXCEEDED");
    assert!(header(&third, "retry-after") >= 1);
    assert_eq!(header(&third, "x-ratelimit-remaining"), 0);
    assert!(header(&third, "x-ratelimit-reset") > 1_700_000_000);
    assert_eq!(amt(&fx.ledger("", USD).await, "reserved"), 20, "the refused reserve held nothing");
    let other_key = fx.app.create_key(&fx.tenant, json!({})).await["key_secret"].as_str().unwrap().to_string();
    let by_tenant = send(
        fx.app
            .client
            .post(fx.app.runtime_url("/v1/reservations"))
            .header("x-cycles-api-key", &other_key)
            .json(&fx.reserve_body("k4", json!({}), 1)),
    )
    .await;
    by_tenant.expect_error(429, "LIMIT_EXCEEDED");
    let raised = send(
        fx.app
            .admin(Method::PATCH, &format!("/v1/admin/tenants/{}", fx.tenant))
            .json(&json!({"rate_limit_per_second": 1000, "rate_limit_burst": 1000})),
    )
    .await;
    assert_eq!(raised.body["rate_limit_per_second"], 1000, "{}", raised.text);
    let after = fx.reserve("k5", json!({}), 10).await;
    assert_eq!(
        (after.status.as_u16(), header(&after, "x-ratelimit-limit")),
        (200, 1000),
        "the override applies at once"
    );
}

// R-Q1 (429 only for throttling): with max_concurrent 4 and shares premium 100 / standard 80 / bulk 50, two bulk requests in
// flight shed the third bulk request while a premium request is still admitted; the stats
// endpoint shows the in-flight counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gate_sheds_bulk_at_its_share_while_premium_still_gets_in() {
    let redis = PrivateRedis::start().await;
    let port = redis.port;
    let app = TestApp::spawn_with(|c| {
        c.redis_url = format!("redis://127.0.0.1:{port}");
        c.redis_timeout_ms = 30_000;
        c.max_concurrent = 4;
        c.class_shares = "premium=100,standard=80,bulk=50".into();
    })
    .await;
    let bulk = Fx::on(app).await;
    bulk.budget("", 1_000).await;
    let premium_tenant = tenant_id("premium");
    send(
        bulk.app
            .admin(Method::POST, "/v1/admin/tenants")
            .json(&json!({"tenant_id": premium_tenant, "name": "P", "tier": "enterprise"})),
    )
    .await;
    let premium_key = bulk.app.create_key(&premium_tenant, json!({})).await["key_secret"].as_str().unwrap().to_string();
    send(bulk.app.admin(Method::POST, "/v1/admin/budgets").json(&json!({"tenant_id": premium_tenant, "scope": format!("tenant:{premium_tenant}"), "unit": USD, "allocated": {"unit": USD, "amount": 1000}}))).await;

    let redis_client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut conn = redis_client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(20_000).arg("WRITE").query_async(&mut conn).await.unwrap();
    let held: Vec<_> = (0..2)
        .map(|i| {
            let (client, url, key, body) = (
                bulk.app.client.clone(),
                bulk.app.runtime_url("/v1/reservations"),
                bulk.key.clone(),
                bulk.reserve_body(&format!("held{i}"), json!({}), 10),
            );
            tokio::spawn(async move { send(client.post(url).header("x-cycles-api-key", key).json(&body)).await })
        })
        .collect();
    let stats = || async { send(bulk.app.admin(Method::GET, "/v1/admin/priority/stats")).await.body };
    assert!(
        eventually(Duration::from_secs(10), || async { stats().await["data"]["currentConcurrent"] == 2 }).await,
        "two bulk requests in flight"
    );
    let shed = bulk.reserve("shed", json!({}), 10).await;
    shed.expect_error(429, "LIMIT_EXCEEDED");
    assert_eq!(shed.header("retry-after"), "1");
    let premium_body = json!({"idempotency_key": "p", "subject": {"tenant": premium_tenant}, "action": {"kind": "k", "name": "n"}, "estimate": {"unit": USD, "amount": 5}});
    let premium = {
        let (client, url) = (bulk.app.client.clone(), bulk.app.runtime_url("/v1/reservations"));
        tokio::spawn(
            async move { send(client.post(url).header("x-cycles-api-key", premium_key).json(&premium_body)).await },
        )
    };
    assert!(
        eventually(Duration::from_secs(10), || async { stats().await["data"]["currentConcurrent"] == 3 }).await,
        "premium admitted"
    );
    let s = stats().await;
    assert_eq!(s["object"], "priority_stats");
    assert_eq!(s["data"]["maxConcurrent"], 4);
    assert_eq!(s["data"]["perTierConcurrent"], json!({"premium": 1, "standard": 0, "bulk": 2}));
    assert_eq!(s["data"]["perTierThresholdPct"], json!({"premium": 100, "standard": 80, "bulk": 50}));
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query_async(&mut conn).await.unwrap();
    for h in held {
        assert_eq!(h.await.unwrap().status, 200);
    }
    assert_eq!(premium.await.unwrap().status, 200);
    assert_eq!(amt(&bulk.ledger("", USD).await, "reserved"), 20, "the shed request never reached the ledger");
    let metrics = send(bulk.app.admin(reqwest::Method::GET, "/metrics")).await.text;
    let throttled = format!("gateway_priority_throttled_total{{tenant=\"{}\",tier=\"bulk\"}} 1", bulk.tenant);
    assert!(metrics.contains(&throttled), "{throttled} in the scrape");
    let admin_stats = send(bulk.app.client.get(bulk.app.admin_url("/v1/admin/priority/stats"))).await;
    admin_stats.expect_error(401, "UNAUTHORIZED");
}
