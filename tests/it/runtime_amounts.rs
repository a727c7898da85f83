//! Amounts across the whole int64 range: exact, or refused with nothing applied (EC-33).

use reqwest::Method;
use serde_json::json;

use crate::fixture::{Fx, USD, amt, assert_invariant};
use crate::helpers::send;

const MAX: i64 = i64::MAX;

#[tokio::test]
async fn amounts_at_i64_max_are_exact() {
    let fx = Fx::new().await;
    fx.budget("", MAX).await;
    fx.budget("/agent:a", MAX).await;
    let id = fx.reserved("r", json!({"agent": "a"}), MAX).await;
    fx.reserve("r2", json!({"agent": "a"}), 1).await.expect_error(409, "BUDGET_EXCEEDED");
    let c = fx.commit(&id, "c", MAX - 1).await;
    assert_eq!((amt(&c.body, "charged"), amt(&c.body, "released")), (MAX - 1, 1), "{}", c.text);
    let b = fx.ledger("/agent:a", USD).await;
    assert_eq!((amt(&b, "spent"), amt(&b, "remaining")), (MAX - 1, 1));
    assert_invariant(&b);
    let e = fx.event("e", json!({"agent": "a"}), 1, json!({})).await;
    assert_eq!(e.status, 201);
    assert_eq!(amt(&fx.ledger("/agent:a", USD).await, "remaining"), 0);
}

#[tokio::test]
async fn amounts_beyond_i64_are_refused_and_overflow_applies_nothing() {
    let fx = Fx::new().await;
    fx.budget_with("", USD, MAX, json!({"overdraft_limit": {"unit": USD, "amount": MAX}})).await;
    let body = r#"{"idempotency_key":"k","subject":{"agent":"a"},"action":{"kind":"a","name":"b"},"estimate":{"unit":"USD_MICROCENTS","amount":9223372036854775808}}"#;
    let r = send(fx.rt(Method::POST, "/v1/reservations").header("content-type", "application/json").body(body)).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("estimate.amount"));
    let credit = fx.fund("", "CREDIT", 1).await;
    assert!(credit.expect_error(400, "INVALID_REQUEST").contains("overflow"));
    let spend = fx.event("e1", json!({}), MAX, json!({})).await;
    assert_eq!(spend.status, 201, "{}", spend.text);
    let before = fx.ledger("", USD).await;
    let over = fx.event("e2", json!({}), 1, json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"})).await;
    assert!(over.expect_error(400, "INVALID_REQUEST").contains("overflow"));
    assert_eq!(fx.ledger("", USD).await, before, "nothing half-applied");
    assert_invariant(&before);
}
