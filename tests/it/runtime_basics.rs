//! Runtime authentication, scope derivation, units and the reserve evaluation order
//! (RUNTIME-CHECKLIST §2 A, B, C, E, J, K). Each test names the rules it pins.

use reqwest::Method;
use serde_json::json;

use crate::fixture::{Fx, USD, amt, assert_invariant, on_redis_and_cluster};
use crate::helpers::send;

// R-A1: every runtime call needs X-Cycles-API-Key; a missing or unknown key is 401.
#[tokio::test]
async fn runtime_calls_without_a_valid_key_are_401() {
    let fx = Fx::new().await;
    let body = fx.reserve_body("k", json!({}), 1);
    let none = send(fx.app.client.post(fx.app.runtime_url("/v1/reservations")).json(&body)).await;
    none.expect_error(401, "UNAUTHORIZED");
    let bad = send(
        fx.app
            .client
            .post(fx.app.runtime_url("/v1/reservations"))
            .header("x-cycles-api-key", "cyc_live_nope")
            .json(&body),
    )
    .await;
    bad.expect_error(401, "UNAUTHORIZED");
}

// R-A3: a subject.tenant other than the key's tenant is 403 FORBIDDEN.
#[tokio::test]
async fn a_subject_naming_another_tenant_is_403() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    let mut body = fx.reserve_body("k", json!({}), 1);
    body["subject"]["tenant"] = json!("someone-else");
    fx.post("/v1/reservations", body.clone()).await.expect_error(403, "FORBIDDEN");
    fx.post("/v1/decide", json!({"idempotency_key": "d", "subject": body["subject"], "action": body["action"], "estimate": body["estimate"]}))
        .await
        .expect_error(403, "FORBIDDEN");
}

// R-A4: another tenant's reservation is 403 on get/commit/release/extend; an unknown id is 404.
#[tokio::test]
async fn another_tenants_reservation_is_403_and_an_unknown_one_404() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    let id = fx.reserved("r1", json!({}), 10).await;
    let other_tenant = crate::helpers::tenant_id("other");
    fx.app.create_tenant(&other_tenant).await;
    let other_key = fx.app.create_key(&other_tenant, json!({})).await["key_secret"].as_str().unwrap().to_string();
    let as_other =
        |m: Method, p: String| fx.app.client.request(m, fx.app.runtime_url(&p)).header("x-cycles-api-key", &other_key);
    send(as_other(Method::GET, format!("/v1/reservations/{id}"))).await.expect_error(403, "FORBIDDEN");
    let commit = json!({"idempotency_key": "c", "actual": {"unit": USD, "amount": 1}});
    send(as_other(Method::POST, format!("/v1/reservations/{id}/commit")).json(&commit))
        .await
        .expect_error(403, "FORBIDDEN");
    send(as_other(Method::POST, format!("/v1/reservations/{id}/release")).json(&json!({"idempotency_key": "r"})))
        .await
        .expect_error(403, "FORBIDDEN");
    send(
        as_other(Method::POST, format!("/v1/reservations/{id}/extend"))
            .json(&json!({"idempotency_key": "e", "extend_by_ms": 1000})),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    let unknown = format!("rsv_{}_{}", fx.tenant, "0".repeat(32));
    fx.get(&format!("/v1/reservations/{unknown}")).await.expect_error(404, "NOT_FOUND");
    fx.get("/v1/reservations/garbage").await.expect_error(404, "NOT_FOUND");
    fx.commit(&unknown, "c", 1).await.expect_error(404, "NOT_FOUND");
}

