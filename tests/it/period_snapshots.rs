//! Budget periods in configuration snapshots (README §Configuration export and import): an
//! export carries a budget's period as its create request gives it, plus one period's
//! allocation, and an import writes what the roll reads, so an imported budget keeps rolling as
//! its source does. Periods last 1 to 2 seconds; tests poll, and assert only what holds however
//! many boundaries passed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::events::events_of;
use crate::fixture::{Fx, USD, amt};
use crate::helpers::{Reply, TestApp, eventually, send};
use crate::periods::{ms_of, now_ms, periodic, rolls, wait_for_roll};

async fn export(app: &TestApp) -> Value {
    let r = send(app.admin(Method::GET, "/v1/admin/config/export?include=balances")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn import(app: &TestApp, query: &str, snapshot: &Value) -> Reply {
    send(app.admin(Method::POST, &format!("/v1/admin/config/import{query}")).json(snapshot)).await
}

fn budget_mut<'a>(snapshot: &'a mut Value, scope: &str) -> &'a mut Value {
    snapshot["budgets"].as_array_mut().unwrap().iter_mut().find(|b| b["scope"] == scope).unwrap()
}

/// The same tenant on another engine (reads only: no API key there).
fn on(app: TestApp, fx: &Fx) -> Fx {
    Fx { app: Arc::new(app), tenant: fx.tenant.clone(), key: String::new() }
}

#[tokio::test]
async fn an_imported_periodic_budget_keeps_rolling_as_its_source_does() {
    let fx = Fx::new().await;
    let start = now_ms();
    periodic(&fx, "/workspace:carry", 1_000, start, 1_500, "CARRY_FORWARD").await;
    let r = fx
        .budget_with(
            "/workspace:monthly",
            USD,
            500,
            json!({"period_start": "2026-01-10T00:00:00Z", "period": "P1M", "rollover_policy": "CAP_AT_ALLOCATED"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let snapshot = export(&fx.app).await;
    let carry = budget_mut(&mut snapshot.clone(), &fx.scope("/workspace:carry")).clone();
    assert_eq!(carry["rollover_policy"], "CARRY_FORWARD");
    assert_eq!(carry["period_allocation"], 1_000, "{carry}");
    assert_eq!(ms_of(&carry["period_end"]) - ms_of(&carry["period_start"]), 1_500);
    assert!(carry.get("period").is_none(), "a length given by the boundaries has no designator: {carry}");
    let monthly = budget_mut(&mut snapshot.clone(), &fx.scope("/workspace:monthly")).clone();
    assert_eq!((monthly["period"].clone(), monthly["period_allocation"].clone()), (json!("P1M"), json!(500)));
    assert!(monthly["period_start"].as_str().unwrap().ends_with("-10T00:00:00Z"), "{monthly}");

    let copy = on(TestApp::spawn().await, &fx);
    let r = import(&copy.app, "?mode=merge", &snapshot).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["changes"]["budgets"]["create"].as_array().unwrap().len(), 2, "{}", r.text);
    assert_eq!(copy.ledger("/workspace:monthly", USD).await["period"], "P1M");

    // The copy rolls: its reads move on from the exported period, one period's allocation carried each time.
    let exported_start = ms_of(&carry["period_start"]);
    let rolled = wait_for_roll(&copy, "/workspace:carry", exported_start).await;
    let crossed = (ms_of(&rolled["period_start"]) - start) / 1_500;
    assert_eq!(amt(&rolled, "allocated"), 1_000 * (crossed + 1), "CARRY_FORWARD with nothing spent: {rolled}");
    // ... exactly as its source does: read both within one period of the source, they agree.
    let agree = eventually(Duration::from_secs(20), || async {
        let before = fx.ledger("/workspace:carry", USD).await;
        let there = copy.ledger("/workspace:carry", USD).await;
        let after = fx.ledger("/workspace:carry", USD).await;
        before["period_start"] == after["period_start"]
            && (there["period_start"].clone(), there["allocated"].clone())
                == (before["period_start"].clone(), before["allocated"].clone())
    })
    .await;
    assert!(agree, "the copy never agreed with its source: {}", copy.ledger("/workspace:carry", USD).await);
    // A write makes the roll for real and reports it, as on the source.
    assert_eq!(copy.fund("/workspace:carry", "CREDIT", 1).await.status, 200);
    let scope = copy.scope("/workspace:carry");
    let reported = eventually(Duration::from_secs(15), || async {
        !rolls(&events_of(&copy.app, &copy.tenant).await, &scope).is_empty()
    })
    .await;
    assert!(reported, "no budget.period_rolled on the copy");
    let first = rolls(&events_of(&copy.app, &copy.tenant).await, &scope)[0].clone();
    assert_eq!(first["data"]["rollover_policy"], "CARRY_FORWARD", "{first}");
    assert_eq!(ms_of(&first["data"]["previous_period_start"]), exported_start, "{first}");
}

#[tokio::test]
async fn a_plan_shows_a_changed_rollover_policy_and_the_import_rolls_the_ended_period_under_the_old_one() {
    let fx = Fx::new().await;
    let suffix = "/workspace:plan";
    let start = now_ms();
    periodic(&fx, suffix, 1_000, start, 1_000, "NONE").await;
    wait_for_roll(&fx, suffix, start).await;
    let id = format!("{}|{USD}", fx.scope(suffix));
    let snapshot = export(&fx.app).await;
    // Unchanged although periods keep ending: the budget's current period keeps the schedule.
    let r = import(&fx.app, "?mode=merge&dry_run=true", &snapshot).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["changes"]["budgets"]["update"], json!([]), "{}", r.text);
    let mut changed = snapshot.clone();
    budget_mut(&mut changed, &fx.scope(suffix))["rollover_policy"] = json!("CARRY_FORWARD");
    let r = import(&fx.app, "?mode=merge&dry_run=true", &changed).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["changes"]["budgets"]["update"], json!([id]), "{}", r.text);
    assert_eq!(fx.ledger(suffix, USD).await["rollover_policy"], "NONE", "a dry run changes nothing");

    let r = import(&fx.app, "?mode=merge", &changed).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["changes"]["budgets"]["update"], json!([id]), "{}", r.text);
    assert_eq!(fx.ledger(suffix, USD).await["rollover_policy"], "CARRY_FORWARD");
    // The periods that ended before the import rolled under NONE, reported; later ones carry.
    let scope = fx.scope(suffix);
    let old = eventually(Duration::from_secs(15), || async {
        rolls(&events_of(&fx.app, &fx.tenant).await, &scope).iter().any(|e| e["data"]["rollover_policy"] == "NONE")
    })
    .await;
    assert!(old, "the import's roll was not reported: {:?}", rolls(&events_of(&fx.app, &fx.tenant).await, &scope));
    let carried =
        eventually(Duration::from_secs(20), || async { amt(&fx.ledger(suffix, USD).await, "allocated") >= 2_000 })
            .await;
    assert!(carried, "CARRY_FORWARD never applied: {}", fx.ledger(suffix, USD).await);
}

