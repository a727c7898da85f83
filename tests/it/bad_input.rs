//! Every admin endpoint answers malformed JSON, unknown fields, wrong types, out-of-range
//! values and wrong content types with 400 `INVALID_REQUEST` naming the field — never a 5xx.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, send, tenant_id};

struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    raw: Option<&'static str>,
    field: &'static str,
}

fn case(method: Method, path: &str, body: Value, field: &'static str) -> Case {
    Case { method, path: path.to_string(), body: Some(body), raw: None, field }
}

fn query(path: &str, field: &'static str) -> Case {
    Case { method: Method::GET, path: path.to_string(), body: None, raw: None, field }
}

fn malformed(method: Method, path: &str) -> Case {
    Case { method, path: path.to_string(), body: None, raw: Some("{not json"), field: "JSON" }
}

#[tokio::test]
async fn every_admin_endpoint_answers_bad_input_with_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let id = tenant_id("bad");
    app.create_tenant(&id).await;
    let key = app.create_key(&id, json!({})).await;
    let kid = key["key_id"].as_str().unwrap();
    let tenant = format!("/v1/admin/tenants/{id}");
    let api_key = format!("/v1/admin/api-keys/{kid}");
    let long = "x".repeat(600);
    let many: serde_json::Map<String, Value> = (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = vec![
        malformed(Method::POST, "/v1/admin/tenants"),
        case(Method::POST, "/v1/admin/tenants", json!({"tenant_id": "abc", "name": "n", "colour": 1}), "colour"),
        case(Method::POST, "/v1/admin/tenants", json!({"tenant_id": "AB", "name": "n"}), "tenant_id"),
        case(Method::POST, "/v1/admin/tenants", json!({"name": "n"}), "tenant_id"),
        case(Method::POST, "/v1/admin/tenants", json!({"tenant_id": "abc", "name": long}), "name"),
        case(Method::POST, "/v1/admin/tenants", json!({"tenant_id": "abc", "name": "n", "tier": "gold"}), "tier"),
        case(Method::POST, "/v1/admin/tenants", json!({"tenant_id": "abc", "name": "n", "metadata": many}), "metadata"),
        case(
            Method::POST,
            "/v1/admin/tenants",
            json!({"tenant_id": "abc", "name": "n", "default_reservation_ttl_ms": 999}),
            "default_reservation_ttl_ms",
        ),
        case(
            Method::POST,
            "/v1/admin/tenants",
            json!({"tenant_id": "abc", "name": "n", "max_reservation_extensions": -1}),
            "max_reservation_extensions",
        ),
        case(
            Method::POST,
            "/v1/admin/tenants",
            json!({"tenant_id": "abc", "name": "n", "default_reservation_ttl_ms": 1e30}),
            "default_reservation_ttl_ms",
        ),
        case(
            Method::POST,
            "/v1/admin/tenants",
            json!({"tenant_id": "abc", "name": "n", "reservation_expiry_policy": "NEVER"}),
            "reservation_expiry_policy",
        ),
        malformed(Method::PATCH, &tenant),
        case(Method::PATCH, &tenant, json!({"tenant_id": "other"}), "tenant_id"),
        case(Method::PATCH, &tenant, json!({"status": "DELETED"}), "status"),
        case(Method::PATCH, &tenant, json!({"max_reservation_ttl_ms": 86400001}), "max_reservation_ttl_ms"),
        case(Method::PATCH, &tenant, json!({"name": ""}), "name"),
        case(Method::PATCH, &tenant, json!({"metadata": {"k": 1}}), "metadata"),
        malformed(Method::POST, "/v1/admin/api-keys"),
        case(Method::POST, "/v1/admin/api-keys", json!({"tenant_id": id, "name": "k", "secret": "s"}), "secret"),
        case(Method::POST, "/v1/admin/api-keys", json!({"tenant_id": id, "name": ""}), "name"),
        case(
            Method::POST,
            "/v1/admin/api-keys",
            json!({"tenant_id": id, "name": "k", "permissions": ["root"]}),
            "permissions",
        ),
        case(
            Method::POST,
            "/v1/admin/api-keys",
            json!({"tenant_id": id, "name": "k", "scope_filter": ["nocolon"]}),
            "scope_filter",
        ),
        case(
            Method::POST,
            "/v1/admin/api-keys",
            json!({"tenant_id": id, "name": "k", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        case(Method::POST, "/v1/admin/api-keys", json!({"tenant_id": id}), "name"),
        malformed(Method::PATCH, &api_key),
        case(Method::PATCH, &api_key, json!({"tenant_id": "other"}), "tenant_id"),
        case(Method::PATCH, &api_key, json!({"name": long}), "name"),
        case(Method::PATCH, &api_key, json!({"permissions": "balances:read"}), "permissions"),
        malformed(Method::POST, "/v1/auth/validate"),
        case(Method::POST, "/v1/auth/validate", json!({"key": "x"}), "key"),
        case(Method::POST, "/v1/auth/validate", json!({"key_secret": 123}), "key_secret"),
        query("/v1/admin/tenants?limit=0", "limit"),
        query("/v1/admin/tenants?limit=abc", "limit"),
        query("/v1/admin/tenants?status=GONE", "status"),
        query("/v1/admin/tenants?sort_dir=up", "sort_dir"),
        query(&format!("/v1/admin/tenants?search={}", "s".repeat(129)), "search"),
        query("/v1/admin/tenants?cursor=%%%", "cursor"),
        query("/v1/admin/api-keys?limit=101", "limit"),
        query("/v1/admin/api-keys?status=NEW", "status"),
        query("/v1/admin/api-keys?sort_by=secret", "sort_by"),
        Case {
            method: Method::DELETE,
            path: format!("{api_key}?reason={}", "r".repeat(513)),
            body: None,
            raw: None,
            field: "reason",
        },
    ];
    for c in cases {
        let mut rb = app.admin(c.method.clone(), &c.path);
        if let Some(body) = &c.body {
            rb = rb.json(body);
        }
        if let Some(raw) = c.raw {
            rb = rb.header("content-type", "application/json").body(raw);
        }
        let r = send(rb).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(c.field), "{} {}: message {msg:?} does not name {}", c.method, c.path, c.field);
    }
}

#[tokio::test]
async fn a_body_without_a_json_content_type_or_too_large_is_400() {
    let app = TestApp::spawn().await;
    let id = tenant_id("ct");
    app.create_tenant(&id).await;
    for (method, path) in [
        (Method::POST, "/v1/admin/tenants".to_string()),
        (Method::PATCH, format!("/v1/admin/tenants/{id}")),
        (Method::POST, "/v1/admin/api-keys".to_string()),
        (Method::POST, "/v1/auth/validate".to_string()),
    ] {
        let r = send(app.admin(method.clone(), &path).header("content-type", "text/plain").body("{}")).await;
        assert!(r.expect_error(400, "INVALID_REQUEST").contains("Content-Type"), "{method} {path}");
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
        let r = send(app.admin(method.clone(), &path).header("content-type", "application/json").body(big)).await;
        r.expect_error(400, "INVALID_REQUEST");
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json_on_both_planes() {
    let app = TestApp::spawn().await;
    let r = send(app.admin(Method::GET, "/v1/admin/nothing")).await;
    r.expect_error(404, "NOT_FOUND");
    let r = send(app.client.get(app.runtime_url("/v1/nothing"))).await;
    r.expect_error(404, "NOT_FOUND");
    let r = send(app.admin(Method::PUT, "/v1/admin/tenants")).await;
    r.expect_error(405, "INVALID_REQUEST");
    let r = send(app.admin(Method::GET, "/v1/admin/tenants/%FF%FE")).await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert!(r.body["error"].is_string());
    let r = send(app.admin(Method::GET, &format!("/v1/admin/tenants/{}", "z".repeat(5000)))).await;
    r.expect_error(404, "TENANT_NOT_FOUND");
}

#[tokio::test]
async fn nul_characters_in_event_and_webhook_requests_are_a_400_naming_the_field_never_a_5xx() {
    let app = TestApp::spawn().await;
    let tenant = tenant_id("nul");
    app.create_tenant(&tenant).await;
    let r = send(
        app.admin(Method::PUT, "/v1/admin/config/webhook-security")
            .json(&json!({"allow_http": true, "blocked_cidr_ranges": []})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hook = |extra: Value| {
        let mut body = json!({"url": "http://127.0.0.1:9/hook", "event_types": ["budget.created"]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let r = send(app.admin(Method::POST, "/v1/admin/webhooks").json(&hook(json!({})))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let sub = format!("/v1/admin/webhooks/{}", r.body["subscription"]["subscription_id"].as_str().unwrap());

    // Filters: a stored value never holds NUL, so the filter is refused, naming itself.
    for (path, field) in [
        ("/v1/admin/events?tenant_id=a%00b", "tenant_id"),
        ("/v1/admin/events?scope=a%00b", "scope"),
        ("/v1/admin/events?correlation_id=a%00b", "correlation_id"),
        ("/v1/admin/events?request_id=a%00b", "request_id"),
        ("/v1/admin/events?search=a%00b", "search"),
        ("/v1/admin/webhooks?tenant_id=a%00b", "tenant_id"),
        ("/v1/admin/webhooks?search=a%00b", "search"),
        ("/v1/webhooks?tenant=a%00b", "tenant"),
    ] {
        let r = send(app.admin(Method::GET, path)).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "GET {path}: {msg:?} does not name {field}");
    }

    // Ids: a NUL in a path segment is refused at the edge, naming the path parameter.
    for (method, path, field) in [
        (Method::GET, "/v1/admin/events/evt%00x", "event_id"),
        (Method::GET, "/v1/admin/webhooks/whsub%00x", "subscription_id"),
        (Method::DELETE, "/v1/admin/webhooks/whsub%00x", "subscription_id"),
        (Method::POST, "/v1/admin/webhooks/whsub%00x/test", "subscription_id"),
        (Method::GET, "/v1/admin/webhooks/whsub%00x/deliveries", "subscription_id"),
        (Method::GET, "/v1/webhooks/whsub%00x", "subscription_id"),
    ] {
        let r = send(app.admin(method, path)).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "{path}: {msg:?} does not name {field}");
    }
    let r = send(app.admin(Method::PATCH, "/v1/admin/webhooks/whsub%00x").json(&json!({"name": "n"}))).await;
    r.expect_error(400, "INVALID_REQUEST");
    let window = json!({"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"});
    let r = send(app.admin(Method::POST, "/v1/admin/webhooks/whsub%00x/replay").json(&window)).await;
    r.expect_error(400, "INVALID_REQUEST");

    // Bodies: every stored text field and metadata, at any depth, refuses NUL.
    for extra in [
        json!({"name": "a\u{0}b"}),
        json!({"description": "a\u{0}b"}),
        json!({"scope_filter": "tenant:a\u{0}"}),
        json!({"metadata": {"k": ["ok", {"deep": "a\u{0}b"}]}}),
        json!({"metadata": {"a\u{0}b": 1}}),
    ] {
        let field = extra.as_object().unwrap().keys().next().unwrap().clone();
        let r = send(app.admin(Method::POST, "/v1/admin/webhooks").json(&hook(extra.clone()))).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(&field), "create with {extra}: {msg:?} does not name {field}");
        let r = send(app.admin(Method::PATCH, &sub).json(&extra)).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(&field), "patch with {extra}: {msg:?} does not name {field}");
    }
    let r =
        send(app.admin(Method::POST, "/v1/admin/webhooks").json(&hook(json!({"url": "http://127.0.0.1:9/a\u{0}"}))))
            .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("url"), "{}", r.text);
    for (body, field) in [
        (json!({"filter": {"tenant_id": "a\u{0}"}, "action": "PAUSE", "idempotency_key": "k1"}), "filter.tenant_id"),
        (json!({"filter": {"search": "a\u{0}"}, "action": "PAUSE", "idempotency_key": "k2"}), "filter.search"),
        (json!({"filter": {"status": "ACTIVE"}, "action": "PAUSE", "idempotency_key": "k\u{0}"}), "idempotency_key"),
    ] {
        let r = send(app.admin(Method::POST, "/v1/admin/webhooks/bulk-action").json(&body)).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "bulk {body}: {msg:?} does not name {field}");
    }
    let r = send(
        app.admin(Method::PUT, "/v1/admin/config/webhook-security")
            .json(&json!({"allow_http": true, "allowed_url_patterns": ["http://*\u{0}"]})),
    )
    .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("allowed_url_patterns"), "{}", r.text);
    // Nothing was stored or changed by the refused requests.
    let r = send(app.admin(Method::GET, &sub)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("name").is_none() && r.body.get("metadata").is_none(), "{}", r.text);
    let r = send(app.admin(Method::GET, "/v1/admin/config/webhook-security")).await;
    assert_eq!(r.body["allowed_url_patterns"], json!([]), "{}", r.text);
}

#[tokio::test]
async fn webhook_request_bodies_are_json_objects_and_an_array_never_reads_as_a_struct() {
    let app = TestApp::spawn().await;
    let config = json!({"allow_http": true, "blocked_cidr_ranges": [], "allowed_url_patterns": []});
    let r = send(app.admin(Method::PUT, "/v1/admin/config/webhook-security").json(&config)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(app.admin(Method::POST, "/v1/admin/webhooks").json(&json!({
        "url": "http://127.0.0.1:9/hook", "event_types": ["budget.created"]
    })))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let sub = format!("/v1/admin/webhooks/{}", r.body["subscription"]["subscription_id"].as_str().unwrap());

    // `[]` used to read as a config of all defaults, undoing allow_http and the ranges.
    let r = send(app.admin(Method::PUT, "/v1/admin/config/webhook-security").json(&json!([]))).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("object"), "{}", r.text);
    let r = send(app.admin(Method::GET, "/v1/admin/config/webhook-security")).await;
    assert_eq!(r.body, config);

    let hook = json!(["http://127.0.0.1:9/hook", ["budget.created"]]);
    let bulk = json!([{"status": "ACTIVE"}, "PAUSE", null, "k"]);
    let replay = json!(["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", null, null]);
    for (method, path, body) in [
        (Method::POST, "/v1/admin/webhooks".to_string(), hook.clone()),
        (Method::PATCH, sub.clone(), json!([null, null, "http://127.0.0.1:9/other"])),
        (Method::POST, "/v1/admin/webhooks/bulk-action".to_string(), bulk),
        (Method::POST, format!("{sub}/replay"), replay),
    ] {
        let r = send(app.admin(method.clone(), &path).json(&body)).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains("object"), "{method} {path}: {msg:?}");
    }
    // Nested objects too.
    for (body, field) in [
        (
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["budget.created"], "retry_policy": []}),
            "retry_policy",
        ),
        (
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["budget.created"], "thresholds": [[0.5]]}),
            "thresholds",
        ),
    ] {
        let r = send(app.admin(Method::POST, "/v1/admin/webhooks").json(&body)).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "{body}: {msg:?} does not name {field}");
    }
    let r = send(app.admin(Method::POST, "/v1/admin/webhooks/bulk-action").json(&json!({
        "filter": [], "action": "PAUSE", "idempotency_key": "k"
    })))
    .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("filter"), "{}", r.text);
    let r = send(app.admin(Method::GET, &sub)).await;
    assert_eq!(r.body["url"], "http://127.0.0.1:9/hook", "{}", r.text);
    assert_eq!(r.body["status"], "ACTIVE", "{}", r.text);
}
