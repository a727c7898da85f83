//! `POST /v1/admin/provision`: a customer (tenant, key, budgets) in one call, all or nothing
//! across Postgres and Redis: retries create nothing new, a Redis outage leaves the customer
//! complete once Redis is back, and an engine killed right after the Postgres commit finishes
//! it exactly once when it restarts.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::crash::{free_port, start_engine_with};
use crate::fixture::USD;
use crate::helpers::{ADMIN_KEY, Env, PrivateRedis, Reply, TestApp, eventually, send, tenant_id};
use crate::tiers::create_tier;

fn starter() -> Value {
    json!({
        "tier": "starter", "admission_class": "standard",
        "default_budgets": [
            {"scope": "", "unit": USD, "allocated": {"unit": USD, "amount": 10_000}},
            {"scope": "workspace:default", "unit": "TOKENS", "allocated": {"unit": "TOKENS", "amount": 500}},
        ],
    })
}

fn request(tenant: &str, key: &str) -> Value {
    json!({
        "tenant_id": tenant, "name": "Acme", "tier": "starter", "api_key_name": "production",
        "idempotency_key": key, "metadata": {"crm": "42"},
        "budgets": [{"scope": "workspace:default/agent:bot", "unit": USD, "allocated": {"unit": USD, "amount": 700}}],
    })
}

async fn provision(client: &reqwest::Client, admin: &str, body: &Value) -> Reply {
    send(client.post(format!("{admin}/v1/admin/provision")).header("x-admin-api-key", ADMIN_KEY).json(body)).await
}

fn allocated(r: &Reply) -> Vec<(String, String, i64)> {
    let mut out: Vec<(String, String, i64)> = r.body["budgets"]
        .as_array()
        .unwrap_or_else(|| panic!("budgets in {}", r.text))
        .iter()
        .map(|b| {
            let scope = b["scope"].as_str().unwrap_or_default().to_string();
            (scope, b["unit"].as_str().unwrap_or_default().to_string(), b["allocated"]["amount"].as_i64().unwrap_or(-1))
        })
        .collect();
    out.sort();
    out
}

fn expected(tenant: &str) -> Vec<(String, String, i64)> {
    let mut out = vec![
        (format!("tenant:{tenant}"), USD.to_string(), 10_000),
        (format!("tenant:{tenant}/workspace:default"), "TOKENS".to_string(), 500),
        (format!("tenant:{tenant}/workspace:default/agent:bot"), USD.to_string(), 700),
    ];
    out.sort();
    out
}

/// Tenants, keys and provisioning records of `tenant` in Postgres.
async fn rows(pg: &PgPool, tenant: &str) -> (i64, i64, Vec<String>) {
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).bind(tenant.to_string()).fetch_one(pg);
    let tenants = count("SELECT count(*) FROM tenants WHERE tenant_id = $1").await.unwrap();
    let keys = count("SELECT count(*) FROM api_keys WHERE tenant_id = $1").await.unwrap();
    let states = sqlx::query_scalar("SELECT state FROM provisions WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(pg)
        .await
        .unwrap();
    (tenants, keys, states)
}

/// Reserves 1 USD on the tenant scope with `secret` through the runtime plane.
async fn reserve(client: &reqwest::Client, runtime: &str, tenant: &str, secret: &str, key: &str) -> Reply {
    let body = json!({
        "idempotency_key": key, "subject": {"tenant": tenant, "workspace": "default", "agent": "bot"},
        "action": {"kind": "llm.completion", "name": "m"}, "estimate": {"unit": USD, "amount": 1},
    });
    send(client.post(format!("{runtime}/v1/reservations")).header("x-cycles-api-key", secret).json(&body)).await
}

