//! `/v1/admin/api-keys`: mint, list, update, revoke, expiry, and cache invalidation.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, eventually, send, tenant_id};

#[tokio::test]
async fn a_new_key_gets_the_spec_default_permissions_and_a_displayable_prefix() {
    let app = TestApp::spawn().await;
    let id = tenant_id("keys");
    app.create_tenant(&id).await;
    let k = app.create_key(&id, json!({})).await;
    let secret = k["key_secret"].as_str().unwrap();
    assert!(secret.starts_with("cyc_live_") && secret.len() == 41, "{secret}");
    assert!(secret.starts_with(k["key_prefix"].as_str().unwrap()));
    let perms: Vec<&str> = k["permissions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(perms.len(), 10);
    assert!(perms.contains(&"reservations:create") && !perms.contains(&"webhooks:read"));
    assert!(k["expires_at"].is_string());
}

#[tokio::test]
async fn the_secret_appears_in_exactly_one_response_and_nowhere_in_the_database() {
    let app = TestApp::spawn().await;
    let id = tenant_id("secret");
    app.create_tenant(&id).await;
    let k = app.create_key(&id, json!({"permissions": ["balances:read"]})).await;
    let secret = k["key_secret"].as_str().unwrap().to_string();
    let kid = k["key_id"].as_str().unwrap().to_string();
    let later = [
        send(app.admin(Method::GET, &format!("/v1/admin/api-keys?tenant_id={id}"))).await,
        send(app.admin(Method::PATCH, &format!("/v1/admin/api-keys/{kid}")).json(&json!({"name": "renamed"}))).await,
        send(app.admin(Method::GET, "/v1/admin/audit/logs?limit=100")).await,
        app.introspect(&secret).await,
        send(app.admin(Method::DELETE, &format!("/v1/admin/api-keys/{kid}"))).await,
        send(app.admin(Method::GET, &format!("/v1/admin/api-keys?tenant_id={id}"))).await,
    ];
    for r in &later {
        assert!(r.status.is_success(), "{}", r.text);
        assert!(!r.text.contains(&secret), "secret leaked in a later response: {}", r.text);
        assert!(!r.text.contains(&secret[9..]), "secret's random part leaked: {}", r.text);
    }
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
            .fetch_all(&app.pg)
            .await
            .unwrap();
    assert!(tables.len() >= 4);
    for (table,) in tables {
        let dump: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT string_agg(t::text, '|') FROM \"{table}\" t")))
                .fetch_one(&app.pg)
                .await
                .unwrap();
        let dump = dump.unwrap_or_default();
        assert!(!dump.contains(&secret[9..]), "table {table} holds the secret");
    }
}

#[tokio::test]
async fn minting_a_key_for_an_unknown_tenant_is_404_tenant_not_found() {
    let app = TestApp::spawn().await;
    let r = send(app.admin(Method::POST, "/v1/admin/api-keys").json(&json!({"tenant_id": "nobody-here", "name": "k"})))
        .await;
    r.expect_error(404, "TENANT_NOT_FOUND");
}

#[tokio::test]
async fn an_expiry_in_the_past_is_refused_naming_expires_at() {
    let app = TestApp::spawn().await;
    let id = tenant_id("past");
    app.create_tenant(&id).await;
    let r = send(app.admin(Method::POST, "/v1/admin/api-keys").json(&json!({
        "tenant_id": id, "name": "k", "expires_at": "2020-01-01T00:00:00Z"
    })))
    .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("expires_at"));
}

#[tokio::test]
async fn updating_a_key_replaces_its_permissions_scope_filter_and_expiry() {
    let app = TestApp::spawn().await;
    let id = tenant_id("upd");
    app.create_tenant(&id).await;
    let k = app.create_key(&id, json!({})).await;
    let secret = k["key_secret"].as_str().unwrap();
    assert_eq!(app.introspect(secret).await.body["capabilities"]["view_events"], false);
    let kid = k["key_id"].as_str().unwrap();
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/api-keys/{kid}")).json(&json!({
        "name": "renamed", "permissions": ["events:read", "events:read"], "scope_filter": ["workspace:eng", "agent:*"],
        "expires_at": "2099-01-01T00:00:00Z", "metadata": {"owner": "ops"}
    })))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "renamed");
    assert_eq!(r.body["permissions"], json!(["events:read"]));
    assert_eq!(r.body["scope_filter"], json!(["workspace:eng", "agent:*"]));
    assert_eq!(r.body["expires_at"], "2099-01-01T00:00:00Z");
    let seen = app.introspect(secret).await;
    assert_eq!(seen.body["permissions"], json!(["events:read"]), "the cache saw the change");
    assert_eq!(seen.body["capabilities"]["view_events"], true);
    assert_eq!(seen.body["scope_filter"], json!(["workspace:eng", "agent:*"]));
}

