//! Policy versions and rollback (the last 10 kept; a rollback is a new version equal to the
//! one restored), and the dry run (decisions with and without a candidate; nothing written).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, send};
use crate::policies::{created, patch, tenant};

async fn versions(app: &TestApp, id: &str) -> Reply {
    send(app.admin(Method::GET, &format!("/v1/admin/policies/{id}/versions"))).await
}

async fn rollback(app: &TestApp, id: &str, version: Value) -> Reply {
    send(app.admin(Method::POST, &format!("/v1/admin/policies/{id}/rollback")).json(&json!({"version": version}))).await
}

/// The fields a version restores (everything but ids and times).
fn content(p: &Value) -> Value {
    let mut p = p.clone();
    for f in ["policy_id", "created_at", "updated_at"] {
        p.as_object_mut().unwrap().remove(f);
    }
    p
}

#[tokio::test]
async fn versions_are_kept_to_the_last_ten_and_a_pruned_one_cannot_be_restored() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "pvers").await;
    let id = created(&app, &t, json!({"name": "p", "scope_pattern": "agent:*"})).await;
    for priority in 1..=11 {
        assert_eq!(patch(&app, &id, json!({"priority": priority})).await.status, 200);
    }
    let r = versions(&app, &id).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["current_version"], 12);
    let numbers: Vec<i64> =
        r.body["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(numbers, (3..=12).rev().collect::<Vec<_>>());
    assert_eq!(r.body["versions"][0]["rules"]["priority"], 11);
    assert_eq!(r.body["versions"][9]["change"], "update");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM policy_versions WHERE policy_id = $1")
        .bind(&id)
        .fetch_one(&app.pg)
        .await
        .unwrap();
    assert_eq!(stored, 10);
    assert!(rollback(&app, &id, json!(2)).await.expect_error(404, "NOT_FOUND").contains("version 2"));
    rollback(&app, &id, json!(99)).await.expect_error(404, "NOT_FOUND");
    rollback(&app, &id, json!(0)).await.expect_error(400, "INVALID_REQUEST");
    rollback(&app, &id, json!("3")).await.expect_error(400, "INVALID_REQUEST");
    rollback(&app, "pol_missing", json!(3)).await.expect_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_rollback_creates_a_new_version_equal_to_the_restored_one_and_is_audited() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "proll").await;
    let id = created(
        &app,
        &t,
        json!({"name": "p", "scope_pattern": "agent:*", "caps": {"max_tokens": 100}, "denied_action_kinds": ["code.deploy"]}),
    )
    .await;
    let v1 = send(app.admin(Method::GET, &format!("/v1/admin/policies/{id}"))).await.body;
    let r = patch(
        &app,
        &id,
        json!({"name": "renamed", "caps": {"max_tokens": 5}, "status": "DISABLED", "denied_action_kinds": []}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = rollback(&app, &id, json!(1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(content(&r.body), content(&v1), "the content of version 1 is back");
    let listed = versions(&app, &id).await;
    assert_eq!(listed.body["current_version"], 3);
    let newest = &listed.body["versions"][0];
    assert_eq!(
        (newest["version"].clone(), newest["change"].clone(), newest["restored_from"].clone()),
        (json!(3), json!("rollback"), json!(1))
    );
    assert_eq!(newest["rules"], listed.body["versions"][2]["rules"]);
    let entries = app.audit(&format!("tenant_id={t}&operation=rollbackPolicy")).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["metadata"]["restored_version"], 1);
    let events = send(
        app.admin(Method::GET, "/v1/admin/events")
            .query(&[("tenant_id", t.as_str()), ("event_type", "policy.updated")]),
    )
    .await;
    let last =
        events.body["events"].as_array().unwrap().iter().find(|e| e["request_id"] == entries[0]["request_id"]).cloned();
    let mut changed: Vec<String> =
        serde_json::from_value(last.expect("the rollback's event")["data"]["changed_fields"].clone()).unwrap();
    changed.sort();
    assert_eq!(changed, vec!["caps", "denied_action_kinds", "name", "status"]);
}

async fn dry_run(app: &TestApp, body: Value) -> Reply {
    send(app.admin(Method::POST, "/v1/admin/policies/dry-run").json(&body)).await
}

#[tokio::test]
async fn a_dry_run_answers_allow_cap_or_deny_per_sample_with_the_matching_policies_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "pdry").await;
    let caps = created(
        &app,
        &t,
        json!({"name": "caps", "scope_pattern": format!("tenant:{t}"), "priority": 1, "caps": {"max_tokens": 512}}),
    )
    .await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM policy_versions").fetch_one(&app.pg).await.unwrap();
    let samples = json!([
        {"scope": format!("tenant:{t}/agent:bot"), "action_kind": "payment.charge", "run_id": "r1"},
        {"scope": format!("tenant:{t}/agent:bot"), "action_kind": "message.email.send", "ttl_ms": 120000},
        {"scope": format!("tenant:{t}/workspace:ops"), "action_kind": "payment.charge",
         "estimate": {"unit": "USD_MICROCENTS", "amount": 500}},
    ]);
    let candidate = json!({
        "name": "sandbox", "scope_pattern": "agent:*", "priority": 10,
        "denied_action_kinds": ["payment.charge"],
        "action_quotas": [{"action_kind": "message.email.send", "max_calls": 3, "window": "per_run"}],
        "reservation_ttl_override": {"max_ttl_ms": 60000},
    });
    let r = dry_run(&app, json!({"tenant_id": t, "policy": candidate, "samples": samples})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let res = r.body["results"].as_array().unwrap();
    assert_eq!(res[0]["decision"], "DENY");
    assert_eq!(res[0]["deny_detail"]["reason_code"], "ACTION_KIND_DENIED");
    assert_eq!(res[0]["deny_detail"]["blocked_by_policy"], "pol_dry_run");
    assert_eq!(res[0]["current"]["decision"], "ALLOW_WITH_CAPS");
    assert_eq!(res[0]["changed"], true);
    assert_eq!(res[0]["matched_policies"], json!(["pol_dry_run", caps]));
    assert_eq!(res[1]["decision"], "ALLOW_WITH_CAPS");
    assert_eq!(res[1]["caps"], json!({"max_tokens": 512}));
    assert_eq!(res[1]["would_count_against"][0]["window"], "per_run");
    assert_eq!(res[1]["run_id_required"], true);
    assert_eq!((res[1]["ttl_ms"].clone(), res[1]["ttl_capped"].clone()), (json!(60000), json!(true)));
    assert_eq!(res[2]["decision"], "ALLOW_WITH_CAPS", "the candidate does not match a workspace-only subject");
    assert_eq!(res[2]["candidate_matched"], false);
    assert_eq!(res[2]["estimate"]["amount"], 500);
    assert_eq!(r.body["summary"], json!({"allow": 0, "allow_with_caps": 2, "deny": 1, "changed": 1}));
    // A stored policy with a patch: disabling the caps policy leaves plain ALLOW.
    let r = dry_run(
        &app,
        json!({"tenant_id": t, "policy_id": caps, "patch": {"status": "DISABLED"}, "samples": [samples[1]]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["results"][0]["decision"], "ALLOW");
    assert_eq!(r.body["results"][0]["current"]["decision"], "ALLOW_WITH_CAPS");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM policy_versions").fetch_one(&app.pg).await.unwrap();
    assert_eq!(before, after, "a dry run writes nothing");
    let get = send(app.admin(Method::GET, &format!("/v1/admin/policies/{caps}"))).await;
    assert_eq!(get.body["status"], "ACTIVE");
}

#[tokio::test]
async fn a_dry_run_refuses_bad_candidates_and_samples_naming_the_field() {
    let app = TestApp::spawn().await;
    let t = tenant(&app, "pdrybad").await;
    let ok_sample = json!({"scope": format!("tenant:{t}"), "action_kind": "db.query"});
    let policy = json!({"name": "c", "scope_pattern": "agent:*"});
    let cases = [
        (
            json!({"tenant_id": t, "policy": {"name": "c", "scope_pattern": "agent:*", "priority": -1}, "samples": [ok_sample]}),
            "priority",
        ),
        (json!({"tenant_id": t, "samples": [ok_sample]}), "policy"),
        (json!({"tenant_id": t, "policy": policy, "samples": []}), "samples"),
        (
            json!({"tenant_id": t, "policy": policy, "samples": [{"scope": "tenant:other", "action_kind": "db.query"}]}),
            "samples[0].scope",
        ),
        (
            json!({"tenant_id": t, "policy": policy, "samples": [{"scope": format!("tenant:{t}"), "action_kind": "custom.x.y"}]}),
            "samples[0].action_kind",
        ),
        (
            json!({"tenant_id": t, "policy": policy, "samples": [{"scope": format!("tenant:{t}"), "action_kind": "db.query", "ttl_ms": 5}]}),
            "samples[0].ttl_ms",
        ),
        (json!({"policy": policy, "samples": [ok_sample]}), "tenant_id"),
    ];
    for (body, field) in cases {
        let r = dry_run(&app, body.clone()).await;
        let message = r.expect_error(400, "INVALID_REQUEST");
        assert!(message.starts_with(field), "{message:?} should name {field}");
    }
    let r = dry_run(&app, json!({"tenant_id": t, "policy_id": "pol_nothing", "samples": [ok_sample]})).await;
    r.expect_error(404, "NOT_FOUND");
}
