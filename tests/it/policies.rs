//! The policy catalogue over HTTP: create, get, list with the spec's filters and cursors, patch
//! and disable; one audit entry and one `policy.*` event per change, written together or not at
//! all; tenant keys and tenant-bound principals confined to their tenant.

use reqwest::Method;
use serde_json::{Value, json};

use crate::access::{principal, with_pat};
use crate::helpers::{Reply, TestApp, send, tenant_id};

/// Creates a tenant on `app` and returns its id.
pub async fn tenant(app: &TestApp, label: &str) -> String {
    let t = tenant_id(label);
    app.create_tenant(&t).await;
    t
}

/// `POST /v1/admin/policies` with the admin key; `body` gets `tenant_id` when it has none.
pub async fn create(app: &TestApp, tenant: &str, mut body: Value) -> Reply {
    if body.get("tenant_id").is_none() {
        body["tenant_id"] = json!(tenant);
    }
    send(app.admin(Method::POST, "/v1/admin/policies").json(&body)).await
}

/// Creates a policy that must succeed; returns its id.
pub async fn created(app: &TestApp, tenant: &str, body: Value) -> String {
    let r = create(app, tenant, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["policy_id"].as_str().unwrap().to_string()
}

pub async fn patch(app: &TestApp, id: &str, body: Value) -> Reply {
    send(app.admin(Method::PATCH, &format!("/v1/admin/policies/{id}")).json(&body)).await
}

async fn policy_events(app: &TestApp, tenant: &str) -> Vec<Value> {
    let r = send(app.admin(Method::GET, "/v1/admin/events").query(&[("tenant_id", tenant), ("limit", "100")])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = r.body["events"].as_array().cloned().unwrap_or_default();
    events.into_iter().filter(|e| e["event_type"].as_str().is_some_and(|t| t.starts_with("policy."))).collect()
}

#[tokio::test]
async fn a_created_policy_is_served_in_the_spec_shape_with_the_extension_lists() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "pcreate").await;
    let r = create(
        &app,
        &t,
        json!({"name": "Engineering default", "scope_pattern": format!("tenant:{t}/workspace:eng/*"), "priority": 10,
               "caps": {"max_tokens": 4096, "max_steps_remaining": 10},
               "denied_action_kinds": ["payment.charge"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let p = &r.body;
    assert!(p["policy_id"].as_str().unwrap().starts_with("pol_"));
    assert_eq!(p["status"], "ACTIVE");
    assert_eq!(p["priority"], 10);
    assert_eq!(p["caps"], json!({"max_tokens": 4096, "max_steps_remaining": 10}));
    assert_eq!(p["action_quotas"], json!([]));
    assert_eq!(p["risk_class_quotas"], json!([]));
    assert_eq!(p["allowed_action_kinds"], json!([]));
    assert_eq!(p["denied_action_kinds"], json!(["payment.charge"]));
    assert!(p["created_at"].is_string() && p["updated_at"].is_string());
    assert!(p.get("tenant_id").is_none(), "the spec's Policy has no tenant_id");
    let id = p["policy_id"].as_str().unwrap();
    let got = send(app.admin(Method::GET, &format!("/v1/admin/policies/{id}"))).await;
    assert_eq!(got.body, r.body);
    let dup = create(&app, &t, json!({"name": "Engineering default", "scope_pattern": "agent:*"})).await;
    assert!(dup.expect_error(409, "DUPLICATE_RESOURCE").contains("name"));
    send(app.admin(Method::GET, "/v1/admin/policies/pol_nothing")).await.expect_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn lists_filter_as_the_spec_says_and_page_with_cursors_bound_to_the_filters() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "plist").await;
    let other = tenant(&app, "pother").await;
    created(&app, &other, json!({"name": "elsewhere", "scope_pattern": "agent:*"})).await;
    for i in 0..5 {
        let mut body =
            json!({"name": format!("p{i}"), "scope_pattern": if i % 2 == 0 { "agent:*" } else { "workspace:*" }});
        if i == 1 {
            body["action_quotas"] = json!([{"action_kind": "message.email.send", "max_calls": 5, "window": "per_run"}]);
        }
        if i == 3 {
            body["allowed_action_kinds"] = json!(["db.query"]);
        }
        let id = created(&app, &t, body).await;
        if i == 4 {
            assert_eq!(patch(&app, &id, json!({"status": "DISABLED"})).await.status, 200);
        }
    }
    let list = |q: Vec<(&'static str, String)>| {
        let app = &app;
        async move { send(app.admin(Method::GET, "/v1/admin/policies").query(&q)).await }
    };
    let names = |r: &Reply| -> Vec<String> {
        r.body["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
    };
    let tq = ("tenant_id", t.clone());
    assert_eq!(names(&list(vec![tq.clone()]).await).len(), 5);
    assert_eq!(names(&list(vec![tq.clone(), ("status", "DISABLED".into())]).await), vec!["p4"]);
    assert_eq!(names(&list(vec![tq.clone(), ("scope_pattern", "workspace:*".into())]).await).len(), 2);
    assert_eq!(names(&list(vec![tq.clone(), ("has_action_quotas", "true".into())]).await), vec!["p1"]);
    let by_kind = list(vec![tq.clone(), ("references_action_kind", "db.query".into())]).await;
    assert_eq!(names(&by_kind), vec!["p3"]);
    list(vec![]).await.expect_error(400, "INVALID_REQUEST");
    list(vec![tq.clone(), ("status", "PAUSED".into())]).await.expect_error(400, "INVALID_REQUEST");
    // Two at a time, oldest first: every policy once, then the cursor refuses other filters.
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut q = vec![tq.clone(), ("limit", "2".into()), ("sort_dir", "asc".into())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let r = list(q).await;
        assert_eq!(r.status, 200, "{}", r.text);
        seen.extend(names(&r));
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, vec!["p0", "p1", "p2", "p3", "p4"]);
    let first = list(vec![tq.clone(), ("limit", "2".into())]).await;
    let c = first.body["next_cursor"].as_str().unwrap().to_string();
    let r = list(vec![tq.clone(), ("status", "ACTIVE".into()), ("cursor", c)]).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("cursor"));
}

#[tokio::test]
async fn a_patch_changes_only_what_it_names_and_disabling_is_a_status_change() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "ppatch").await;
    let id = created(&app, &t, json!({"name": "p", "scope_pattern": "agent:*", "caps": {"max_tokens": 10}})).await;
    let r = patch(&app, &id, json!({"priority": 7, "denied_action_kinds": ["code.deploy"]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["priority"].clone(), r.body["caps"]["max_tokens"].clone()), (json!(7), json!(10)));
    assert_eq!(r.body["denied_action_kinds"], json!(["code.deploy"]));
    let r = patch(&app, &id, json!({"status": "DISABLED"})).await;
    assert_eq!(r.body["status"], "DISABLED");
    let events = policy_events(&app, &t).await;
    let changed: Vec<Value> = events.iter().map(|e| e["data"]["changed_fields"].clone()).collect();
    assert!(changed.contains(&json!(["priority", "denied_action_kinds"])), "{changed:?}");
    assert!(changed.contains(&json!(["status"])), "{changed:?}");
    // A PATCH that changes nothing writes nothing.
    let before = app.audit(&format!("tenant_id={t}&operation=updatePolicy")).await.len();
    assert_eq!(patch(&app, &id, json!({"status": "DISABLED"})).await.status, 200);
    assert_eq!(app.audit(&format!("tenant_id={t}&operation=updatePolicy")).await.len(), before);
    assert_eq!(policy_events(&app, &t).await.len(), events.len());
    patch(&app, &id, json!({"scope_pattern": "tenant:x"})).await.expect_error(400, "INVALID_REQUEST");
    patch(&app, "pol_missing", json!({"priority": 1})).await.expect_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn every_change_writes_one_audit_entry_and_its_event_together_and_a_refused_one_writes_neither() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "paudit").await;
    let id = created(&app, &t, json!({"name": "a", "scope_pattern": "agent:*"})).await;
    created(&app, &t, json!({"name": "b", "scope_pattern": "agent:*"})).await;
    assert_eq!(patch(&app, &id, json!({"priority": 3})).await.status, 200);
    let entries = app.audit(&format!("tenant_id={t}&resource_type=policy")).await;
    let events = policy_events(&app, &t).await;
    assert_eq!((entries.len(), events.len()), (3, 3), "{entries:?} {events:?}");
    for e in &events {
        let entry = entries.iter().find(|a| a["request_id"] == e["request_id"]).expect("the event's audit entry");
        assert_eq!(entry["resource_id"], e["data"]["policy_id"]);
        assert_eq!(entry["trace_id"], e["trace_id"]);
    }
    let kinds: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "policy.created").count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == "policy.updated").count(), 1);
    let generation = |app: &TestApp| {
        let t = t.clone();
        let pg = app.pg.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT generation FROM policy_generations WHERE tenant_id = $1")
                .bind(t)
                .fetch_one(&pg)
                .await
                .unwrap()
        }
    };
    assert_eq!(generation(&app).await, 3, "each change bumps the tenant's policy generation");
    // Renaming onto a taken name fails after the row was locked: nothing of it remains.
    patch(&app, &id, json!({"name": "b"})).await.expect_error(409, "DUPLICATE_RESOURCE");
    assert_eq!(app.audit(&format!("tenant_id={t}&resource_type=policy")).await.len(), 3);
    assert_eq!(policy_events(&app, &t).await.len(), 3);
    assert_eq!(generation(&app).await, 3);
}

