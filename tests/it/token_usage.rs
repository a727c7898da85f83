//! Token usage records: one per commit and per usage event, carrying the metrics the client
//! reported, written by the outbox drain; listed with filters and a cursor, and summed by model.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD};
use crate::helpers::{TestApp, eventually, send};

/// Every token usage record matching `query`, through every page.
pub async fn records_of(app: &TestApp, query: &[(&str, String)]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q: Vec<(&str, String)> = query.to_vec();
        q.push(("limit", "100".into()));
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let r = send(app.admin(Method::GET, "/v1/admin/token-usage").query(&q)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        out.extend(r.body["records"].as_array().cloned().unwrap_or_default());
        match r.body["next_cursor"].as_str() {
            Some(c) if r.body["has_more"] == true => cursor = Some(c.to_string()),
            _ => return out,
        }
    }
}

/// Waits until `tenant` has `n` records, then returns them.
pub async fn wait_for_records(app: &TestApp, tenant: &str, n: usize) -> Vec<Value> {
    let q = [("tenant_id", tenant.to_string())];
    let done = eventually(Duration::from_secs(20), || async { records_of(app, &q).await.len() >= n }).await;
    let records = records_of(app, &q).await;
    assert!(done, "expected {n} token usage records for {tenant}, have {}", records.len());
    records
}

#[tokio::test]
async fn every_commit_and_usage_event_leaves_one_token_record_with_its_metrics() {
    let fx = Fx::new().await;
    fx.budget("", 1_000_000).await;
    let mut committed = BTreeSet::new();
    for i in 0..12 {
        let id = fx.reserved(&format!("r{i}"), json!({}), 100).await;
        let model = if i % 3 == 0 { "gpt-4o" } else { "claude-3" };
        let metrics =
            json!({"tokens_input": 10 * (i + 1), "tokens_output": i + 1, "latency_ms": 5, "model_version": model});
        let body =
            json!({"idempotency_key": format!("c{i}"), "actual": {"unit": USD, "amount": 50 + i}, "metrics": metrics});
        let r = fx.post(&format!("/v1/reservations/{id}/commit"), body.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        // A retried commit is a replay: no second record.
        assert_eq!(fx.post(&format!("/v1/reservations/{id}/commit"), body).await.status, 200);
        committed.insert(id);
    }
    // A commit without metrics is recorded under the reserved action's name.
    let bare = fx.reserved("bare", json!({}), 10).await;
    assert_eq!(fx.commit(&bare, "bare-c", 7).await.status, 200);
    committed.insert(bare.clone());
    let e = fx.event("ev", json!({}), 30, json!({"metrics": {"tokens_input": 1000, "tokens_output": 1}})).await;
    assert_eq!(e.status, 201, "{}", e.text);

    let records = wait_for_records(&fx.app, &fx.tenant, 14).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records_after = records_of(&fx.app, &[("tenant_id", fx.tenant.clone())]).await;
    println!("records: {} for {} commits and 1 event", records_after.len(), committed.len());
    assert_eq!(records_after.len(), 14, "one record per commit and event, none twice");
    let from_commits: BTreeSet<String> = records
        .iter()
        .filter(|r| r["source"] == "commit")
        .map(|r| r["reservation_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(from_commits, committed, "the commit records match the commits one for one");
    let bare_record = records.iter().find(|r| r["reservation_id"] == bare.as_str()).unwrap();
    assert_eq!(bare_record["model"], "model-a");
    assert_eq!(bare_record["charged"], 7);
    assert!(bare_record.get("tokens_input").is_none());
    let event = records.iter().find(|r| r["source"] == "event").unwrap();
    assert_eq!(
        (event["model"].clone(), event["tokens_input"].clone(), event["charged"].clone()),
        (json!("model-a"), json!(1000), json!(30))
    );
    assert!(records.iter().all(|r| r["api_key_id"].is_string() && r["unit"] == USD));

    let gpt = records_of(&fx.app, &[("tenant_id", fx.tenant.clone()), ("model", "gpt-4o".into())]).await;
    assert_eq!(gpt.len(), 4);
    let key_id = records[0]["api_key_id"].as_str().unwrap().to_string();
    let by_key = records_of(&fx.app, &[("api_key_id", key_id), ("tenant_id", fx.tenant.clone())]).await;
    assert_eq!(by_key.len(), 14);

    let r = send(fx.app.admin(Method::GET, "/v1/admin/token-usage/summary").query(&[("tenant_id", &fx.tenant)])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    println!("summary: {}", r.body);
    let models = r.body["models"].as_array().unwrap();
    let gpt = models.iter().find(|m| m["model"] == "gpt-4o").unwrap();
    // i in {0, 3, 6, 9}: input 10, 40, 70, 100; output 1, 4, 7, 10; charged 50, 53, 56, 59.
    assert_eq!(
        (gpt["tokens_input"].clone(), gpt["tokens_output"].clone(), gpt["calls"].clone(), gpt["charged"].clone()),
        (json!(220), json!(22), json!(4), json!(218))
    );
    let calls: i64 = models.iter().map(|m| m["calls"].as_i64().unwrap()).sum();
    assert_eq!(calls, 14);
}

#[tokio::test]
async fn token_usage_filters_refuse_bad_input_naming_the_field() {
    let app = TestApp::spawn().await;
    for (path, query, field) in [
        ("/v1/admin/token-usage", vec![("from", "2026-05-02"), ("to", "2026-05-01")], "from"),
        (
            "/v1/admin/token-usage/summary",
            vec![("from", "2026-05-02T00:00:00Z"), ("to", "2026-05-01T00:00:00Z")],
            "from",
        ),
        ("/v1/admin/token-usage", vec![("from", "yesterday")], "from"),
        ("/v1/admin/token-usage", vec![("limit", "0")], "limit"),
        ("/v1/admin/token-usage", vec![("cursor", "garbage")], "cursor"),
    ] {
        let r = send(app.admin(Method::GET, path).query(&query)).await;
        let message = r.expect_error(400, "INVALID_REQUEST").to_string();
        assert!(message.contains(field), "{path} {query:?}: {message}");
    }
    let r =
        send(app.admin(Method::GET, "/v1/admin/token-usage").query(&[("from", "2026-05-01"), ("to", "2026-05-01")]))
            .await;
    assert_eq!(r.status, 200, "a one-day window is fine: {}", r.text);
}
