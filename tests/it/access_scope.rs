//! Tenant-bound admin principals: another tenant's id anywhere is 403 TENANT_SCOPE_VIOLATION
//! (audited), an omitted one is narrowed, and no list shows another tenant's rows. Also the
//! rules on roles and assignments.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::access::{allow_loopback, catalogue_dump, principal, with_pat};
use crate::helpers::{TestApp, eventually, send, tenant_id};

const USD: &str = "USD_MICROCENTS";

/// A request a test sends: method, path, query, body.
type Case<'a> = (Method, String, Vec<(&'a str, String)>, Option<Value>);

struct Tenant {
    id: String,
    key: String,
    hook: String,
    event: String,
}

async fn tenant_with_objects(app: &TestApp, label: &str) -> Tenant {
    allow_loopback(app).await;
    let id = tenant_id(label);
    app.create_tenant(&id).await;
    let key = app.create_key(&id, json!({})).await["key_id"].as_str().unwrap().to_string();
    let r = send(app.admin(Method::POST, "/v1/admin/budgets").json(&json!({
        "tenant_id": id, "scope": format!("tenant:{id}"), "unit": USD, "allocated": {"unit": USD, "amount": 100}
    })))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = send(
        app.admin(Method::POST, "/v1/admin/webhooks")
            .query(&[("tenant_id", id.as_str())])
            .json(&json!({"url": "http://127.0.0.1:9/h", "event_types": ["budget.created"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let hook = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    let events = |id: String| async move {
        send(app.admin(Method::GET, "/v1/admin/events").query(&[("tenant_id", id)])).await.body["events"].clone()
    };
    assert!(eventually(Duration::from_secs(10), || async { events(id.clone()).await[0].is_object() }).await);
    let event = events(id.clone()).await[0]["event_id"].as_str().unwrap().to_string();
    Tenant { id, key, hook, event }
}

#[tokio::test]
async fn a_tenant_bound_principal_naming_another_tenant_anywhere_gets_403_and_an_audit_entry() {
    let app = TestApp::spawn().await;
    let (a, b) = (tenant_with_objects(&app, "mine").await, tenant_with_objects(&app, "theirs").await);
    let (_, other_principal) = principal(&app, Some(&b.id), &["tenant-viewer"]).await;
    let other_principal_id: String = sqlx::query_scalar("SELECT principal_id FROM principals WHERE tenant_id = $1")
        .bind(&b.id)
        .fetch_one(&app.pg)
        .await
        .unwrap();
    let _ = other_principal;
    let (_, pat) = principal(&app, Some(&a.id), &["tenant-admin"]).await;
    let scope_b = [("scope", format!("tenant:{}", b.id)), ("unit", USD.to_string())];
    let tb = [("tenant_id", b.id.clone())];
    let amount = json!({"unit": USD, "amount": 5});
    let hook = |suffix: &str| format!("/v1/admin/webhooks/{}{suffix}", b.hook);
    let cases: Vec<Case> = vec![
        (Method::GET, format!("/v1/admin/tenants/{}", b.id), vec![], None),
        (Method::GET, "/v1/admin/tenants".into(), tb.to_vec(), None),
        (Method::GET, "/v1/admin/api-keys".into(), tb.to_vec(), None),
        (Method::POST, "/v1/admin/api-keys".into(), vec![], Some(json!({"tenant_id": b.id, "name": "k"}))),
        (Method::PATCH, format!("/v1/admin/api-keys/{}", b.key), vec![], Some(json!({"name": "x"}))),
        (Method::DELETE, format!("/v1/admin/api-keys/{}", b.key), vec![], None),
        (
            Method::POST,
            "/v1/admin/budgets".into(),
            vec![],
            Some(
                json!({"tenant_id": b.id, "scope": format!("tenant:{}/app:x", b.id), "unit": USD, "allocated": amount}),
            ),
        ),
        (
            Method::POST,
            "/v1/admin/budgets".into(),
            vec![],
            Some(
                json!({"tenant_id": a.id, "scope": format!("tenant:{}/app:x", b.id), "unit": USD, "allocated": amount}),
            ),
        ),
        (Method::GET, "/v1/admin/budgets".into(), tb.to_vec(), None),
        (Method::GET, "/v1/admin/budgets/lookup".into(), scope_b.to_vec(), None),
        (Method::PATCH, "/v1/admin/budgets".into(), scope_b.to_vec(), Some(json!({"overdraft_limit": amount}))),
        (
            Method::POST,
            "/v1/admin/budgets/fund".into(),
            scope_b.to_vec(),
            Some(json!({"operation": "CREDIT", "amount": amount})),
        ),
        (Method::POST, "/v1/admin/budgets/freeze".into(), scope_b.to_vec(), None),
        (Method::GET, "/v1/admin/audit/logs".into(), tb.to_vec(), None),
        (Method::GET, "/v1/admin/events".into(), tb.to_vec(), None),
        (Method::GET, format!("/v1/admin/events/{}", b.event), vec![], None),
        (Method::GET, "/v1/admin/webhooks".into(), tb.to_vec(), None),
        (
            Method::POST,
            "/v1/admin/webhooks".into(),
            tb.to_vec(),
            Some(json!({"url": "http://127.0.0.1:9/z", "event_types": ["budget.created"]})),
        ),
        (
            Method::POST,
            "/v1/admin/webhooks/bulk-action".into(),
            vec![],
            Some(json!({"filter": {"tenant_id": b.id}, "action": "PAUSE", "idempotency_key": "k1"})),
        ),
        (Method::GET, hook(""), vec![], None),
        (Method::PATCH, hook(""), vec![], Some(json!({"name": "x"}))),
        (Method::DELETE, hook(""), vec![], None),
        (Method::POST, hook("/test"), vec![], None),
        (Method::GET, hook("/deliveries"), vec![], None),
        (Method::POST, hook("/replay"), vec![], Some(json!({}))),
        (Method::GET, "/v1/admin/principals".into(), tb.to_vec(), None),
        (Method::GET, format!("/v1/admin/principals/{other_principal_id}"), vec![], None),
    ];
    let before = catalogue_dump(&app).await;
    for (method, path, query, body) in &cases {
        let mut rb = with_pat(&app, &pat, method.clone(), path).query(query);
        if let Some(body) = body {
            rb = rb.json(body);
        }
        let r = send(rb).await;
        r.expect_error(403, "TENANT_SCOPE_VIOLATION");
        assert!(r.text.contains(&b.id) || r.text.contains("platform"), "{method} {path}: {}", r.text);
    }
    assert_eq!(catalogue_dump(&app).await, before, "a refused request changed the catalogue");
    let ledger = send(app.admin(Method::GET, "/v1/admin/budgets/lookup").query(&scope_b)).await;
    assert_eq!(ledger.body["allocated"]["amount"], 100);
    assert_eq!(ledger.body["status"], "ACTIVE");
    let audited = app.audit("error_code=TENANT_SCOPE_VIOLATION&limit=100").await;
    assert_eq!(audited.len(), cases.len(), "one audit entry per violation");
    assert!(audited.iter().all(|e| e["tenant_id"] == a.id.as_str() && e["status"] == 403));
}

/// The ids of a list's rows under `field`, following cursors to the end.
async fn all_pages(app: &TestApp, pat: &str, path: &str, rows: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", "1".to_string())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let r = send(with_pat(app, pat, Method::GET, path).query(&q)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        out.extend(r.body[rows].as_array().cloned().unwrap_or_default());
        match r.body["next_cursor"].as_str() {
            Some(c) if out.len() < 50 => cursor = Some(c.to_string()),
            _ => return out,
        }
    }
}

#[tokio::test]
async fn a_tenant_bound_principal_sees_only_its_tenant_in_every_list_and_omitted_ids_are_narrowed() {
    let app = TestApp::spawn().await;
    let (a, b) = (tenant_with_objects(&app, "mine").await, tenant_with_objects(&app, "theirs").await);
    principal(&app, Some(&b.id), &["tenant-viewer"]).await;
    let (_, pat) = principal(&app, Some(&a.id), &["tenant-admin"]).await;
    let r = send(with_pat(&app, &pat, Method::POST, "/v1/admin/api-keys").json(&json!({"name": "narrowed"}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["tenant_id"], a.id.as_str(), "an omitted tenant_id is the principal's own");
    let r = send(
        with_pat(&app, &pat, Method::POST, "/v1/admin/webhooks")
            .json(&json!({"url": "http://127.0.0.1:9/n", "event_types": ["budget.created"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["subscription"]["tenant_id"], a.id.as_str(), "not a system-wide subscription");
    for (path, rows) in [
        ("/v1/admin/tenants", "tenants"),
        ("/v1/admin/api-keys", "keys"),
        ("/v1/admin/budgets", "ledgers"),
        ("/v1/admin/events", "events"),
        ("/v1/admin/webhooks", "subscriptions"),
        ("/v1/admin/audit/logs", "logs"),
        ("/v1/admin/principals", "principals"),
    ] {
        let listed = all_pages(&app, &pat, path, rows).await;
        assert!(!listed.is_empty(), "{path} lists the principal's own tenant");
        let text = serde_json::to_string(&listed).unwrap();
        assert!(!text.contains(&b.id), "{path} leaks the other tenant: {text}");
    }
    let r = send(with_pat(&app, &pat, Method::GET, "/v1/admin/priority/stats")).await;
    r.expect_error(403, "INSUFFICIENT_PERMISSIONS");
}

#[tokio::test]
async fn role_rules_refuse_bad_input_naming_the_field_and_apply_nothing() {
    let app = TestApp::spawn().await;
    let t = tenant_id("rules");
    app.create_tenant(&t).await;
    let post = |path: String, body: Value| send(app.admin(Method::POST, &path).json(&body));
    let r = post(
        "/v1/admin/roles".into(),
        json!({"name": "r", "scope": "platform", "permissions": ["audit:read", "nope"]}),
    )
    .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("permissions[1]"));
    let r =
        post("/v1/admin/roles".into(), json!({"name": "r", "scope": "tenant", "permissions": ["tenants:write"]})).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("permissions[0]"));
    let roles = send(app.admin(Method::GET, "/v1/admin/roles")).await;
    assert_eq!(roles.body["roles"].as_array().unwrap().len(), 6, "only the built-in roles: {}", roles.text);
    let r = post("/v1/admin/roles".into(), json!({"name": "owner", "scope": "platform", "permissions": []})).await;
    assert!(r.expect_error(409, "DUPLICATE_RESOURCE").contains("name"));
    let r = post("/v1/admin/roles/owner/permissions".into(), json!({"permissions": ["audit:read"]})).await;
    assert!(r.expect_error(409, "INVALID_REQUEST").contains("role_id"));
    let r = send(app.admin(Method::DELETE, "/v1/admin/roles/tenant-viewer/permissions/tenants:read")).await;
    assert!(r.expect_error(409, "INVALID_REQUEST").contains("role_id"));
    let r = send(app.admin(Method::DELETE, "/v1/admin/roles/tenant-admin")).await;
    assert!(r.expect_error(409, "INVALID_REQUEST").contains("built in"));
    let r = post("/v1/admin/roles".into(), json!({"name": "held", "scope": "platform", "permissions": ["audit:read"]}))
        .await;
    let held = r.body["role_id"].as_str().unwrap().to_string();
    let (holder, _) = principal(&app, None, &[held.as_str()]).await;
    let r = send(app.admin(Method::DELETE, &format!("/v1/admin/roles/{held}"))).await;
    assert!(r.expect_error(409, "INVALID_REQUEST").contains("held by 1"));
    send(app.admin(Method::DELETE, &format!("/v1/admin/principals/{holder}/roles/{held}"))).await;
    let r = send(app.admin(Method::DELETE, &format!("/v1/admin/roles/{held}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (platform, _) = principal(&app, None, &[]).await;
    let (bound, _) = principal(&app, Some(&t), &[]).await;
    let assign = |p: &str, role: &str| post(format!("/v1/admin/principals/{p}/roles"), json!({"role_id": role}));
    assert!(assign(&platform, "tenant-admin").await.expect_error(400, "INVALID_REQUEST").contains("role_id"));
    assert!(assign(&bound, "owner").await.expect_error(400, "INVALID_REQUEST").contains("role_id"));
    assert!(assign(&bound, "no-such-role").await.expect_error(400, "INVALID_REQUEST").contains("role_id"));
    let p = send(app.admin(Method::GET, &format!("/v1/admin/principals/{platform}"))).await;
    assert_eq!(p.body["roles"], json!([]), "nothing half-applied");
    let r =
        post("/v1/admin/principals".into(), json!({"type": "user", "name": "x", "tenant_id": "no-such-tenant"})).await;
    r.expect_error(404, "TENANT_NOT_FOUND");

    let (first, _) = principal(&app, None, &["owner"]).await;
    let r = send(app.admin(Method::DELETE, &format!("/v1/admin/principals/{first}/roles/owner"))).await;
    assert!(r.expect_error(409, "INVALID_REQUEST").contains("last active owner"));
    let r = send(
        app.admin(Method::PATCH, &format!("/v1/admin/principals/{first}")).json(&json!({"status": "DEACTIVATED"})),
    )
    .await;
    r.expect_error(409, "INVALID_REQUEST");
    let (_second, _) = principal(&app, None, &["owner"]).await;
    let r = send(app.admin(Method::DELETE, &format!("/v1/admin/principals/{first}/roles/owner"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(
        app.admin(Method::PATCH, &format!("/v1/admin/principals/{first}")).json(&json!({"status": "DEACTIVATED"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = post(format!("/v1/admin/principals/{first}/api-keys"), json!({"name": "late"})).await;
    r.expect_error(409, "INVALID_REQUEST");
    let perms = send(app.admin(Method::GET, "/v1/admin/permissions")).await;
    assert!(perms.body["permissions"].as_array().unwrap().len() >= 20, "{}", perms.text);
}

/// The README's table of built-in roles is what `GET /v1/admin/roles` answers: a ✓ grants
/// every permission of its row, `read` only the row's `:read` one, an empty cell none.
#[tokio::test]
async fn the_readme_table_of_built_in_roles_matches_the_engine() {
    let app = TestApp::spawn().await;
    let r = send(app.admin(Method::GET, "/v1/admin/roles")).await;
    let held = |role: &str| -> Vec<String> {
        let roles = r.body["roles"].as_array().unwrap();
        let row = roles.iter().find(|x| x["role_id"] == role).unwrap_or_else(|| panic!("role {role}"));
        row["permissions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect()
    };
    let order = ["owner", "policy-admin", "billing-admin", "tenant-admin", "tenant-developer", "tenant-viewer"];
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); order.len()];
    let mut rows = 0;
    for line in readme.lines().filter(|l| l.starts_with("| `") && l.matches('|').count() == 9) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let perms: Vec<String> = cells[1].split('`').skip(1).step_by(2).map(String::from).collect();
        rows += 1;
        for (i, cell) in cells[3..9].iter().enumerate() {
            match *cell {
                "✓" => expected[i].extend(perms.iter().cloned()),
                "read" => expected[i].extend(perms.iter().filter(|p| p.ends_with(":read")).cloned()),
                "" => {}
                other => panic!("unexpected cell {other:?} in {line}"),
            }
        }
    }
    assert!(rows >= 15, "the README table has {rows} rows");
    for (i, role) in order.iter().enumerate() {
        let (mut want, mut got) = (expected[i].clone(), held(role));
        want.sort();
        got.sort();
        assert_eq!(want, got, "README column for {role}");
    }
}

#[tokio::test]
async fn the_access_endpoints_answer_bad_input_with_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let (p, _) = principal(&app, None, &[]).await;
    let principals = "/v1/admin/principals".to_string();
    let one = format!("/v1/admin/principals/{p}");
    let keys = format!("{one}/api-keys");
    let roles = "/v1/admin/roles".to_string();
    let long = "x".repeat(200);
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (Method::POST, principals.clone(), json!({"type": "robot", "name": "n"}), "type"),
        (Method::POST, principals.clone(), json!({"type": "user"}), "name"),
        (Method::POST, principals.clone(), json!({"type": "user", "name": long}), "name"),
        (Method::POST, principals.clone(), json!({"type": "user", "name": "n", "tenant_id": "A B"}), "tenant_id"),
        (Method::POST, principals.clone(), json!({"type": "user", "name": "n", "role": "owner"}), "role"),
        (Method::PATCH, one.clone(), json!({"status": "GONE"}), "status"),
        (Method::PATCH, one.clone(), json!({"name": ""}), "name"),
        (Method::POST, format!("{one}/roles"), json!({}), "role_id"),
        (Method::POST, keys.clone(), json!({"name": "k", "expires_at": "tomorrow"}), "expires_at"),
        (Method::POST, keys.clone(), json!({"name": "", "expires_at": null}), "name"),
        (Method::POST, roles.clone(), json!({"name": "r", "scope": "galaxy", "permissions": []}), "scope"),
        (Method::POST, roles.clone(), json!({"name": "r", "scope": "platform", "permissions": [1]}), "permissions"),
        (Method::POST, "/v1/admin/roles/owner/permissions".into(), json!({"permissions": []}), "permissions"),
    ];
    for (method, path, body, field) in cases {
        let r = send(app.admin(method.clone(), &path).json(&body)).await;
        let message = r.expect_error(400, "INVALID_REQUEST");
        assert!(message.contains(field), "{method} {path} {body}: {message}");
    }
    let r = send(app.admin(Method::POST, &principals).header("content-type", "application/json").body("{")).await;
    r.expect_error(400, "INVALID_REQUEST");
    let r = send(app.admin(Method::DELETE, "/v1/admin/roles/owner/permissions/root")).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("permission"));
    let r = send(app.admin(Method::GET, "/v1/admin/principals").query(&[("status", "NOPE")])).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("status"));
    let r = send(app.admin(Method::GET, "/v1/admin/principals/prn_nobody")).await;
    r.expect_error(404, "NOT_FOUND");
}
