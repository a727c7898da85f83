//! Alerts raised by the drain from the ledger's own events, once per condition while open,
//! resolved by themselves when the condition clears, or by an operator (audited).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD};
use crate::helpers::{TestApp, eventually, send};

async fn alerts_of(app: &TestApp, tenant: &str, extra: &[(&str, &str)]) -> Vec<Value> {
    let mut q = vec![("tenant_id", tenant), ("limit", "100")];
    q.extend_from_slice(extra);
    let r = send(app.admin(Method::GET, "/v1/admin/alerts").query(&q)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["alerts"].as_array().cloned().unwrap_or_default()
}

fn kinds(alerts: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = alerts
        .iter()
        .map(|a| {
            format!("{}:{}:{}", a["kind"].as_str().unwrap(), a["severity"].as_str().unwrap(), a["details"]["threshold"])
        })
        .collect();
    k.sort();
    k
}

async fn wait_open(app: &TestApp, tenant: &str, n: usize) -> Vec<Value> {
    let done = eventually(Duration::from_secs(15), || async {
        alerts_of(app, tenant, &[("resolved", "false")]).await.len() == n
    })
    .await;
    let open = alerts_of(app, tenant, &[("resolved", "false")]).await;
    assert!(done, "expected {n} open alerts, have {:?}", kinds(&open));
    open
}

#[tokio::test]
async fn crossings_and_exhaustion_raise_one_alert_each_and_funding_resolves_them() {
    let fx = Fx::new().await;
    fx.budget("", 100).await;
    let a = fx.reserved("a", json!({}), 85).await;
    let open = wait_open(&fx.app, &fx.tenant, 1).await;
    assert_eq!(kinds(&open), ["threshold:info:0.8"]);
    // Dropping back under 80 % resolves it; crossing again raises a new one.
    assert_eq!(fx.release(&a, "x").await.status, 200);
    wait_open(&fx.app, &fx.tenant, 0).await;
    let b = fx.reserved("b", json!({}), 85).await;
    wait_open(&fx.app, &fx.tenant, 1).await;
    // While it is open, further use raises no second 80 % alert.
    let small = fx.reserved("small", json!({}), 5).await;
    assert_eq!(fx.release(&small, "xs").await.status, 200);
    assert_eq!(fx.commit(&b, "cb", 100).await.status, 200);
    let open = wait_open(&fx.app, &fx.tenant, 4).await;
    println!("open after exhaustion: {:?}", kinds(&open));
    assert_eq!(
        kinds(&open),
        ["exhausted:critical:null", "threshold:critical:1.0", "threshold:info:0.8", "threshold:warning:0.95"]
    );
    let critical = alerts_of(&fx.app, &fx.tenant, &[("severity", "critical")]).await;
    assert_eq!(critical.len(), 2);
    assert!(open.iter().all(|a| a["message"].as_str().unwrap().contains(&fx.scope(""))));

    // Funding lifts utilization to 100 / 1000: every condition clears and resolves itself.
    assert_eq!(fx.fund("", "CREDIT", 900).await.status, 200);
    wait_open(&fx.app, &fx.tenant, 0).await;
    let all = alerts_of(&fx.app, &fx.tenant, &[]).await;
    assert_eq!(all.len(), 5, "the two 80 % crossings and the three later conditions: {:?}", kinds(&all));
    assert!(all.iter().all(|a| a["resolved"] == true && a["resolved_by"] == "system"));
}

#[tokio::test]
async fn a_debt_alert_resolves_on_repayment_and_an_operator_resolve_is_audited() {
    let fx = Fx::new().await;
    fx.budget_with("", USD, 100, json!({"overdraft_limit": {"unit": USD, "amount": 10}})).await;
    let r = fx.reserve_with("a", json!({}), 100, json!({"overage_policy": "ALLOW_WITH_OVERDRAFT"})).await;
    let id = r.body["reservation_id"].as_str().unwrap().to_string();
    assert_eq!(fx.commit(&id, "c", 110).await.status, 200);
    let open = wait_open(&fx.app, &fx.tenant, 5).await;
    println!("open after the overdraft: {:?}", kinds(&open));
    assert!(kinds(&open).contains(&"debt:warning:null".to_string()));

    let threshold = open.iter().find(|a| a["details"]["threshold"] == 0.8).unwrap();
    let path = format!("/v1/admin/alerts/{}/resolve", threshold["id"].as_str().unwrap());
    let r = send(fx.app.admin(Method::POST, &path)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["resolved"].clone(), r.body["resolved_by"].clone()), (json!(true), json!("admin")));
    assert_eq!(send(fx.app.admin(Method::POST, &path)).await.status, 200, "resolving again changes nothing");
    let entries = fx.app.audit(&format!("tenant_id={}&operation=resolveAlert", fx.tenant)).await;
    assert_eq!(entries.len(), 1, "one audit entry for the one resolution: {entries:?}");
    send(fx.app.admin(Method::POST, "/v1/admin/alerts/alrt_none/resolve")).await.expect_error(404, "NOT_FOUND");

    assert_eq!(fx.fund("", "REPAY_DEBT", 500).await.status, 200);
    wait_open(&fx.app, &fx.tenant, 0).await;
    let r = send(fx.app.admin(Method::GET, "/v1/admin/alerts").query(&[("severity", "severe")])).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("severity"));
    let r = send(fx.app.admin(Method::GET, "/v1/admin/alerts").query(&[("resolved", "maybe")])).await;
    assert!(r.expect_error(400, "INVALID_REQUEST").contains("resolved"));
}

#[tokio::test]
async fn a_new_period_resolves_the_alerts_its_fresh_state_no_longer_shows() {
    let fx = Fx::new().await;
    let start = crate::periods::now_ms();
    crate::periods::periodic(&fx, "/workspace:p", 100, start, 2_000, "NONE").await;
    let spent = fx.event("p-1", json!({"workspace": "p"}), 100, json!({})).await;
    assert_eq!(spent.status, 201, "{}", spent.text);
    let open = wait_open(&fx.app, &fx.tenant, 4).await;
    assert!(kinds(&open).contains(&"exhausted:critical:null".to_string()), "{:?}", kinds(&open));
    crate::periods::wait_for_roll(&fx, "/workspace:p", start).await;
    // A read shows the roll but writes nothing; the next script that touches the budget rolls it.
    let touch = fx.event("p-2", json!({"workspace": "p"}), 1, json!({})).await;
    assert_eq!(touch.status, 201, "{}", touch.text);
    wait_open(&fx.app, &fx.tenant, 0).await;
    let resolved = alerts_of(&fx.app, &fx.tenant, &[("resolved", "true")]).await;
    assert_eq!(resolved.len(), 4, "{:?}", kinds(&resolved));
}
