//! Action quotas at runtime: counted in the reserve script with the budget hold, so N is exact
//! under concurrency across instances; per-run counts come back exactly once on release or
//! expiry and never on commit; observe mode and denials count nothing.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD, amt, on_redis_and_cluster};
use crate::helpers::eventually;
use crate::policy_enforcement::{policy, post_on};

/// A reserve body of run `run` (its `subject.dimensions.run_id`).
fn in_run(fx: &Fx, key: &str, run: &str, amount: i64) -> Value {
    let mut body = fx.reserve_body(key, json!({}), amount);
    body["subject"]["dimensions"] = json!({"run_id": run});
    body
}

async fn per_run_quota(fx: &Fx, max_calls: i64) -> String {
    let quota = json!([{"action_kind": "llm.completion", "max_calls": max_calls, "window": "per_run"}]);
    policy(fx, json!({"name": "per run", "scope_pattern": fx.scope(""), "action_quotas": quota})).await
}

#[tokio::test]
async fn a_quota_of_n_allows_exactly_n_concurrent_reserves_from_200_clients_across_two_instances() {
    let fx = Fx::new().await;
    let second = fx.app.another_instance().await;
    fx.budget("", 1_000_000).await;
    per_run_quota(&fx, 37).await;
    let calls = (0..200).map(|i| {
        let (fx, second) = (&fx, &second);
        async move {
            let body = in_run(fx, &format!("c{i}"), "run-1", 1);
            if i % 2 == 0 {
                fx.post("/v1/reservations", body).await
            } else {
                post_on(fx, second, "/v1/reservations", body).await
            }
        }
    });
    let replies = join_all(calls).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let refused = replies.iter().filter(|r| r.status == 409 && r.body["error"] == "ACTION_QUOTA_EXCEEDED").count();
    assert_eq!((ok, refused), (37, 163));
    assert_eq!(amt(&fx.ledger("", USD).await, "reserved"), 37, "a refused reserve holds nothing");
    second.stop().await.unwrap();
}

on_redis_and_cluster! {
    async fn a_released_or_expired_per_run_reserve_gives_its_count_back_exactly_once(fx: Fx) {
        fx.budget("", 1000).await;
        let id = per_run_quota(&fx, 1).await;
        let first = fx.post("/v1/reservations", in_run(&fx, "a1", "a", 1)).await;
        let rid = first.body["reservation_id"].as_str().unwrap().to_string();
        let full = fx.post("/v1/reservations", in_run(&fx, "a2", "a", 1)).await;
        full.expect_error(409, "ACTION_QUOTA_EXCEEDED");
        let v = &full.body["details"]["deny_detail"]["quota_violation"];
        assert_eq!((v["used"].clone(), v["limit"].clone(), v["window"].clone(), v["window_key"].clone(), v["policy_id"].clone()),
            (json!(1), json!(1), json!("per_run"), json!("a"), json!(id)), "{}", full.text);
        assert_eq!(fx.post("/v1/reservations", in_run(&fx, "b1", "b", 1)).await.status, 200, "another run counts apart");

        assert_eq!(fx.release(&rid, "rel").await.status, 200);
        assert_eq!(fx.release(&rid, "rel").await.status, 200, "a replayed release");
        fx.release(&rid, "rel2").await.expect_error(409, "RESERVATION_FINALIZED");
        let again = fx.post("/v1/reservations", in_run(&fx, "a3", "a", 1)).await;
        assert_eq!(again.status, 200, "the release gave the count back: {}", again.text);
        fx.post("/v1/reservations", in_run(&fx, "a4", "a", 1)).await.expect_error(409, "ACTION_QUOTA_EXCEEDED");
        let committed = again.body["reservation_id"].as_str().unwrap();
        assert_eq!(fx.commit(committed, "c", 1).await.status, 200);
        fx.post("/v1/reservations", in_run(&fx, "a5", "a", 1)).await.expect_error(409, "ACTION_QUOTA_EXCEEDED");

        let mut short = in_run(&fx, "x1", "x", 1);
        short["ttl_ms"] = json!(1000);
        short["grace_period_ms"] = json!(0);
        let r = fx.post("/v1/reservations", short).await;
        let path = format!("/v1/reservations/{}", r.body["reservation_id"].as_str().unwrap());
        assert!(eventually(Duration::from_secs(10), || async { fx.get(&path).await.status == 410 }).await, "expired");
        assert_eq!(fx.post("/v1/reservations", in_run(&fx, "x2", "x", 1)).await.status, 200, "the expiry gave it back");
        fx.post("/v1/reservations", in_run(&fx, "x3", "x", 1)).await.expect_error(409, "ACTION_QUOTA_EXCEEDED");
    }
}

on_redis_and_cluster! {
    async fn observe_mode_and_decide_count_nothing_against_a_quota(fx: Fx) {
        fx.budget("", 1000).await;
        per_run_quota(&fx, 1).await;
        for i in 0..3 {
            let mut body = in_run(&fx, &format!("o{i}"), "r", 5);
            body["observe_mode"] = json!("OBSERVE");
            let r = fx.post("/v1/reservations", body).await;
            assert_eq!(r.body["decision"], "ALLOW", "{}", r.text);
            let d = fx.post("/v1/decide", in_run(&fx, &format!("d{i}"), "r", 5)).await;
            assert_eq!(d.body["decision"], "ALLOW", "{}", d.text);
        }
        assert_eq!(amt(&fx.ledger("", USD).await, "reserved"), 0);
        assert_eq!(fx.post("/v1/reservations", in_run(&fx, "live", "r", 5)).await.status, 200);
        let d = fx.post("/v1/decide", in_run(&fx, "d-after", "r", 5)).await;
        assert_eq!((d.body["decision"].clone(), d.body["reason_code"].clone()), (json!("DENY"), json!("ACTION_QUOTA_EXCEEDED")), "{}", d.text);
        assert_eq!(d.body["deny_detail"]["quota_violation"]["used"], 1);
    }
}

#[tokio::test]
async fn a_per_run_quota_without_a_run_id_is_refused_naming_the_dimension() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    per_run_quota(&fx, 1).await;
    let r = fx.reserve("no-run", json!({}), 1).await;
    let msg = r.expect_error(400, "INVALID_REQUEST");
    assert!(msg.contains("subject.dimensions.run_id"), "{msg}");
}
