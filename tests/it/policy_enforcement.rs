//! Policies in force at runtime: caps answer ALLOW_WITH_CAPS, access lists deny with a
//! DenyDetail, TTL and overage overrides shape the reservation, a change acknowledged to the
//! admin governs the very next request on every instance, and observe mode holds nothing.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD, amt, on_redis_and_cluster};
use crate::helpers::{Instance, Reply, eventually, send};

/// Creates a policy of the fixture's tenant; returns its id.
pub async fn policy(fx: &Fx, body: Value) -> String {
    crate::policies::created(&fx.app, &fx.tenant, body).await
}

/// `{"action": {"kind": kind, "name": "tool"}}` merged with `extra`.
pub fn action(kind: &str, extra: Value) -> Value {
    let mut body = json!({"action": {"kind": kind, "name": "tool"}});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body
}

/// POSTs `body` to `path` on the runtime plane of `instance` with the tenant's key.
pub async fn post_on(fx: &Fx, instance: &Instance, path: &str, body: Value) -> Reply {
    let url = format!("http://{}{path}", instance.runtime.expect("runtime plane"));
    send(fx.app.client.request(Method::POST, url).header("x-cycles-api-key", &fx.key).json(&body)).await
}

async fn decide(fx: &Fx, key: &str, kind: &str) -> Reply {
    let mut body = fx.reserve_body(key, json!({}), 10);
    body["action"] = json!({"kind": kind, "name": "tool"});
    fx.post("/v1/decide", body).await
}

on_redis_and_cluster! {
    async fn caps_answer_allow_with_caps_on_reserve_decide_and_dry_run_and_no_policy_answers_allow(fx: Fx) {
        fx.budget("", 1000).await;
        policy(&fx, json!({"name": "caps", "scope_pattern": fx.scope(""), "caps": {"max_tokens": 4096, "tool_denylist": ["rm"]}})).await;
        let caps = json!({"max_tokens": 4096, "tool_denylist": ["rm"]});
        let live = fx.reserve("r", json!({}), 10).await;
        assert_eq!((live.status.as_u16(), live.body["decision"].clone()), (200, json!("ALLOW_WITH_CAPS")), "{}", live.text);
        assert_eq!(live.body["caps"], caps);
        assert!(live.body["reservation_id"].is_string());
        let dry = fx.reserve_with("d", json!({}), 10, json!({"dry_run": true})).await;
        assert_eq!((dry.body["decision"].clone(), dry.body["caps"].clone()), (json!("ALLOW_WITH_CAPS"), caps.clone()), "{}", dry.text);
        let decided = decide(&fx, "x", "llm.completion").await;
        assert_eq!((decided.body["decision"].clone(), decided.body["caps"].clone()), (json!("ALLOW_WITH_CAPS"), caps.clone()), "{}", decided.text);
        let replay = fx.reserve("r", json!({}), 10).await;
        assert_eq!((replay.body["decision"].clone(), replay.body["caps"].clone()), (json!("ALLOW_WITH_CAPS"), caps), "a replay answers as the original");

        let plain = Fx::with_tenant(&fx.app).await;
        plain.budget("", 1000).await;
        let r = plain.reserve("r", json!({}), 10).await;
        assert_eq!(r.body["decision"], "ALLOW", "{}", r.text);
        assert!(r.body.get("caps").is_none(), "no caps without a policy: {}", r.text);
    }
}

