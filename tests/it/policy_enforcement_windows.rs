//! Calendar-bucket quotas and risk-class quotas at runtime (cycles-action-kinds v0.1.26 WINDOW
//! MODEL): a tumbling window counts in the UTC bucket of the request's receipt, at the scope the
//! matching policy's pattern names; `per_tenant_per_day` counts at the tenant root whatever the
//! subject; a risk-class quota counts every kind of its class together and no other kind.

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::fixture::{Fx, on_redis_and_cluster};
use crate::helpers::{Reply, send};
use crate::policy_enforcement::policy;

/// A reserve of 1 of action kind `kind` in workspace `ws`.
async fn act(fx: &Fx, key: &str, ws: &str, kind: &str) -> Reply {
    let mut body = fx.reserve_body(key, json!({"workspace": ws}), 1);
    body["action"]["kind"] = json!(kind);
    fx.post("/v1/reservations", body).await
}

/// The tenant's quota counters, as the admin plane lists them.
async fn counters(fx: &Fx) -> Vec<Value> {
    let r = send(
        fx.app
            .admin(reqwest::Method::GET, "/v1/admin/action-quota-counters")
            .query(&[("tenant_id", fx.tenant.as_str())]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["counters"].as_array().cloned().unwrap_or_default()
}

/// The UTC buckets (minute, hour, day) of now, in the spec's formats.
fn buckets() -> (String, String, String) {
    let n = OffsetDateTime::now_utc();
    let day = format!("{:04}-{:02}-{:02}", n.year(), u8::from(n.month()), n.day());
    let hour = format!("{day}T{:02}", n.hour());
    (format!("{hour}:{:02}", n.minute()), hour, day)
}

on_redis_and_cluster! {
    async fn a_risk_class_quota_counts_every_kind_of_its_class_together_and_no_other_kind(fx: Fx) {
        fx.budget("", 1_000).await;
        let quota = json!([{"risk_class": "external_side_effect", "max_calls": 2, "window": "per_day_tumbling"}]);
        let id = policy(&fx, json!({"name": "side effects", "scope_pattern": fx.scope(""), "risk_class_quotas": quota})).await;
        assert_eq!(act(&fx, "e1", "w", "message.email.send").await.status, 200);
        assert_eq!(act(&fx, "e2", "w", "message.slack.post").await.status, 200);
        let full = act(&fx, "e3", "w", "message.sms.send").await;
        full.expect_error(409, "ACTION_QUOTA_EXCEEDED");
        let v = &full.body["details"]["deny_detail"]["quota_violation"];
        assert_eq!((v["used"].clone(), v["limit"].clone(), v["policy_id"].clone()), (json!(2), json!(2), json!(id)), "{}", full.text);
        let other = act(&fx, "l1", "w", "llm.completion").await;
        assert_eq!(other.status, 200, "a kind of another class is not counted: {}", other.text);
        let list = counters(&fx).await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!((list[0]["used"].clone(), list[0]["window"].clone()), (json!(2), json!("per_day_tumbling")), "{list:?}");
    }
}

on_redis_and_cluster! {
    async fn tumbling_windows_count_in_the_utc_bucket_of_receipt_at_the_scope_the_pattern_names(fx: Fx) {
        fx.budget("", 1_000).await;
        let quota = |kind: &str, window: &str| json!({"action_kind": kind, "max_calls": 1, "window": window});
        let quotas = json!([quota("llm.completion", "per_minute_tumbling"), quota("llm.embedding", "per_hour_tumbling")]);
        let pattern = format!("{}/workspace:*", fx.scope(""));
        policy(&fx, json!({"name": "per workspace", "scope_pattern": pattern, "action_quotas": quotas})).await;
        let before = buckets();
        for kind in ["llm.completion", "llm.embedding"] {
            assert_eq!(act(&fx, &format!("{kind}-a1"), "a", kind).await.status, 200);
            act(&fx, &format!("{kind}-a2"), "a", kind).await.expect_error(409, "ACTION_QUOTA_EXCEEDED");
            let b = act(&fx, &format!("{kind}-b1"), "b", kind).await;
            assert_eq!(b.status, 200, "another workspace counts apart: {}", b.text);
        }
        let after = buckets();
        let list = counters(&fx).await;
        assert_eq!(list.len(), 4, "{list:?}");
        for c in &list {
            let key = c["window_key"].as_str().unwrap_or_default().to_string();
            let (expected, then) = match c["window"].as_str() {
                Some("per_minute_tumbling") => (&before.0, &after.0),
                Some("per_hour_tumbling") => (&before.1, &after.1),
                w => panic!("unexpected window {w:?}: {c}"),
            };
            assert!(key == *expected || key == *then, "the bucket is the receipt's UTC minute or hour: {c}");
            assert!(c["scope"].as_str().is_some_and(|s| s.ends_with("/workspace:a") || s.ends_with("/workspace:b")), "{c}");
            assert_eq!(c["used"], 1, "{c}");
        }
    }
}

on_redis_and_cluster! {
    async fn a_per_tenant_per_day_quota_counts_at_the_tenant_root_whatever_the_subject(fx: Fx) {
        fx.budget("", 1_000).await;
        let quotas = json!([{"action_kind": "llm.completion", "max_calls": 2, "window": "per_tenant_per_day"}]);
        let pattern = format!("{}/workspace:*", fx.scope(""));
        policy(&fx, json!({"name": "tenant day", "scope_pattern": pattern, "action_quotas": quotas})).await;
        assert_eq!(act(&fx, "a1", "a", "llm.completion").await.status, 200);
        assert_eq!(act(&fx, "b1", "b", "llm.completion").await.status, 200);
        act(&fx, "c1", "c", "llm.completion").await.expect_error(409, "ACTION_QUOTA_EXCEEDED");
        let list = counters(&fx).await;
        assert_eq!(list.len(), 1, "one counter at the tenant root: {list:?}");
        let (_, _, day) = buckets();
        assert_eq!((list[0]["scope"].clone(), list[0]["used"].clone()), (json!(fx.scope("")), json!(2)), "{list:?}");
        let key = list[0]["window_key"].as_str().unwrap_or_default();
        assert!(key == day || key > day.as_str(), "the bucket is the UTC day of receipt: {key} vs {day}");
    }
}
