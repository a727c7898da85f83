//! `GET /v1/admin/audit/logs/export` and `tollgate audit verify --file`: a long log streamed out
//! verifies offline, and an altered line is named.

use reqwest::Method;
use serde_json::json;
use time::OffsetDateTime;

use crate::helpers::{TestApp, send, tenant_id};
use tollgate::internals::{AuditEntry, append_audit_history};

/// Entries seeded in the chain for the long export.
const SEEDED: usize = 100_000;

fn seeded_entries(tenant: &str) -> Vec<AuditEntry> {
    let at = OffsetDateTime::now_utc().replace_nanosecond(0).expect("whole second");
    (0..SEEDED)
        .map(|i| AuditEntry {
            log_id: uuid::Uuid::now_v7(),
            timestamp: at,
            tenant_id: tenant.to_string(),
            key_id: None,
            user_agent: Some("seed, \"quoted\"".into()),
            source_ip: None,
            operation: "fundBudget".into(),
            resource_type: Some("budget".into()),
            resource_id: Some(format!("tenant:{tenant}|USD_MICROCENTS|{i}")),
            request_id: Some(format!("req-{i}")),
            trace_id: None,
            status: 200,
            error_code: None,
            metadata: Some(json!({ "actor_type": "admin", "n": i })),
        })
        .collect()
}

fn verify_file(path: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["audit", "verify", "--file"])
        .arg(path)
        .output()
        .expect("run tollgate audit verify");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn a_long_audit_export_verifies_offline_and_an_altered_line_is_named() {
    let app = TestApp::spawn().await;
    let t = tenant_id("exp");
    app.create_tenant(&t).await;
    append_audit_history(&app.env.database_url, &seeded_entries(&t)).await.expect("seed the chain");
    let chain = send(app.admin(Method::GET, "/v1/x-tollgate/audit/verify")).await;
    assert_eq!(chain.body["valid"], true, "{}", chain.text);
    let total = chain.body["entries_checked"].as_u64().unwrap();
    assert_eq!(total, SEEDED as u64 + 1, "the seeded entries plus the tenant's creation");

    let export = app.admin(Method::GET, "/v1/admin/audit/logs/export?format=ndjson").send().await.unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let text = export.text().await.unwrap();
    assert_eq!(text.lines().count() as u64, total);
    let dir = std::env::temp_dir().join(format!("tollgate-export-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.ndjson");
    std::fs::write(&path, &text).unwrap();
    let (ok, said) = verify_file(&path);
    assert!(ok, "{said}");
    assert!(said.contains(&format!("{total} entries verified")), "{said}");

    // One altered field on line 500 breaks that line, and the tool says which.
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[499] = lines[499].replace("fundBudget", "createBudget");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let (ok, said) = verify_file(&path);
    assert!(!ok, "{said}");
    assert!(said.contains("line 500"), "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_export_takes_the_list_filters_and_csv_starts_with_a_header_row() {
    let app = TestApp::spawn().await;
    let (a, b) = (tenant_id("expa"), tenant_id("expb"));
    app.create_tenant(&a).await;
    app.create_tenant(&b).await;
    app.create_key(&a, json!({})).await;
    let r =
        app.admin(Method::GET, &format!("/v1/admin/audit/logs/export?format=csv&tenant_id={a}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = r.text().await.unwrap();
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(rows[0].starts_with("seq,log_id,timestamp,timestamp_us,tenant_id"), "{}", rows[0]);
    assert_eq!(rows.len(), 3, "the header, createTenant and createApiKey of tenant a: {csv}");
    assert!(rows[1..].iter().all(|r| r.contains(&a) && !r.contains(&b)));
    send(app.admin(Method::GET, "/v1/admin/audit/logs/export?format=xml")).await.expect_error(400, "INVALID_REQUEST");
    send(app.admin(Method::GET, "/v1/admin/audit/logs/export?status=abc")).await.expect_error(400, "INVALID_REQUEST");
}
