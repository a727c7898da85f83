//! The tenant's `observe_mode` (v0.1.26 governance extension): stored, returned, patched with
//! an audit entry and `tenant.settings_changed`, filtered and counted on the admin plane, and in
//! force at runtime through the tenant mirror: a tenant in OBSERVE holds no budget and counts no
//! quota, a request's own `observe_mode` wins over the tenant's, and a PATCH acknowledged to the
//! admin governs the very next reserve on every instance.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::events::events_of_type;
use crate::fixture::{Fx, USD, amt, on_redis_and_cluster};
use crate::helpers::{Reply, TestApp, eventually, send, tenant_id};
use crate::policy_enforcement::{action, policy, post_on};

async fn patch_tenant(app: &TestApp, tenant: &str, body: Value) -> Reply {
    send(app.admin(Method::PATCH, &format!("/v1/admin/tenants/{tenant}")).json(&body)).await
}

/// Sets the fixture tenant's observe mode and checks the answer carries it.
async fn set_mode(fx: &Fx, mode: &str) {
    let r = patch_tenant(&fx.app, &fx.tenant, json!({"observe_mode": mode})).await;
    assert_eq!((r.status.as_u16(), r.body["observe_mode"].clone()), (200, json!(mode)), "{}", r.text);
}

/// A reserve of `amount` in run `run` (the window of a `per_run` quota), with `extra` merged in.
async fn reserve_in_run(fx: &Fx, key: &str, run: &str, amount: i64, extra: Value) -> Reply {
    let mut body = fx.reserve_body(key, json!({}), amount);
    body["subject"]["dimensions"] = json!({"run_id": run});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    fx.post("/v1/reservations", body).await
}

fn held(r: &Reply) -> bool {
    r.body["reservation_id"].is_string()
}

on_redis_and_cluster! {
    async fn a_tenant_in_observe_mode_holds_no_budget_counts_no_quota_and_reports_observed_events(fx: Fx) {
        fx.budget("", 100).await;
        let quota = json!([{"action_kind": "llm.completion", "max_calls": 1, "window": "per_run"}]);
        policy(&fx, json!({"name": "governed", "scope_pattern": fx.scope(""), "action_quotas": quota,
            "denied_action_kinds": ["payment.charge"]})).await;
        let tenant = send(fx.app.admin(Method::GET, &format!("/v1/admin/tenants/{}", fx.tenant))).await;
        assert_eq!(tenant.body["observe_mode"], "ENFORCE", "absent means ENFORCE: {}", tenant.text);
        set_mode(&fx, "OBSERVE").await;

        for key in ["a", "b"] {
            let r = reserve_in_run(&fx, key, "run-1", 60, json!({})).await;
            assert_eq!((r.status.as_u16(), r.body["decision"].clone()), (200, json!("ALLOW")), "{}", r.text);
            assert!(!held(&r), "observe mode reserves nothing: {}", r.text);
            assert!(r.body["affected_scopes"].as_array().is_some_and(|s| !s.is_empty()), "{}", r.text);
        }
        let denied = fx.reserve_with("p", json!({}), 10, action("payment.charge", json!({}))).await;
        assert_eq!((denied.status.as_u16(), denied.body["decision"].clone()), (200, json!("DENY")), "{}", denied.text);
        assert_eq!(denied.body["reason_code"], "ACTION_KIND_DENIED");
        let b = fx.ledger("", USD).await;
        assert_eq!((amt(&b, "reserved"), amt(&b, "remaining")), (0, 100), "nothing held");
        let seen = eventually(Duration::from_secs(15), || async {
            !events_of_type(&fx, "reservation.observed_allowed").await.is_empty()
                && !events_of_type(&fx, "reservation.observed_denied").await.is_empty()
        })
        .await;
        assert!(seen, "reservation.observed_allowed and reservation.observed_denied are recorded");
        let observed = events_of_type(&fx, "reservation.observed_allowed").await;
        assert_eq!(observed[0]["data"]["observe_mode"], "OBSERVE", "{}", observed[0]);

        set_mode(&fx, "ENFORCE").await;
        let first = reserve_in_run(&fx, "c", "run-1", 60, json!({})).await;
        assert!(held(&first), "observing counted nothing against the quota of 1: {}", first.text);
        reserve_in_run(&fx, "d", "run-1", 10, json!({})).await.expect_error(409, "ACTION_QUOTA_EXCEEDED");
        assert_eq!(amt(&fx.ledger("", USD).await, "reserved"), 60);
    }
}

#[tokio::test]
async fn a_request_observe_mode_overrides_the_tenant_default_and_disabled_means_enforce() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    set_mode(&fx, "OBSERVE").await;
    let r = fx.reserve_with("enforce", json!({}), 10, json!({"observe_mode": "ENFORCE"})).await;
    assert!(held(&r), "the request's ENFORCE wins over the tenant's OBSERVE: {}", r.text);
    let r = fx.reserve_with("disabled", json!({}), 10, json!({"observe_mode": "DISABLED"})).await;
    assert!(held(&r), "DISABLED is a synonym for ENFORCE: {}", r.text);
    let r = fx.reserve("default", json!({}), 10).await;
    assert!(!held(&r), "without a request value the tenant's OBSERVE applies: {}", r.text);
    let dry = fx.reserve_with("dry", json!({}), 10, json!({"dry_run": true, "observe_mode": "ENFORCE"})).await;
    assert_eq!(dry.body["decision"], "ALLOW", "{}", dry.text);

    set_mode(&fx, "DISABLED").await;
    let r = fx.reserve("tenant-disabled", json!({}), 10).await;
    assert!(held(&r), "a tenant in DISABLED enforces: {}", r.text);
    let r = fx.reserve_with("observe", json!({}), 10, json!({"observe_mode": "OBSERVE"})).await;
    assert!(!held(&r), "the request's OBSERVE wins over the tenant's default: {}", r.text);
    assert_eq!(amt(&fx.ledger("", USD).await, "reserved"), 30, "three reserves held 10 each");
    // Observed: the tenant default (1) and the request's OBSERVE (1); the ENFORCE dry run is silent.
    let counted = eventually(Duration::from_secs(15), || async {
        events_of_type(&fx, "reservation.observed_allowed").await.len() == 2
    })
    .await;
    assert!(counted, "two observed reserves: {:?}", events_of_type(&fx, "reservation.observed_allowed").await);
}

