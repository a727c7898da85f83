//! `POST /v1/admin/tenants/bulk-action`: per-row outcomes, the gates, idempotent replay, one
//! audit entry per invocation, per-row events under the bulk correlation id, and bad input.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, eventually, send, tenant_id};

pub async fn bulk(app: &TestApp, path: &str, body: Value) -> Reply {
    send(app.admin(Method::POST, path).json(&body)).await
}

async fn tenants_bulk(app: &TestApp, body: Value) -> Reply {
    bulk(app, "/v1/admin/tenants/bulk-action", body).await
}

pub async fn status_of(app: &TestApp, t: &str) -> String {
    let r = send(app.admin(Method::GET, &format!("/v1/admin/tenants/{t}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["status"].as_str().unwrap().to_string()
}

pub async fn set_status(app: &TestApp, t: &str, status: &str) {
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{t}")).json(&json!({"status": status}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The ids in one outcome array of a bulk response, sorted.
pub fn ids(r: &Reply, array: &str) -> Vec<String> {
    let mut out: Vec<String> =
        r.body[array].as_array().unwrap().iter().map(|row| row["id"].as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

/// Every event with this correlation id.
pub async fn correlated(app: &TestApp, correlation: &str) -> Vec<Value> {
    let r = send(app.admin(Method::GET, "/v1/admin/events").query(&[("correlation_id", correlation)])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["events"].as_array().cloned().unwrap_or_default()
}

/// Three tenants whose ids share a marker no other test uses: ACTIVE, SUSPENDED and CLOSED.
async fn three_tenants(app: &TestApp) -> (String, [String; 3]) {
    let marker = tenant_id("bulkt");
    let ts = [format!("{marker}-a"), format!("{marker}-b"), format!("{marker}-c")];
    for t in &ts {
        app.create_tenant(t).await;
    }
    set_status(app, &ts[1], "SUSPENDED").await;
    set_status(app, &ts[2], "CLOSED").await;
    (marker, ts)
}

#[tokio::test]
async fn a_bulk_suspend_reports_each_row_audits_once_emits_per_row_and_replays_its_response() {
    let app = TestApp::spawn().await;
    let (marker, [a, b, c]) = three_tenants(&app).await;
    let body = json!({
        "filter": {"search": marker}, "action": "SUSPEND", "expected_count": 3, "idempotency_key": "suspend-1",
    });
    let r = tenants_bulk(&app, body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["action"], "SUSPEND");
    assert_eq!(r.body["total_matched"], 3);
    assert_eq!(r.body["idempotency_key"], "suspend-1");
    assert_eq!(ids(&r, "succeeded"), [a.as_str()]);
    assert_eq!(r.body["skipped"], json!([{"id": b, "reason": "ALREADY_IN_TARGET_STATE"}]));
    assert_eq!(r.body["failed"][0]["id"], c.as_str());
    assert_eq!(r.body["failed"][0]["error_code"], "INVALID_TRANSITION");
    assert!(r.body["failed"][0]["message"].is_string());
    assert_eq!(status_of(&app, &a).await, "SUSPENDED");
    assert_eq!(status_of(&app, &c).await, "CLOSED");

    let request_id = r.header("x-request-id").to_string();
    let correlation = format!("tenant_bulk_action:suspend:{request_id}");
    let events = correlated(&app, &correlation).await;
    assert_eq!(events.len(), 1, "one event per changed row only: {events:?}");
    assert_eq!(events[0]["event_type"], "tenant.suspended");
    assert_eq!(events[0]["tenant_id"], a.as_str());
    assert_eq!(events[0]["request_id"], request_id.as_str());
    let entries = app.audit(&format!("request_id={request_id}")).await;
    assert_eq!(entries.len(), 1, "one audit entry per invocation: {entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["operation"], "bulkActionTenants");
    assert_eq!(entry["metadata"]["actor_type"], "admin_on_behalf_of");
    assert_eq!(entry["metadata"]["succeeded"], r.body["succeeded"]);
    assert_eq!(entry["metadata"]["failed"], r.body["failed"]);
    assert_eq!(entry["metadata"]["skipped"], r.body["skipped"]);
    assert_eq!(entry["metadata"]["correlation_id"], correlation.as_str());

    // The same request again: the first response, nothing re-applied, audited or emitted.
    set_status(&app, &a, "ACTIVE").await;
    let replay = tenants_bulk(&app, body).await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.body, r.body);
    assert_eq!(status_of(&app, &a).await, "ACTIVE", "a replay applies nothing");
    assert!(app.audit(&format!("request_id={}", replay.header("x-request-id"))).await.is_empty());
    let other = tenants_bulk(
        &app,
        json!({"filter": {"search": marker}, "action": "REACTIVATE", "idempotency_key": "suspend-1"}),
    )
    .await;
    other.expect_error(409, "IDEMPOTENCY_MISMATCH");
}

#[tokio::test]
async fn a_bulk_close_cascades_per_row_and_parent_and_children_carry_their_own_correlation_ids() {
    let app = TestApp::spawn().await;
    let marker = tenant_id("bulkc");
    let (open, closed) = (format!("{marker}-open"), format!("{marker}-shut"));
    app.create_tenant(&open).await;
    app.create_tenant(&closed).await;
    set_status(&app, &closed, "CLOSED").await;
    let key_id = app.create_key(&open, json!({})).await["key_id"].as_str().unwrap().to_string();
    let usd = json!({"unit": "USD_MICROCENTS", "amount": 100});
    let r = send(app.admin(Method::POST, "/v1/admin/budgets").json(&json!({
        "tenant_id": open, "scope": format!("tenant:{open}"), "unit": "USD_MICROCENTS", "allocated": usd,
    })))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let r = tenants_bulk(&app, json!({"filter": {"search": marker}, "action": "CLOSE", "idempotency_key": "close-1"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r, "succeeded"), [open.as_str()]);
    assert_eq!(r.body["skipped"], json!([{"id": closed, "reason": "ALREADY_IN_TARGET_STATE"}]));
    assert_eq!(status_of(&app, &open).await, "CLOSED");
    let rq = r.header("x-request-id").to_string();
    let parent = correlated(&app, &format!("tenant_bulk_action:close:{rq}")).await;
    assert_eq!(parent.len(), 1, "{parent:?}");
    assert_eq!(parent[0]["event_type"], "tenant.closed");
    assert_eq!(parent[0]["tenant_id"], open.as_str());
    let cascade = format!("tenant_close_cascade:{open}:{rq}");
    let children_arrive = eventually(Duration::from_secs(10), || async {
        let kinds: Vec<Value> = correlated(&app, &cascade).await.iter().map(|e| e["event_type"].clone()).collect();
        kinds.contains(&json!("api_key.revoked_via_tenant_cascade"))
            && kinds.contains(&json!("budget.closed_via_tenant_cascade"))
    })
    .await;
    assert!(children_arrive, "cascade events under {cascade}: {:?}", correlated(&app, &cascade).await);
    let keys = send(app.admin(Method::GET, "/v1/admin/api-keys").query(&[("tenant_id", open.as_str())])).await;
    assert_eq!(keys.body["keys"][0]["key_id"], key_id.as_str());
    assert_eq!(keys.body["keys"][0]["status"], "REVOKED");
    let entries = app.audit(&format!("request_id={rq}")).await;
    let operations: Vec<&str> = entries.iter().map(|e| e["operation"].as_str().unwrap()).collect();
    assert_eq!(operations.iter().filter(|o| **o == "bulkActionTenants").count(), 1, "{operations:?}");
    assert!(!operations.contains(&"updateTenant"), "no per-row tenant entry: {operations:?}");
}

#[tokio::test]
async fn the_tenant_gates_refuse_a_stale_count_and_more_than_500_matches_and_write_nothing() {
    let app = TestApp::spawn().await;
    let (marker, [a, _, _]) = three_tenants(&app).await;
    let stale = tenants_bulk(
        &app,
        json!({"filter": {"search": marker}, "action": "SUSPEND", "expected_count": 2, "idempotency_key": "g-1"}),
    )
    .await;
    stale.expect_error(409, "COUNT_MISMATCH");
    assert_eq!(stale.body["details"]["total_matched"], 3);
    assert_eq!(status_of(&app, &a).await, "ACTIVE");

    // 501 more tenants under a second marker, copied from one in SQL.
    let many = tenant_id("bulkm");
    app.create_tenant(&format!("{many}-seed")).await;
    sqlx::query(
        "INSERT INTO tenants SELECT (jsonb_populate_record(t, jsonb_build_object('tenant_id', $1 || '-' || g))).* \
         FROM tenants t, generate_series(1, 501) g WHERE t.tenant_id = $1 || '-seed'",
    )
    .bind(&many)
    .execute(&app.pg)
    .await
    .unwrap();
    let too_many =
        tenants_bulk(&app, json!({"filter": {"search": many}, "action": "SUSPEND", "idempotency_key": "g-2"})).await;
    too_many.expect_error(400, "LIMIT_EXCEEDED");
    assert_eq!(too_many.body["details"]["total_matched"], 502);
    let suspended: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenants WHERE status = 'SUSPENDED'").fetch_one(&app.pg).await.unwrap();
    assert_eq!(suspended, 1, "only the fixture's SUSPENDED tenant");
    let refused = app.audit("operation=bulkActionTenants").await;
    assert!(refused.is_empty(), "a refused bulk action writes no entry: {refused:?}");
}

#[tokio::test]
async fn bad_tenant_bulk_input_is_400_naming_the_field_and_a_tenant_bound_principal_is_refused() {
    let app = TestApp::spawn().await;
    let (marker, [a, _, _]) = three_tenants(&app).await;
    let ok = |extra: Value| {
        let mut body = json!({"filter": {"search": marker}, "action": "SUSPEND", "idempotency_key": "bad-1"});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        body
    };
    let cases = [
        (ok(json!({"filter": {}})), "filter"),
        (ok(json!({"filter": {"observe_mode": "SHADOW"}})), "filter.observe_mode"),
        (ok(json!({"filter": {"status": "GONE"}})), "filter.status"),
        (ok(json!({"filter": {"search": "x".repeat(129)}})), "filter.search"),
        (ok(json!({"action": "PAUSE"})), "action"),
        (ok(json!({"idempotency_key": ""})), "idempotency_key"),
        (ok(json!({"idempotency_key": "k".repeat(129)})), "idempotency_key"),
        (ok(json!({"expected_count": -1})), "expected_count"),
    ];
    for (body, field) in cases {
        let r = tenants_bulk(&app, body.clone()).await;
        r.expect_error(400, "INVALID_REQUEST");
        assert_eq!(r.body["details"]["field"], field, "{body} → {}", r.text);
    }
    let unknown = tenants_bulk(&app, ok(json!({"filter": {"search": marker, "tier": "pro"}}))).await;
    unknown.expect_error(400, "INVALID_REQUEST");
    assert!(unknown.text.contains("tier"), "{}", unknown.text);
    let missing = tenants_bulk(&app, json!({"filter": {"search": marker}, "action": "SUSPEND"})).await;
    assert!(missing.expect_error(400, "INVALID_REQUEST").contains("idempotency_key"), "{}", missing.text);

    // A body or a filter that is an array, not an object (serde would read a struct from one).
    for path in ["/v1/admin/tenants/bulk-action", "/v1/admin/budgets/bulk-action"] {
        for body in [json!([{"search": marker}, "SUSPEND", null, "k"]), ok(json!({"filter": [marker]}))] {
            let r = bulk(&app, path, body).await;
            assert!(r.expect_error(400, "INVALID_REQUEST").contains("object"), "{path}: {}", r.text);
        }
    }

    // The literal route wins over /v1/admin/tenants/{tenant_id}, so that id is reserved.
    let reserved =
        send(app.admin(Method::POST, "/v1/admin/tenants").json(&json!({"tenant_id": "bulk-action", "name": "x"})))
            .await;
    reserved.expect_error(400, "INVALID_REQUEST");
    assert_eq!(reserved.body["details"]["field"], "tenant_id");

    // Tenant-bound principals act on one tenant; this route acts across tenants.
    let (_, pat) = crate::access::principal(&app, Some(&a), &["tenant-admin"]).await;
    let r =
        send(crate::access::with_pat(&app, &pat, Method::POST, "/v1/admin/tenants/bulk-action").json(&ok(json!({}))))
            .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(status_of(&app, &a).await, "ACTIVE", "nothing applied");
}
