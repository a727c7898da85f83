//! Commit, release, extend, expiry and usage events (RUNTIME-CHECKLIST §2 D, F, G, H, K).

use std::time::Duration;

use serde_json::json;

use crate::fixture::{Fx, USD, amt, assert_invariant, on_redis_and_cluster};
use crate::helpers::eventually;

// R-F1, R-D1, R-F7: a commit below the estimate charges the actual and releases the rest.
on_redis_and_cluster! {
    async fn committing_less_than_reserved_charges_the_actual_and_releases_the_rest(fx: Fx) {
        fx.budget("", 1000).await;
        let id = fx.reserved("r", json!({"agent": "a"}), 300).await;
        let c = fx.commit(&id, "c", 120).await;
        assert_eq!(c.status, 200, "{}", c.text);
        assert_eq!(c.body["status"], "COMMITTED");
        assert_eq!((amt(&c.body, "charged"), amt(&c.body, "released")), (120, 180));
        let b = &c.body["balances"][0];
        assert_eq!((amt(b, "spent"), amt(b, "reserved"), amt(b, "remaining")), (120, 0, 880));
        assert_invariant(b);
        let got = fx.get(&format!("/v1/reservations/{id}")).await;
        assert_eq!(got.body["status"], "COMMITTED");
        assert_eq!(amt(&got.body, "committed"), 120);
        assert!(got.body["finalized_at_ms"].as_i64().is_some());
    }
}

// R-F1: committing 0 is a full release recorded as COMMITTED with charged 0.
#[tokio::test]
async fn committing_zero_records_a_commit_that_charges_nothing() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let id = fx.reserved("r", json!({}), 40).await;
    let c = fx.commit(&id, "c", 0).await;
    assert_eq!((amt(&c.body, "charged"), amt(&c.body, "released")), (0, 40));
    assert_eq!(amt(&fx.ledger("", USD).await, "remaining"), 100);
}

// R-F2: under REJECT an actual above the estimate is 409 BUDGET_EXCEEDED and changes nothing.
#[tokio::test]
async fn an_overage_under_reject_is_409_and_changes_nothing() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    let r = fx.reserve_with("r", json!({}), 100, json!({"overage_policy": "REJECT"})).await;
    let id = r.body["reservation_id"].as_str().unwrap();
    fx.commit(id, "c", 101).await.expect_error(409, "BUDGET_EXCEEDED");
    let b = fx.ledger("", USD).await;
    assert_eq!((amt(&b, "reserved"), amt(&b, "spent")), (100, 0));
    assert_eq!(fx.commit(id, "c2", 100).await.status, 200, "the reservation is still ACTIVE");
}

// R-F3, R-D4, EC-10: ALLOW_IF_AVAILABLE caps the overage at what every scope has left, never
// creates debt, and marks the scopes that could not cover it over-limit.
#[tokio::test]
async fn an_overage_under_allow_if_available_is_capped_and_marks_the_short_scope_over_limit() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    fx.budget("/agent:a", 120).await;
    let id = fx.reserved("r", json!({"agent": "a"}), 100).await;
    let c = fx.commit(&id, "c", 150).await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(amt(&c.body, "charged"), 120, "estimate + the 20 the agent scope had left");
    let agent = fx.ledger("/agent:a", USD).await;
    assert_eq!((amt(&agent, "spent"), amt(&agent, "debt"), amt(&agent, "remaining")), (120, 0, 0));
    assert_eq!(agent["is_over_limit"], true);
    let tenant = fx.ledger("", USD).await;
    assert_eq!((amt(&tenant, "spent"), tenant["is_over_limit"].clone()), (120, json!(false)));
    assert_invariant(&agent);
    assert_invariant(&tenant);
    fx.reserve("r2", json!({"agent": "a"}), 0).await.expect_error(409, "OVERDRAFT_LIMIT_EXCEEDED");
}

