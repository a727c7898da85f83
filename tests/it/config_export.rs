//! Configuration snapshots: `GET /v1/admin/config/export` and `POST /v1/admin/config/import`.
//! The shape (no secret, no digest), balances on request, dry runs, merge and replace, a bad
//! object refusing the whole import, faults mid-import leaving Postgres and Redis as they were,
//! and the round trip into a fresh deployment.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD};
use crate::helpers::{PrivateRedis, Reply, TestApp, eventually, send, tenant_id};

async fn allow_loopback_webhooks(app: &TestApp) {
    let r = send(
        app.admin(Method::PUT, "/v1/admin/config/webhook-security")
            .json(&json!({"allow_http": true, "blocked_cidr_ranges": ["10.0.0.0/8"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn export(app: &TestApp, query: &str) -> Value {
    let r = send(app.admin(Method::GET, &format!("/v1/admin/config/export{query}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn import(app: &TestApp, query: &str, snapshot: &Value) -> Reply {
    send(app.admin(Method::POST, &format!("/v1/admin/config/import{query}")).json(snapshot)).await
}

/// An export without what the README names environment-specific: the export time, budget
/// ledger ids, and the API key section (keys cannot move between deployments).
fn portable(mut snapshot: Value) -> Value {
    let s = snapshot.as_object_mut().unwrap();
    s.remove("exported_at");
    s.remove("api_keys");
    for b in s["budgets"].as_array_mut().unwrap() {
        b.as_object_mut().unwrap().remove("ledger_id");
    }
    snapshot
}

/// A webhook owned by `owner` (None: system-wide); returns its id and signing secret.
async fn subscribe(app: &TestApp, owner: Option<&str>, name: &str) -> (String, String) {
    let mut rb = app.admin(Method::POST, "/v1/admin/webhooks");
    if let Some(t) = owner {
        rb = rb.query(&[("tenant_id", t)]);
    }
    let body = json!({"name": name, "url": "http://127.0.0.1:9/hook", "event_types": ["budget.created"],
        "headers": {"X-Team": "header-value-secret"}});
    let r = send(rb.json(&body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["subscription"]["subscription_id"].as_str().unwrap().into(),
        r.body["signing_secret"].as_str().unwrap().into(),
    )
}

fn section<'a>(snapshot: &'a Value, kind: &str) -> &'a Vec<Value> {
    snapshot[kind].as_array().unwrap()
}

fn find<'a>(snapshot: &'a Value, kind: &str, field: &str, id: &str) -> &'a Value {
    section(snapshot, kind).iter().find(|o| o[field] == id).unwrap_or_else(|| panic!("{kind} {id} in {snapshot}"))
}

async fn import_audit_entries(app: &TestApp) -> usize {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE operation = 'importConfig'")
        .fetch_one(&app.pg)
        .await
        .unwrap();
    n as usize
}

#[tokio::test]
async fn an_export_holds_every_kind_and_never_a_secret_or_a_digest() {
    let fx = Fx::new().await;
    let app = &fx.app;
    allow_loopback_webhooks(app).await;
    fx.budget("", 1_000).await;
    let id = fx.reserved("r1", json!({}), 100).await;
    fx.commit(&id, "c1", 40).await;
    let (hook, signing_secret) = subscribe(app, Some(&fx.tenant), "alerts").await;
    let snap = export(app, "").await;
    assert_eq!(snap["format"], "tollgate.config");
    assert_eq!(snap["format_version"], 1);
    assert_eq!(snap["includes_balances"], false);
    assert_eq!(snap["omitted_fields"]["webhooks"], json!(["signing_secret", "headers"]));
    assert_eq!(snap["omitted_fields"]["api_keys"], json!(["key_secret", "key_hash", "key_prefix"]));
    assert_eq!(section(&snap, "tiers").len(), 4, "the built-in tiers");
    assert!(section(&snap, "policies").is_empty());
    let t = find(&snap, "tenants", "tenant_id", &fx.tenant);
    assert_eq!(t["status"], "ACTIVE");
    assert_eq!(t["default_reservation_ttl_ms"], 60_000);
    let b = find(&snap, "budgets", "scope", &fx.scope(""));
    assert_eq!(
        (b["unit"].as_str(), b["allocated"].as_i64(), b["status"].as_str()),
        (Some(USD), Some(1_000), Some("ACTIVE"))
    );
    assert!(b.get("balances").is_none(), "balances only on request: {b}");
    let w = find(&snap, "webhooks", "subscription_id", &hook);
    assert_eq!(w["tenant_id"], fx.tenant.as_str());
    assert!(w.get("signing_secret").is_none() && w.get("headers").is_none(), "{w}");
    let k = &section(&snap, "api_keys")[0];
    assert_eq!(k["tenant_id"], fx.tenant.as_str());
    for field in ["key_secret", "key_hash", "key_prefix", "key_digest"] {
        assert!(k.get(field).is_none(), "{field} in {k}");
    }
    // Nothing secret anywhere in the document, whatever its field name.
    let text = snap.to_string();
    let digest: Vec<u8> = sqlx::query_scalar("SELECT key_digest FROM api_keys").fetch_one(&app.pg).await.unwrap();
    for secret in
        [fx.key.as_str(), &fx.key[..16], signing_secret.as_str(), "header-value-secret", &hex::encode(&digest)]
    {
        assert!(!text.contains(secret), "{secret} leaked into the export");
    }
    let with = export(app, "?include=balances").await;
    assert_eq!(with["includes_balances"], true);
    let b = find(&with, "budgets", "scope", &fx.scope(""));
    assert_eq!(b["balances"], json!({"spent": 40, "reserved": 0, "debt": 0}));
    send(app.admin(Method::GET, "/v1/admin/config/export?include=secrets")).await.expect_error(400, "INVALID_REQUEST");
}

/// A deployment with two tenants, budgets in two states, tenant and system webhooks and a key.
async fn seeded() -> (Fx, String) {
    let fx = Fx::new().await;
    let app = &fx.app;
    allow_loopback_webhooks(app).await;
    fx.budget("", 5_000).await;
    fx.budget_with(
        "/workspace:eng",
        USD,
        2_000,
        json!({"commit_overage_policy": "ALLOW_WITH_OVERDRAFT",
        "overdraft_limit": {"unit": USD, "amount": 300}, "rollover_policy": "CARRY_FORWARD",
        "period_start": "2026-01-01T00:00:00Z", "period_end": "2026-02-01T00:00:00Z"}),
    )
    .await;
    let q = [("scope", fx.scope("/workspace:eng")), ("unit", USD.to_string())];
    let r = send(app.admin(Method::POST, "/v1/admin/budgets/freeze").query(&q).json(&json!({"reason": "r"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = fx.reserved("r1", json!({}), 100).await;
    fx.commit(&id, "c1", 70).await;
    let other = tenant_id("other");
    let r = send(app.admin(Method::POST, "/v1/admin/tenants").json(&json!({"tenant_id": other, "name": "Other",
        "tier": "pro", "metadata": {"team": "blue"}, "rate_limit_per_second": 5, "rate_limit_burst": 9})))
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{other}")).json(&json!({"status": "SUSPENDED"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    subscribe(app, Some(&fx.tenant), "tenant-hook").await;
    subscribe(app, None, "system-hook").await;
    let gold = json!({"tier": "gold", "description": "Gold customers", "admission_class": "premium",
        "rate_limit_per_second": 300, "default_budgets": [{"scope": "", "unit": USD, "allocated": {"unit": USD, "amount": 500}}]});
    let r = send(app.admin(Method::POST, "/v1/admin/tiers").json(&gold)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let policy = json!({"tenant_id": fx.tenant, "name": "eng caps", "scope_pattern": format!("tenant:{}/workspace:eng/*", fx.tenant),
        "priority": 10, "caps": {"max_tokens": 4096}, "denied_action_kinds": ["payment.charge"]});
    let r = send(app.admin(Method::POST, "/v1/admin/policies").json(&policy)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    (fx, other)
}

#[tokio::test]
async fn an_export_imported_into_a_fresh_deployment_reproduces_it() {
    let (fx, _) = seeded().await;
    let source = export(&fx.app, "?include=balances").await;
    let fresh = TestApp::spawn().await;
    allow_loopback_webhooks(&fresh).await;
    let r = import(&fresh, "?mode=merge", &source).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["applied"], true);
    assert_eq!(r.body["changes"]["tenants"]["create"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["changes"]["budgets"]["create"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["changes"]["webhooks"]["create"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["changes"]["tiers"]["create"], json!(["gold"]));
    assert_eq!(r.body["changes"]["policies"]["create"].as_array().unwrap().len(), 1);
    let skipped = r.body["changes"]["api_keys"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "keys are never created by an import: {}", r.text);
    let copy = export(&fresh, "?include=balances").await;
    assert_eq!(portable(copy.clone()), portable(source.clone()));
    // The imported deployment works: the suspended tenant is refused, the budgets hold.
    let mirror: String = {
        let client = redis::Client::open(fresh.env.redis_url.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let key = format!("{}:{{t:{}}}:tenant", fresh.env.redis_prefix, fx.tenant);
        redis::cmd("HGET").arg(key).arg("status").query_async(&mut c).await.unwrap()
    };
    assert_eq!(mirror, "ACTIVE");
    let again = import(&fresh, "?mode=merge", &source).await;
    assert_eq!(again.status, 200, "{}", again.text);
    for kind in ["tiers", "tenants", "budgets", "webhooks", "policies"] {
        let d = &again.body["changes"][kind];
        assert!(
            d["create"].as_array().unwrap().is_empty() && d["update"].as_array().unwrap().is_empty(),
            "{kind}: {d}"
        );
    }
    assert_eq!(again.body["applied"], false, "a second import of the same snapshot changes nothing");
}

#[tokio::test]
async fn a_dry_run_answers_the_diff_and_changes_nothing() {
    let (fx, other) = seeded().await;
    let app = &fx.app;
    let before = export(app, "?include=balances").await;
    let audited = import_audit_entries(app).await;
    let mut snap = before.clone();
    let newcomer = tenant_id("new");
    let mut t = find(&before, "tenants", "tenant_id", &other).clone();
    t["tenant_id"] = json!(newcomer);
    t["status"] = json!("ACTIVE");
    snap["tenants"].as_array_mut().unwrap().push(t);
    let b = snap["budgets"].as_array_mut().unwrap().iter_mut().find(|b| b["scope"] == fx.scope("")).unwrap();
    b["allocated"] = json!(9_000);
    let hooks = snap["webhooks"].as_array_mut().unwrap();
    let dropped = hooks.remove(0)["subscription_id"].as_str().unwrap().to_string();
    let r = import(app, "?mode=replace&dry_run=true", &snap).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["dry_run"].as_bool(), r.body["applied"].as_bool()), (Some(true), Some(false)));
    let c = &r.body["changes"];
    assert_eq!(c["tenants"]["create"], json!([newcomer]));
    assert_eq!(c["tenants"]["update"], json!([]));
    assert_eq!(c["tenants"]["unchanged"], 2);
    assert_eq!(c["budgets"]["update"], json!([format!("{}|{USD}", fx.scope(""))]));
    assert_eq!(c["budgets"]["unchanged"], 1);
    assert_eq!(c["webhooks"]["delete"], json!([dropped]));
    assert_eq!(c["api_keys"]["unchanged"], 1);
    assert_eq!(portable(export(app, "?include=balances").await), portable(before));
    assert_eq!(import_audit_entries(app).await, audited, "a dry run writes no audit entry");
}

#[tokio::test]
async fn merge_keeps_what_the_snapshot_lacks_and_replace_closes_revokes_and_deletes_it() {
    let (fx, other) = seeded().await;
    let app = &fx.app;
    let full = export(app, "").await;
    // A snapshot of the first tenant only, its top budget raised.
    let mut only = full.clone();
    only["tenants"] = json!([find(&full, "tenants", "tenant_id", &fx.tenant)]);
    only["budgets"] = json!([find(&full, "budgets", "scope", &fx.scope(""))]);
    only["budgets"][0]["allocated"] = json!(7_000);
    only["webhooks"] =
        json!(section(&full, "webhooks").iter().filter(|w| w["tenant_id"] == fx.tenant.as_str()).collect::<Vec<_>>());
    let r = import(app, "?mode=merge", &only).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = export(app, "").await;
    assert_eq!(find(&after, "budgets", "scope", &fx.scope(""))["allocated"], 7_000);
    assert_eq!(find(&after, "tenants", "tenant_id", &other)["status"], "SUSPENDED", "merge leaves other tenants");
    assert_eq!(find(&after, "budgets", "scope", &fx.scope("/workspace:eng"))["status"], "FROZEN");
    assert_eq!(section(&after, "webhooks").len(), 2);
    assert_eq!(import_audit_entries(app).await, 1, "one entry per change");

    only["api_keys"] = json!([]);
    let r = import(app, "?mode=replace", &only).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = &r.body["changes"];
    assert_eq!(c["tenants"]["delete"], json!([other]));
    assert_eq!(c["budgets"]["delete"], json!([format!("{}|{USD}", fx.scope("/workspace:eng"))]));
    assert_eq!(c["webhooks"]["delete"].as_array().unwrap().len(), 1, "the system webhook: {c}");
    assert_eq!(c["api_keys"]["delete"].as_array().unwrap().len(), 1);
    let after = export(app, "").await;
    assert_eq!(find(&after, "tenants", "tenant_id", &other)["status"], "CLOSED", "closed, never erased");
    assert_eq!(find(&after, "budgets", "scope", &fx.scope("/workspace:eng"))["status"], "CLOSED");
    assert_eq!(section(&after, "webhooks").len(), 1);
    assert_eq!(section(&after, "api_keys")[0]["status"], "REVOKED");
    fx.reserve("after-revoke", json!({}), 1).await.expect_error(401, "UNAUTHORIZED");
    let changes = 1 + 4;
    assert_eq!(import_audit_entries(app).await, changes, "one entry per change");
}

#[tokio::test]
async fn one_bad_object_refuses_the_whole_import_naming_it_and_its_field() {
    let (fx, _) = seeded().await;
    let app = &fx.app;
    let before = export(app, "?include=balances").await;
    let mut snap = before.clone();
    let newcomer = tenant_id("new");
    let mut t = section(&before, "tenants")[0].clone();
    t["tenant_id"] = json!(newcomer);
    snap["tenants"].as_array_mut().unwrap().push(t);
    let mut b = find(&before, "budgets", "scope", &fx.scope("")).clone();
    b["tenant_id"] = json!(newcomer);
    b["scope"] = json!(format!("tenant:{newcomer}"));
    b["rollover_policy"] = json!("SOMETIMES");
    snap["budgets"].as_array_mut().unwrap().push(b);
    let r = import(app, "?mode=merge", &snap).await;
    let message = r.expect_error(400, "INVALID_REQUEST");
    let field = format!("budgets[tenant:{newcomer}|{USD}].rollover_policy");
    assert!(message.starts_with(&field), "{message}");
    assert_eq!(r.body["details"]["field"], field);
    assert_eq!(portable(export(app, "?include=balances").await), portable(before.clone()));
    assert_eq!(import_audit_entries(app).await, 0);
    // A field the document cannot even parse is named by its path.
    snap["budgets"][0]["allocated"] = json!(-1);
    let r = import(app, "", &snap).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").starts_with("budgets[0].allocated"), "{}", r.text);
    let r = import(app, "?mode=sideways", &before).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").starts_with("mode"));
    let mut wrong = before.clone();
    wrong["format_version"] = json!(2);
    assert!(import(app, "", &wrong).await.expect_error(400, "INVALID_REQUEST").starts_with("format_version"));
}

/// Reads one field of a tenant's Redis mirror.
async fn mirror_field(redis_url: &str, prefix: &str, tenant: &str, field: &str) -> Option<String> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("HGET").arg(format!("{prefix}:{{t:{tenant}}}:tenant")).arg(field).query_async(&mut c).await.ok()?
}

async fn budget_members(redis_url: &str, prefix: &str, tenant: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ZRANGE")
        .arg(format!("{prefix}:{{t:{tenant}}}:budgets"))
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap()
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a child process this test started and still owns.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "signal {sig} to redis-server");
}

/// The import is held on a webhook row this test locks, after it wrote the tenant mirror to
/// Redis and before it writes the budgets; Redis is stopped (SIGSTOP) meanwhile, so the budget
/// write fails and so does the immediate undo. Once Redis runs again the recovery pass puts the
/// mirror back, and Postgres never saw the import.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_stopped_mid_import_leaves_both_stores_as_they_were() {
    let redis = PrivateRedis::start().await;
    let (port, pid) = (redis.port, redis.child.id().unwrap());
    let url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::spawn_with(|c| {
        c.redis_url = format!("redis://127.0.0.1:{port}");
        c.redis_timeout_ms = 300;
    })
    .await;
    let fx = Fx::on(app).await;
    let app = &fx.app;
    allow_loopback_webhooks(app).await;
    let (hook, _) = subscribe(app, Some(&fx.tenant), "held").await;
    let before = export(app, "").await;
    let prefix = app.env.redis_prefix.clone();
    assert_eq!(mirror_field(&url, &prefix, &fx.tenant, "tier").await.as_deref(), Some("free"));

    let mut snap = before.clone();
    snap["tenants"][0]["tier"] = json!("pro");
    snap["webhooks"][0]["name"] = json!("renamed");
    snap["budgets"] = json!([{"tenant_id": fx.tenant, "scope": fx.scope(""), "unit": USD, "allocated": 10,
        "overdraft_limit": 0, "status": "ACTIVE", "rollover_policy": "NONE"}]);
    let mut lock = app.pg.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM webhook_subscriptions WHERE subscription_id = $1 FOR UPDATE")
        .bind(&hook)
        .execute(&mut *lock)
        .await
        .unwrap();
    let request = app.admin(Method::POST, "/v1/admin/config/import?mode=merge").json(&snap);
    let pending = tokio::spawn(send(request));
    let mirrored = eventually(Duration::from_secs(10), || async {
        mirror_field(&url, &prefix, &fx.tenant, "tier").await.as_deref() == Some("pro")
    })
    .await;
    assert!(mirrored, "the import wrote the mirror, then waited on the locked webhook");
    signal(pid, libc::SIGSTOP);
    lock.rollback().await.unwrap();
    let r = pending.await.unwrap();
    assert_ne!(r.status, 200, "{}", r.text);
    signal(pid, libc::SIGCONT);

    let restored = eventually(Duration::from_secs(15), || async {
        mirror_field(&url, &prefix, &fx.tenant, "tier").await.as_deref() == Some("free")
    })
    .await;
    assert!(restored, "the recovery pass put the mirror back");
    // The pass clears the journal right after it has put Redis back.
    let cleared = eventually(Duration::from_secs(15), || async {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM config_import_journal").fetch_one(&app.pg).await.unwrap();
        left == 0
    })
    .await;
    assert!(cleared, "the recovery pass cleared the journal");
    assert!(budget_members(&url, &prefix, &fx.tenant).await.is_empty(), "no budget was written");
    assert_eq!(portable(export(app, "").await), portable(before));
    assert_eq!(import_audit_entries(app).await, 0);
    drop(redis);
}

/// The commit itself fails (a deferred constraint trigger refuses it) after every Redis write
/// succeeded: the import undoes them at once.
#[tokio::test]
async fn a_commit_that_fails_after_the_redis_writes_undoes_them() {
    let fx = Fx::new().await;
    let app = &fx.app;
    fx.budget("", 1_000).await;
    let before = export(app, "?include=balances").await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'refused at commit'; END $$; \
         CREATE CONSTRAINT TRIGGER refuse_commit AFTER UPDATE ON tenants DEFERRABLE INITIALLY DEFERRED \
         FOR EACH ROW EXECUTE FUNCTION refuse_commit();",
    )
    .execute(&app.pg)
    .await
    .unwrap();
    let mut snap = before.clone();
    snap["tenants"][0]["tier"] = json!("enterprise");
    snap["budgets"][0]["allocated"] = json!(5_000);
    snap["budgets"][0]["balances"]["spent"] = json!(10);
    snap["budgets"].as_array_mut().unwrap().push(json!({"tenant_id": fx.tenant, "scope": fx.scope("/agent:a"),
        "unit": USD, "allocated": 10, "overdraft_limit": 0, "status": "ACTIVE", "rollover_policy": "NONE"}));
    let r = import(app, "", &snap).await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(portable(export(app, "?include=balances").await), portable(before));
    let (url, prefix) = (app.env.redis_url.clone(), app.env.redis_prefix.clone());
    assert_eq!(mirror_field(&url, &prefix, &fx.tenant, "tier").await.as_deref(), Some("free"));
    assert_eq!(budget_members(&url, &prefix, &fx.tenant).await, vec![format!("{}|{USD}", fx.scope(""))]);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM config_import_journal").fetch_one(&app.pg).await.unwrap();
    assert_eq!(left, 0);
    assert_eq!(import_audit_entries(app).await, 0);
}

#[tokio::test]
async fn only_platform_principals_with_the_config_permissions_may_export_or_import() {
    let app = TestApp::spawn().await;
    let tenant = tenant_id("scoped");
    app.create_tenant(&tenant).await;
    let p = send(
        app.admin(Method::POST, "/v1/admin/principals")
            .json(&json!({"type": "user", "name": "t", "tenant_id": tenant})),
    )
    .await;
    let pid = p.body["principal_id"].as_str().unwrap().to_string();
    send(
        app.admin(Method::POST, &format!("/v1/admin/principals/{pid}/roles")).json(&json!({"role_id": "tenant-admin"})),
    )
    .await;
    let tok =
        send(app.admin(Method::POST, &format!("/v1/admin/principals/{pid}/api-keys")).json(&json!({"name": "x"})))
            .await;
    let token = tok.body["key_secret"].as_str().unwrap().to_string();
    let r = send(app.client.get(app.admin_url("/v1/admin/config/export")).bearer_auth(&token)).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let body = json!({"format": "tollgate.config", "format_version": 1});
    let r = send(app.client.post(app.admin_url("/v1/admin/config/import")).bearer_auth(&token).json(&body)).await;
    assert_eq!(r.status, 403, "{}", r.text);
}

#[tokio::test]
async fn a_snapshot_larger_than_the_usual_body_limit_is_read_whole() {
    let app = TestApp::spawn().await;
    let tenants: Vec<Value> = (0..400)
        .map(|i| {
            json!({"tenant_id": format!("bulk-{i:04}"), "name": format!("Bulk tenant number {i} of a large snapshot"),
                "status": "ACTIVE", "tier": "free", "default_commit_overage_policy": "REJECT",
                "default_reservation_ttl_ms": 60_000, "max_reservation_ttl_ms": 3_600_000,
                "max_reservation_extensions": 10, "reservation_expiry_policy": "AUTO_RELEASE"})
        })
        .collect();
    let snap = json!({"format": "tollgate.config", "format_version": 1, "tenants": tenants});
    assert!(snap.to_string().len() > 64 * 1024);
    let r = import(&app, "?dry_run=true", &snap).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["changes"]["tenants"]["create"].as_array().unwrap().len(), 400);
    assert!(section(&export(&app, "").await, "tenants").is_empty(), "a dry run creates nothing");
}
