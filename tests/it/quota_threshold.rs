//! `quota.threshold_approaching` (v0.1.26): sent by the reserve script when a quota counter
//! reaches its `threshold_pct` of `max_calls`, once per window instance, with the spec's
//! payload and a correlation id shared by the counter's window instance.

use std::time::Duration;

use serde_json::{Value, json};

use crate::events::events_of_type;
use crate::fixture::{Fx, on_redis_and_cluster};
use crate::helpers::{Reply, eventually};
use crate::policy_enforcement::policy;

async fn reserve_in_run(fx: &Fx, key: &str, run: &str) -> Reply {
    let mut body = fx.reserve_body(key, json!({}), 1);
    body["subject"]["dimensions"] = json!({"run_id": run});
    fx.post("/v1/reservations", body).await
}

/// Waits until the drain has stored `n` events of `event_type` (the outbox keeps each tenant's
/// order, so every event appended before them is stored too).
async fn stored(fx: &Fx, event_type: &str, n: usize) -> bool {
    eventually(Duration::from_secs(15), || async { events_of_type(fx, event_type).await.len() >= n }).await
}

on_redis_and_cluster! {
    async fn a_quota_of_ten_at_eighty_percent_reports_the_eighth_call_once_and_not_the_ninth_or_tenth(fx: Fx) {
        fx.budget("", 1000).await;
        let quota = json!([{"action_kind": "llm.completion", "max_calls": 10, "window": "per_run", "threshold_pct": 0.8}]);
        let id = policy(&fx, json!({"name": "ten", "scope_pattern": fx.scope(""), "action_quotas": quota})).await;
        let mut held = Vec::new();
        for i in 1..=10 {
            let r = reserve_in_run(&fx, &format!("k{i}"), "run-1").await;
            assert_eq!(r.status, 200, "call {i}: {}", r.text);
            held.push(r.body["reservation_id"].as_str().unwrap().to_string());
            if i == 7 {
                // Denied calls append reservation.denied after whatever came before them.
                let mut probe = fx.reserve_body("probe-7", json!({}), 1_000_000);
                probe["subject"]["dimensions"] = json!({"run_id": "elsewhere"});
                fx.post("/v1/reservations", probe).await.expect_error(409, "BUDGET_EXCEEDED");
                assert!(stored(&fx, "reservation.denied", 1).await);
                assert!(events_of_type(&fx, "quota.threshold_approaching").await.is_empty(), "nothing before the 8th call");
            }
        }
        reserve_in_run(&fx, "k11", "run-1").await.expect_error(409, "ACTION_QUOTA_EXCEEDED");
        assert!(stored(&fx, "reservation.denied", 2).await, "the 11th call's denial is stored");
        let events = events_of_type(&fx, "quota.threshold_approaching").await;
        assert_eq!(events.len(), 1, "{events:#?}");
        let e = &events[0];
        let d = &e["data"];
        assert_eq!(
            (d["scope"].clone(), d["action_kind"].clone(), d["window"].clone(), d["window_key"].clone()),
            (json!(fx.scope("")), json!("llm.completion"), json!("per_run"), json!("run-1")),
            "{e}"
        );
        assert_eq!((d["used"].clone(), d["limit"].clone(), d["threshold_pct"].clone()), (json!(8), json!(10), json!(0.8)), "{e}");
        assert_eq!((d["policy_id"].clone(), d["tenant_id"].clone()), (json!(id), json!(fx.tenant)), "{e}");
        assert_eq!(e["category"], "policy");
        let correlation = e["correlation_id"].as_str().expect("a correlation id").to_string();
        assert!(correlation.contains("run-1") && correlation.contains(&fx.tenant), "{correlation}");

        // Giving three counts back and taking them again crosses 8 once more: not reported again.
        for id in held.iter().take(3) {
            assert_eq!(fx.release(id, "rel").await.status, 200);
        }
        for i in 12..=14 {
            assert_eq!(reserve_in_run(&fx, &format!("k{i}"), "run-1").await.status, 200);
        }
        reserve_in_run(&fx, "k15", "run-1").await.expect_error(409, "ACTION_QUOTA_EXCEEDED");
        assert!(stored(&fx, "reservation.denied", 3).await);
        assert_eq!(events_of_type(&fx, "quota.threshold_approaching").await.len(), 1, "once per window instance");

        // Another run is another window instance: its own crossing is reported.
        for i in 1..=8 {
            assert_eq!(reserve_in_run(&fx, &format!("r2-{i}"), "run-2").await.status, 200);
        }
        assert!(stored(&fx, "quota.threshold_approaching", 2).await, "run-2 crossed its threshold");
    }
}

#[tokio::test]
async fn a_risk_class_quota_reports_its_crossing_as_risk_and_observed_calls_report_nothing() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    let quota = json!([{"risk_class": "side_effect", "max_calls": 2, "window": "per_run"}]);
    policy(&fx, json!({"name": "risky", "scope_pattern": fx.scope(""), "risk_class_quotas": quota})).await;
    let with_kind = |key: &str, extra: Value| {
        let mut body = fx.reserve_body(key, json!({}), 1);
        body["subject"]["dimensions"] = json!({"run_id": "r"});
        body["action"] = json!({"kind": "agent.message", "name": "tool"});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        body
    };
    for i in 0..3 {
        let r = fx.post("/v1/reservations", with_kind(&format!("o{i}"), json!({"observe_mode": "OBSERVE"}))).await;
        assert_eq!(r.body["decision"], "ALLOW", "{}", r.text);
    }
    // 80 % of 2 (the default threshold) is reached by the 2nd counted call.
    assert_eq!(fx.post("/v1/reservations", with_kind("a", json!({}))).await.status, 200);
    assert_eq!(fx.post("/v1/reservations", with_kind("b", json!({}))).await.status, 200);
    assert!(stored(&fx, "quota.threshold_approaching", 1).await);
    let events = events_of_type(&fx, "quota.threshold_approaching").await;
    assert_eq!(events.len(), 1, "observed calls count nothing, so report nothing: {events:#?}");
    let d = &events[0]["data"];
    assert_eq!(
        (d["action_kind"].clone(), d["risk_class"].clone(), d["used"].clone()),
        (json!("__risk__"), json!("side_effect"), json!(2)),
        "{d}"
    );
    assert_eq!(d["threshold_pct"], json!(0.8));
}
