//! The audit log: one entry per mutation, the spec's filters, and the hash chain.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, send, tenant_id};

#[tokio::test]
async fn every_mutation_writes_exactly_one_audit_entry_carrying_its_request_and_trace_ids() {
    let app = TestApp::spawn().await;
    let id = tenant_id("aud");
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut calls = Vec::new();
    let create = send(
        app.admin(Method::POST, "/v1/admin/tenants")
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .json(&json!({"tenant_id": id, "name": "Audited"})),
    )
    .await;
    calls.push(("createTenant", create.header("x-request-id").to_string(), id.clone()));
    let upd =
        send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{id}")).json(&json!({"name": "Renamed"}))).await;
    calls.push(("updateTenant", upd.header("x-request-id").to_string(), id.clone()));
    let key = send(app.admin(Method::POST, "/v1/admin/api-keys").json(&json!({"tenant_id": id, "name": "k"}))).await;
    let kid = key.body["key_id"].as_str().unwrap().to_string();
    calls.push(("createApiKey", key.header("x-request-id").to_string(), kid.clone()));
    let kupd = send(app.admin(Method::PATCH, &format!("/v1/admin/api-keys/{kid}")).json(&json!({"name": "k2"}))).await;
    calls.push(("updateApiKey", kupd.header("x-request-id").to_string(), kid.clone()));
    let rev = send(app.admin(Method::DELETE, &format!("/v1/admin/api-keys/{kid}"))).await;
    calls.push(("revokeApiKey", rev.header("x-request-id").to_string(), kid.clone()));
    let failed = send(app.admin(Method::DELETE, &format!("/v1/admin/api-keys/{kid}"))).await;
    assert_eq!(failed.status, 409);

    let all = app.audit("limit=100").await;
    assert_eq!(all.len(), calls.len(), "one entry per successful mutation: {all:#?}");
    for (operation, request_id, resource) in &calls {
        let entries = app.audit(&format!("request_id={request_id}")).await;
        assert_eq!(entries.len(), 1, "{operation}");
        let e = &entries[0];
        assert_eq!(e["operation"], *operation);
        assert_eq!(e["resource_id"], resource.as_str());
        assert_eq!(e["tenant_id"], id.as_str());
        assert_eq!(e["metadata"]["actor_type"], "admin");
        assert_eq!(e["trace_id"].as_str().unwrap().len(), 32);
    }
    let traced = app.audit(&format!("trace_id={trace}")).await;
    assert_eq!(traced.len(), 1, "the traceparent's trace id is recorded");
    assert_eq!(traced[0]["operation"], "createTenant");
    let upd_entry = app.audit("operation=updateTenant").await;
    assert_eq!(upd_entry[0]["metadata"]["changed_fields"], json!(["name"]));
}

#[tokio::test]
async fn audit_filters_combine_and_validate() {
    let app = TestApp::spawn().await;
    let id = tenant_id("filt");
    app.create_tenant(&id).await;
    app.create_key(&id, json!({})).await;
    assert_eq!(app.audit("operation=createTenant,createApiKey").await.len(), 2);
    assert_eq!(app.audit("status_min=201&status_max=201").await.len(), 2);
    assert_eq!(app.audit("resource_type=api_key").await.len(), 1);
    assert_eq!(app.audit("error_code=INTERNAL_ERROR").await.len(), 0, "success entries never match error_code");
    assert_eq!(app.audit("error_code_exclude=INTERNAL_ERROR").await.len(), 2);
    assert_eq!(app.audit("sort_by=operation&sort_dir=asc").await[0]["operation"], "createApiKey");
    for (query, field) in [
        ("status=200&status_min=100", "status"),
        ("status_min=500&status_max=400", "status_min"),
        ("status_min=99", "status_min"),
        ("trace_id=XYZ", "trace_id"),
        ("from=yesterday", "from"),
        ("sort_by=nope", "sort_by"),
    ] {
        let r = send(app.admin(Method::GET, &format!("/v1/admin/audit/logs?{query}"))).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "{query}: {msg}");
    }
    let many: Vec<String> = (0..26).map(|i| format!("op{i}")).collect();
    let r = send(app.admin(Method::GET, &format!("/v1/admin/audit/logs?operation={}", many.join(",")))).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("operation"));
}

async fn verify(app: &TestApp) -> serde_json::Value {
    let r = send(app.admin(Method::GET, "/v1/x-tollgate/audit/verify")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn verify_cli(app: &TestApp) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &app.env.database_url)
        .output()
        .expect("run tollgate audit verify");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn three_entries(app: &TestApp) {
    let id = tenant_id("chain");
    app.create_tenant(&id).await;
    app.create_key(&id, json!({})).await;
    send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{id}")).json(&json!({"tier": "dev"}))).await;
}

#[tokio::test]
async fn an_altered_audit_row_is_reported_by_verify() {
    let app = TestApp::spawn().await;
    three_entries(&app).await;
    assert_eq!(verify(&app).await, json!({"valid": true, "entries_checked": 3}));
    let (ok, out) = verify_cli(&app);
    assert!(ok && out.contains("intact: 3 entries"), "{out}");
    sqlx::query("UPDATE audit_log SET status = 500 WHERE seq = 2").execute(&app.pg).await.unwrap();
    let report = verify(&app).await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["first_broken"]["seq"], 2);
    let (ok, out) = verify_cli(&app);
    assert!(!ok && out.contains("BROKEN at entry 2"), "{out}");
}

#[tokio::test]
async fn a_deleted_audit_row_is_reported_by_verify() {
    let app = TestApp::spawn().await;
    three_entries(&app).await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(&app.pg).await.unwrap();
    let report = verify(&app).await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["first_broken"]["seq"], 3);
    assert!(report["first_broken"]["reason"].as_str().unwrap().contains("missing"));
}

#[tokio::test]
async fn a_truncated_audit_tail_is_reported_by_verify() {
    let app = TestApp::spawn().await;
    three_entries(&app).await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 3").execute(&app.pg).await.unwrap();
    let report = verify(&app).await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["first_broken"]["seq"], 3);
}
