//! The event log: ledger events drained from the Redis outboxes and catalogue events written
//! with their change, both served by `GET /v1/admin/events` and the tenant's `GET /v1/events`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD};
use crate::helpers::{TestApp, eventually, send};

/// Every event of `tenant` in time order, read through the admin API (all pages).
pub async fn events_of(app: &TestApp, tenant: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("tenant_id", tenant.to_string()), ("sort_dir", "asc".into()), ("limit", "100".into())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let r = send(app.admin(Method::GET, "/v1/admin/events").query(&q)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        out.extend(r.body["events"].as_array().cloned().unwrap_or_default());
        match r.body["next_cursor"].as_str() {
            Some(c) if r.body["has_more"] == true => cursor = Some(c.to_string()),
            _ => return out,
        }
    }
}

/// Waits until `tenant` has an event of type `kind`, then returns all its events.
pub async fn wait_for_event(app: &TestApp, tenant: &str, kind: &str) -> Vec<Value> {
    let found = eventually(Duration::from_secs(15), || async {
        events_of(app, tenant).await.iter().any(|e| e["event_type"] == kind)
    })
    .await;
    assert!(found, "no {kind} event for {tenant}; have {:?}", types(&events_of(app, tenant).await));
    events_of(app, tenant).await
}

/// The tenant's events of one type (the first 100), as the admin plane lists them.
pub async fn events_of_type(fx: &Fx, event_type: &str) -> Vec<Value> {
    let q = [("tenant_id", fx.tenant.as_str()), ("event_type", event_type), ("limit", "100")];
    let r = send(fx.app.admin(Method::GET, "/v1/admin/events").query(&q)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["events"].as_array().cloned().unwrap_or_default()
}

pub fn types(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["event_type"].as_str().unwrap_or_default().to_string()).collect()
}

