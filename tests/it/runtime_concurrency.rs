//! Concurrency: no oversubscription (R-E6), one settlement per reservation under duplicate
//! commits (R-L3, R-F5) and under a commit racing the expiry sweep (R-G5).

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::fixture::{Fx, USD, amt, assert_invariant, on_redis_and_cluster};
use crate::helpers::eventually;

const ESTIMATE: i64 = 7;
const FITS: i64 = 57;
const CALLERS: usize = 200;

// R-E6, R-B5, R-D1: 200 concurrent reserves against a three-scope subject whose tightest scope
// fits exactly 57 → exactly 57 succeed, every scope holds 57 × 7 and satisfies the invariant.
on_redis_and_cluster! {
    async fn concurrent_reserves_never_oversubscribe_any_scope(fx: Fx) {
        fx.budget("", 10_000).await;
        fx.budget("/workspace:w", FITS * ESTIMATE).await;
        fx.budget("/workspace:w/agent:a", 1_000).await;
        let levels = json!({"workspace": "w", "agent": "a"});
        let calls = (0..CALLERS).map(|i| {
            let fx = &fx;
            let levels = levels.clone();
            async move { fx.reserve(&format!("c{i}"), levels, ESTIMATE).await }
        });
        let replies = join_all(calls).await;
        let ok = replies.iter().filter(|r| r.status == 200).count();
        let exceeded = replies.iter().filter(|r| r.status == 409 && r.body["error"] == "BUDGET_EXCEEDED").count();
        assert_eq!((ok, exceeded), (FITS as usize, CALLERS - FITS as usize));
        let active = fx.get("/v1/reservations?status=ACTIVE&limit=200").await;
        let held: i64 = active.body["reservations"].as_array().unwrap().iter().map(|r| amt(r, "reserved")).sum();
        assert_eq!(held, FITS * ESTIMATE);
        for suffix in ["", "/workspace:w", "/workspace:w/agent:a"] {
            let b = fx.ledger(suffix, USD).await;
            assert_eq!(amt(&b, "reserved"), held, "{suffix}");
            assert_invariant(&b);
        }
        assert_eq!(amt(&fx.ledger("/workspace:w", USD).await, "remaining"), 0);
    }
}

// R-L3, R-F7: concurrent duplicates of one commit all get the same answer and charge once;
// concurrent commits under different keys settle once, the rest are RESERVATION_FINALIZED.
on_redis_and_cluster! {
    async fn concurrent_duplicate_commits_settle_once(fx: Fx) {
        fx.budget("", 1_000).await;
        let id = fx.reserved("r", json!({}), 100).await;
        let same = join_all((0..20).map(|_| fx.commit(&id, "one-key", 60))).await;
        assert!(
            same.iter().all(|r| r.status == 200 && r.body == same[0].body),
            "{:?}",
            same.iter().map(|r| &r.text).collect::<Vec<_>>()
        );
        let b = fx.ledger("", USD).await;
        assert_eq!((amt(&b, "spent"), amt(&b, "reserved")), (60, 0));
        let id2 = fx.reserved("r2", json!({}), 100).await;
        let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
        let different = join_all(keys.iter().map(|k| fx.commit(&id2, k, 50))).await;
        let ok = different.iter().filter(|r| r.status == 200).count();
        let finalized = different.iter().filter(|r| r.body["error"] == "RESERVATION_FINALIZED").count();
        assert_eq!((ok, finalized), (1, 19));
        let b = fx.ledger("", USD).await;
        assert_eq!((amt(&b, "spent"), amt(&b, "reserved")), (110, 0));
        assert_invariant(&b);
    }
}

// R-G5: commits fired at the moment of expiry while three sweepers run: each reservation
// ends COMMITTED or EXPIRED, never both, and the ledger charges exactly the commits.
on_redis_and_cluster! {
    async fn a_commit_racing_the_expiry_sweep_settles_or_expires_never_both(fx: Fx) {
        let _sweepers = (fx.app.another_instance().await, fx.app.another_instance().await);
        fx.budget("", 100_000).await;
        let mut ids = Vec::new();
        let mut deadline = 0;
        for i in 0..40 {
            let r = fx.reserve_with(&format!("r{i}"), json!({}), 100, json!({"ttl_ms": 1000, "grace_period_ms": 0})).await;
            ids.push(r.body["reservation_id"].as_str().unwrap().to_string());
            deadline = r.body["expires_at_ms"].as_i64().unwrap();
        }
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        tokio::time::sleep(Duration::from_millis((deadline - now_ms).clamp(0, 2000) as u64)).await;
        let replies = join_all(ids.iter().map(|id| fx.commit(id, "c", 40))).await;
        let committed: Vec<&String> = ids.iter().zip(&replies).filter(|(_, r)| r.status == 200).map(|(id, _)| id).collect();
        assert!(replies.iter().all(|r| r.status == 200 || r.body["error"] == "RESERVATION_EXPIRED"));
        let settled =
            eventually(Duration::from_secs(10), || async { amt(&fx.ledger("", USD).await, "reserved") == 0 }).await;
        assert!(settled, "every unsettled reservation expired");
        for (id, reply) in ids.iter().zip(&replies) {
            let r = fx.get(&format!("/v1/reservations/{id}")).await;
            let status = if r.status == 410 { "EXPIRED" } else { r.body["status"].as_str().unwrap() };
            assert_eq!(status, if reply.status == 200 { "COMMITTED" } else { "EXPIRED" }, "{id}");
        }
        let b = fx.ledger("", USD).await;
        assert_eq!(amt(&b, "spent"), 40 * committed.len() as i64);
        assert_invariant(&b);
    }
}