#[tokio::test]
async fn bad_period_settings_refuse_the_import_naming_the_budget_and_its_field() {
    let fx = Fx::new().await;
    periodic(&fx, "/workspace:bad", 1_000, now_ms(), 3_600_000, "CAP_AT_ALLOCATED").await;
    fx.budget("", 5_000).await;
    let snapshot = export(&fx.app).await;
    let (periodic_scope, plain_scope) = (fx.scope("/workspace:bad"), fx.scope(""));
    let cases: [(&str, &str, Value, &str); 5] = [
        (&periodic_scope, "period", json!("P2D"), "period"),
        (&periodic_scope, "period", json!("P1D"), "period"),
        (&periodic_scope, "period_end", json!(null), "period_end"),
        (&plain_scope, "rollover_policy", json!("CARRY_FORWARD"), "rollover_policy"),
        (&plain_scope, "period_allocation", json!(10), "period_allocation"),
    ];
    for (scope, field, value, named) in cases {
        let mut bad = snapshot.clone();
        budget_mut(&mut bad, scope)[field] = value.clone();
        let r = import(&fx.app, "?mode=merge", &bad).await;
        let message = r.expect_error(400, "INVALID_REQUEST");
        let expected = format!("budgets[{scope}|{USD}].{named}");
        assert_eq!(r.body["details"]["field"], expected, "{field} = {value}: {message}");
    }
    assert_eq!(fx.ledger("/workspace:bad", USD).await["rollover_policy"], "CAP_AT_ALLOCATED");
}
