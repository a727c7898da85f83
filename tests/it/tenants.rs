//! `/v1/admin/tenants`: create, list, get, update, the lifecycle and the Redis mirror.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, send, tenant_id};

#[tokio::test]
async fn creating_a_tenant_applies_the_spec_defaults_and_tier_free() {
    let app = TestApp::spawn().await;
    let id = tenant_id("acme");
    let t = app.create_tenant(&id).await;
    assert_eq!(t["tenant_id"], id.as_str());
    assert_eq!(t["status"], "ACTIVE");
    assert_eq!(t["tier"], "free");
    assert_eq!(t["default_reservation_ttl_ms"], 60000);
    assert_eq!(t["max_reservation_ttl_ms"], 3600000);
    assert_eq!(t["max_reservation_extensions"], 10);
    assert_eq!(t["default_commit_overage_policy"], "ALLOW_IF_AVAILABLE");
    assert_eq!(t["reservation_expiry_policy"], "AUTO_RELEASE");
    let got = send(app.admin(Method::GET, &format!("/v1/admin/tenants/{id}"))).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, t);
}

#[tokio::test]
async fn creating_the_same_tenant_twice_returns_200_with_the_stored_tenant() {
    let app = TestApp::spawn().await;
    let id = tenant_id("twice");
    let first = app.create_tenant(&id).await;
    let again = send(app.admin(Method::POST, "/v1/admin/tenants").json(&json!({
        "tenant_id": id, "name": format!("Tenant {id}"), "tier": "pro"
    })))
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first, "a repeated create changes nothing");
}

#[tokio::test]
async fn creating_a_tenant_id_that_exists_with_another_name_is_409_duplicate_resource() {
    let app = TestApp::spawn().await;
    let id = tenant_id("dup");
    app.create_tenant(&id).await;
    let r = send(app.admin(Method::POST, "/v1/admin/tenants").json(&json!({"tenant_id": id, "name": "Other"}))).await;
    r.expect_error(409, "DUPLICATE_RESOURCE");
}

#[tokio::test]
async fn getting_an_unknown_tenant_is_404_tenant_not_found() {
    let app = TestApp::spawn().await;
    let r = send(app.admin(Method::GET, "/v1/admin/tenants/no-such-tenant")).await;
    r.expect_error(404, "TENANT_NOT_FOUND");
}

#[tokio::test]
async fn patching_a_tenant_changes_only_the_given_fields() {
    let app = TestApp::spawn().await;
    let id = tenant_id("patch");
    app.create_tenant(&id).await;
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{id}")).json(&json!({
        "name": "Renamed", "tier": "enterprise", "metadata": {"team": "core"},
        "default_reservation_ttl_ms": 30000, "max_reservation_extensions": 3,
        "default_commit_overage_policy": "REJECT"
    })))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "Renamed");
    assert_eq!(r.body["tier"], "enterprise");
    assert_eq!(r.body["metadata"], json!({"team": "core"}));
    assert_eq!(r.body["default_reservation_ttl_ms"], 30000);
    assert_eq!(r.body["max_reservation_ttl_ms"], 3600000);
    assert_eq!(r.body["max_reservation_extensions"], 3);
    assert_eq!(r.body["default_commit_overage_policy"], "REJECT");
    assert_eq!(r.body["status"], "ACTIVE");
}

#[tokio::test]
async fn a_default_ttl_above_the_max_ttl_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let id = tenant_id("ttl");
    app.create_tenant(&id).await;
    let r = send(
        app.admin(Method::PATCH, &format!("/v1/admin/tenants/{id}"))
            .json(&json!({"default_reservation_ttl_ms": 7200000})),
    )
    .await;
    let msg = r.expect_error(400, "INVALID_REQUEST");
    assert!(msg.contains("default_reservation_ttl_ms"), "{msg}");
}

#[tokio::test]
async fn listing_tenants_filters_by_status_and_pages_with_a_cursor() {
    let app = TestApp::spawn().await;
    let mut ids: Vec<String> = (0..5).map(|i| format!("page-{i}-{}", tenant_id("t"))).collect();
    for id in &ids {
        app.create_tenant(id).await;
    }
    send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{}", ids[4])).json(&json!({"status": "SUSPENDED"})))
        .await;
    ids.sort();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/admin/tenants?sort_by=tenant_id&sort_dir=asc&limit=2".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = send(app.admin(Method::GET, &path)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for t in r.body["tenants"].as_array().unwrap() {
            seen.push(t["tenant_id"].as_str().unwrap().to_string());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(r.body["has_more"], true);
                cursor = Some(c.to_string());
            }
            None => {
                assert_eq!(r.body["has_more"], false);
                break;
            }
        }
    }
    assert_eq!(seen, ids, "every tenant once, in order");
    let suspended = send(app.admin(Method::GET, "/v1/admin/tenants?status=SUSPENDED")).await;
    assert_eq!(suspended.body["tenants"].as_array().unwrap().len(), 1);
    let searched = send(app.admin(Method::GET, &format!("/v1/admin/tenants?search={}", &ids[2][..8]))).await;
    assert!(searched.body["tenants"].as_array().unwrap().iter().any(|t| t["tenant_id"] == ids[2].as_str()));
}

#[tokio::test]
async fn a_cursor_from_another_sort_is_refused() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.create_tenant(&tenant_id(&format!("c{i}"))).await;
    }
    let first = send(app.admin(Method::GET, "/v1/admin/tenants?sort_by=name&limit=1")).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let r = send(app.admin(Method::GET, &format!("/v1/admin/tenants?sort_by=tenant_id&limit=1&cursor={cursor}"))).await;
    let msg = r.expect_error(400, "INVALID_REQUEST");
    assert!(msg.contains("cursor"), "{msg}");
}

#[tokio::test]
async fn the_tenant_status_and_settings_are_mirrored_into_redis() {
    let app = TestApp::spawn().await;
    let id = tenant_id("mirror");
    app.create_tenant(&id).await;
    send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{id}")).json(&json!({"status": "SUSPENDED"}))).await;
    let client = redis::Client::open(app.env.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}:{{t:{id}}}:tenant", app.env.redis_prefix);
    let status: String = redis::cmd("HGET").arg(&key).arg("status").query_async(&mut conn).await.unwrap();
    assert_eq!(status, "SUSPENDED");
    let ttl: i64 = redis::cmd("HGET").arg(&key).arg("default_reservation_ttl_ms").query_async(&mut conn).await.unwrap();
    assert_eq!(ttl, 60000);
}
