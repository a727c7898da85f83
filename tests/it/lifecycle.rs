//! Tenant lifecycle ACTIVE ↔ SUSPENDED → CLOSED and the close cascade.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, send, tenant_id};

async fn set_status(app: &TestApp, id: &str, status: &str) -> crate::helpers::Reply {
    send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{id}")).json(&json!({ "status": status }))).await
}

#[tokio::test]
async fn a_tenant_can_be_suspended_and_reactivated() {
    let app = TestApp::spawn().await;
    let id = tenant_id("susp");
    app.create_tenant(&id).await;
    let s = set_status(&app, &id, "SUSPENDED").await;
    assert_eq!(s.body["status"], "SUSPENDED");
    assert!(s.body["suspended_at"].is_string());
    let a = set_status(&app, &id, "ACTIVE").await;
    assert_eq!(a.body["status"], "ACTIVE");
    assert!(a.body.get("suspended_at").is_none());
}

#[tokio::test]
async fn a_suspended_tenants_keys_stay_valid() {
    let app = TestApp::spawn().await;
    let id = tenant_id("suspkey");
    app.create_tenant(&id).await;
    let key = app.create_key(&id, json!({})).await;
    set_status(&app, &id, "SUSPENDED").await;
    let r = app.introspect(key["key_secret"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_closed_tenant_cannot_be_reactivated_or_suspended() {
    let app = TestApp::spawn().await;
    let id = tenant_id("closed");
    app.create_tenant(&id).await;
    let c = set_status(&app, &id, "CLOSED").await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["status"], "CLOSED");
    assert!(c.body["closed_at"].is_string());
    for target in ["ACTIVE", "SUSPENDED"] {
        let r = set_status(&app, &id, target).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains("status"), "{msg}");
    }
    let got = send(app.admin(Method::GET, &format!("/v1/admin/tenants/{id}"))).await;
    assert_eq!(got.body["status"], "CLOSED", "reads stay available and the tenant stays closed");
}

#[tokio::test]
async fn closing_a_tenant_revokes_its_keys_and_audits_each_one_under_one_correlation_id() {
    let app = TestApp::spawn().await;
    let id = tenant_id("cascade");
    app.create_tenant(&id).await;
    let k1 = app.create_key(&id, json!({})).await;
    let k2 = app.create_key(&id, json!({})).await;
    assert_eq!(app.introspect(k1["key_secret"].as_str().unwrap()).await.status, 200);
    set_status(&app, &id, "CLOSED").await;
    for k in [&k1, &k2] {
        let r = app.introspect(k["key_secret"].as_str().unwrap()).await;
        r.expect_error(401, "UNAUTHORIZED");
    }
    let keys = send(app.admin(Method::GET, &format!("/v1/admin/api-keys?tenant_id={id}"))).await;
    for k in keys.body["keys"].as_array().unwrap() {
        assert_eq!(k["status"], "REVOKED");
        assert_eq!(k["revoked_reason"], "tenant_closed");
    }
    let cascade = app.audit(&format!("tenant_id={id}&operation=tenant_close_cascade")).await;
    assert_eq!(cascade.len(), 2);
    let close = app.audit(&format!("tenant_id={id}&operation=updateTenant")).await;
    assert_eq!(close.len(), 1);
    let correlation = &close[0]["metadata"]["correlation_id"];
    assert!(cascade.iter().all(|e| &e["metadata"]["correlation_id"] == correlation));
    assert!(cascade.iter().all(|e| e["metadata"]["event_kind"] == "api_key.revoked_via_tenant_cascade"));
}

#[tokio::test]
async fn closing_a_closed_tenant_again_is_a_no_op_without_duplicate_audit_entries() {
    let app = TestApp::spawn().await;
    let id = tenant_id("reclose");
    app.create_tenant(&id).await;
    app.create_key(&id, json!({})).await;
    set_status(&app, &id, "CLOSED").await;
    let before = app.audit(&format!("tenant_id={id}&limit=100")).await.len();
    let again = set_status(&app, &id, "CLOSED").await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(app.audit(&format!("tenant_id={id}&limit=100")).await.len(), before);
}

#[tokio::test]
async fn a_closed_tenant_refuses_other_changes_and_new_keys_with_409_tenant_closed() {
    let app = TestApp::spawn().await;
    let id = tenant_id("rule2");
    app.create_tenant(&id).await;
    let key = app.create_key(&id, json!({})).await;
    set_status(&app, &id, "CLOSED").await;
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{id}")).json(&json!({"name": "x"}))).await;
    r.expect_error(409, "TENANT_CLOSED");
    let r = send(app.admin(Method::POST, "/v1/admin/api-keys").json(&json!({"tenant_id": id, "name": "n"}))).await;
    r.expect_error(409, "TENANT_CLOSED");
    let kid = key["key_id"].as_str().unwrap();
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/api-keys/{kid}")).json(&json!({"name": "n"}))).await;
    r.expect_error(409, "TENANT_CLOSED");
}

#[tokio::test]
async fn closing_flips_the_redis_mirror_to_closed() {
    let app = TestApp::spawn().await;
    let id = tenant_id("mirrorclose");
    app.create_tenant(&id).await;
    set_status(&app, &id, "CLOSED").await;
    let client = redis::Client::open(app.env.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}:{{t:{id}}}:tenant", app.env.redis_prefix);
    let status: String = redis::cmd("HGET").arg(&key).arg("status").query_async(&mut conn).await.unwrap();
    assert_eq!(status, "CLOSED");
}