on_redis_and_cluster! {
    async fn deny_and_allow_lists_refuse_with_deny_detail_live_as_errors_and_decide_as_deny(fx: Fx) {
        fx.budget("", 1000).await;
        let id = policy(&fx, json!({"name": "no pay", "scope_pattern": fx.scope(""), "denied_action_kinds": ["payment.charge"]})).await;
        let r = fx.reserve_with("p", json!({}), 10, action("payment.charge", json!({}))).await;
        r.expect_error(409, "ACTION_KIND_DENIED");
        let detail = &r.body["details"]["deny_detail"];
        assert_eq!((detail["reason_code"].clone(), detail["blocked_by_policy"].clone()), (json!("ACTION_KIND_DENIED"), json!(id)), "{}", r.text);
        assert!(detail["suggested_fix"].as_str().is_some_and(|s| s.contains("payment.charge")));
        let d = decide(&fx, "d", "payment.charge").await;
        assert_eq!((d.status.as_u16(), d.body["decision"].clone(), d.body["reason_code"].clone()), (200, json!("DENY"), json!("ACTION_KIND_DENIED")), "{}", d.text);
        assert_eq!(d.body["deny_detail"]["blocked_by_policy"], json!(id));
        assert_eq!(fx.reserve("ok", json!({}), 10).await.body["decision"], "ALLOW", "other kinds pass");

        let only = Fx::with_tenant(&fx.app).await;
        only.budget("", 1000).await;
        policy(&only, json!({"name": "llm only", "scope_pattern": only.scope(""), "allowed_action_kinds": ["llm.completion"]})).await;
        let r = only.reserve_with("w", json!({}), 10, action("web.search", json!({}))).await;
        r.expect_error(409, "ACTION_KIND_NOT_ALLOWED");
        assert_eq!(r.body["details"]["deny_detail"]["reason_code"], "ACTION_KIND_NOT_ALLOWED");
        let d = decide(&only, "d", "web.search").await;
        assert_eq!(d.body["reason_code"], "ACTION_KIND_NOT_ALLOWED", "{}", d.text);
        assert_eq!(only.reserve("ok", json!({}), 10).await.body["decision"], "ALLOW");
        assert_eq!(amt(&only.ledger("", USD).await, "reserved"), 10, "a denial holds nothing");
    }
}

on_redis_and_cluster! {
    async fn a_ttl_override_sets_the_default_caps_the_maximum_and_limits_extensions(fx: Fx) {
        fx.budget("", 1000).await;
        let ttl = json!({"default_ttl_ms": 5000, "max_ttl_ms": 20000, "max_extensions": 1});
        policy(&fx, json!({"name": "ttl", "scope_pattern": fx.scope(""), "reservation_ttl_override": ttl})).await;
        let r = fx.reserve("a", json!({}), 10).await;
        assert_eq!(r.body["remaining_ttl_ms"], 5000, "the policy's default: {}", r.text);
        let r = fx.reserve_with("b", json!({}), 10, json!({"ttl_ms": 60000})).await;
        assert_eq!(r.body["remaining_ttl_ms"], 20000, "capped at the policy's maximum: {}", r.text);
        let id = r.body["reservation_id"].as_str().unwrap();
        assert_eq!(fx.extend(id, "e1", 1000).await.status, 200);
        fx.extend(id, "e2", 1000).await.expect_error(409, "MAX_EXTENSIONS_EXCEEDED");
    }
}

on_redis_and_cluster! {
    async fn the_overage_policy_comes_from_the_request_then_the_policy_then_the_budget(fx: Fx) {
        let b = fx.budget_with("", USD, 1000, json!({"commit_overage_policy": "ALLOW_IF_AVAILABLE"})).await;
        assert_eq!(b.status.as_u16(), 201, "{}", b.text);
        policy(&fx, json!({"name": "strict", "scope_pattern": fx.scope(""), "commit_overage_policy": "REJECT"})).await;
        let id = fx.reserved("a", json!({}), 100).await;
        fx.commit(&id, "c", 150).await.expect_error(409, "BUDGET_EXCEEDED");
        let r = fx.reserve_with("b", json!({}), 100, json!({"overage_policy": "ALLOW_IF_AVAILABLE"})).await;
        let id = r.body["reservation_id"].as_str().unwrap();
        let c = fx.commit(id, "c", 150).await;
        assert_eq!((c.status.as_u16(), amt(&c.body, "charged")), (200, 150), "{}", c.text);
    }
}

#[tokio::test]
async fn a_patch_that_disables_a_policy_is_honoured_by_the_very_next_reserve_on_another_instance() {
    let fx = Fx::new().await;
    let second = fx.app.another_instance().await;
    fx.budget("", 1000).await;
    let pay = |key: &str| {
        let mut body = fx.reserve_body(key, json!({}), 1);
        body["action"] = json!({"kind": "payment.charge", "name": "tool"});
        body
    };
    assert_eq!(post_on(&fx, &second, "/v1/reservations", pay("a")).await.status, 200);
    let id = policy(
        &fx,
        json!({"name": "no pay", "scope_pattern": fx.scope(""), "denied_action_kinds": ["payment.charge"]}),
    )
    .await;
    post_on(&fx, &second, "/v1/reservations", pay("b")).await.expect_error(409, "ACTION_KIND_DENIED");
    let p = crate::policies::patch(&fx.app, &id, json!({"status": "DISABLED"})).await;
    assert_eq!(p.status.as_u16(), 200, "{}", p.text);
    let r = post_on(&fx, &second, "/v1/reservations", pay("c")).await;
    assert_eq!((r.status.as_u16(), r.body["decision"].clone()), (200, json!("ALLOW")), "{}", r.text);
    let p = crate::policies::patch(&fx.app, &id, json!({"status": "ACTIVE"})).await;
    assert_eq!(p.status.as_u16(), 200, "{}", p.text);
    post_on(&fx, &second, "/v1/reservations", pay("d")).await.expect_error(409, "ACTION_KIND_DENIED");
    second.stop().await.unwrap();
}