#[tokio::test]
async fn a_revoked_key_fails_introspection_with_401_and_cannot_be_revoked_twice() {
    let app = TestApp::spawn().await;
    let id = tenant_id("revoke");
    app.create_tenant(&id).await;
    let k = app.create_key(&id, json!({})).await;
    let (secret, kid) = (k["key_secret"].as_str().unwrap(), k["key_id"].as_str().unwrap());
    assert_eq!(app.introspect(secret).await.status, 200);
    let r = send(app.admin(Method::DELETE, &format!("/v1/admin/api-keys/{kid}?reason=leaked"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "REVOKED");
    assert_eq!(r.body["revoked_reason"], "leaked");
    app.introspect(secret).await.expect_error(401, "UNAUTHORIZED");
    let again = send(app.admin(Method::DELETE, &format!("/v1/admin/api-keys/{kid}"))).await;
    again.expect_error(409, "KEY_REVOKED");
    let upd = send(app.admin(Method::PATCH, &format!("/v1/admin/api-keys/{kid}")).json(&json!({"name": "x"}))).await;
    upd.expect_error(409, "KEY_REVOKED");
}

#[tokio::test]
async fn an_expired_key_fails_introspection_with_401_and_lists_as_expired() {
    let app = TestApp::spawn().await;
    let id = tenant_id("expire");
    app.create_tenant(&id).await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1500);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let k = app.create_key(&id, json!({"expires_at": soon})).await;
    let secret = k["key_secret"].as_str().unwrap();
    assert_eq!(app.introspect(secret).await.status, 200);
    let expired = eventually(Duration::from_secs(5), || async { app.introspect(secret).await.status == 401 }).await;
    assert!(expired, "the key stopped working once past expires_at");
    let listed = send(app.admin(Method::GET, &format!("/v1/admin/api-keys?tenant_id={id}&status=EXPIRED"))).await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["keys"][0]["status"], "EXPIRED");
    let kid = k["key_id"].as_str().unwrap();
    let upd = send(app.admin(Method::PATCH, &format!("/v1/admin/api-keys/{kid}")).json(&json!({"name": "x"}))).await;
    upd.expect_error(409, "KEY_EXPIRED");
}

#[tokio::test]
async fn a_revocation_reaches_another_instance_within_a_second() {
    let app = TestApp::spawn().await;
    let other = app.another_instance().await;
    let id = tenant_id("spread");
    app.create_tenant(&id).await;
    let k = app.create_key(&id, json!({})).await;
    let secret = k["key_secret"].as_str().unwrap();
    let other_url = format!("http://{}/v1/auth/introspect", other.admin.unwrap());
    let on_other =
        || async { send(app.client.get(&other_url).header("x-cycles-api-key", secret)).await.status.as_u16() };
    assert_eq!(on_other().await, 200, "the other instance has the key cached now");
    let kid = k["key_id"].as_str().unwrap();
    send(app.admin(Method::DELETE, &format!("/v1/admin/api-keys/{kid}"))).await;
    let revoked = eventually(Duration::from_millis(1500), || async { on_other().await == 401 }).await;
    assert!(revoked, "the other instance refused the key within 1.5 s");
    other.stop().await.unwrap();
}

#[tokio::test]
async fn listing_keys_filters_by_tenant_and_status() {
    let app = TestApp::spawn().await;
    let (a, b) = (tenant_id("la"), tenant_id("lb"));
    app.create_tenant(&a).await;
    app.create_tenant(&b).await;
    let ka = app.create_key(&a, json!({})).await;
    app.create_key(&a, json!({})).await;
    app.create_key(&b, json!({})).await;
    let kid = ka["key_id"].as_str().unwrap();
    send(app.admin(Method::DELETE, &format!("/v1/admin/api-keys/{kid}"))).await;
    let all_a = send(app.admin(Method::GET, &format!("/v1/admin/api-keys?tenant_id={a}"))).await;
    assert_eq!(all_a.body["keys"].as_array().unwrap().len(), 2);
    let active_a = send(app.admin(Method::GET, &format!("/v1/admin/api-keys?tenant_id={a}&status=ACTIVE"))).await;
    assert_eq!(active_a.body["keys"].as_array().unwrap().len(), 1);
    let everyone = send(app.admin(Method::GET, "/v1/admin/api-keys?sort_by=tenant_id&sort_dir=asc")).await;
    assert_eq!(everyone.body["keys"].as_array().unwrap().len(), 3);
    assert_eq!(everyone.body["has_more"], false);
}