// R-A5: the admin key may read and release any tenant's reservation (release audited as
// admin_on_behalf_of); listing with the admin key needs `tenant`.
#[tokio::test]
async fn the_admin_key_reads_and_releases_any_reservation_and_the_release_is_audited() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    let id = fx.reserved("r1", json!({}), 10).await;
    let got = send(
        fx.app
            .client
            .get(fx.app.runtime_url(&format!("/v1/reservations/{id}")))
            .header("x-admin-api-key", crate::helpers::ADMIN_KEY),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let list = send(
        fx.app.client.get(fx.app.runtime_url("/v1/reservations")).header("x-admin-api-key", crate::helpers::ADMIN_KEY),
    )
    .await;
    let msg = list.expect_error(400, "INVALID_REQUEST");
    assert_eq!(msg, "tenant query parameter is required when using admin key authentication");
    let listed = send(
        fx.app
            .client
            .get(fx.app.runtime_url(&format!("/v1/reservations?tenant={}", fx.tenant)))
            .header("x-admin-api-key", crate::helpers::ADMIN_KEY),
    )
    .await;
    assert_eq!(listed.body["reservations"].as_array().unwrap().len(), 1);
    let released = send(
        fx.app
            .client
            .post(fx.app.runtime_url(&format!("/v1/reservations/{id}/release")))
            .header("x-admin-api-key", crate::helpers::ADMIN_KEY)
            .json(&json!({"idempotency_key": "admin-rel", "reason": "[INCIDENT_FORCE_RELEASE] stuck agent"})),
    )
    .await;
    assert_eq!(released.status, 200, "{}", released.text);
    assert_eq!(amt(&released.body, "released"), 10);
    let audit = fx.app.audit(&format!("operation=releaseReservation&tenant_id={}", fx.tenant)).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["metadata"]["actor_type"], "admin_on_behalf_of");
    assert_eq!(audit[0]["resource_id"], id.as_str());
    let commit = send(
        fx.app
            .client
            .post(fx.app.runtime_url(&format!("/v1/reservations/{id}/commit")))
            .header("x-admin-api-key", crate::helpers::ADMIN_KEY)
            .json(&json!({"idempotency_key": "c", "actual": {"unit": USD, "amount": 1}})),
    )
    .await;
    commit.expect_error(401, "UNAUTHORIZED");
}

// R-A7: a key without the route's permission gets 403 FORBIDDEN on the runtime plane.
#[tokio::test]
async fn a_key_without_the_routes_permission_is_403() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    let read_only = fx.app.create_key(&fx.tenant, json!({"permissions": ["balances:read", "admin:write"]})).await;
    let key = read_only["key_secret"].as_str().unwrap();
    let r = send(
        fx.app
            .client
            .post(fx.app.runtime_url("/v1/reservations"))
            .header("x-cycles-api-key", key)
            .json(&fx.reserve_body("k", json!({}), 1)),
    )
    .await;
    assert!(r.expect_error(403, "FORBIDDEN").contains("reservations:create"));
    let b = send(
        fx.app
            .client
            .get(fx.app.runtime_url(&format!("/v1/balances?tenant={}", fx.tenant)))
            .header("x-cycles-api-key", key),
    )
    .await;
    assert_eq!(b.status, 200);
}

// R-B1, R-B2, R-B3, R-B4, R-B6, R-B7: scopes are the cumulative prefixes of the named levels in
// canonical order with gaps skipped and values lowercased; every budgeted scope is charged,
// unbudgeted ones are skipped, parents do not aggregate children.
on_redis_and_cluster! {
    async fn scopes_are_cumulative_prefixes_and_every_budgeted_scope_is_charged(fx: Fx) {
        fx.budget("", 1000).await;
        fx.budget("/workspace:eng/agent:bot", 100).await;
        let r = fx.reserve("k", json!({"agent": "Bot", "workspace": "ENG", "toolset": "search"}), 30).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let t = &fx.tenant;
        assert_eq!(
            r.body["affected_scopes"],
            json!([
                format!("tenant:{t}"),
                format!("tenant:{t}/workspace:eng"),
                format!("tenant:{t}/workspace:eng/agent:bot"),
                format!("tenant:{t}/workspace:eng/agent:bot/toolset:search")
            ])
        );
        assert_eq!(r.body["scope_path"], format!("tenant:{t}/workspace:eng/agent:bot/toolset:search"));
        assert!(r.body.get("balances").is_none(), "a live reserve answers without balances (the hot path)");
        for suffix in ["", "/workspace:eng/agent:bot"] {
            let b = fx.ledger(suffix, USD).await;
            assert_eq!(amt(&b, "reserved"), 30, "only budgeted scopes are charged");
            assert_invariant(&b);
        }
        let unbudgeted = fx.get(&format!("/v1/balances?tenant={}&workspace=eng", fx.tenant)).await;
        assert_eq!(unbudgeted.body["balances"].as_array().unwrap().len(), 1, "no budget was made for skipped scopes");
        assert_eq!(amt(&fx.ledger("", USD).await, "remaining"), 970);
        assert_eq!(amt(&fx.ledger("/workspace:eng/agent:bot", USD).await, "remaining"), 70);
    }
}

