//! Every validation rule of a policy, on create and on PATCH: 400 `INVALID_REQUEST` whose
//! message names the field, and nothing stored, versioned, audited or announced.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, send};
use crate::policies::{create, created, patch, tenant};

/// (body fields merged into a valid create, the field the 400 must name)
fn create_cases(t: &str) -> Vec<(Value, &'static str)> {
    let quota = |extra: Value| {
        let mut q = json!({"action_kind": "message.email.send", "max_calls": 5, "window": "per_run"});
        if let (Some(q), Value::Object(e)) = (q.as_object_mut(), extra) {
            q.extend(e);
        }
        json!([q])
    };
    vec![
        (json!({"name": null}), "name"),
        (json!({"name": "x".repeat(257)}), "name"),
        (json!({"description": "d".repeat(1025)}), "description"),
        (json!({"scope_pattern": "tenant:a/*/agent:b"}), "scope_pattern"),
        (json!({"scope_pattern": "team:x"}), "scope_pattern"),
        (json!({"scope_pattern": "agent:b/workspace:c"}), "scope_pattern"),
        (json!({"scope_pattern": "*"}), "scope_pattern"),
        (json!({"scope_pattern": "tenant:someone-else/*"}), "scope_pattern"),
        (json!({"priority": -1}), "priority"),
        (json!({"priority": 1_000_001}), "priority"),
        (json!({"caps": {"max_tokens": -5}}), "caps.max_tokens"),
        (json!({"caps": {"max_tokens": 100_000_000_000_i64}}), "caps.max_tokens"),
        (json!({"caps": {"cooldown_ms": 86_400_001}}), "caps.cooldown_ms"),
        (json!({"caps": {"tool_allowlist": [""]}}), "caps.tool_allowlist[0]"),
        (json!({"caps": {"max_tokenz": 1}}), "caps"),
        (
            json!({"reservation_ttl_override": {"default_ttl_ms": 60_000, "max_ttl_ms": 30_000}}),
            "reservation_ttl_override.default_ttl_ms",
        ),
        (json!({"reservation_ttl_override": {"max_ttl_ms": 999}}), "reservation_ttl_override.max_ttl_ms"),
        (json!({"reservation_ttl_override": {"max_extensions": -1}}), "reservation_ttl_override.max_extensions"),
        (json!({"rate_limits": {"max_reservations_per_minute": 0}}), "rate_limits.max_reservations_per_minute"),
        (
            json!({"effective_from": "2026-06-01T00:00:00Z", "effective_until": "2026-05-01T00:00:00Z"}),
            "effective_from",
        ),
        (json!({"effective_from": "next tuesday"}), "effective_from"),
        (json!({"status": "ACTIVE"}), "status"),
        (json!({"commit_overage_policy": "MAYBE"}), "commit_overage_policy"),
        (json!({"action_quotas": quota(json!({"max_calls": -3}))}), "action_quotas[0].max_calls"),
        (json!({"action_quotas": quota(json!({"max_calls": 100_001}))}), "action_quotas[0].max_calls"),
        (json!({"action_quotas": quota(json!({"window": "per_week"}))}), "action_quotas[0].window"),
        (json!({"action_quotas": quota(json!({"action_kind": "email.blast"}))}), "action_quotas[0].action_kind"),
        (
            json!({"action_quotas": quota(json!({"action_kind": "custom.acme.erp.post"}))}),
            "action_quotas[0].action_kind",
        ),
        (
            json!({"action_quotas": quota(json!({"window": "per_hour_tumbling", "per_run_counter_ttl_ms": 120_000}))}),
            "action_quotas[0].per_run_counter_ttl_ms",
        ),
        (
            json!({"action_quotas": quota(json!({"per_run_counter_ttl_ms": 1000}))}),
            "action_quotas[0].per_run_counter_ttl_ms",
        ),
        (json!({"action_quotas": quota(json!({"threshold_pct": 1.5}))}), "action_quotas[0].threshold_pct"),
        (json!({"action_quotas": (0..51).map(|_| quota(json!({}))[0].clone()).collect::<Vec<_>>()}), "action_quotas"),
        (
            json!({"risk_class_quotas": [{"risk_class": "risky", "max_calls": 5, "window": "per_run"}]}),
            "risk_class_quotas[0].risk_class",
        ),
        (
            json!({"risk_class_quotas": [{"risk_class": "high_risk", "max_calls": 0, "window": "per_run"}]}),
            "risk_class_quotas[0].max_calls",
        ),
        (
            json!({"allowed_action_kinds": ["db.query"], "denied_action_kinds": ["payment.charge"]}),
            "allowed_action_kinds",
        ),
        (json!({"denied_action_kinds": ["payments.charge"]}), "denied_action_kinds[0]"),
        (json!({"allowed_action_kinds": (0..201).map(|_| "db.query").collect::<Vec<_>>()}), "allowed_action_kinds"),
        (json!({"tenant_id": 7}), "tenant_id"),
        (json!({"colour": "blue"}), "colour"),
        (json!({"scope_pattern": format!("tenant:{t}/agent:ok")}), ""),
    ]
}