#[tokio::test]
async fn provisioning_creates_tenant_key_and_budgets_in_one_call() {
    let app = TestApp::spawn().await;
    create_tier(&app, starter()).await;
    let tenant = tenant_id("prov");
    let r = provision(&app.client, &app.admin_url(""), &request(&tenant, "onboard-1")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (r.body["tenant"]["tier"].as_str(), r.body["tenant"]["status"].as_str()),
        (Some("starter"), Some("ACTIVE"))
    );
    assert_eq!(r.body["api_key"]["name"], "production");
    assert_eq!(r.body["policies"], json!([]));
    assert_eq!(allocated(&r), expected(&tenant));
    let secret = r.body["api_key"]["key_secret"].as_str().expect("the secret, once").to_string();
    let reserved = reserve(&app.client, &app.runtime_url(""), &tenant, &secret, "first").await;
    assert_eq!(
        (reserved.status.as_u16(), reserved.body["decision"].as_str()),
        (200, Some("ALLOW")),
        "{}",
        reserved.text
    );
    assert_eq!(rows(&app.pg, &tenant).await, (1, 1, vec!["COMPLETE".to_string()]));
    assert_eq!(app.audit(&format!("tenant_id={tenant}&operation=provisionTenant")).await.len(), 1);
}

#[tokio::test]
async fn a_retried_provision_creates_nothing_new() {
    let app = TestApp::spawn().await;
    create_tier(&app, starter()).await;
    let tenant = tenant_id("prov");
    let body = request(&tenant, "onboard-2");
    let first = provision(&app.client, &app.admin_url(""), &body).await;
    assert_eq!(first.status, 201, "{}", first.text);
    // The same call again, with the key in the header as well: the original result, no secret.
    let mut without_key = body.clone();
    without_key.as_object_mut().unwrap().remove("idempotency_key");
    let again =
        send(app.admin(Method::POST, "/v1/admin/provision").header("idempotency-key", "onboard-2").json(&without_key))
            .await;
    assert_eq!((again.status.as_u16(), again.body["replayed"].as_bool()), (200, Some(true)), "{}", again.text);
    assert_eq!(again.body["api_key"]["key_id"], first.body["api_key"]["key_id"]);
    assert!(again.body["api_key"].get("key_secret").is_none(), "the secret is shown once");
    assert_eq!(allocated(&again), expected(&tenant), "funds not doubled");
    assert_eq!(rows(&app.pg, &tenant).await, (1, 1, vec!["COMPLETE".to_string()]));
    // The same key with another body, body and header disagreeing, a taken tenant id.
    let mut other = body.clone();
    other["name"] = json!("Other");
    provision(&app.client, &app.admin_url(""), &other).await.expect_error(409, "IDEMPOTENCY_MISMATCH");
    let r = send(app.admin(Method::POST, "/v1/admin/provision").header("idempotency-key", "x").json(&body)).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("idempotency_key"));
    provision(&app.client, &app.admin_url(""), &request(&tenant, "onboard-3"))
        .await
        .expect_error(409, "DUPLICATE_RESOURCE");
    assert_eq!(rows(&app.pg, &tenant).await, (1, 1, vec!["COMPLETE".to_string()]));
}