// R-B4, R-E5, R-C2: no budget at any derived scope is 404 live, DENY BUDGET_NOT_FOUND on dry
// run and decide; a budget in another unit only is 400 UNIT_MISMATCH with details.
#[tokio::test]
async fn a_missing_budget_is_404_live_deny_on_dry_run_and_unit_mismatch_when_another_unit_exists() {
    let fx = Fx::new().await;
    let live = fx.reserve("k1", json!({"agent": "a"}), 5).await;
    assert!(live.expect_error(404, "NOT_FOUND").contains("Budget not found"));
    let dry = fx.reserve_with("k2", json!({"agent": "a"}), 5, json!({"dry_run": true})).await;
    assert_eq!(dry.status, 200);
    assert_eq!(
        (dry.body["decision"].clone(), dry.body["reason_code"].clone()),
        (json!("DENY"), json!("BUDGET_NOT_FOUND"))
    );
    let decide = fx.post("/v1/decide", json!({"idempotency_key": "d", "subject": fx.subject(json!({})), "action": {"kind": "k", "name": "n"}, "estimate": {"unit": USD, "amount": 5}})).await;
    assert_eq!(decide.body["reason_code"], "BUDGET_NOT_FOUND");
    let r = fx.budget_with("", "TOKENS", 100, json!({})).await;
    assert_eq!(r.status, 201);
    for (key, extra) in [("k3", json!({})), ("k4", json!({"dry_run": true}))] {
        let m = fx.reserve_with(key, json!({}), 5, extra).await;
        m.expect_error(400, "UNIT_MISMATCH");
        assert_eq!(m.body["details"]["requested_unit"], USD);
        assert_eq!(m.body["details"]["expected_units"], json!(["TOKENS"]));
    }
    let d = fx.post("/v1/decide", json!({"idempotency_key": "d2", "subject": fx.subject(json!({})), "action": {"kind": "k", "name": "n"}, "estimate": {"unit": USD, "amount": 5}})).await;
    d.expect_error(400, "UNIT_MISMATCH");
}

