//! Usage rollups kept by the outbox drain: after concurrent load, each budget's committed
//! amount equals what its spent moved by, and the counts equal what the clients saw; a
//! tenant's usage covers its root budget's period when that budget has one.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD, amt};
use crate::helpers::{TestApp, eventually, send};
use crate::periods::{ms_of, now_ms, periodic, wait_for_roll};
use crate::token_usage::wait_for_records;

/// The tenant's usage row for `unit`.
pub async fn usage_of(app: &TestApp, tenant: &str, unit: &str) -> Value {
    let r = send(app.admin(Method::GET, &format!("/v1/admin/tenants/{tenant}/usage"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["units"].as_array().unwrap().iter().find(|u| u["unit"] == unit).cloned().unwrap_or(json!({}))
}

/// A budget's period spend from `GET /v1/admin/budgets/usage`.
pub async fn budget_usage(app: &TestApp, scope: &str) -> Value {
    let r = send(app.admin(Method::GET, "/v1/admin/budgets/usage").query(&[("scope", scope), ("unit", USD)])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// What one client did: reserves allowed, commits, releases, events.
#[derive(Default, Debug)]
struct Seen {
    reserves: i64,
    commits: i64,
    releases: i64,
    events: i64,
    denials: i64,
}

async fn client_load(fx: Arc<Fx>, c: usize) -> Seen {
    let mut seen = Seen::default();
    for i in 0..25 {
        let agent = json!({"workspace": "eng", "agent": format!("a{}", c % 3)});
        let r = fx.reserve(&format!("r{c}-{i}"), agent.clone(), 40).await;
        let Some(id) = r.body["reservation_id"].as_str().map(String::from) else {
            seen.denials += 1;
            continue;
        };
        seen.reserves += 1;
        if i % 5 == 4 {
            assert_eq!(fx.release(&id, &format!("x{c}-{i}")).await.status, 200);
            seen.releases += 1;
        } else {
            let metrics = json!({"tokens_input": 3, "tokens_output": 2});
            let body = json!({"idempotency_key": format!("c{c}-{i}"), "actual": {"unit": USD, "amount": 25 + i}, "metrics": metrics});
            assert_eq!(fx.post(&format!("/v1/reservations/{id}/commit"), body).await.status, 200);
            seen.commits += 1;
        }
        if i % 7 == 0 && fx.event(&format!("e{c}-{i}"), agent, 11, json!({})).await.status == 201 {
            seen.events += 1;
        }
    }
    seen
}

#[tokio::test]
async fn rollups_equal_the_ledger_after_concurrent_load() {
    let fx = Arc::new(Fx::new().await);
    fx.budget("", 50_000).await;
    fx.budget("/workspace:eng", 40_000).await;
    let mut clients = Vec::new();
    for c in 0..8 {
        clients.push(tokio::spawn(client_load(fx.clone(), c)));
    }
    let mut seen = Seen::default();
    for c in clients {
        let s = c.await.unwrap();
        seen.reserves += s.reserves;
        seen.commits += s.commits;
        seen.releases += s.releases;
        seen.events += s.events;
        seen.denials += s.denials;
    }
    println!("clients saw {seen:?}");
    assert!(seen.commits > 0 && seen.releases > 0 && seen.events > 0);
    wait_for_records(&fx.app, &fx.tenant, (seen.commits + seen.events) as usize).await;
    let tenant_spent = fx.ledger("", USD).await["spent"]["amount"].as_i64().unwrap();
    let eng_spent = fx.ledger("/workspace:eng", USD).await["spent"]["amount"].as_i64().unwrap();
    let settled = eventually(Duration::from_secs(20), || async {
        let u = usage_of(&fx.app, &fx.tenant, USD).await;
        u["committed"] == tenant_spent && u["reserves"] == seen.reserves && u["denials"] == seen.denials
    })
    .await;
    let u = usage_of(&fx.app, &fx.tenant, USD).await;
    println!("tenant usage: {u}");
    assert!(settled, "the tenant's rollups never matched the ledger (spent {tenant_spent}): {u}");
    assert_eq!(u["spent"], tenant_spent);
    assert_eq!(
        (u["commits"].clone(), u["releases"].clone(), u["events"].clone()),
        (json!(seen.commits), json!(seen.releases), json!(seen.events))
    );
    assert_eq!(u["tokens"], json!(seen.commits * 5));
    let eng = budget_usage(&fx.app, &fx.scope("/workspace:eng")).await;
    println!("workspace budget usage: {eng}");
    assert_eq!(eng["period_spend"], eng_spent, "the workspace rollup equals its spent");
    assert_eq!(eng["spent"], eng_spent);
    assert!(eng["burn_rate_last_hour"].as_f64().unwrap() > 0.0);

    let r = send(
        fx.app.admin(Method::GET, &format!("/v1/admin/tenants/{}/usage/daily", fx.tenant)).query(&[("days", "3")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let daily = r.body["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 3, "one row per day for the one unit used: {}", r.text);
    let committed: i64 = daily.iter().map(|d| d["committed"].as_i64().unwrap()).sum();
    let reserves: i64 = daily.iter().map(|d| d["reserves"].as_i64().unwrap()).sum();
    assert_eq!((committed, reserves), (tenant_spent, seen.reserves), "the daily rows add up to the ledger");
}

#[tokio::test]
async fn usage_endpoints_refuse_bad_input_naming_the_field() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let daily = format!("/v1/admin/tenants/{}/usage/daily", fx.tenant);
    for days in ["0", "367", "-1", "ten"] {
        let r = send(fx.app.admin(Method::GET, &daily).query(&[("days", days)])).await;
        assert!(r.expect_error(400, "INVALID_REQUEST").contains("days"), "days={days}");
    }
    for days in ["1", "366"] {
        assert_eq!(send(fx.app.admin(Method::GET, &daily).query(&[("days", days)])).await.status, 200);
    }
    let scope = fx.scope("");
    let r = send(
        fx.app.admin(Method::GET, "/v1/admin/budgets/usage").query(&[("scope", scope.as_str()), ("unit", "DOLLARS")]),
    )
    .await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("unit"));
    let r = send(fx.app.admin(Method::GET, "/v1/admin/budgets/usage").query(&[("unit", USD)])).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("scope"));
    let r = send(
        fx.app.admin(Method::GET, "/v1/admin/budgets/usage").query(&[("scope", scope.as_str()), ("unit", "TOKENS")]),
    )
    .await;
    r.expect_error(404, "BUDGET_NOT_FOUND");
    let r = send(fx.app.admin(Method::GET, "/v1/admin/tenants/no-such-tenant/usage")).await;
    r.expect_error(404, "TENANT_NOT_FOUND");
}

#[tokio::test]
async fn a_periodic_root_budget_sets_its_units_current_period_and_the_others_keep_the_calendar_month() {
    let fx = Fx::new().await;
    periodic(&fx, "", 10_000, now_ms(), 3_600_000, "NONE").await;
    assert_eq!(fx.budget_with("", "TOKENS", 1_000, json!({})).await.status, 201);
    let id = fx.reserved("period-r", json!({}), 100).await;
    assert_eq!(fx.commit(&id, "period-c", 60).await.status, 200);
    let counted =
        eventually(Duration::from_secs(20), || async { usage_of(&fx.app, &fx.tenant, USD).await["committed"] == 60 })
            .await;
    assert!(counted, "the commit never reached the rollups: {}", usage_of(&fx.app, &fx.tenant, USD).await);
    let r = send(fx.app.admin(Method::GET, &format!("/v1/admin/tenants/{}/usage", fx.tenant))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let root = fx.ledger("", USD).await;
    let usd = usage_of(&fx.app, &fx.tenant, USD).await;
    assert_eq!(usd["period_source"], "budget", "{usd}");
    assert_eq!(ms_of(&usd["period_start"]), ms_of(&root["period_start"]), "{usd}");
    assert_eq!(ms_of(&usd["period_end"]), ms_of(&root["period_end"]), "{usd}");
    assert_eq!((usd["spent"].clone(), usd["commits"].clone()), (json!(60), json!(1)), "{usd}");
    let tokens = usage_of(&fx.app, &fx.tenant, "TOKENS").await;
    assert_eq!(tokens["period_source"], "calendar_month", "{tokens}");
    assert_eq!(tokens["period_start"], r.body["period_start"], "the month, as the response's own period");
    assert_eq!(tokens["period_end"], r.body["period_end"]);

    // A period that rolls: the usage follows the budget into its next period.
    let other = Fx::with_tenant(&fx.app).await;
    let start = now_ms();
    periodic(&other, "", 1_000, start, 1_000, "NONE").await;
    let first = usage_of(&other.app, &other.tenant, USD).await;
    assert_eq!(first["period_source"], "budget", "{first}");
    wait_for_roll(&other, "", start).await;
    let follows = eventually(Duration::from_secs(20), || async {
        let before = other.ledger("", USD).await["period_start"].clone();
        let u = usage_of(&other.app, &other.tenant, USD).await;
        ms_of(&u["period_start"]) > start && ms_of(&u["period_start"]) == ms_of(&before)
    })
    .await;
    assert!(follows, "the usage never showed the rolled period: {}", usage_of(&other.app, &other.tenant, USD).await);
}

#[tokio::test]
async fn a_periodic_budgets_usage_reports_its_own_period_and_its_spent_there_and_a_plain_one_the_month() {
    let fx = Fx::new().await;
    let start = now_ms();
    periodic(&fx, "/workspace:p", 1_000, start, 1_000, "NONE").await;
    let spent = fx.event("bu-1", json!({"workspace": "p"}), 300, json!({})).await;
    assert_eq!(spent.status, 201, "{}", spent.text);
    let rolled = wait_for_roll(&fx, "/workspace:p", start).await;
    let spent = fx.event("bu-2", json!({"workspace": "p"}), 40, json!({})).await;
    assert_eq!(spent.status, 201, "{}", spent.text);
    // Read both within one period (a roll between the two reads moves `period_start`).
    let (u, b) = loop {
        let u = budget_usage(&fx.app, &fx.scope("/workspace:p")).await;
        let b = fx.ledger("/workspace:p", USD).await;
        if ms_of(&u["period_start"]) == ms_of(&b["period_start"]) {
            break (u, b);
        }
    };
    assert_eq!(u["period_source"], "budget", "{u}");
    assert!(ms_of(&u["period_start"]) >= ms_of(&rolled["period_start"]), "{u}");
    assert_eq!(ms_of(&u["period_end"]) - ms_of(&u["period_start"]), 1_000, "{u}");
    assert_eq!(u["period_spend"], amt(&b, "spent"), "the period spend is the budget's spent in its period: {u}");
    assert!(u["period_spend"].as_i64().is_some_and(|v| v <= 40), "nothing of the last period: {u}");

    assert_eq!(fx.budget_with("/workspace:plain", USD, 1_000, json!({})).await.status, 201);
    let plain = budget_usage(&fx.app, &fx.scope("/workspace:plain")).await;
    assert_eq!(plain["period_source"], "calendar_month", "{plain}");
    assert_eq!(plain["period_start"].as_str().map(|s| &s[8..]), Some("01T00:00:00Z"), "{plain}");
}