// R-F4, EC-9, EC-11: ALLOW_WITH_OVERDRAFT records the unfunded part as debt within the limit;
// beyond the limit it is 409 OVERDRAFT_LIMIT_EXCEEDED with nothing written.
on_redis_and_cluster! {
    async fn an_overage_under_allow_with_overdraft_becomes_debt_within_the_limit(fx: Fx) {
        fx.budget_with("", USD, 100, json!({"overdraft_limit": {"unit": USD, "amount": 50}})).await;
        let policy = json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"});
        let r1 = fx.reserve_with("r1", json!({}), 80, policy.clone()).await;
        let id1 = r1.body["reservation_id"].as_str().unwrap();
        let c = fx.commit(id1, "c1", 120).await;
        assert_eq!(amt(&c.body, "charged"), 120, "{}", c.text);
        let b = fx.ledger("", USD).await;
        assert_eq!((amt(&b, "spent"), amt(&b, "debt"), amt(&b, "remaining")), (100, 20, -20));
        assert_invariant(&b);
        fx.fund("", "CREDIT", 100).await;
        let r2 = fx.reserve_with("r2", json!({}), 10, policy).await;
        let id2 = r2.body["reservation_id"].as_str().unwrap().to_string();
        let before = fx.ledger("", USD).await;
        let over = fx.commit(&id2, "c2", 10 + 70 + 31).await;
        over.expect_error(409, "OVERDRAFT_LIMIT_EXCEEDED");
        assert_eq!(fx.ledger("", USD).await, before, "a refused commit writes nothing");
    }
}

// R-G1: release returns the whole estimate; releasing twice (another key) is 409 FINALIZED.
on_redis_and_cluster! {
    async fn release_returns_the_whole_hold_once(fx: Fx) {
        fx.budget("", 100).await;
        let id = fx.reserved("r", json!({}), 70).await;
        let rel = fx.release(&id, "rel").await;
        assert_eq!((rel.body["status"].clone(), amt(&rel.body, "released")), (json!("RELEASED"), 70), "{}", rel.text);
        assert_eq!(amt(&fx.ledger("", USD).await, "remaining"), 100);
        fx.release(&id, "rel-2").await.expect_error(409, "RESERVATION_FINALIZED");
        fx.commit(&id, "c", 1).await.expect_error(409, "RESERVATION_FINALIZED");
        fx.extend(&id, "e", 1000).await.expect_error(409, "RESERVATION_FINALIZED");
    }
}

// R-C1: the commit's unit must be the reservation's: 400 UNIT_MISMATCH.
#[tokio::test]
async fn a_commit_in_another_unit_is_400_unit_mismatch() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let id = fx.reserved("r", json!({}), 10).await;
    let r = fx
        .post(
            &format!("/v1/reservations/{id}/commit"),
            json!({"idempotency_key": "c", "actual": {"unit": "TOKENS", "amount": 1}}),
        )
        .await;
    r.expect_error(400, "UNIT_MISMATCH");
}

// R-G2, R-G3, R-G4, R-L7: extend adds to the current expiry, counts against the tenant's
// maximum extensions, and its replay returns the original expiry.
on_redis_and_cluster! {
    async fn extend_moves_the_expiry_from_its_current_value_up_to_the_extension_limit(fx: Fx) {
        fx.budget("", 100).await;
        crate::helpers::send(
            fx.app
                .admin(reqwest::Method::PATCH, &format!("/v1/admin/tenants/{}", fx.tenant))
                .json(&json!({"max_reservation_extensions": 2})),
        )
        .await;
        let r = fx.reserve_with("r", json!({}), 10, json!({"ttl_ms": 10000})).await;
        let id = r.body["reservation_id"].as_str().unwrap();
        let expires = r.body["expires_at_ms"].as_i64().unwrap();
        let e1 = fx.extend(id, "e1", 5000).await;
        assert_eq!(e1.body["status"], "ACTIVE", "{}", e1.text);
        assert_eq!(e1.body["expires_at_ms"].as_i64().unwrap(), expires + 5000);
        assert!(e1.body["remaining_ttl_ms"].as_i64().unwrap() > 10000);
        let replay = fx.extend(id, "e1", 5000).await;
        assert_eq!(replay.body["expires_at_ms"], e1.body["expires_at_ms"], "not applied twice");
        let e2 = fx.extend(id, "e2", 1000).await;
        assert_eq!(e2.body["expires_at_ms"].as_i64().unwrap(), expires + 6000);
        fx.extend(id, "e3", 1000).await.expect_error(409, "MAX_EXTENSIONS_EXCEEDED");
        let got = fx.get(&format!("/v1/reservations/{id}")).await;
        assert_eq!(got.body["expires_at_ms"].as_i64().unwrap(), expires + 6000);
        assert_eq!(amt(&got.body, "reserved"), 10, "extend never changes the amount");
    }
}

