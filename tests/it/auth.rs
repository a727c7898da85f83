//! Admin-key and tenant-key authentication, `/v1/auth/introspect` and `/v1/auth/validate`.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, send, tenant_id};

#[tokio::test]
async fn the_admin_key_introspects_as_admin_with_every_capability() {
    let app = TestApp::spawn().await;
    let r = send(app.admin(Method::GET, "/v1/auth/introspect")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["auth_type"], "admin");
    assert_eq!(r.body["permissions"], json!(["*"]));
    assert!(r.body.get("tenant_id").is_none());
    assert!(r.body["capabilities"].as_object().unwrap().values().all(|v| v == true));
}

#[tokio::test]
async fn a_tenant_key_never_sees_tenants_keys_audit_or_the_overview() {
    let app = TestApp::spawn().await;
    let id = tenant_id("caps");
    app.create_tenant(&id).await;
    let k = app.create_key(&id, json!({"permissions": ["admin:read", "admin:write", "webhooks:read"]})).await;
    let r = app.introspect(k["key_secret"].as_str().unwrap()).await;
    assert_eq!(r.body["auth_type"], "tenant");
    assert_eq!(r.body["tenant_id"], id.as_str());
    let caps = &r.body["capabilities"];
    for never in ["view_tenants", "view_api_keys", "view_audit", "view_overview", "manage_tenants", "manage_api_keys"] {
        assert_eq!(caps[never], false, "{never}");
    }
    for granted in ["view_budgets", "view_events", "view_webhooks", "manage_budgets", "manage_webhooks"] {
        assert_eq!(caps[granted], true, "{granted}");
    }
    assert!(r.body.get("scope_filter").is_none(), "absent when the key has none");
}

#[tokio::test]
async fn missing_or_wrong_keys_are_401_with_the_spec_body() {
    let app = TestApp::spawn().await;
    let none = send(app.client.get(app.admin_url("/v1/auth/introspect"))).await;
    none.expect_error(401, "UNAUTHORIZED");
    let wrong_admin = send(app.client.get(app.admin_url("/v1/admin/tenants")).header("x-admin-api-key", "nope")).await;
    wrong_admin.expect_error(401, "UNAUTHORIZED");
    let no_admin = send(app.client.get(app.admin_url("/v1/admin/tenants"))).await;
    no_admin.expect_error(401, "UNAUTHORIZED");
    let garbage = app.introspect("cyc_live_not-a-real-key").await;
    garbage.expect_error(401, "UNAUTHORIZED");
    let id = tenant_id("tk");
    app.create_tenant(&id).await;
    let k = app.create_key(&id, json!({})).await;
    let tenant_on_admin = send(
        app.client
            .get(app.admin_url("/v1/admin/tenants"))
            .header("x-cycles-api-key", k["key_secret"].as_str().unwrap()),
    )
    .await;
    tenant_on_admin.expect_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn validate_reports_valid_keys_and_the_reason_for_invalid_ones() {
    let app = TestApp::spawn().await;
    let id = tenant_id("val");
    app.create_tenant(&id).await;
    let k = app.create_key(&id, json!({"scope_filter": ["workspace:eng"]})).await;
    let secret = k["key_secret"].as_str().unwrap();
    let validate = |s: &str| send(app.admin(Method::POST, "/v1/auth/validate").json(&json!({ "key_secret": s })));
    let ok = validate(secret).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["valid"], true);
    assert_eq!(ok.body["tenant_id"], id.as_str());
    assert_eq!(ok.body["key_id"], k["key_id"]);
    assert_eq!(ok.body["scope_filter"], json!(["workspace:eng"]));
    let unknown = validate("cyc_live_unknown").await;
    assert_eq!((unknown.body["valid"].clone(), unknown.body["reason"].clone()), (json!(false), json!("KEY_NOT_FOUND")));
    assert_eq!(unknown.body["tenant_id"], "");
    send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{id}")).json(&json!({"status": "SUSPENDED"}))).await;
    assert_eq!(validate(secret).await.body["reason"], "TENANT_SUSPENDED");
    let kid = k["key_id"].as_str().unwrap();
    send(app.admin(Method::DELETE, &format!("/v1/admin/api-keys/{kid}"))).await;
    assert_eq!(validate(secret).await.body["reason"], "KEY_REVOKED");
}

#[tokio::test]
async fn validate_is_for_the_admin_key_only() {
    let app = TestApp::spawn().await;
    let id = tenant_id("valadm");
    app.create_tenant(&id).await;
    let k = app.create_key(&id, json!({})).await;
    let secret = k["key_secret"].as_str().unwrap();
    let r = send(
        app.client
            .post(app.admin_url("/v1/auth/validate"))
            .header("x-cycles-api-key", secret)
            .json(&json!({ "key_secret": secret })),
    )
    .await;
    r.expect_error(401, "UNAUTHORIZED");
}
