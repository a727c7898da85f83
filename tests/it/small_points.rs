//! Smaller contract points: `/metrics` needs a credential, counters with known labels start at
//! 0, a tenant's default TTL follows a low maximum, and webhook replay takes an open window and
//! answers 404 for an unknown subscription before judging the body.

use reqwest::Method;
use serde_json::json;

use crate::fixture::Fx;
use crate::helpers::{TestApp, send};

const METRICS_TOKEN: &str = "metrics-token-0123456789";

#[tokio::test]
async fn metrics_need_the_metrics_token_or_the_admin_key_and_list_webhook_attempts_from_start() {
    let app = TestApp::spawn_with(|c| c.metrics_token = Some(METRICS_TOKEN.into())).await;
    let url = app.admin_url("/metrics");
    let r = send(app.client.get(&url)).await;
    r.expect_error(401, "UNAUTHORIZED");
    let r = send(app.client.get(&url).bearer_auth("wrong-token")).await;
    r.expect_error(401, "UNAUTHORIZED");
    let r = send(app.client.get(&url).bearer_auth(METRICS_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for outcome in ["success", "failure"] {
        let series = format!("cycles_webhook_attempts_total{{outcome=\"{outcome}\"}}");
        assert!(r.text.contains(&series), "{series} missing from a scrape");
    }
    assert_eq!(send(app.admin(Method::GET, "/metrics")).await.status, 200);
    assert_eq!(send(app.client.get(&url).bearer_auth(crate::helpers::ADMIN_KEY)).await.status, 200);
}

#[tokio::test]
async fn a_tenant_with_a_maximum_ttl_below_a_minute_and_no_default_gets_the_maximum_as_default() {
    let app = TestApp::spawn().await;
    let id = crate::helpers::tenant_id("ttl");
    let r = send(app.admin(Method::POST, "/v1/admin/tenants").json(&json!({
        "tenant_id": id, "name": "short", "max_reservation_ttl_ms": 30_000
    })))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["default_reservation_ttl_ms"], 30_000, "{}", r.text);
    assert_eq!(r.body["max_reservation_ttl_ms"], 30_000, "{}", r.text);
    let fx = Fx::with_tenant(&std::sync::Arc::new(app)).await;
    fx.budget("", 100).await;
    fx.reserved("default-ttl", json!({}), 1).await;
}

#[tokio::test]
async fn webhook_replay_answers_404_for_an_unknown_subscription_first_and_takes_an_open_window() {
    let app = TestApp::spawn().await;
    let bad_window = json!({"from": "2030-01-02T00:00:00Z", "to": "2020-01-01T00:00:00Z", "max_events": 0});
    let r = send(app.admin(Method::POST, "/v1/admin/webhooks/whsub_unknown/replay").json(&bad_window)).await;
    r.expect_error(404, "WEBHOOK_NOT_FOUND");

    let r = send(
        app.admin(Method::PUT, "/v1/admin/config/webhook-security")
            .json(&json!({"allow_http": true, "blocked_cidr_ranges": ["10.0.0.0/8"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(
        app.admin(Method::POST, "/v1/admin/webhooks")
            .json(&json!({"url": "http://127.0.0.1:9/hook", "event_types": ["budget.funded"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let replay = format!("/v1/admin/webhooks/{}/replay", r.body["subscription"]["subscription_id"].as_str().unwrap());
    for body in [json!({}), json!({"to": "2030-01-01T00:00:00Z"}), json!({"from": "2020-01-01T00:00:00Z"})] {
        let r = send(app.admin(Method::POST, &replay).json(&body)).await;
        assert_eq!(r.status, 202, "{body}: {}", r.text);
        assert_eq!(r.body["events_queued"], 0, "{}", r.text);
    }
    let r = send(app.admin(Method::POST, &replay).json(&bad_window)).await;
    r.expect_error(400, "INVALID_REQUEST");
}
