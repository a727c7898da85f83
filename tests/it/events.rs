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
    let found = eventually(Duration::from_secs(10), || async {
        events_of(app, tenant).await.iter().any(|e| e["event_type"] == kind)
    })
    .await;
    assert!(found, "no {kind} event for {tenant}; have {:?}", types(&events_of(app, tenant).await));
    events_of(app, tenant).await
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