async fn nothing_written(app: &TestApp, t: &str, expected_policies: i64) {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM policies").fetch_one(&app.pg).await.unwrap();
    assert_eq!(n, expected_policies, "no policy stored by a refused request");
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM policy_versions").fetch_one(&app.pg).await.unwrap();
    assert_eq!(versions, expected_policies);
    let entries = app.audit(&format!("tenant_id={t}&resource_type=policy")).await;
    assert_eq!(entries.len() as i64, expected_policies);
}

#[tokio::test]
async fn every_create_rule_refuses_bad_input_with_400_naming_the_field_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "prules").await;
    let mut stored = 0;
    for (extra, field) in create_cases(&t) {
        let mut body = json!({"tenant_id": t, "name": format!("n{stored}"), "scope_pattern": "agent:*"});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra.clone()) {
            b.extend(e);
        }
        let r = create(&app, &t, body).await;
        if field.is_empty() {
            assert_eq!(r.status, 201, "{extra}: {}", r.text);
            stored += 1;
            continue;
        }
        let message = r.expect_error(400, "INVALID_REQUEST");
        assert!(message.starts_with(field), "{extra}: {message:?} should name {field}");
        nothing_written(&app, &t, stored).await;
    }
    // A tenant's own pattern is accepted; its lowercase form matches what the subject names.
    let r = create(&app, &t, json!({"name": "own", "scope_pattern": format!("tenant:{t}/*")})).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn every_patch_rule_refuses_bad_input_with_400_naming_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "ppatchrules").await;
    let id = created(
        &app,
        &t,
        json!({"name": "p", "scope_pattern": "agent:*", "denied_action_kinds": ["payment.charge"],
               "reservation_ttl_override": {"max_ttl_ms": 60_000}}),
    )
    .await;
    let before = send(app.admin(Method::GET, &format!("/v1/admin/policies/{id}"))).await.body;
    let cases = [
        (json!({"status": "PAUSED"}), "status"),
        (json!({"status": "DELETED"}), "status"),
        (json!({"priority": -4}), "priority"),
        (json!({"allowed_action_kinds": ["db.query"]}), "allowed_action_kinds"),
        (
            json!({"reservation_ttl_override": {"default_ttl_ms": 90_000, "max_ttl_ms": 60_000}}),
            "reservation_ttl_override.default_ttl_ms",
        ),
        (
            json!({"effective_from": "2027-01-01T00:00:00Z", "effective_until": "2026-01-01T00:00:00Z"}),
            "effective_from",
        ),
        (json!({"name": ""}), "name"),
        (json!({"risk_class_quotas": [{"risk_class": "read_only", "max_calls": 5}]}), "risk_class_quotas[0]"),
        (json!({"tenant_id": t}), "tenant_id"),
    ];
    for (body, field) in cases {
        let r = patch(&app, &id, body.clone()).await;
        let message = r.expect_error(400, "INVALID_REQUEST");
        assert!(message.starts_with(field), "{body}: {message:?} should name {field}");
    }
    let after = send(app.admin(Method::GET, &format!("/v1/admin/policies/{id}"))).await.body;
    assert_eq!(before, after);
    nothing_written(&app, &t, 1).await;
    // Clearing one list while setting the other is allowed.
    let r = patch(&app, &id, json!({"denied_action_kinds": [], "allowed_action_kinds": ["db.query"]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
