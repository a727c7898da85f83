//! Usage rollups and token records after the engine is killed with SIGKILL mid-load and
//! restarted: every usage entry counts exactly once, so the rollups equal the ledger and the
//! token records (and their hourly token rollup) match the committed reservations one for one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::crash::{free_port, start_engine_with};
use crate::fixture::USD;
use crate::helpers::{TestApp, eventually, send, tenant_id};
use crate::token_usage::records_of;
use crate::usage::usage_of;

async fn writer(runtime: u16, tenant: String, key: String, w: usize, stop: Arc<AtomicBool>) -> Vec<String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut reserved = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let body = json!({
            "idempotency_key": format!("r-{w}-{i}"), "subject": {"tenant": tenant},
            "action": {"kind": "llm.completion", "name": "m"}, "estimate": {"unit": USD, "amount": 3},
        });
        let url = format!("http://127.0.0.1:{runtime}/v1/reservations");
        let Ok(resp) = client.post(url).header("x-cycles-api-key", &key).json(&body).send().await else { continue };
        let Ok(v) = resp.json::<Value>().await else { continue };
        let Some(id) = v["reservation_id"].as_str() else { continue };
        reserved.push(id.to_string());
        let commit = json!({"idempotency_key": format!("c-{w}-{i}"), "actual": {"unit": USD, "amount": 2},
            "metrics": {"tokens_input": 4, "tokens_output": 1}});
        let url = format!("http://127.0.0.1:{runtime}/v1/reservations/{id}/commit");
        let _ = client.post(url).header("x-cycles-api-key", &key).json(&commit).send().await;
    }
    reserved
}

#[tokio::test]
async fn rollups_and_token_records_equal_the_ledger_after_an_engine_is_killed_and_restarted() {
    let app = TestApp::spawn_with(|c| c.events_workers = false).await;
    let tenant = tenant_id("ucrash");
    app.create_tenant(&tenant).await;
    let key = app.create_key(&tenant, json!({})).await["key_secret"].as_str().unwrap().to_string();
    let budget = json!({"tenant_id": tenant, "scope": format!("tenant:{tenant}"), "unit": USD,
        "allocated": {"unit": USD, "amount": 100_000_000}});
    assert_eq!(send(app.admin(Method::POST, "/v1/admin/budgets").json(&budget)).await.status, 201);
    let (runtime, admin) = (free_port(), free_port());
    let mut engine = start_engine_with(&app.env, runtime, admin, &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> =
        (0..4).map(|w| tokio::spawn(writer(runtime, tenant.clone(), key.clone(), w, stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    engine.start_kill().expect("SIGKILL the engine");
    engine.wait().await.expect("the engine exits");
    stop.store(true, Ordering::Relaxed);
    let mut reserved = BTreeSet::new();
    for w in writers {
        reserved.extend(w.await.unwrap());
    }
    assert!(!reserved.is_empty(), "no traffic reached the engine before the kill");
    let _engine = start_engine_with(&app.env, runtime, admin, &[]).await;

    let mut committed = BTreeSet::new();
    for id in &reserved {
        let url = app.runtime_url(&format!("/v1/reservations/{id}"));
        let r = send(app.client.get(url).header("x-cycles-api-key", &key)).await;
        if r.body["status"] == "COMMITTED" {
            committed.insert(id.clone());
        }
    }
    let spent = {
        let q = [("tenant_id", tenant.clone()), ("scope", format!("tenant:{tenant}")), ("unit", USD.to_string())];
        send(app.admin(Method::GET, "/v1/admin/budgets/lookup").query(&q)).await.body["spent"]["amount"]
            .as_i64()
            .unwrap()
    };
    let q = [("tenant_id", tenant.clone())];
    let settled = eventually(Duration::from_secs(30), || async {
        let u = usage_of(&app, &tenant, USD).await;
        u["committed"] == spent && records_of(&app, &q).await.len() == committed.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let u = usage_of(&app, &tenant, USD).await;
    let records = records_of(&app, &q).await;
    println!(
        "after the restart: {} reserved, {} committed, spent {spent}; usage {u}; {} token records",
        reserved.len(),
        committed.len(),
        records.len()
    );
    assert!(settled, "the rollups never matched the ledger");
    assert_eq!(u["committed"], spent);
    // A reserve whose answer the kill cut off is still a reservation: every reservation the
    // ledger made is committed, still held (3 each) or expired.
    let held = u["reserved"].as_i64().unwrap() / 3;
    let expired = u["expiries"].as_i64().unwrap();
    assert_eq!(u["reserves"].as_i64().unwrap(), committed.len() as i64 + held + expired);
    assert!(u["reserves"].as_i64().unwrap() >= reserved.len() as i64);
    assert_eq!(u["commits"], committed.len());
    assert_eq!(u["tokens"], committed.len() * 5);
    let from_records: BTreeSet<String> =
        records.iter().map(|r| r["reservation_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(records.len(), committed.len(), "no commit recorded twice");
    assert_eq!(from_records, committed, "token records match the commits one for one");
    // The hourly token rollup counted each record once too (an unbounded summary reads only it).
    let r = send(app.admin(Method::GET, "/v1/admin/token-usage/summary").query(&q)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let models = r.body["models"].as_array().unwrap();
    let calls: i64 = models.iter().map(|m| m["calls"].as_i64().unwrap()).sum();
    let input: i64 = models.iter().map(|m| m["tokens_input"].as_i64().unwrap()).sum();
    assert_eq!((calls, input), (committed.len() as i64, committed.len() as i64 * 4), "summary: {}", r.body);
}