#[tokio::test]
async fn closed_or_unknown_tenants_are_refused_and_their_policies_are_read_only() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "pclosed").await;
    let id = created(&app, &t, json!({"name": "p", "scope_pattern": "agent:*"})).await;
    create(&app, "nobody-here", json!({"name": "p", "scope_pattern": "agent:*"}))
        .await
        .expect_error(404, "TENANT_NOT_FOUND");
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{t}")).json(&json!({"status": "CLOSED"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    create(&app, &t, json!({"name": "q", "scope_pattern": "agent:*"})).await.expect_error(409, "TENANT_CLOSED");
    patch(&app, &id, json!({"priority": 2})).await.expect_error(409, "TENANT_CLOSED");
    let r = send(app.admin(Method::GET, &format!("/v1/admin/policies/{id}"))).await;
    assert_eq!(r.status, 200, "reads still work: {}", r.text);
}

#[tokio::test]
async fn tenant_keys_and_tenant_bound_principals_only_see_and_touch_their_tenant() {
    let app = TestApp::spawn().await;
    let (a, b) = (tenant(&app, "pmine").await, tenant(&app, "ptheirs").await);
    let theirs = created(&app, &b, json!({"name": "b", "scope_pattern": "agent:*"})).await;
    let key = app.create_key(&a, json!({"permissions": ["policies:read", "policies:write"]})).await;
    let key = key["key_secret"].as_str().unwrap().to_string();
    let as_key = |m: Method, path: &str| app.client.request(m, app.admin_url(path)).header("x-cycles-api-key", &key);
    let r =
        send(as_key(Method::POST, "/v1/admin/policies").json(&json!({"name": "a", "scope_pattern": "agent:*"}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = send(
        as_key(Method::POST, "/v1/admin/policies")
            .json(&json!({"tenant_id": a, "name": "x", "scope_pattern": "agent:*"})),
    )
    .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("tenant_id"));
    let listed = send(as_key(Method::GET, "/v1/admin/policies").query(&[("tenant_id", b.as_str())])).await;
    assert_eq!(listed.body["policies"].as_array().unwrap().len(), 1, "the key's own tenant: {}", listed.text);
    assert_eq!(listed.body["policies"][0]["name"], "a");
    send(as_key(Method::GET, &format!("/v1/admin/policies/{theirs}"))).await.expect_error(404, "NOT_FOUND");
    send(as_key(Method::PATCH, &format!("/v1/admin/policies/{theirs}")).json(&json!({"priority": 1})))
        .await
        .expect_error(404, "NOT_FOUND");
    let reader =
        app.create_key(&a, json!({"permissions": ["policies:read"]})).await["key_secret"].as_str().unwrap().to_string();
    let r = send(
        app.client
            .post(app.admin_url("/v1/admin/policies"))
            .header("x-cycles-api-key", &reader)
            .json(&json!({"name": "r", "scope_pattern": "agent:*"})),
    )
    .await;
    assert!(r.expect_error(403, "INSUFFICIENT_PERMISSIONS").contains("policies:write"));
    let (_, pat) = principal(&app, Some(&a), &["tenant-admin"]).await;
    let body = json!({"tenant_id": b, "name": "x", "scope_pattern": "agent:*"});
    send(with_pat(&app, &pat, Method::POST, "/v1/admin/policies").json(&body))
        .await
        .expect_error(403, "TENANT_SCOPE_VIOLATION");
    for (m, suffix) in [(Method::GET, ""), (Method::PATCH, ""), (Method::GET, "/versions"), (Method::POST, "/rollback")]
    {
        let rb = with_pat(&app, &pat, m.clone(), &format!("/v1/admin/policies/{theirs}{suffix}"));
        let rb = if m == Method::GET { rb } else { rb.json(&json!({"priority": 1, "version": 1})) };
        send(rb).await.expect_error(403, "TENANT_SCOPE_VIOLATION");
    }
    let r = send(with_pat(&app, &pat, Method::GET, "/v1/admin/policies")).await;
    assert_eq!(r.status, 200, "an omitted tenant_id is narrowed: {}", r.text);
    assert!(!r.text.contains(&theirs));
    let r = send(
        with_pat(&app, &pat, Method::POST, "/v1/admin/policies")
            .json(&json!({"name": "n", "scope_pattern": "agent:*"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let audited = app.audit(&format!("tenant_id={a}&operation=createPolicy")).await;
    assert!(audited.iter().any(|e| e["metadata"]["actor_type"] == "api_key"));
    assert!(audited.iter().any(|e| e["metadata"]["actor_type"] == "admin_on_behalf_of"));
}
