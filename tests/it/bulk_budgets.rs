//! `POST /v1/admin/budgets/bulk-action`: one funding operation over a tenant's filtered
//! budgets, with per-row outcomes, gates, replay, one audit entry and per-row events carrying
//! `budget_bulk_action:<action>:<request id>`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::bulk_tenants::{bulk, correlated, ids};
use crate::fixture::{Fx, USD, amt};
use crate::helpers::{Reply, eventually, send};

async fn budgets_bulk(fx: &Fx, body: Value) -> Reply {
    bulk(&fx.app, "/v1/admin/budgets/bulk-action", body).await
}

fn usd(n: i64) -> Value {
    json!({"unit": USD, "amount": n})
}

async fn ledger_id(fx: &Fx, suffix: &str, unit: &str) -> String {
    fx.ledger(suffix, unit).await["ledger_id"].as_str().unwrap().to_string()
}

async fn freeze(fx: &Fx, suffix: &str) {
    let r = send(
        fx.app
            .admin(Method::POST, "/v1/admin/budgets/freeze")
            .query(&[("scope", fx.scope(suffix)), ("unit", USD.into())])
            .json(&json!({})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Waits until `n` events carry `correlation`, and returns them.
async fn events_under(fx: &Fx, correlation: &str, n: usize) -> Vec<Value> {
    let arrived =
        eventually(Duration::from_secs(10), || async { correlated(&fx.app, correlation).await.len() >= n }).await;
    let events = correlated(&fx.app, correlation).await;
    assert!(arrived, "{n} events under {correlation}: {events:?}");
    events
}

#[tokio::test]
async fn a_bulk_credit_funds_matching_budgets_fails_other_units_and_frozen_ones_and_replays() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    fx.budget("/app:a", 1000).await;
    assert_eq!(fx.budget_with("/app:b", "TOKENS", 1000, json!({})).await.status, 201);
    fx.budget("/app:c", 1000).await;
    freeze(&fx, "/app:c").await;
    let (top, a, b, c) = (
        ledger_id(&fx, "", USD).await,
        ledger_id(&fx, "/app:a", USD).await,
        ledger_id(&fx, "/app:b", "TOKENS").await,
        ledger_id(&fx, "/app:c", USD).await,
    );
    let body = json!({
        "filter": {"tenant_id": fx.tenant}, "action": "CREDIT", "amount": usd(100), "reason": "top-up",
        "expected_count": 4, "idempotency_key": "credit-1",
    });
    let r = budgets_bulk(&fx, body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["total_matched"], 4);
    let mut expected = vec![top.clone(), a.clone()];
    expected.sort();
    assert_eq!(ids(&r, "succeeded"), expected);
    let mut failed = vec![b, c];
    failed.sort();
    assert_eq!(ids(&r, "failed"), failed);
    for row in r.body["failed"].as_array().unwrap() {
        assert_eq!(row["error_code"], "INVALID_TRANSITION", "{row}");
    }
    assert_eq!(amt(&fx.ledger("", USD).await, "allocated"), 1100);
    assert_eq!(amt(&fx.ledger("/app:a", USD).await, "allocated"), 1100);
    assert_eq!(amt(&fx.ledger("/app:c", USD).await, "allocated"), 1000);

    let rq = r.header("x-request-id").to_string();
    let events = events_under(&fx, &format!("budget_bulk_action:credit:{rq}"), 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e["event_type"] == "budget.funded" && e["request_id"] == rq.as_str()));
    let entries = fx.app.audit(&format!("request_id={rq}")).await;
    assert_eq!(entries.len(), 1, "one audit entry per invocation: {entries:?}");
    assert_eq!(entries[0]["operation"], "bulkActionBudgets");
    assert_eq!(entries[0]["tenant_id"], fx.tenant.as_str());
    assert_eq!(entries[0]["metadata"]["reason"], "top-up");
    assert_eq!(entries[0]["metadata"]["failed"], r.body["failed"]);

    let replay = budgets_bulk(&fx, body).await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.body, r.body);
    assert_eq!(amt(&fx.ledger("", USD).await, "allocated"), 1100, "a replay applies nothing");
    let other = budgets_bulk(
        &fx,
        json!({"filter": {"tenant_id": fx.tenant}, "action": "DEBIT", "amount": usd(1), "idempotency_key": "credit-1"}),
    )
    .await;
    other.expect_error(409, "IDEMPOTENCY_MISMATCH");
}

