//! A SUSPENDED tenant is read-only for its own keys on both planes: no funding, no budget, no
//! webhook change, no new reservation or event; settling existing reservations and reads work.

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD, amt};
use crate::helpers::{Reply, TestApp, send};

const ALL: [&str; 9] = [
    "reservations:create",
    "reservations:commit",
    "reservations:release",
    "reservations:extend",
    "balances:read",
    "budgets:read",
    "budgets:write",
    "webhooks:read",
    "webhooks:write",
];

async fn as_key(fx: &Fx, key: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut rb = fx.app.client.request(method, fx.app.admin_url(path)).header("x-cycles-api-key", key);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    send(rb).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_suspended_tenants_keys_can_neither_fund_nor_create_budgets_nor_change_webhooks_nor_reserve() {
    let fx = Fx::on(TestApp::spawn().await).await;
    let key =
        fx.app.create_key(&fx.tenant, json!({"permissions": ALL})).await["key_secret"].as_str().unwrap().to_string();
    fx.budget("", 1_000_000).await;
    let r = send(
        fx.app
            .admin(Method::PUT, "/v1/admin/config/webhook-security")
            .json(&json!({"allow_http": true, "blocked_cidr_ranges": ["10.0.0.0/8"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sub = as_key(
        &fx,
        &key,
        Method::POST,
        "/v1/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/hook", "event_types": ["budget.funded"]})),
    )
    .await;
    assert_eq!(sub.status, 201, "{}", sub.text);
    let sub_id = sub.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    let open = fx.reserved("before", json!({}), 1_000).await;
    fx.set_tenant_status("SUSPENDED").await;
    let before = fx.ledger("", USD).await;
    let sub_before = send(fx.app.admin(Method::GET, &format!("/v1/admin/webhooks/{sub_id}"))).await.body;

    let fund = |op: &'static str| {
        let path = format!("/v1/admin/budgets/fund?scope={}&unit={USD}", fx.scope(""));
        let body = json!({"operation": op, "amount": {"unit": USD, "amount": 5}});
        let (fx, key) = (&fx, key.clone());
        async move { as_key(fx, &key, Method::POST, &path, Some(body)).await }
    };
    for op in ["CREDIT", "RESET_SPENT", "RESET", "DEBIT", "REPAY_DEBT"] {
        let r = fund(op).await;
        assert!(r.expect_error(403, "FORBIDDEN").contains("suspended"), "{op}: {}", r.text);
    }
    let new_budget = json!({"scope": fx.scope("/agent:x"), "unit": USD, "allocated": {"unit": USD, "amount": 5}});
    as_key(&fx, &key, Method::POST, "/v1/admin/budgets", Some(new_budget)).await.expect_error(403, "FORBIDDEN");
    let hook = json!({"url": "http://127.0.0.1:9/other", "event_types": ["budget.funded"]});
    as_key(&fx, &key, Method::POST, "/v1/webhooks", Some(hook)).await.expect_error(403, "FORBIDDEN");
    let path = format!("/v1/webhooks/{sub_id}");
    as_key(&fx, &key, Method::PATCH, &path, Some(json!({"name": "renamed"}))).await.expect_error(403, "FORBIDDEN");
    as_key(&fx, &key, Method::POST, &format!("{path}/test"), None).await.expect_error(403, "FORBIDDEN");
    as_key(&fx, &key, Method::DELETE, &path, None).await.expect_error(403, "FORBIDDEN");
    let reserve = send(
        fx.app
            .client
            .post(fx.app.runtime_url("/v1/reservations"))
            .header("x-cycles-api-key", &key)
            .json(&fx.reserve_body("after", json!({}), 10)),
    )
    .await;
    reserve.expect_error(403, "FORBIDDEN");

    // Nothing changed; reads still work; the open reservation can still be committed.
    assert_eq!(fx.ledger("", USD).await, before);
    assert_eq!(as_key(&fx, &key, Method::GET, &path, None).await.status, 200);
    assert_eq!(send(fx.app.admin(Method::GET, &path.replace("/v1/", "/v1/admin/"))).await.body, sub_before);
    let commit = send(
        fx.app
            .client
            .post(fx.app.runtime_url(&format!("/v1/reservations/{open}/commit")))
            .header("x-cycles-api-key", &key)
            .json(&json!({"idempotency_key": "c", "actual": {"unit": USD, "amount": 700}})),
    )
    .await;
    assert_eq!(commit.status, 200, "{}", commit.text);
    // The admin key may still fund a suspended tenant's budget.
    let r = fx.fund("", "CREDIT", 5).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(amt(&fx.ledger("", USD).await, "allocated"), 1_000_005);
}