// R-G5, R-G6, R-K2, R-K4, EC-18: past expires_at + grace a reservation is refused with 410,
// the sweeper expires it and returns its hold exactly once; GET is 410, the list shows it.
on_redis_and_cluster! {
    async fn an_expired_reservation_returns_its_hold_once_and_answers_410(fx: Fx) {
        fx.budget("", 100).await;
        let r = fx.reserve_with("r", json!({}), 60, json!({"ttl_ms": 1000, "grace_period_ms": 0})).await;
        let id = r.body["reservation_id"].as_str().unwrap().to_string();
        let path = format!("/v1/reservations/{id}");
        let expired = eventually(Duration::from_secs(10), || async { fx.get(&path).await.status == 410 }).await;
        assert!(expired, "the sweeper expired the reservation");
        fx.get(&path).await.expect_error(410, "RESERVATION_EXPIRED");
        fx.commit(&id, "c", 1).await.expect_error(410, "RESERVATION_EXPIRED");
        fx.release(&id, "rel").await.expect_error(410, "RESERVATION_EXPIRED");
        fx.extend(&id, "e", 1000).await.expect_error(410, "RESERVATION_EXPIRED");
        let b = fx.ledger("", USD).await;
        assert_eq!((amt(&b, "reserved"), amt(&b, "remaining")), (0, 100));
        let listed = fx.get("/v1/reservations?status=EXPIRED").await;
        assert_eq!(listed.status, 200);
        assert_eq!(listed.body["reservations"][0]["reservation_id"], id.as_str());
        assert!(listed.body["reservations"][0].get("finalized_at_ms").is_none());
    }
}

// R-K2, R-K3, EC-13: grace applies to commit but not to extend.
#[tokio::test]
async fn grace_lets_a_late_commit_through_but_not_an_extend() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let r = fx.reserve_with("r", json!({}), 10, json!({"ttl_ms": 1000, "grace_period_ms": 60000})).await;
    let id = r.body["reservation_id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fx.extend(id, "e", 1000).await.expect_error(410, "RESERVATION_EXPIRED");
    let c = fx.commit(id, "c", 5).await;
    assert_eq!(c.status, 200, "within grace: {}", c.text);
}

// R-H1..R-H4, R-G7: a usage event debits every budgeted scope (201), caps under
// ALLOW_IF_AVAILABLE, refuses under REJECT, and is not blocked by over-limit.
on_redis_and_cluster! {
    async fn usage_events_debit_every_budgeted_scope_under_their_policy(fx: Fx) {
        fx.budget("", 1000).await;
        fx.budget("/agent:a", 50).await;
        let e = fx.event("e1", json!({"agent": "a"}), 30, json!({})).await;
        assert_eq!(e.status, 201, "{}", e.text);
        assert_eq!(e.body["status"], "APPLIED");
        assert!(e.body["event_id"].as_str().unwrap().starts_with("evt_"));
        assert!(e.body.get("charged").is_none(), "charged only when capped");
        fx.event("e2", json!({"agent": "a"}), 21, json!({"overage_policy": "REJECT"}))
            .await
            .expect_error(409, "BUDGET_EXCEEDED");
        let capped = fx.event("e3", json!({"agent": "a"}), 25, json!({})).await;
        assert_eq!(amt(&capped.body, "charged"), 20, "{}", capped.text);
        let agent = fx.ledger("/agent:a", USD).await;
        assert_eq!((amt(&agent, "spent"), agent["is_over_limit"].clone()), (50, json!(true)));
        let after = fx.event("e4", json!({"agent": "a"}), 0, json!({})).await;
        assert_eq!(after.status, 201, "over-limit blocks reservations, not events");
        assert_eq!(amt(&fx.ledger("", USD).await, "spent"), 50);
        let none = fx.event("e5", json!({"agent": "zzz", "workspace": "x"}), 1, json!({})).await;
        assert_eq!(none.status, 201, "the tenant scope is budgeted");
    }
}
