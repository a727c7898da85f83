//! The policy dry run's history replay: a candidate decided against the tenant's reservations
//! of the last N days, as the ledger recorded them, with nothing written.

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, amt};
use crate::helpers::{Reply, send};

async fn dry_run(fx: &Fx, body: Value) -> Reply {
    send(fx.app.admin(Method::POST, "/v1/admin/policies/dry-run").json(&body)).await
}

/// Reserves (live, through the runtime API) one `kind` action for `agent`.
async fn reserve(fx: &Fx, n: usize, agent: &str, kind: &str) {
    let action = json!({"action": {"kind": kind, "name": "tool"}});
    let r = fx.reserve_with(&format!("{agent}-{kind}-{n}"), json!({"agent": agent}), 1_000, action).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_replay_counts_what_a_candidate_denying_one_kind_would_have_done_to_the_tenants_reservations() {
    let fx = Fx::new().await;
    let t = fx.tenant.clone();
    fx.budget("", 1_000_000_000).await;
    for n in 0..3 {
        reserve(&fx, n, "billing", "payment.charge").await;
    }
    reserve(&fx, 0, "planner", "payment.charge").await;
    for n in 0..4 {
        reserve(&fx, n, "planner", "llm.completion").await;
    }
    // A refused reservation holds nothing and is not in the history.
    let refused = fx.reserve_with("too-big", json!({"agent": "planner"}), 2_000_000_000, json!({})).await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    // The tenant's caps apply to everything today.
    let caps = json!({"tenant_id": t, "name": "caps", "scope_pattern": format!("tenant:{t}"), "priority": 1,
        "caps": {"max_tokens": 512}});
    let r = send(fx.app.admin(Method::POST, "/v1/admin/policies").json(&caps)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let candidate = json!({"name": "no payments", "scope_pattern": format!("tenant:{t}/*"), "priority": 10,
        "denied_action_kinds": ["payment.charge"]});
    let r = dry_run(&fx, json!({"tenant_id": t, "policy": candidate, "replay": {"days": 7}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let replay = &r.body["replay"];
    println!("replay: {replay}");
    assert_eq!(replay["days"], 7);
    assert_eq!(replay["reservations"], 8, "{replay}");
    assert_eq!(replay["denied"], 4, "{replay}");
    assert_eq!(replay["capped"], 4, "the other four keep the tenant's caps: {replay}");
    assert_eq!(replay["changed"], 4, "{replay}");
    assert_eq!(replay["skipped"], 0);
    assert_eq!(replay["read_limit"], 100_000);
    assert_eq!(replay["read_limit_reached"], false);
    assert_eq!(
        replay["top_scopes"][0],
        json!({"scope": format!("tenant:{t}/agent:billing"), "denied": 3, "capped": 0})
    );
    assert_eq!(
        replay["top_scopes"][1],
        json!({"scope": format!("tenant:{t}/agent:planner"), "denied": 1, "capped": 4})
    );
    assert_eq!(r.body["results"], json!([]), "no samples were given");
    // Nothing was written: the reservations are still ACTIVE and the budget holds all eight.
    let balance = fx.ledger("", "USD_MICROCENTS").await;
    assert_eq!(amt(&balance, "reserved"), 8_000, "{balance}");
    // A stored policy with a patch replays too: lifting the caps changes all eight.
    let r = dry_run(&fx, json!({"tenant_id": t, "policy_id": r.body["candidate"]["policy_id"], "replay": {"days": 1}}))
        .await;
    assert_eq!(r.status, 404, "the new candidate was never stored: {}", r.text);
    let id = send(fx.app.admin(Method::GET, &format!("/v1/admin/policies?tenant_id={t}"))).await.body["policies"][0]
        ["policy_id"]
        .clone();
    let r =
        dry_run(&fx, json!({"tenant_id": t, "policy_id": id, "patch": {"status": "DISABLED"}, "replay": {"days": 1}}))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["replay"]["denied"].clone(), r.body["replay"]["changed"].clone()), (json!(0), json!(8)));
}

#[tokio::test]
async fn a_replay_outside_one_to_thirty_days_or_without_days_is_400_naming_replay_days() {
    let fx = Fx::new().await;
    let t = fx.tenant.clone();
    let candidate =
        json!({"name": "c", "scope_pattern": format!("tenant:{t}"), "denied_action_kinds": ["code.deploy"]});
    for replay in [json!({"days": 0}), json!({"days": 31}), json!({"days": "7"}), json!({"days": 1.5}), json!({})] {
        let r = dry_run(&fx, json!({"tenant_id": t, "policy": candidate, "replay": replay})).await;
        let message = r.expect_error(400, "INVALID_REQUEST");
        assert!(message.contains("replay") && message.contains("days"), "{replay}: {}", r.text);
    }
    let r = dry_run(&fx, json!({"tenant_id": t, "policy": candidate, "replay": {"days": 1, "weeks": 2}})).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("weeks"), "{}", r.text);
    let r = dry_run(&fx, json!({"tenant_id": t, "policy": candidate})).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("samples"), "{}", r.text);
}