async fn event_types(fx: &Fx) -> Vec<String> {
    let q = [("tenant_id", fx.tenant.as_str()), ("limit", "100")];
    let r = send(fx.app.admin(Method::GET, "/v1/admin/events").query(&q)).await;
    let events = r.body["events"].as_array().cloned().unwrap_or_default();
    events.iter().filter_map(|e| e["event_type"].as_str().map(String::from)).collect()
}

#[tokio::test]
async fn observe_mode_evaluates_everything_holds_no_budget_and_reports_what_it_saw() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    policy(&fx, json!({"name": "no pay", "scope_pattern": fx.scope(""), "denied_action_kinds": ["payment.charge"]}))
        .await;
    let observe = json!({"observe_mode": "OBSERVE"});
    let denied = fx.reserve_with("a", json!({}), 10, action("payment.charge", observe.clone())).await;
    assert_eq!((denied.status.as_u16(), denied.body["decision"].clone()), (200, json!("DENY")), "{}", denied.text);
    assert_eq!(denied.body["deny_detail"]["reason_code"], "ACTION_KIND_DENIED");
    let allowed = fx.reserve_with("b", json!({}), 60, observe.clone()).await;
    assert_eq!(allowed.body["decision"], "ALLOW", "{}", allowed.text);
    assert!(allowed.body.get("reservation_id").is_none(), "observe mode reserves nothing");
    let again = fx.reserve_with("c", json!({}), 60, observe).await;
    assert_eq!(again.body["decision"], "ALLOW", "nothing was held by the first: {}", again.text);
    let b = fx.ledger("", USD).await;
    assert_eq!((amt(&b, "reserved"), amt(&b, "remaining")), (0, 100));
    let seen = eventually(Duration::from_secs(15), || async {
        let types = event_types(&fx).await;
        types.iter().any(|t| t == "reservation.observed_denied")
            && types.iter().any(|t| t == "reservation.observed_allowed")
    })
    .await;
    assert!(seen, "observed events recorded: {:?}", event_types(&fx).await);
}

on_redis_and_cluster! {
    async fn rate_limits_refuse_the_reserve_and_the_commit_past_the_per_minute_limit_with_429(fx: Fx) {
        fx.budget("", 1000).await;
        let limits = json!({"max_reservations_per_minute": 3, "max_commits_per_minute": 2});
        policy(&fx, json!({"name": "rates", "scope_pattern": fx.scope("/*"), "rate_limits": limits})).await;
        // Each attempt counts at a scope of its own; a minute boundary inside one attempt (its
        // counters start again) sends the check to the next attempt.
        let expected = vec![200, 200, 200, 429, 200, 200, 429];
        let mut seen = Vec::new();
        for attempt in 0..3 {
            let levels = json!({"workspace": format!("w{attempt}")});
            let mut ids = Vec::new();
            seen.clear();
            for i in 0..4 {
                let r = fx.reserve(&format!("r{attempt}-{i}"), levels.clone(), 1).await;
                if r.status == 429 {
                    assert_eq!(r.body["error"], "LIMIT_EXCEEDED", "{}", r.text);
                    assert!(!r.header("retry-after").is_empty(), "Retry-After is set");
                }
                seen.push(r.status.as_u16());
                ids.extend(r.body["reservation_id"].as_str().map(String::from));
            }
            for id in ids.iter().take(3) {
                let c = fx.commit(id, "c", 1).await;
                seen.push(c.status.as_u16());
            }
            if seen == expected {
                break;
            }
        }
        assert_eq!(seen, expected);
    }
}
