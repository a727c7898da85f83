//! The remaining error rows of RUNTIME-CHECKLIST §1.3, and the outbox events that the
//! mutations append in the same script.

use reqwest::Method;
use serde_json::json;

use crate::fixture::{Fx, USD};
use crate::helpers::send;

// §1.3 (4)-(9): id length, unknown ids, schema and idempotency errors on every endpoint.
#[tokio::test]
async fn every_runtime_endpoint_answers_its_error_rows() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let id = fx.reserved("r", json!({}), 10).await;
    let unknown = format!("rsv_{}_{}", fx.tenant, "a".repeat(32));
    fx.get(&format!("/v1/reservations/{}", "x".repeat(129))).await.expect_error(400, "INVALID_REQUEST");
    fx.release(&unknown, "k").await.expect_error(404, "NOT_FOUND");
    fx.extend(&unknown, "k", 1000).await.expect_error(404, "NOT_FOUND");
    let bad_commit = fx.post(&format!("/v1/reservations/{id}/commit"), json!({"idempotency_key": "c"})).await;
    assert!(bad_commit.expect_error(400, "INVALID_REQUEST").contains("actual"));
    let bad_extend =
        fx.post(&format!("/v1/reservations/{id}/extend"), json!({"idempotency_key": "e", "extend_by_ms": 0})).await;
    assert!(bad_extend.expect_error(400, "INVALID_REQUEST").contains("extend_by_ms"));
    let long_reason = fx
        .post(&format!("/v1/reservations/{id}/release"), json!({"idempotency_key": "r", "reason": "x".repeat(257)}))
        .await;
    assert!(long_reason.expect_error(400, "INVALID_REQUEST").contains("reason"));
    assert_eq!(fx.extend(&id, "e1", 1000).await.status, 200);
    fx.extend(&id, "e1", 2000).await.expect_error(409, "IDEMPOTENCY_MISMATCH");
    assert_eq!(fx.release(&id, "r1").await.status, 200);
    fx.post(&format!("/v1/reservations/{id}/release"), json!({"idempotency_key": "r1", "reason": "other"}))
        .await
        .expect_error(409, "IDEMPOTENCY_MISMATCH");
    let decide = |amount: i64| json!({"idempotency_key": "d", "subject": fx.subject(json!({})), "action": {"kind": "k", "name": "n"}, "estimate": {"unit": USD, "amount": amount}});
    assert_eq!(fx.post("/v1/decide", decide(1)).await.status, 200);
    fx.post("/v1/decide", decide(2)).await.expect_error(409, "IDEMPOTENCY_MISMATCH");
    let no_auth = send(fx.app.client.get(fx.app.runtime_url(&format!("/v1/balances?tenant={}", fx.tenant)))).await;
    no_auth.expect_error(401, "UNAUTHORIZED");
}

// §1.3 (9): usage events answer UNIT_MISMATCH, FORBIDDEN, NOT_FOUND, BUDGET_FROZEN,
// OVERDRAFT_LIMIT_EXCEEDED and IDEMPOTENCY_MISMATCH.
#[tokio::test]
async fn usage_events_answer_their_error_rows() {
    let fx = Fx::new().await;
    let missing = fx.event("e0", json!({"agent": "a"}), 1, json!({})).await;
    missing.expect_error(404, "NOT_FOUND");
    fx.budget_with("", "TOKENS", 100, json!({})).await;
    fx.event("e1", json!({}), 1, json!({})).await.expect_error(400, "UNIT_MISMATCH");
    fx.budget_with("/agent:a", USD, 10, json!({"overdraft_limit": {"unit": USD, "amount": 5}})).await;
    let over = fx.event("e2", json!({"agent": "a"}), 16, json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"})).await;
    over.expect_error(409, "OVERDRAFT_LIMIT_EXCEEDED");
    let within = fx.event("e3", json!({"agent": "a"}), 15, json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"})).await;
    assert_eq!(within.status, 201, "{}", within.text);
    fx.event("e3", json!({"agent": "a"}), 14, json!({})).await.expect_error(409, "IDEMPOTENCY_MISMATCH");
    let mut foreign = json!({"idempotency_key": "e4", "subject": {"tenant": "someone-else"}, "action": {"kind": "k", "name": "n"}, "actual": {"unit": USD, "amount": 1}});
    fx.post("/v1/events", foreign.clone()).await.expect_error(403, "FORBIDDEN");
    foreign["subject"] = fx.subject(json!({"agent": "a"}));
    let q = [("scope", fx.scope("/agent:a")), ("unit", USD.to_string())];
    send(fx.app.admin(Method::POST, "/v1/admin/budgets/freeze").query(&q)).await;
    fx.post("/v1/events", foreign).await.expect_error(409, "BUDGET_FROZEN");
}