#[tokio::test]
async fn a_bulk_debit_fails_rows_it_would_overdraw_and_repay_debt_skips_rows_without_debt() {
    let fx = Fx::new().await;
    fx.budget("", 2000).await;
    fx.budget("/app:a", 1000).await;
    fx.reserved("hold", json!({"app": "a"}), 500).await;
    let debit = json!({
        "filter": {"tenant_id": fx.tenant, "unit": USD, "status": "ACTIVE"}, "action": "DEBIT", "amount": usd(600),
        "idempotency_key": "debit-1",
    });
    let r = budgets_bulk(&fx, debit).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r, "succeeded"), [ledger_id(&fx, "", USD).await]);
    assert_eq!(r.body["failed"][0]["id"], ledger_id(&fx, "/app:a", USD).await.as_str());
    assert_eq!(r.body["failed"][0]["error_code"], "BUDGET_EXCEEDED");
    assert_eq!(amt(&fx.ledger("", USD).await, "allocated"), 1400);
    assert_eq!(amt(&fx.ledger("/app:a", USD).await, "allocated"), 1000);

    let repay = json!({
        "filter": {"tenant_id": fx.tenant, "has_debt": false}, "action": "REPAY_DEBT", "amount": usd(50),
        "idempotency_key": "repay-1",
    });
    let r = budgets_bulk(&fx, repay).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["total_matched"], 2);
    assert_eq!(r.body["succeeded"], json!([]));
    assert!(r.body["skipped"].as_array().unwrap().iter().all(|s| s["reason"] == "ALREADY_IN_TARGET_STATE"));
    let correlation = format!("budget_bulk_action:repay_debt:{}", r.header("x-request-id"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(correlated(&fx.app, &correlation).await.is_empty(), "skipped rows emit nothing");

    // scope_prefix selects the scope and its descendants only.
    let r = budgets_bulk(
        &fx,
        json!({"filter": {"tenant_id": fx.tenant, "scope_prefix": fx.scope("/app:a")}, "action": "RESET",
               "amount": usd(3000), "idempotency_key": "reset-1"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r, "succeeded"), [ledger_id(&fx, "/app:a", USD).await]);
    assert_eq!(amt(&fx.ledger("/app:a", USD).await, "allocated"), 3000);
    let events = events_under(&fx, &format!("budget_bulk_action:reset:{}", r.header("x-request-id")), 1).await;
    assert_eq!(events[0]["event_type"], "budget.reset");
}

#[tokio::test]
async fn the_budget_gates_refuse_a_stale_count_and_more_than_500_matches_and_write_nothing() {
    let fx = Fx::new().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..501 {
        let rb = fx.app.admin(Method::POST, "/v1/admin/budgets").json(&json!({
            "tenant_id": fx.tenant, "scope": fx.scope(&format!("/agent:a{i}")), "unit": USD, "allocated": usd(10),
        }));
        tasks.spawn(async move { send(rb).await.status.as_u16() });
        if tasks.len() >= 16 {
            assert_eq!(tasks.join_next().await.unwrap().unwrap(), 201);
        }
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 201);
    }
    let credit = |filter: Value, expected: Option<i64>| {
        let mut body = json!({"filter": filter, "action": "CREDIT", "amount": usd(5), "idempotency_key": "gate"});
        if let Some(n) = expected {
            body["expected_count"] = json!(n);
        }
        body
    };
    let r = budgets_bulk(&fx, credit(json!({"tenant_id": fx.tenant}), None)).await;
    r.expect_error(400, "LIMIT_EXCEEDED");
    assert_eq!(r.body["details"]["total_matched"], 501);
    let one = json!({"tenant_id": fx.tenant, "scope_prefix": fx.scope("/agent:a7")});
    let r = budgets_bulk(&fx, credit(one.clone(), Some(2))).await;
    r.expect_error(409, "COUNT_MISMATCH");
    assert_eq!(r.body["details"]["total_matched"], 1);
    assert_eq!(amt(&fx.ledger("/agent:a7", USD).await, "allocated"), 10, "nothing applied");
    assert!(fx.app.audit("operation=bulkActionBudgets").await.is_empty());
    let r = budgets_bulk(&fx, credit(one, Some(1))).await;
    assert_eq!(r.status, 200, "the same key after refusals is still fresh: {}", r.text);
    assert_eq!(amt(&fx.ledger("/agent:a7", USD).await, "allocated"), 15);
}

#[tokio::test]
async fn bad_budget_bulk_input_is_400_naming_the_field_and_a_tenant_bound_principal_acts_only_on_its_tenant() {
    let fx = Fx::new().await;
    let other = Fx::with_tenant(&fx.app).await;
    fx.budget("", 1000).await;
    other.budget("", 1000).await;
    let t = fx.tenant.clone();
    let body = |extra: Value| {
        let mut b = json!({"filter": {"tenant_id": t}, "action": "CREDIT", "amount": usd(1), "idempotency_key": "b"});
        if let (Some(o), Value::Object(e)) = (b.as_object_mut(), extra) {
            o.extend(e);
        }
        b
    };
    let cases = [
        (body(json!({"filter": {"unit": USD}})), "filter.tenant_id"),
        (body(json!({"action": "FREEZE"})), "action"),
        (body(json!({"amount": null})), "amount"),
        (body(json!({"filter": {"tenant_id": t, "unit": "EUR"}})), "filter.unit"),
        (body(json!({"filter": {"tenant_id": t, "status": "OPEN"}})), "filter.status"),
        (
            body(json!({"filter": {"tenant_id": t, "utilization_min": 0.9, "utilization_max": 0.1}})),
            "filter.utilization_min",
        ),
        (body(json!({"filter": {"tenant_id": t, "utilization_max": 1.5}})), "filter.utilization_max"),
        (body(json!({"filter": {"tenant_id": t, "search": "s".repeat(129)}})), "filter.search"),
        (body(json!({"reason": "r".repeat(513)})), "reason"),
        (body(json!({"action": "RESET_SPENT", "spent": {"unit": "TOKENS", "amount": 1}})), "spent.unit"),
        (body(json!({"idempotency_key": ""})), "idempotency_key"),
        (body(json!({"expected_count": -3})), "expected_count"),
    ];
    for (b, field) in cases {
        let r = budgets_bulk(&fx, b.clone()).await;
        r.expect_error(400, "INVALID_REQUEST");
        assert_eq!(r.body["details"]["field"], field, "{b} → {}", r.text);
    }
    budgets_bulk(&fx, body(json!({"filter": {"tenant_id": "no-such-tenant"}})))
        .await
        .expect_error(404, "TENANT_NOT_FOUND");
    assert_eq!(amt(&fx.ledger("", USD).await, "allocated"), 1000, "bad input applies nothing");

    let (_, pat) = crate::access::principal(&fx.app, Some(&t), &["tenant-admin"]).await;
    let as_principal =
        |b: Value| send(crate::access::with_pat(&fx.app, &pat, Method::POST, "/v1/admin/budgets/bulk-action").json(&b));
    let theirs =
        json!({"filter": {"tenant_id": other.tenant}, "action": "CREDIT", "amount": usd(1), "idempotency_key": "p1"});
    as_principal(theirs).await.expect_error(403, "TENANT_SCOPE_VIOLATION");
    assert_eq!(amt(&other.ledger("", USD).await, "allocated"), 1000);
    let mine = as_principal(body(json!({"idempotency_key": "p2"}))).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    let narrowed =
        as_principal(json!({"filter": {}, "action": "CREDIT", "amount": usd(1), "idempotency_key": "p3"})).await;
    assert_eq!(narrowed.status, 200, "an omitted tenant_id is narrowed to the principal's: {}", narrowed.text);
    assert_eq!(amt(&fx.ledger("", USD).await, "allocated"), 1002);
    assert_eq!(amt(&other.ledger("", USD).await, "allocated"), 1000);
}