// R-E1..R-E4, R-I1, R-I2, R-D4, EC-7: frozen/closed first, then over-limit on ANY scope (even
// with debt), then remaining < estimate (strict); repaying the debt clears the over-limit.
on_redis_and_cluster! {
    async fn reserve_checks_run_in_the_spec_order_and_over_limit_blocks_until_repaid(fx: Fx) {
        fx.budget("", 1000).await;
        fx.budget_with("/agent:a", USD, 100, json!({"overdraft_limit": {"unit": USD, "amount": 10}})).await;
        let a = json!({"agent": "a"});
        let overdraft = json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"});
        let r = fx.reserve_with("k1", a.clone(), 100, overdraft).await;
        assert_eq!(r.status, 200, "remaining == estimate is allowed: {}", r.text);
        let id = r.body["reservation_id"].as_str().unwrap().to_string();
        fx.reserve("k2", a.clone(), 1).await.expect_error(409, "BUDGET_EXCEEDED");
        let c = fx.commit(&id, "c1", 110).await;
        assert_eq!(c.status, 200, "{}", c.text);
        assert_eq!(amt(&c.body, "charged"), 110);
        let agent = fx.ledger("/agent:a", USD).await;
        assert_eq!(
            (amt(&agent, "debt"), amt(&agent, "remaining"), agent["is_over_limit"].clone()),
            (10, -10, json!(false))
        );
        assert_invariant(&agent);
        let q = [("scope", fx.scope("/agent:a")), ("unit", USD.to_string())];
        let p = send(
            fx.app
                .admin(Method::PATCH, "/v1/admin/budgets")
                .query(&q)
                .json(&json!({"overdraft_limit": {"unit": USD, "amount": 5}})),
        )
        .await;
        assert_eq!(p.body["is_over_limit"], true, "{}", p.text);
        let over = fx.reserve("k3", a.clone(), 1).await;
        over.expect_error(409, "OVERDRAFT_LIMIT_EXCEEDED");
        assert_eq!(over.body["details"]["scope"], fx.scope("/agent:a"));
        fx.reserved("k4", json!({}), 1).await;
        let tq = [("scope", fx.scope("")), ("unit", USD.to_string())];
        send(fx.app.admin(Method::POST, "/v1/admin/budgets/freeze").query(&tq)).await;
        fx.reserve("k5", a.clone(), 1).await.expect_error(409, "BUDGET_FROZEN");
        send(fx.app.admin(Method::POST, "/v1/admin/budgets/unfreeze").query(&tq)).await;
        let repaid = fx.fund("/agent:a", "REPAY_DEBT", 10).await;
        assert_eq!(amt(&repaid.body, "new_debt"), 0, "{}", repaid.text);
        let agent = fx.ledger("/agent:a", USD).await;
        assert_eq!(agent["is_over_limit"], false);
        fx.reserve("k6", a.clone(), 1).await.expect_error(409, "BUDGET_EXCEEDED");
        fx.fund("/agent:a", "CREDIT", 50).await;
        fx.reserved("k7", a, 50).await;
    }
}

// R-E1: a FROZEN budget is 409 BUDGET_FROZEN live, DENY on dry run; unfreezing restores it.
#[tokio::test]
async fn a_frozen_budget_refuses_reservations_until_unfrozen() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    let q = [("scope", fx.scope("")), ("unit", USD.to_string())];
    let f = send(fx.app.admin(Method::POST, "/v1/admin/budgets/freeze").query(&q)).await;
    assert_eq!(f.body["status"], "FROZEN", "{}", f.text);
    fx.reserve("k1", json!({}), 1).await.expect_error(409, "BUDGET_FROZEN");
    let dry = fx.reserve_with("k2", json!({}), 1, json!({"dry_run": true})).await;
    assert_eq!(dry.body["reason_code"], "BUDGET_FROZEN");
    send(fx.app.admin(Method::POST, "/v1/admin/budgets/unfreeze").query(&q)).await;
    fx.reserved("k3", json!({}), 1).await;
}

// R-E9, R-K1: ttl_ms defaults to the tenant's default and is silently capped at its maximum;
// out-of-range ttl/grace are 400.
#[tokio::test]
async fn the_ttl_defaults_to_the_tenant_setting_and_is_capped_at_its_maximum() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    send(
        fx.app
            .admin(Method::PATCH, &format!("/v1/admin/tenants/{}", fx.tenant))
            .json(&json!({"default_reservation_ttl_ms": 5000, "max_reservation_ttl_ms": 20000})),
    )
    .await;
    let d = fx.reserve("k1", json!({}), 1).await;
    assert_eq!(d.body["remaining_ttl_ms"], 5000, "{}", d.text);
    let capped = fx.reserve_with("k2", json!({}), 1, json!({"ttl_ms": 86400000})).await;
    assert_eq!(capped.body["remaining_ttl_ms"], 20000);
    let created = fx.get(&format!("/v1/reservations/{}", capped.body["reservation_id"].as_str().unwrap())).await;
    assert_eq!(
        created.body["expires_at_ms"].as_i64().unwrap() - created.body["created_at_ms"].as_i64().unwrap(),
        20000
    );
    for (field, value) in
        [("ttl_ms", 999), ("ttl_ms", 86_400_001), ("grace_period_ms", -1), ("grace_period_ms", 60_001)]
    {
        let r = fx.reserve_with("k3", json!({}), 1, json!({ field: value })).await;
        assert!(r.expect_error(400, "INVALID_REQUEST").contains(field));
    }
}

