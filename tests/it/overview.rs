//! `GET /v1/admin/overview` as the governance spec defines it (plus `platform_stats`), and the
//! admin plane's `GET /v1/balances`, which answers what the runtime plane answers.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD};
use crate::helpers::{eventually, send};

#[tokio::test]
async fn the_overview_counts_what_exists_and_shows_the_last_hours_denials() {
    let fx = Fx::new().await;
    fx.budget_with("", USD, 100, json!({"overdraft_limit": {"unit": USD, "amount": 50}})).await;
    fx.budget_with("/workspace:eng", "TOKENS", 1000, json!({})).await;
    let r = fx.reserve_with("a", json!({}), 100, json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"})).await;
    let id = r.body["reservation_id"].as_str().unwrap().to_string();
    assert_eq!(fx.commit(&id, "c", 130).await.status, 200);
    fx.reserve("denied", json!({}), 10).await;
    let overview = || async {
        let r = send(fx.app.admin(Method::GET, "/v1/admin/overview")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    };
    let seen = eventually(Duration::from_secs(15), || async {
        let o = overview().await;
        o["recent_denials"].as_array().is_some_and(|d| !d.is_empty())
            && o["platform_stats"]["total_reserves_today"].as_i64() >= Some(1)
    })
    .await;
    let o = overview().await;
    println!("overview: {o}");
    assert!(seen, "the denial and the reserve never showed");
    for field in [
        "as_of",
        "event_window_seconds",
        "tenant_counts",
        "budget_counts",
        "over_limit_scopes",
        "debt_scopes",
        "webhook_counts",
        "failing_webhooks",
        "event_counts",
        "recent_denials",
        "recent_expiries",
    ] {
        assert!(o.get(field).is_some(), "the overview lacks {field}");
    }
    assert_eq!(o["event_window_seconds"], 3600);
    assert!(o["tenant_counts"]["total"].as_i64().unwrap() >= 1);
    assert!(o["budget_counts"]["total"].as_i64().unwrap() >= 2);
    assert!(o["budget_counts"]["by_unit"]["TOKENS"].as_i64().unwrap() >= 1);
    let debt: Vec<&Value> =
        o["debt_scopes"].as_array().unwrap().iter().filter(|d| d["scope"] == fx.scope("")).collect();
    assert_eq!(debt.len(), 1);
    assert_eq!((debt[0]["debt"].clone(), debt[0]["overdraft_limit"].clone()), (json!(30), json!(50)));
    assert!(o["recent_denials"].as_array().unwrap().iter().any(|e| e["tenant_id"] == fx.tenant.as_str()));
    assert!(o["recent_denials_by_reason"]["BUDGET_EXCEEDED"].as_i64().unwrap() >= 1);
    assert!(o["event_counts"]["total_recent"].as_i64().unwrap() >= 1);
    for stat in ["total_tenants", "total_reserves_today", "total_tokens_today", "active_alerts"] {
        assert!(o["platform_stats"][stat].is_i64(), "platform_stats lacks {stat}");
    }
}

#[tokio::test]
async fn admin_plane_balances_answer_what_the_runtime_plane_answers() {
    let fx = Fx::new().await;
    fx.budget("", 1000).await;
    fx.budget("/workspace:eng", 500).await;
    fx.budget_with("/workspace:ops", "TOKENS", 70, json!({})).await;
    let id = fx.reserved("a", json!({"workspace": "eng"}), 40).await;
    assert_eq!(fx.commit(&id, "c", 30).await.status, 200);

    let runtime = fx.get(&format!("/v1/balances?tenant={}", fx.tenant)).await;
    assert_eq!(runtime.status, 200, "{}", runtime.text);
    let admin = send(fx.app.admin(Method::GET, "/v1/balances").query(&[("tenant_id", &fx.tenant)])).await;
    assert_eq!(admin.status, 200, "{}", admin.text);
    let key = |b: &Value| {
        (
            b["scope"].as_str().unwrap().to_string(),
            b["allocated"]["amount"].as_i64(),
            b["spent"]["amount"].as_i64(),
            b["reserved"]["amount"].as_i64(),
        )
    };
    let mut from_runtime: Vec<_> = runtime.body["balances"].as_array().unwrap().iter().map(key).collect();
    let mut from_admin: Vec<_> = admin.body["balances"].as_array().unwrap().iter().map(key).collect();
    from_runtime.sort();
    from_admin.sort();
    println!("admin-plane balances: {from_admin:?}");
    assert_eq!(from_admin, from_runtime);
    assert_eq!(from_admin.len(), 3);

    let q = [("tenant_id", fx.tenant.clone()), ("scope_prefix", fx.scope("/workspace:eng")), ("unit", USD.into())];
    let r = send(fx.app.admin(Method::GET, "/v1/balances").query(&q)).await;
    assert_eq!(r.body["balances"].as_array().unwrap().len(), 1, "{}", r.text);
    assert!(r.body["balances"][0].get("ledger_id").is_some(), "items are BudgetLedger");
    // A tenant key sees its own tenant; naming another is refused.
    let r = send(fx.app.client.get(fx.app.admin_url("/v1/balances")).header("x-cycles-api-key", &fx.key)).await;
    assert_eq!((r.status.as_u16(), r.body["balances"].as_array().map(Vec::len)), (200, Some(3)), "{}", r.text);
    let other = fx.app.client.get(fx.app.admin_url("/v1/balances")).header("x-cycles-api-key", &fx.key);
    assert_eq!(send(other.query(&[("tenant_id", "someone-else")])).await.status, 403);
    let r = send(fx.app.admin(Method::GET, "/v1/balances").query(&[("unit", "DOLLARS")])).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("unit"));
}
