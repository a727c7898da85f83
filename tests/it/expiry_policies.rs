//! The tenant's `reservation_expiry_policy` (README §Periods and expiry policies), PATCHable:
//! AUTO_RELEASE returns an expired reservation's hold; MANUAL_CLEANUP keeps it until an explicit
//! release, which succeeds after expiry; GRACE_ONLY admits only commits in the grace period,
//! then expires the reservation and returns its hold. Expiry is waited for by polling.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::events::{events_of, wait_for_event};
use crate::fixture::{Fx, USD, amt, on_redis_and_cluster};
use crate::helpers::{eventually, send};
use crate::periods::now_ms;

async fn set_policy(fx: &Fx, policy: &str) -> Value {
    let r = send(
        fx.app
            .admin(Method::PATCH, &format!("/v1/admin/tenants/{}", fx.tenant))
            .json(&json!({"reservation_expiry_policy": policy})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["reservation_expiry_policy"], policy);
    r.body
}

/// Reserves `amount` on `workspace` with a one-second TTL and the given grace.
async fn short(fx: &Fx, key: &str, grace_ms: i64) -> (String, i64) {
    let r = fx
        .reserve_with(key, json!({"workspace": "w"}), 100, json!({"ttl_ms": 1_000, "grace_period_ms": grace_ms}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    (r.body["reservation_id"].as_str().unwrap().to_string(), r.body["expires_at_ms"].as_i64().unwrap())
}

async fn expired_event(fx: &Fx, id: &str) -> Value {
    let found = eventually(Duration::from_secs(20), || async {
        events_of(&fx.app, &fx.tenant)
            .await
            .iter()
            .any(|e| e["event_type"] == "reservation.expired" && e["data"]["reservation_id"] == id)
    })
    .await;
    assert!(found, "{id} never expired");
    events_of(&fx.app, &fx.tenant)
        .await
        .into_iter()
        .find(|e| e["event_type"] == "reservation.expired" && e["data"]["reservation_id"] == id)
        .unwrap()
}

#[tokio::test]
async fn the_expiry_policy_is_patchable_and_a_bad_one_is_refused_naming_the_field() {
    let fx = Fx::new().await;
    let r = send(fx.app.admin(Method::GET, &format!("/v1/admin/tenants/{}", fx.tenant))).await;
    assert_eq!(r.body["reservation_expiry_policy"], "AUTO_RELEASE");
    set_policy(&fx, "GRACE_ONLY").await;
    set_policy(&fx, "MANUAL_CLEANUP").await;
    wait_for_event(&fx.app, &fx.tenant, "tenant.settings_changed").await;
    let bad = send(
        fx.app
            .admin(Method::PATCH, &format!("/v1/admin/tenants/{}", fx.tenant))
            .json(&json!({"reservation_expiry_policy": "SOMETIMES"})),
    )
    .await;
    assert!(bad.expect_error(400, "INVALID_REQUEST").contains("reservation_expiry_policy"), "{}", bad.text);
}

#[tokio::test]
async fn under_auto_release_an_expired_reservation_returns_its_hold_and_a_late_release_is_refused() {
    let fx = Fx::new().await;
    fx.budget("/workspace:w", 1_000).await;
    let (id, _) = short(&fx, "auto", 0).await;
    let e = expired_event(&fx, &id).await;
    assert_eq!(e["data"]["hold_kept"], false, "{e}");
    assert_eq!(amt(&fx.ledger("/workspace:w", USD).await, "reserved"), 0);
    fx.release(&id, "late").await.expect_error(410, "RESERVATION_EXPIRED");
}

on_redis_and_cluster! {
    async fn under_manual_cleanup_an_expired_reservation_keeps_its_hold_until_an_explicit_release_succeeds(fx: Fx) {
        set_policy(&fx, "MANUAL_CLEANUP").await;
        fx.budget("/workspace:w", 1_000).await;
        let (id, _) = short(&fx, "manual", 0).await;
        let e = expired_event(&fx, &id).await;
        assert_eq!(e["data"]["hold_kept"], true, "{e}");
        let b = fx.ledger("/workspace:w", USD).await;
        assert_eq!((amt(&b, "reserved"), amt(&b, "remaining")), (100, 900), "the hold is kept: {b}");
        fx.get(&format!("/v1/reservations/{id}")).await.expect_error(410, "RESERVATION_EXPIRED");
        fx.commit(&id, "late-commit", 50).await.expect_error(410, "RESERVATION_EXPIRED");
        let released = fx.release(&id, "cleanup").await;
        assert_eq!(released.status, 200, "{}", released.text);
        let b = fx.ledger("/workspace:w", USD).await;
        assert_eq!((amt(&b, "reserved"), amt(&b, "remaining")), (0, 1_000), "{b}");
        fx.release(&id, "again").await.expect_error(409, "RESERVATION_FINALIZED");
    }
}

on_redis_and_cluster! {
    async fn under_grace_only_the_grace_period_admits_commits_only_then_the_reservation_expires_returning_its_hold(fx: Fx) {
        set_policy(&fx, "GRACE_ONLY").await;
        fx.budget("/workspace:w", 1_000).await;
        let (committed, expires) = short(&fx, "grace-a", 5_000).await;
        let (released, _) = short(&fx, "grace-b", 5_000).await;
        assert!(eventually(Duration::from_secs(10), || async { now_ms() > expires + 50 }).await);
        let c = fx.commit(&committed, "in-grace", 60).await;
        assert_eq!(c.status, 200, "a commit in the grace period is accepted: {}", c.text);
        fx.release(&released, "in-grace").await.expect_error(410, "RESERVATION_EXPIRED");
        let e = expired_event(&fx, &released).await;
        assert_eq!(e["data"]["hold_kept"], false, "{e}");
        let b = fx.ledger("/workspace:w", USD).await;
        assert_eq!((amt(&b, "spent"), amt(&b, "reserved"), amt(&b, "remaining")), (60, 0, 940), "{b}");
    }
}
