//! One rule for U+0000 on both planes: a NUL in a JSON string or key, a path segment or a query
//! parameter is 400 `INVALID_REQUEST` naming the field, before anything is stored, so no
//! tenant's event stream can be handed an event Postgres cannot hold.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::fixture::Fx;
use crate::helpers::{TestApp, eventually, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nul_in_admin_names_paths_and_filters_is_a_400_naming_the_field() {
    let fx = Fx::on(TestApp::spawn().await).await;
    let app = &fx.app;
    let r = send(app.admin(Method::POST, "/v1/admin/tenants").json(&json!({"tenant_id": "nul-t", "name": "a\u{0}b"})))
        .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("name"), "{}", r.text);
    let r =
        send(app.admin(Method::POST, "/v1/admin/api-keys").json(&json!({"tenant_id": fx.tenant, "name": "k\u{0}"})))
            .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("name"), "{}", r.text);
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{}", fx.tenant)).json(&json!({"name": "\u{0}"})))
        .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("name"), "{}", r.text);
    for (path, field) in [
        ("/v1/admin/tenants/a%00b", "tenant_id"),
        ("/v1/admin/api-keys/key%00", "key_id"),
        ("/v1/admin/tenants?search=a%00b", "search"),
        ("/v1/admin/tenants?parent_tenant_id=%00", "parent_tenant_id"),
        ("/v1/admin/api-keys?tenant_id=a%00", "tenant_id"),
        ("/v1/admin/budgets?tenant_id=a%00", "tenant_id"),
        ("/v1/admin/audit/logs?tenant_id=a%00", "tenant_id"),
        ("/v1/admin/budgets/lookup?scope=tenant:a%00&unit=USD_MICROCENTS", "scope"),
        ("/no/such/route%00", "path"),
    ] {
        let r = send(app.admin(Method::GET, path)).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "GET {path}: {msg:?} does not name {field}");
    }
    let r = send(app.admin(Method::DELETE, "/v1/admin/api-keys/k%00")).await;
    r.expect_error(400, "INVALID_REQUEST");
    // Nothing was created.
    let r = send(app.admin(Method::GET, "/v1/admin/tenants/nul-t")).await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nul_in_a_denied_reserve_is_refused_before_the_ledger_and_the_event_stream_keeps_flowing() {
    let fx = Fx::on(TestApp::spawn().await).await;
    fx.budget("", 10).await;
    // Each of these reserves would be denied (estimate above the budget) and emit an event.
    for (extra, field) in [
        (json!({"metadata": {"k": "a\u{0}b"}}), "metadata.k"),
        (json!({"metadata": {"a\u{0}": 1}}), "metadata"),
        (json!({"action": {"kind": "llm.completion", "name": "m\u{0}"}}), "action.name"),
        (json!({"subject": {"tenant": fx.tenant, "dimensions": {"x": "\u{0}"}}}), "subject.dimensions.x"),
    ] {
        let r = fx.reserve_with("nul", json!({}), 1_000, extra.clone()).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "{extra}: {msg:?} does not name {field}");
        let r = fx
            .post("/v1/decide", {
                let mut b = fx.reserve_body("nul-d", json!({}), 1_000);
                b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
                b
            })
            .await;
        r.expect_error(400, "INVALID_REQUEST");
    }
    let r = fx.event("nul-e", json!({}), 1, json!({"metadata": {"k": "\u{0}"}})).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("metadata.k"), "{}", r.text);
    for (path, field) in [("/v1/reservations/rsv%00", "reservation_id"), ("/v1/balances?tenant=a%00", "tenant")] {
        let r = fx.get(path).await;
        assert!(r.expect_error(400, "INVALID_REQUEST").contains(field), "{path}: {}", r.text);
    }

    // The tenant's events still reach the log: a later change is stored.
    let r = fx.fund("", "CREDIT", 5).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let path = format!("/v1/admin/events?tenant_id={}&event_type=budget.funded", fx.tenant);
    let stored = eventually(Duration::from_secs(10), || async {
        let r = send(fx.app.admin(Method::GET, &path)).await;
        r.body["events"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    assert!(stored, "budget.funded stored after the refused NUL requests");
    let denied = send(
        fx.app.admin(Method::GET, &format!("/v1/admin/events?tenant_id={}&event_type=reservation.denied", fx.tenant)),
    )
    .await;
    assert_eq!(denied.body["events"], json!([]), "{}", denied.text);
}