// R-J1, EC-19: a dry run evaluates like a live reserve but holds nothing, and answers with
// affected_scopes and without reservation_id, expires_at_ms or remaining_ttl_ms.
#[tokio::test]
async fn a_dry_run_evaluates_without_holding_anything() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let ok = fx.reserve_with("k1", json!({"agent": "a"}), 60, json!({"dry_run": true})).await;
    assert_eq!(ok.body["decision"], "ALLOW", "{}", ok.text);
    for absent in ["reservation_id", "expires_at_ms", "remaining_ttl_ms"] {
        assert!(ok.body.get(absent).is_none(), "{absent}");
    }
    assert_eq!(ok.body["affected_scopes"].as_array().unwrap().len(), 2);
    let deny = fx.reserve_with("k2", json!({}), 101, json!({"dry_run": true})).await;
    assert_eq!(
        (deny.status.as_u16(), deny.body["decision"].clone(), deny.body["reason_code"].clone()),
        (200, json!("DENY"), json!("BUDGET_EXCEEDED"))
    );
    assert_eq!(amt(&fx.ledger("", USD).await, "reserved"), 0);
}

// J, EC-2: decide answers DENY with a reason (never 409 for budget state) and mutates nothing.
#[tokio::test]
async fn decide_answers_allow_or_deny_and_holds_nothing() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let body = |key: &str, amount: i64| json!({"idempotency_key": key, "subject": fx.subject(json!({})), "action": {"kind": "k", "name": "n"}, "estimate": {"unit": USD, "amount": amount}});
    let allow = fx.post("/v1/decide", body("d1", 100)).await;
    assert_eq!(allow.body, json!({"decision": "ALLOW", "affected_scopes": [fx.scope("")]}));
    let deny = fx.post("/v1/decide", body("d2", 101)).await;
    assert_eq!(deny.status, 200);
    assert_eq!(deny.body["reason_code"], "BUDGET_EXCEEDED");
    assert_eq!(amt(&fx.ledger("", USD).await, "remaining"), 100);
}

// R-C4, EC-33: negative or fractional amounts and unknown units are 400 naming the field.
#[tokio::test]
async fn bad_amounts_and_subjects_are_400_naming_the_field() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let base = fx.reserve_body("k", json!({}), 1);
    let cases = [
        ("/estimate/amount", json!(-1), "estimate.amount"),
        ("/estimate/amount", json!(1.5), "estimate.amount"),
        ("/estimate/amount", json!(9223372036854775808_u64), "estimate.amount"),
        ("/estimate/unit", json!("DOLLARS"), "estimate.unit"),
        ("/subject", json!({"dimensions": {"a": "b"}}), "subject"),
        ("/subject/agent", json!("bad agent!"), "subject.agent"),
        ("/subject/agent", json!("x".repeat(129)), "subject.agent"),
        ("/action/kind", json!("k".repeat(65)), "action.kind"),
        ("/idempotency_key", json!(""), "idempotency_key"),
    ];
    for (pointer, value, field) in cases {
        let mut body = base.clone();
        let (parent, leaf) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() { &mut body } else { body.pointer_mut(parent).unwrap() };
        target[leaf] = value;
        let r = fx.post("/v1/reservations", body).await;
        let msg = r.expect_error(400, "INVALID_REQUEST");
        assert!(msg.contains(field), "{pointer}: {msg}");
    }
    let mut extra = base.clone();
    extra["colour"] = json!("red");
    assert!(fx.post("/v1/reservations", extra).await.expect_error(400, "INVALID_REQUEST").contains("colour"));
    let mismatch = send(fx.rt(Method::POST, "/v1/reservations").header("x-idempotency-key", "other").json(&base)).await;
    assert!(mismatch.expect_error(400, "INVALID_REQUEST").contains("idempotency_key"));
}
