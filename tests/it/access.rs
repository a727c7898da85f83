//! Admin access control: principals, roles, personal access tokens, and the permission each
//! admin route needs. Tenant confinement is in `access_scope`.

use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, eventually, send, tenant_id};

/// A principal (bound to `tenant` if given) holding `roles`, and a token for it.
pub async fn principal(app: &TestApp, tenant: Option<&str>, roles: &[&str]) -> (String, String) {
    let mut body = json!({"type": "service", "name": "bot"});
    if let Some(t) = tenant {
        body["tenant_id"] = json!(t);
    }
    let r = send(app.admin(Method::POST, "/v1/admin/principals").json(&body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["principal_id"].as_str().unwrap().to_string();
    for role in roles {
        let r =
            send(app.admin(Method::POST, &format!("/v1/admin/principals/{id}/roles")).json(&json!({"role_id": role})))
                .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = send(app.admin(Method::POST, &format!("/v1/admin/principals/{id}/api-keys")).json(&json!({"name": "ci"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (id, r.body["key_secret"].as_str().unwrap().to_string())
}

/// A request to the admin plane with `Authorization: Bearer <pat>`.
pub fn with_pat(app: &TestApp, pat: &str, method: Method, path: &str) -> RequestBuilder {
    app.client.request(method, app.admin_url(path)).bearer_auth(pat)
}

/// Every catalogue table except the audit and event logs, as text: what "unchanged" compares.
pub async fn catalogue_dump(app: &TestApp) -> String {
    let mut out = String::new();
    // A subscription's delivery bookkeeping moves with deliveries the dispatcher makes on its
    // own schedule, not with requests; everything else a subscription holds is compared.
    let webhooks = "(SELECT subscription_id, tenant_id, name, description, url, event_types, event_categories, \
        scope_filter, thresholds, signing_secret_sealed, headers_sealed, status, retry_policy, disable_after_failures, \
        metadata, created_at, updated_at FROM webhook_subscriptions)";
    for table in ["tenants", "api_keys", webhooks, "principals", "roles", "principal_roles"] {
        let from = if table.starts_with('(') { table.to_string() } else { format!("\"{table}\"") };
        let dump: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(t::text, '|' ORDER BY t::text) FROM {from} t"
        )))
        .fetch_one(&app.pg)
        .await
        .unwrap();
        let name = if table.starts_with('(') { "webhook_subscriptions" } else { table };
        out.push_str(&format!("{name}: {}\n", dump.unwrap_or_default()));
    }
    let tokens: Option<String> = sqlx::query_scalar(
        "SELECT string_agg(key_id || coalesce(revoked_at::text, ''), '|' ORDER BY key_id) FROM principal_tokens",
    )
    .fetch_one(&app.pg)
    .await
    .unwrap();
    out.push_str(&tokens.unwrap_or_default());
    out
}

/// The admin routes as `src/admin_api/mod.rs` declares them (method, path), read as text so
/// a new route cannot be missed by the table below.
fn declared_routes() -> Vec<(String, String)> {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/admin_api/mod.rs")).unwrap();
    let flat: String = src.split_whitespace().collect::<Vec<_>>().join(" ").replace(".route( \"", ".route(\"");
    let mut out = Vec::new();
    for part in flat.split(".route(\"").skip(1) {
        let (path, rest) = part.split_once('"').unwrap();
        let call = rest.split(".route(").next().unwrap();
        for m in ["get", "post", "patch", "put", "delete"] {
            if call.contains(&format!("{m}(")) && !call.contains(&format!("_{m}(")) {
                out.push((m.to_uppercase(), path.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_declared_admin_route_has_a_row_in_the_access_table() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/admin_api/access.rs")).unwrap();
    let table: String = src.split_whitespace().collect::<Vec<_>>().join(" ");
    let routes = declared_routes();
    assert!(routes.len() >= 50, "{routes:?}");
    let missing: Vec<_> = routes.iter().filter(|(m, p)| !table.contains(&format!("(\"{m}\", \"{p}\""))).collect();
    assert!(missing.is_empty(), "routes without an access rule: {missing:?}");
}

struct Ids {
    tenant: String,
    key: String,
    hook: String,
    event: String,
    principal: String,
    role: String,
    pat: String,
}

fn fill(path: &str, ids: &Ids) -> String {
    path.replace("{tenant_id}", &ids.tenant)
        .replace("{key_id}", if path.contains("principals") { &ids.pat } else { &ids.key })
        .replace("{subscription_id}", &ids.hook)
        .replace("{event_id}", &ids.event)
        .replace("{principal_id}", &ids.principal)
        .replace("{role_id}", &ids.role)
        .replace("{permission}", "budgets:read")
}

/// A request body each mutating route would accept from an owner.
fn body_for(method: &str, path: &str, ids: &Ids) -> Option<Value> {
    let t = &ids.tenant;
    let scope = format!("tenant:{t}");
    let usd = |n: i64| json!({"unit": "USD_MICROCENTS", "amount": n});
    Some(match (method, path) {
        ("POST", "/v1/admin/tenants") => json!({"tenant_id": tenant_id("new"), "name": "n"}),
        ("PATCH", "/v1/admin/tenants/{tenant_id}") => json!({"name": "changed"}),
        ("POST", "/v1/admin/api-keys") => json!({"tenant_id": t, "name": "k"}),
        ("PATCH", "/v1/admin/api-keys/{key_id}") => json!({"name": "changed"}),
        ("POST", "/v1/admin/budgets") => {
            json!({"tenant_id": t, "scope": format!("{scope}/app:x"), "unit": "USD_MICROCENTS", "allocated": usd(5)})
        }
        ("PATCH", "/v1/admin/budgets") => json!({"overdraft_limit": usd(7)}),
        ("POST", "/v1/admin/budgets/fund") => json!({"operation": "CREDIT", "amount": usd(3)}),
        ("POST", "/v1/admin/budgets/freeze" | "/v1/admin/budgets/unfreeze") => json!({}),
        ("POST", "/v1/auth/validate") => json!({"key_secret": "cyc_live_nothing"}),
        ("POST", "/v1/admin/webhooks") => {
            json!({"url": "http://127.0.0.1:9/a", "event_types": ["budget.created"]})
        }
        ("POST", "/v1/admin/tenants/bulk-action") => {
            json!({"filter": {"search": t}, "action": "SUSPEND", "idempotency_key": "b1"})
        }
        ("POST", "/v1/admin/budgets/bulk-action") => {
            json!({"filter": {"tenant_id": t}, "action": "CREDIT", "amount": usd(1), "idempotency_key": "b1"})
        }
        ("POST", "/v1/admin/webhooks/bulk-action") => {
            json!({"filter": {"tenant_id": t}, "action": "PAUSE", "idempotency_key": "b1"})
        }
        ("PATCH", "/v1/admin/webhooks/{subscription_id}") => json!({"name": "changed"}),
        ("POST", "/v1/admin/webhooks/{subscription_id}/replay") => json!({}),
        ("PUT", "/v1/admin/config/webhook-security") => json!({"allow_http": true}),
        ("POST", "/v1/admin/principals") => json!({"type": "user", "name": "x"}),
        ("PATCH", "/v1/admin/principals/{principal_id}") => json!({"status": "DEACTIVATED"}),
        ("POST", "/v1/admin/principals/{principal_id}/roles") => json!({"role_id": "owner"}),
        ("POST", "/v1/admin/principals/{principal_id}/api-keys") => json!({"name": "x"}),
        ("POST", "/v1/admin/roles") => json!({"name": "r2", "scope": "platform", "permissions": ["audit:read"]}),
        ("POST", "/v1/admin/roles/{role_id}/permissions") => json!({"permissions": ["events:read"]}),
        _ => return None,
    })
}

/// Routes that need no admin permission: health, metrics and the OpenAPI document, the tenant-key
/// routes, and introspection (any authenticated caller).
fn exempt(path: &str) -> bool {
    matches!(path, "/livez" | "/readyz" | "/metrics" | "/openapi.json" | "/v1/auth/introspect" | "/v1/events")
        || path.starts_with("/v1/webhooks")
}

/// Lets webhook subscriptions point at loopback (nothing listens there; no test waits for a delivery).
pub async fn allow_loopback(app: &TestApp) {
    let r = send(
        app.admin(Method::PUT, "/v1/admin/config/webhook-security")
            .json(&json!({"allow_http": true, "blocked_cidr_ranges": ["10.0.0.0/8"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The objects every route can name, created with the bootstrap key.
async fn seed(app: &TestApp) -> Ids {
    allow_loopback(app).await;
    let tenant = tenant_id("own");
    app.create_tenant(&tenant).await;
    let key = app.create_key(&tenant, json!({})).await["key_id"].as_str().unwrap().to_string();
    let r = send(app.admin(Method::POST, "/v1/admin/budgets").json(&json!({
        "tenant_id": tenant, "scope": format!("tenant:{tenant}"), "unit": "USD_MICROCENTS",
        "allocated": {"unit": "USD_MICROCENTS", "amount": 100}
    })))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = send(
        app.admin(Method::POST, "/v1/admin/webhooks")
            .query(&[("tenant_id", tenant.as_str())])
            .json(&json!({"url": "http://127.0.0.1:9/h", "event_types": ["budget.created"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let hook = r.body["subscription"]["subscription_id"].as_str().unwrap().to_string();
    let event = eventually(Duration::from_secs(10), || async {
        let r = send(app.admin(Method::GET, "/v1/admin/events").query(&[("tenant_id", tenant.as_str())])).await;
        r.body["events"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    assert!(event, "an event of the tenant was recorded");
    let r = send(app.admin(Method::GET, "/v1/admin/events").query(&[("tenant_id", tenant.as_str())])).await;
    let event = r.body["events"][0]["event_id"].as_str().unwrap().to_string();
    let r = send(
        app.admin(Method::POST, "/v1/admin/roles")
            .json(&json!({"name": "auditor", "scope": "platform", "permissions": ["audit:read"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let role = r.body["role_id"].as_str().unwrap().to_string();
    let (principal, _) = principal(app, None, &["policy-admin"]).await;
    let r = send(
        app.admin(Method::POST, &format!("/v1/admin/principals/{principal}/api-keys")).json(&json!({"name": "p"})),
    )
    .await;
    let pat = r.body["key_id"].as_str().unwrap().to_string();
    Ids { tenant, key, hook, event, principal, role, pat }
}

#[tokio::test]
async fn a_principal_without_the_permission_gets_403_on_every_admin_route_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let ids = seed(&app).await;
    let (_, pat) = principal(&app, None, &[]).await;
    let routes: Vec<_> = declared_routes().into_iter().filter(|(_, p)| !exempt(p)).collect();
    assert!(routes.len() >= 40, "routes read from the router: {routes:?}");
    let before = catalogue_dump(&app).await;
    for (method, path) in &routes {
        let url = fill(path, &ids);
        let mut rb = with_pat(&app, &pat, Method::from_bytes(method.as_bytes()).unwrap(), &url);
        if path.starts_with("/v1/admin/budgets") && path != "/v1/admin/budgets"
            || (method == "PATCH" && path == "/v1/admin/budgets")
        {
            rb = rb.query(&[("scope", format!("tenant:{}", ids.tenant)), ("unit", "USD_MICROCENTS".into())]);
        }
        if let Some(body) = body_for(method, path, &ids) {
            rb = rb.json(&body);
        }
        let r = send(rb).await;
        let message = r.expect_error(403, "INSUFFICIENT_PERMISSIONS");
        assert!(message.contains("permission") || message.contains("across tenants"), "{method} {path}: {message}");
    }
    assert_eq!(catalogue_dump(&app).await, before, "a refused request changed the catalogue");
    let ledger = send(
        app.admin(Method::GET, "/v1/admin/budgets/lookup")
            .query(&[("scope", format!("tenant:{}", ids.tenant)), ("unit", "USD_MICROCENTS".into())]),
    )
    .await;
    assert_eq!(ledger.body["allocated"]["amount"], 100, "{}", ledger.text);
    assert_eq!(ledger.body["status"], "ACTIVE", "{}", ledger.text);
    let refusals = app.audit("error_code=INSUFFICIENT_PERMISSIONS&limit=100").await;
    assert_eq!(refusals.len(), routes.len().min(30), "each refusal audited up to the per-source limit");
}

#[tokio::test]
async fn a_principal_with_a_role_can_call_its_routes_and_is_the_audit_actor() {
    let app = TestApp::spawn().await;
    let (id, pat) = principal(&app, None, &["owner"]).await;
    let t = tenant_id("byowner");
    let r =
        send(with_pat(&app, &pat, Method::POST, "/v1/admin/tenants").json(&json!({"tenant_id": t, "name": "n"}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let entry = &app.audit("operation=createTenant").await[0];
    assert_eq!(entry["metadata"]["actor"], id.as_str(), "{entry}");
    assert!(entry["key_id"].as_str().unwrap().starts_with("pat_"), "{entry}");
    // The bootstrap key is still an owner, and Cycles clients may send a token in X-Admin-API-Key.
    let r = send(app.client.get(app.admin_url("/v1/admin/tenants")).header("x-admin-api-key", &pat)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, viewer) = principal(&app, None, &["billing-admin"]).await;
    let r = send(with_pat(&app, &viewer, Method::GET, &format!("/v1/admin/tenants/{t}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(with_pat(&app, &viewer, Method::PATCH, &format!("/v1/admin/tenants/{t}")).json(&json!({"name": "x"})))
        .await;
    assert!(r.expect_error(403, "INSUFFICIENT_PERMISSIONS").contains("tenants:write"));
    let me = send(with_pat(&app, &viewer, Method::GET, "/v1/auth/introspect")).await;
    assert_eq!(me.body["auth_type"], "principal", "{}", me.text);
    assert_eq!(me.body["capabilities"]["manage_tenants"], false, "{}", me.text);
    assert_eq!(me.body["capabilities"]["manage_budgets"], true, "{}", me.text);
    let listed = send(app.admin(Method::GET, &format!("/v1/admin/principals/{id}"))).await;
    assert_eq!(listed.body["roles"], json!(["owner"]));
}

#[tokio::test]
async fn a_revoked_token_or_deactivated_principal_is_refused_within_a_second_on_another_instance() {
    let app = TestApp::spawn().await;
    let second = app.another_instance().await;
    let url = |path: &str| format!("http://{}{path}", second.admin.unwrap());
    let (id, pat) = principal(&app, None, &["policy-admin"]).await;
    let (id2, pat2) = principal(&app, None, &["policy-admin"]).await;
    for token in [&pat, &pat2] {
        let r = send(app.client.get(url("/v1/admin/tenants")).bearer_auth(token)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let keys: Vec<(String,)> = sqlx::query_as("SELECT key_id FROM principal_tokens WHERE principal_id = $1")
        .bind(&id)
        .fetch_all(&app.pg)
        .await
        .unwrap();
    let revoke = format!("/v1/admin/principals/{id}/api-keys/{}/revoke", keys[0].0);
    let r = send(app.admin(Method::POST, &revoke)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r =
        send(app.admin(Method::PATCH, &format!("/v1/admin/principals/{id2}")).json(&json!({"status": "DEACTIVATED"})))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for token in [&pat, &pat2] {
        let refused = eventually(Duration::from_secs(1), || async {
            send(app.client.get(url("/v1/admin/tenants")).bearer_auth(token)).await.status == 401
        })
        .await;
        assert!(refused, "the second instance still accepts the token after 1 s");
    }
    let r = send(app.admin(Method::POST, &revoke)).await;
    r.expect_error(409, "KEY_REVOKED");
}

#[tokio::test]
async fn refusals_are_audited_with_source_and_agent_and_a_flood_is_throttled() {
    let app = TestApp::spawn().await;
    let r = send(app.client.get(app.admin_url("/v1/admin/tenants")).header("user-agent", "probe/1")).await;
    r.expect_error(401, "UNAUTHORIZED");
    let r = send(app.client.get(app.admin_url("/v1/admin/tenants")).bearer_auth("tg_pat_guess")).await;
    r.expect_error(401, "UNAUTHORIZED");
    let entries = app.audit("tenant_id=__unauth__").await;
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let e = entries.iter().find(|e| e["user_agent"] == "probe/1").expect("the user agent is recorded");
    assert_eq!(e["source_ip"], "127.0.0.1");
    assert_eq!(e["status"], 401);
    assert_eq!(e["error_code"], "UNAUTHORIZED");
    assert_eq!(e["metadata"]["actor"], "__unauth__");
    let mut last = None;
    for _ in 0..40 {
        last = Some(send(app.client.get(app.admin_url("/v1/admin/tenants")).header("x-admin-api-key", "wrong")).await);
    }
    let last = last.unwrap();
    last.expect_error(429, "LIMIT_EXCEEDED");
    assert!(last.header("retry-after").parse::<u64>().unwrap() >= 1);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE tenant_id = '__unauth__'")
        .fetch_one(&app.pg)
        .await
        .unwrap_or(0);
    assert!(count <= 30, "a flood fills the audit log: {count} entries");
}

fn secrets_in(text: &str, pat: &str) -> bool {
    text.contains(&pat["tg_pat_".len()..])
}

#[tokio::test]
async fn no_token_appears_in_clear_in_postgres_or_redis() {
    let app = TestApp::spawn().await;
    let (id, pat) = principal(&app, None, &["owner"]).await;
    let t = tenant_id("pat");
    let r =
        send(with_pat(&app, &pat, Method::POST, "/v1/admin/tenants").json(&json!({"tenant_id": t, "name": "n"}))).await;
    assert_eq!(r.status, 201);
    let later: Vec<Reply> = vec![
        send(app.admin(Method::GET, &format!("/v1/admin/principals/{id}"))).await,
        send(app.admin(Method::GET, "/v1/admin/audit/logs?limit=100")).await,
    ];
    for r in &later {
        assert!(!secrets_in(&r.text, &pat), "token in a later response: {}", r.text);
    }
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
            .fetch_all(&app.pg)
            .await
            .unwrap();
    for (table,) in tables {
        let dump: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT string_agg(t::text, '|') FROM \"{table}\" t")))
                .fetch_one(&app.pg)
                .await
                .unwrap();
        assert!(!secrets_in(&dump.unwrap_or_default(), &pat), "table {table} holds the token");
    }
    let client = redis::Client::open(app.env.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", app.env.redis_prefix)).query_async(&mut conn).await.unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query_async(&mut conn).await.unwrap();
        let text = String::from_utf8_lossy(&dump.unwrap_or_default()).to_string();
        assert!(!secrets_in(&key, &pat) && !secrets_in(&text, &pat), "redis key {key} holds the token");
    }
}

#[tokio::test]
async fn a_token_stops_working_at_its_expiry_and_records_its_last_use() {
    let app = TestApp::spawn().await;
    let (id, _) = principal(&app, None, &["policy-admin"]).await;
    let path = format!("/v1/admin/principals/{id}/api-keys");
    let r =
        send(app.admin(Method::POST, &path).json(&json!({"name": "old", "expires_at": "2020-01-01T00:00:00Z"}))).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("expires_at"));
    let soon = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1500);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let r = send(app.admin(Method::POST, &path).json(&json!({"name": "short", "expires_at": soon}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let pat = r.body["key_secret"].as_str().unwrap().to_string();
    assert!(pat.starts_with("tg_pat_") && pat.starts_with(r.body["key_prefix"].as_str().unwrap()));
    let r = send(with_pat(&app, &pat, Method::GET, "/v1/admin/tenants")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let touched: i64 = sqlx::query_scalar("SELECT count(*) FROM principal_tokens WHERE last_used_at IS NOT NULL")
        .fetch_one(&app.pg)
        .await
        .unwrap();
    assert_eq!(touched, 1, "the token's use is recorded");
    let expired = eventually(Duration::from_secs(5), || async {
        send(with_pat(&app, &pat, Method::GET, "/v1/admin/tenants")).await.status == 401
    })
    .await;
    assert!(expired, "an expired token is refused");
}

#[tokio::test]
async fn a_tenant_key_refused_on_the_admin_plane_is_audited_under_its_tenant_and_key() {
    let app = TestApp::spawn().await;
    let t = tenant_id("tkey");
    app.create_tenant(&t).await;
    let k = app.create_key(&t, json!({"permissions": ["balances:read"]})).await;
    let secret = k["key_secret"].as_str().unwrap();
    let r = send(app.client.get(app.admin_url("/v1/webhooks")).header("x-cycles-api-key", secret)).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let entries = app.audit(&format!("tenant_id={t}&status_min=403&status_max=403")).await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["key_id"], k["key_id"]);
    assert_eq!(entries[0]["metadata"]["actor_type"], "api_key");
    assert_eq!(entries[0]["operation"], "GET /v1/webhooks");
}