#[tokio::test]
async fn bad_provisioning_input_is_400_naming_the_field() {
    let app = TestApp::spawn().await;
    create_tier(&app, starter()).await;
    let tenant = tenant_id("prov");
    let with = |patch: Value| {
        let mut b = request(&tenant, "bad");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let cases = [
        (with(json!({"tier": "nope"})), "tier"),
        (with(json!({"tier": null})), "tier"),
        (with(json!({"tenant_id": "A!"})), "tenant_id"),
        (with(json!({"name": ""})), "name"),
        (with(json!({"api_key_name": null})), "api_key_name"),
        (with(json!({"idempotency_key": null})), "idempotency_key"),
        (with(json!({"permissions": []})), "permissions"),
        (
            with(json!({"budgets": [{"scope": "tenant:other", "unit": USD, "allocated": {"unit": USD, "amount": 1}}]})),
            "budgets[0].scope",
        ),
        (with(json!({"budgets": [{"scope": "", "unit": USD, "allocated": {"unit": USD, "amount": -1}}]})), "budgets"),
    ];
    for (body, field) in cases {
        let r = provision(&app.client, &app.admin_url(""), &body).await;
        let message = r.expect_error(400, "INVALID_REQUEST");
        assert!(message.contains(field), "{body}: {message}");
    }
    assert_eq!(rows(&app.pg, &tenant).await, (0, 0, vec![]), "nothing half-applied");
}

#[tokio::test]
async fn redis_stopped_mid_provision_leaves_the_customer_complete_after_recovery() {
    let mut redis = PrivateRedis::start().await;
    let port = redis.port;
    let app = TestApp::spawn_with(|c| c.redis_url = format!("redis://127.0.0.1:{port}")).await;
    create_tier(&app, starter()).await;
    redis.child.kill().await.unwrap();
    let tenant = tenant_id("prov");
    let body = request(&tenant, "onboard-redis");
    let failed = provision(&app.client, &app.admin_url(""), &body).await;
    failed.expect_error(503, "INTERNAL_ERROR");
    assert!(!failed.header("retry-after").is_empty());
    assert_eq!(rows(&app.pg, &tenant).await, (1, 1, vec!["PENDING".to_string()]), "committed, not yet complete");
    let _redis = PrivateRedis::start_on(port).await;
    let done = eventually(Duration::from_secs(20), || async { rows(&app.pg, &tenant).await.2 == ["COMPLETE"] }).await;
    assert!(done, "the recovery pass finishes the customer once Redis is back");
    // The caller's retry answers the customer, with the secret no response has carried yet.
    let retried = provision(&app.client, &app.admin_url(""), &body).await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(allocated(&retried), expected(&tenant));
    let secret = retried.body["api_key"]["key_secret"].as_str().expect("the undelivered secret").to_string();
    let r = reserve(&app.client, &app.runtime_url(""), &tenant, &secret, "after-outage").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let third = provision(&app.client, &app.admin_url(""), &body).await;
    assert!(third.body["api_key"].get("key_secret").is_none());
    assert_eq!(rows(&app.pg, &tenant).await, (1, 1, vec!["COMPLETE".to_string()]));
}

#[tokio::test]
async fn an_engine_killed_after_the_provisioning_commit_finishes_the_customer_exactly_once() {
    let env = Env::new().await;
    let (runtime, admin) = (free_port(), free_port());
    let fault = [("TOLLGATE_TEST_FAULT", "abort-after-provision-commit")];
    let mut engine = start_engine_with(&env, runtime, admin, &fault).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let admin_url = format!("http://127.0.0.1:{admin}");
    let r =
        send(client.post(format!("{admin_url}/v1/admin/tiers")).header("x-admin-api-key", ADMIN_KEY).json(&starter()))
            .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let tenant = tenant_id("prov");
    let body = request(&tenant, "onboard-crash");
    let sent = client
        .post(format!("{admin_url}/v1/admin/provision"))
        .header("x-admin-api-key", ADMIN_KEY)
        .json(&body)
        .send()
        .await;
    assert!(sent.is_err(), "the engine aborts before answering");
    let status = engine.wait().await.unwrap();
    assert!(!status.success(), "the engine died: {status}");
    let pg = PgPool::connect(&env.database_url).await.unwrap();
    assert_eq!(rows(&pg, &tenant).await, (1, 1, vec!["PENDING".to_string()]));
    let (runtime, admin) = (free_port(), free_port());
    let _engine = start_engine_with(&env, runtime, admin, &[]).await;
    // The dead engine's lease on the record lapses first (catalogue::provision::LEASE_S).
    let done = eventually(Duration::from_secs(30), || async { rows(&pg, &tenant).await.2 == ["COMPLETE"] }).await;
    assert!(done, "the restarted engine finishes the customer");
    let admin_url = format!("http://127.0.0.1:{admin}");
    let retried = provision(&client, &admin_url, &body).await;
    assert_eq!((retried.status.as_u16(), retried.body["replayed"].as_bool()), (200, Some(true)), "{}", retried.text);
    assert_eq!(allocated(&retried), expected(&tenant), "each budget once, funds not doubled");
    let secret = retried.body["api_key"]["key_secret"].as_str().expect("the secret the crash kept from the caller");
    let r = reserve(&client, &format!("http://127.0.0.1:{runtime}"), &tenant, secret, "after-crash").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(rows(&pg, &tenant).await, (1, 1, vec!["COMPLETE".to_string()]), "one tenant, one key");
    let created: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND operation = 'provisionTenant'")
            .bind(&tenant)
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(created, 1);
}