// DESIGN.md §Events: each mutation appends its events in the same script, a refused mutation
// appends none but the denial itself, and the drain stores them in Postgres in order.
#[tokio::test]
async fn ledger_mutations_reach_the_event_log_with_the_spec_envelope() {
    let fx = Fx::new().await;
    fx.budget_with("", USD, 100, json!({"overdraft_limit": {"unit": USD, "amount": 50}})).await;
    let r = fx.reserve_with("r", json!({}), 50, json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"})).await;
    let id = r.body["reservation_id"].as_str().unwrap().to_string();
    fx.reserve("r2", json!({}), 51).await.expect_error(409, "BUDGET_EXCEEDED");
    fx.commit(&id, "c", 120).await;
    fx.fund("", "REPAY_DEBT", 20).await;
    let events = wait_for_event(&fx.app, &fx.tenant, "budget.debt_repaid").await;
    let ledger: Vec<String> =
        types(&events).into_iter().filter(|t| t.starts_with("budget.") || t.starts_with("reservation.")).collect();
    assert_eq!(
        ledger,
        vec![
            "budget.created",
            "reservation.denied",
            "budget.threshold_crossed",
            "budget.threshold_crossed",
            "budget.threshold_crossed",
            "budget.debt_incurred",
            "budget.exhausted",
            "reservation.commit_overage",
            "budget.debt_repaid",
        ]
    );
    let find = |kind: &str| events.iter().find(|e| e["event_type"] == kind).cloned().unwrap();
    let overage = find("reservation.commit_overage");
    assert_eq!(overage["category"], "reservation");
    assert_eq!(overage["tenant_id"], fx.tenant);
    assert_eq!(overage["scope"], fx.scope(""));
    assert_eq!(overage["source"], "cycles-server");
    assert_eq!(overage["data"]["estimated_amount"], 50);
    assert_eq!(overage["data"]["actual_amount"], 120);
    assert_eq!(overage["data"]["overage"], 70);
    assert_eq!(overage["data"]["debt_incurred"], 20);
    assert_eq!(overage["data"]["unit"], USD);
    assert!(overage["event_id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(overage["trace_id"].as_str().map(str::len), Some(32));
    assert!(overage["request_id"].is_string());
    let denied = find("reservation.denied");
    assert_eq!(denied["data"]["reason_code"], "BUDGET_EXCEEDED");
    assert_eq!(denied["data"]["requested_amount"], 51);
    let crossings: Vec<f64> = events
        .iter()
        .filter(|e| e["event_type"] == "budget.threshold_crossed")
        .map(|e| e["data"]["threshold"].as_f64().unwrap())
        .collect();
    assert_eq!(crossings, vec![0.8, 0.95, 1.0]);
    let one =
        send(fx.app.admin(Method::GET, &format!("/v1/admin/events/{}", overage["event_id"].as_str().unwrap()))).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body, overage);
    send(fx.app.admin(Method::GET, "/v1/admin/events/evt_missing")).await.expect_error(404, "EVENT_NOT_FOUND");
}

// Catalogue changes write their events in the transaction of the change; a no-op writes none.
#[tokio::test]
async fn tenant_and_key_changes_emit_their_lifecycle_events_once() {
    let app = TestApp::spawn().await;
    let t = crate::helpers::tenant_id("ev");
    app.create_tenant(&t).await;
    let key = app.create_key(&t, json!({})).await;
    let key_id = key["key_id"].as_str().unwrap().to_string();
    let patch = |body: Value| send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{t}")).json(&body));
    assert_eq!(patch(json!({"name": "Renamed"})).await.status, 200);
    assert_eq!(patch(json!({"name": "Renamed"})).await.status, 200);
    assert_eq!(patch(json!({"default_reservation_ttl_ms": 30_000})).await.status, 200);
    assert_eq!(patch(json!({"status": "SUSPENDED"})).await.status, 200);
    assert_eq!(patch(json!({"status": "ACTIVE"})).await.status, 200);
    let r = send(
        app.admin(Method::PATCH, &format!("/v1/admin/api-keys/{key_id}"))
            .json(&json!({"permissions": ["balances:read"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{t}")).json(&json!({"status": "CLOSED"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let closing_request = r.header("x-request-id").to_string();
    let events = events_of(&app, &t).await;
    assert_eq!(
        types(&events),
        vec![
            "tenant.created",
            "api_key.created",
            "tenant.updated",
            "tenant.settings_changed",
            "tenant.suspended",
            "tenant.reactivated",
            "api_key.permissions_changed",
            "tenant.closed",
            "api_key.revoked_via_tenant_cascade",
        ]
    );
    let find = |kind: &str| events.iter().find(|e| e["event_type"] == kind).cloned().unwrap();
    let suspended = find("tenant.suspended");
    assert_eq!(suspended["data"]["previous_status"], "ACTIVE");
    assert_eq!(suspended["data"]["new_status"], "SUSPENDED");
    assert_eq!(suspended["actor"]["type"], "admin");
    assert_eq!(suspended["source"], "cycles-admin");
    assert_eq!(find("api_key.created")["data"]["key_id"], key_id.as_str());
    let correlation = format!("tenant_close_cascade:{t}:{closing_request}");
    let revoked = find("api_key.revoked_via_tenant_cascade");
    assert_eq!(revoked["correlation_id"], correlation.as_str());
    assert_eq!(revoked["data"]["prior_status"], "ACTIVE");
    assert_eq!(revoked["data"]["cascade_reason"], "tenant_closed");
    assert_eq!(find("tenant.closed")["correlation_id"], correlation.as_str());
    // Re-closing finishes nothing new, so it emits nothing.
    let again =
        send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{t}")).json(&json!({"status": "CLOSED"}))).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(events_of(&app, &t).await.len(), events.len());
}

#[tokio::test]
async fn the_tenant_event_view_holds_only_the_tenants_own_budget_reservation_and_tenant_events() {
    let fx = Fx::new().await;
    let other = Fx::with_tenant(&fx.app).await;
    fx.budget("", 100).await;
    other.budget("", 100).await;
    wait_for_event(&fx.app, &fx.tenant, "budget.created").await;
    wait_for_event(&fx.app, &other.tenant, "budget.created").await;
    let reader = fx.app.create_key(&fx.tenant, json!({"permissions": ["events:read"]})).await;
    let secret = reader["key_secret"].as_str().unwrap().to_string();
    let list = |query: &'static str| {
        let url = fx.app.admin_url(&format!("/v1/events{query}"));
        send(fx.app.client.get(url).header("x-cycles-api-key", secret.clone()))
    };
    let r = list("").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen = r.body["events"].as_array().unwrap().clone();
    assert!(seen.iter().any(|e| e["event_type"] == "budget.created"));
    assert!(seen.iter().any(|e| e["event_type"] == "tenant.created"));
    for e in &seen {
        assert_eq!(e["tenant_id"], fx.tenant.as_str(), "{e}");
        let category = e["category"].as_str().unwrap();
        assert!(["budget", "reservation", "tenant"].contains(&category), "{e}");
    }
    assert!(!seen.iter().any(|e| e["event_type"] == "api_key.created"));
    let r = list("?category=budget&limit=1").await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["events"][0]["event_type"], "budget.created");
    list("?category=api_key").await.expect_error(400, "INVALID_REQUEST");
    list("?event_type=webhook.created").await.expect_error(400, "INVALID_REQUEST");
    let no_perm = fx.app.admin_url("/v1/events");
    send(fx.app.client.get(no_perm).header("x-cycles-api-key", &fx.key))
        .await
        .expect_error(403, "INSUFFICIENT_PERMISSIONS");
}

// A threshold crossing is decided inside the script that moves the budget, so it is reported
// once however many instances serve the tenant at once.
#[tokio::test]
async fn a_threshold_crossing_is_reported_once_across_instances() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let second = fx.app.another_instance().await;
    let urls = [fx.app.runtime_url("/v1/reservations"), format!("http://{}/v1/reservations", second.runtime.unwrap())];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let url = urls[i % 2].clone();
        let (client, key) = (fx.app.client.clone(), fx.key.clone());
        let body = fx.reserve_body(&format!("k{i}"), json!({}), 2);
        tasks.push(tokio::spawn(
            async move { send(client.post(url).header("x-cycles-api-key", key).json(&body)).await },
        ));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        ids.push(r.body["reservation_id"].as_str().unwrap().to_string());
    }
    // 40 × 2 = 80%: exactly one rising crossing of 0.80; releasing one falls back below it.
    fx.release(&ids[0], "rel").await;
    let events = wait_for_event(&fx.app, &fx.tenant, "budget.threshold_crossed").await;
    let settled = eventually(Duration::from_secs(5), || async {
        events_of(&fx.app, &fx.tenant).await.iter().filter(|e| e["event_type"] == "budget.threshold_crossed").count()
            >= 2
    })
    .await;
    assert!(settled, "{:?}", types(&events));
    let crossings: Vec<(f64, String)> = events_of(&fx.app, &fx.tenant)
        .await
        .iter()
        .filter(|e| e["event_type"] == "budget.threshold_crossed")
        .map(|e| (e["data"]["threshold"].as_f64().unwrap(), e["data"]["direction"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(crossings, vec![(0.8, "rising".to_string()), (0.8, "falling".to_string())]);
    second.stop().await.unwrap();
}

#[tokio::test]
async fn a_key_that_passes_its_expiry_is_announced_once() {
    let app = TestApp::spawn().await;
    let t = crate::helpers::tenant_id("exp");
    app.create_tenant(&t).await;
    let at = time::OffsetDateTime::now_utc() + Duration::from_secs(1);
    let expires_at = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let key = app.create_key(&t, json!({"expires_at": expires_at})).await;
    let events = wait_for_event(&app, &t, "api_key.expired").await;
    let expired: Vec<&Value> = events.iter().filter(|e| e["event_type"] == "api_key.expired").collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["data"]["key_id"], key["key_id"]);
    assert_eq!(expired[0]["data"]["new_status"], "EXPIRED");
    assert_eq!(expired[0]["actor"]["type"], "system");
}

#[tokio::test]
async fn retention_prunes_old_events_and_finished_deliveries_but_keeps_recent_ones() {
    // Without the event workers, so the engine's own retention pass (it runs at start) cannot
    // prune the rows this test plants before it has planted all of them.
    let app = TestApp::spawn_with(|c| c.events_workers = false).await;
    let t = crate::helpers::tenant_id("ret");
    app.create_tenant(&t).await;
    let insert = |id: &'static str, days_ago: i32| {
        let pg = app.pg.clone();
        let t = t.clone();
        async move {
            sqlx::query(
                "INSERT INTO events (event_id, event_type, category, tenant_id, occurred_at, body) \
                 VALUES ($1, 'tenant.updated', 'tenant', $2, now() - make_interval(days => $3), '{}')",
            )
            .bind(id)
            .bind(&t)
            .bind(days_ago)
            .execute(&pg)
            .await
            .unwrap();
        }
    };
    insert("evt_old", 100).await;
    insert("evt_old_delivered", 100).await;
    insert("evt_recent", 1).await;
    sqlx::query(
        "INSERT INTO webhook_deliveries (delivery_id, subscription_id, event_id, event_type, status, created_at, \
         attempted_at, completed_at) VALUES ('whdel_old', 'whsub_x', 'evt_old_delivered', 'tenant.updated', 'SUCCESS', \
         now() - interval '20 days', now() - interval '20 days', now() - interval '20 days')",
    )
    .execute(&app.pg)
    .await
    .unwrap();
    use tollgate::internals::{PgStore, retention};
    let pg = PgStore::connect(&app.env.database_url, 2).await.unwrap();
    // Events go only once no delivery refers to them; deliveries go first.
    assert_eq!(retention::prune_events(pg.pool(), 90).await.unwrap(), 1);
    assert_eq!(retention::prune_deliveries(pg.pool(), 14).await.unwrap(), 1);
    assert_eq!(retention::prune_events(pg.pool(), 90).await.unwrap(), 1);
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE event_id LIKE 'evt_%' AND tenant_id = $1 AND body = '{}'",
    )
    .bind(&t)
    .fetch_all(&app.pg)
    .await
    .unwrap();
    assert_eq!(left, vec!["evt_recent".to_string()]);
}

#[tokio::test]
async fn the_drain_moves_events_from_a_redis_cluster_ledger() {
    let fx = Fx::cluster().await;
    fx.budget("", 100).await;
    let id = fx.reserved("r", json!({}), 90).await;
    assert_eq!(fx.commit(&id, "c", 90).await.status, 200);
    let events = wait_for_event(&fx.app, &fx.tenant, "budget.threshold_crossed").await;
    assert!(types(&events).contains(&"budget.created".to_string()), "{:?}", types(&events));
}
