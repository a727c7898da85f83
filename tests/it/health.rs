//! Health probes, correlation headers, start-up rules and shutdown.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Env, Instance, PrivateRedis, TestApp, send};

#[tokio::test]
async fn livez_and_readyz_answer_200_when_both_stores_are_up() {
    let app = TestApp::spawn().await;
    let live = send(app.client.get(app.admin_url("/livez"))).await;
    assert_eq!(live.status, 200);
    let ready = send(app.client.get(app.admin_url("/readyz"))).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body, json!({"status": "ready", "checks": {"redis": "ok", "postgres": "ok"}}));
}

#[tokio::test]
async fn readyz_is_503_and_mutations_are_503_with_retry_after_when_redis_is_down() {
    let mut redis = PrivateRedis::start().await;
    let port = redis.port;
    let app = TestApp::spawn_with(|c| c.redis_url = format!("redis://127.0.0.1:{port}")).await;
    assert_eq!(send(app.client.get(app.admin_url("/readyz"))).await.status, 200);
    redis.child.kill().await.unwrap();
    let ready = send(app.client.get(app.admin_url("/readyz"))).await;
    assert_eq!(ready.status, 503);
    assert_ne!(ready.body["checks"]["redis"], "ok");
    assert_eq!(ready.body["checks"]["postgres"], "ok");
    let r = send(app.admin(Method::POST, "/v1/admin/tenants").json(&json!({"tenant_id": "down-1", "name": "n"}))).await;
    r.expect_error(503, "INTERNAL_ERROR");
    assert_eq!(r.header("retry-after"), "1");
}

// R-P1, R-P2, R-P3, R-P4, R-R1: trace id from traceparent, else X-Cycles-Trace-Id, else fresh;
// malformed headers ignored; both ids echoed on every response and in every error body.
#[tokio::test]
async fn every_response_carries_request_and_trace_ids_and_honours_traceparent() {
    let app = TestApp::spawn().await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    for rb in [
        app.client.get(app.admin_url("/livez")),
        app.client.get(app.admin_url("/v1/admin/tenants")),
        app.client.get(app.runtime_url("/v1/unknown")),
        app.admin(Method::GET, "/v1/admin/tenants"),
    ] {
        let r = send(rb.header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))).await;
        assert_eq!(r.header("x-cycles-trace-id"), trace);
        assert!(!r.header("x-request-id").is_empty());
    }
    let cycles = "11111111111111111111111111111111";
    let r = send(app.client.get(app.admin_url("/livez")).header("x-cycles-trace-id", cycles)).await;
    assert_eq!(r.header("x-cycles-trace-id"), cycles);
    let r = send(app.client.get(app.admin_url("/livez")).header("traceparent", "garbage")).await;
    assert_eq!(r.status, 200, "a malformed traceparent is ignored, not rejected");
    assert_eq!(r.header("x-cycles-trace-id").len(), 32);
}

#[tokio::test]
async fn the_admin_plane_refuses_to_start_without_an_admin_key() {
    let env = Env::new().await;
    let mut config = env.config();
    config.admin_api_key = None;
    let err = Instance::start(config).await.err().expect("refused");
    assert!(err.to_string().contains("ADMIN_API_KEY"), "{err}");
    let mut runtime_only = env.config();
    runtime_only.admin_api_key = None;
    runtime_only.plane = tollgate::Plane::Runtime;
    let instance = Instance::start(runtime_only).await.expect("the runtime plane alone needs no admin key");
    assert!(instance.admin.is_none());
    instance.stop().await.unwrap();
}

#[tokio::test]
async fn several_instances_starting_at_once_migrate_the_database_once() {
    let env = Env::new().await;
    let (a, b, c) =
        tokio::join!(Instance::start(env.config()), Instance::start(env.config()), Instance::start(env.config()));
    for i in [a, b, c] {
        i.expect("instance starts").stop().await.unwrap();
    }
}

#[tokio::test]
async fn stopping_finishes_cleanly_and_closes_the_listeners() {
    let env = Env::new().await;
    let instance = Instance::start(env.config()).await.unwrap();
    let admin = instance.admin.unwrap();
    instance.stop().await.expect("stops cleanly");
    assert!(tokio::net::TcpStream::connect(admin).await.is_err(), "no longer accepting");
}