#[tokio::test]
async fn a_patch_to_observe_mode_is_honoured_by_the_very_next_reserve_on_another_instance() {
    let fx = Fx::new().await;
    let second = fx.app.another_instance_with(|_| {}).await;
    fx.budget("", 1000).await;
    let on_second = |key: &str| post_on(&fx, &second, "/v1/reservations", fx.reserve_body(key, json!({}), 1));
    assert!(held(&on_second("a").await));
    set_mode(&fx, "OBSERVE").await;
    let r = on_second("b").await;
    assert!(!held(&r) && r.body["decision"] == "ALLOW", "observed at once on the other instance: {}", r.text);
    set_mode(&fx, "ENFORCE").await;
    assert!(held(&on_second("c").await), "enforced again at once");
    assert_eq!(amt(&fx.ledger("", USD).await, "reserved"), 2);
    second.stop().await.unwrap();
}

#[tokio::test]
async fn the_tenant_list_filters_by_observe_mode_and_the_overview_counts_tenants_not_enforcing() {
    let app = TestApp::spawn().await;
    let ids: Vec<String> = ["obs", "dis", "enf"].iter().map(|l| tenant_id(l)).collect();
    for id in &ids {
        app.create_tenant(id).await;
    }
    for (id, mode) in ids.iter().zip(["OBSERVE", "DISABLED"]) {
        let r = patch_tenant(&app, id, json!({"observe_mode": mode})).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for (mode, want) in [("OBSERVE", &ids[0]), ("DISABLED", &ids[1]), ("ENFORCE", &ids[2])] {
        let r = send(app.admin(Method::GET, "/v1/admin/tenants").query(&[("observe_mode", mode)])).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let got: Vec<&str> =
            r.body["tenants"].as_array().unwrap().iter().filter_map(|t| t["tenant_id"].as_str()).collect();
        assert_eq!(got, vec![want.as_str()], "observe_mode={mode}");
        assert!(r.body["tenants"].as_array().unwrap().iter().all(|t| t["observe_mode"] == mode));
    }
    let o = send(app.admin(Method::GET, "/v1/admin/overview")).await;
    assert_eq!(o.status, 200, "{}", o.text);
    assert_eq!(o.body["tenant_counts"]["in_observe_mode"], 2, "{}", o.body["tenant_counts"]);
    let bulk = json!({"filter": {"observe_mode": "OBSERVE"}, "action": "SUSPEND", "idempotency_key": "obs-1"});
    let r = send(app.admin(Method::POST, "/v1/admin/tenants/bulk-action").json(&bulk)).await;
    assert_eq!((r.status.as_u16(), r.body["total_matched"].clone()), (200, json!(1)), "{}", r.text);
}

#[tokio::test]
async fn an_observe_mode_change_is_audited_and_announced_as_tenant_settings_changed() {
    let fx = Fx::new().await;
    set_mode(&fx, "OBSERVE").await;
    let same = patch_tenant(&fx.app, &fx.tenant, json!({"observe_mode": "OBSERVE"})).await;
    assert_eq!(same.status, 200, "{}", same.text);
    let entries = fx.app.audit(&format!("tenant_id={}&operation=updateTenant", fx.tenant)).await;
    let fields: Vec<Value> = entries.iter().map(|e| e["metadata"]["changed_fields"].clone()).collect();
    assert!(fields.contains(&json!(["observe_mode"])), "{fields:?}");
    let seen = eventually(Duration::from_secs(15), || async {
        events_of_type(&fx, "tenant.settings_changed").await.len() == 1
    })
    .await;
    let events = events_of_type(&fx, "tenant.settings_changed").await;
    assert!(seen, "one tenant.settings_changed (the repeat changed nothing): {events:?}");
    assert_eq!(events[0]["data"]["changed_fields"], json!(["observe_mode"]));
}

#[tokio::test]
async fn a_bad_observe_mode_is_refused_with_400_naming_the_field() {
    let fx = Fx::new().await;
    for bad in ["SHADOW", "observe", ""] {
        let r = patch_tenant(&fx.app, &fx.tenant, json!({"observe_mode": bad})).await;
        r.expect_error(400, "INVALID_REQUEST");
        assert_eq!(r.body["details"]["field"], "observe_mode", "{}", r.text);
    }
    let r = send(fx.app.admin(Method::GET, "/v1/admin/tenants").query(&[("observe_mode", "SHADOW")])).await;
    r.expect_error(400, "INVALID_REQUEST");
    assert_eq!(r.body["details"]["field"], "observe_mode", "{}", r.text);
    let r = fx.reserve_with("bad", json!({}), 1, json!({"observe_mode": "SHADOW"})).await;
    r.expect_error(400, "INVALID_REQUEST");
    let t = send(fx.app.admin(Method::GET, &format!("/v1/admin/tenants/{}", fx.tenant))).await;
    assert_eq!(t.body["observe_mode"], "ENFORCE", "nothing changed: {}", t.text);
}
