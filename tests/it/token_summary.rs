//! The token usage summary answers a window's whole UTC hours from the hourly token rollup and
//! its partial edge hours from the records: for records spread over several hours, every
//! window (hour-aligned or not, open, a single instant, in another offset) and every filter
//! gives exactly the totals of the records the list returns for it.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::events::wait_for_event;
use crate::fixture::{Fx, USD};
use crate::helpers::send;
use crate::token_usage::{records_of, wait_for_records};

/// Records appended straight to the outbox, spread over seven hours.
const RECORDS: i64 = 72;
const MODELS: [&str; 3] = ["m-alpha", "m-beta", "m-gamma"];
/// A record without an API key is kept under `""` in the rollup; no key filter matches it.
const KEYS: [Option<&str>; 3] = [Some("key-one"), Some("key-two"), None];

/// (model, unit) → (tokens_input, tokens_output, calls, charged).
type Totals = BTreeMap<(String, String), (i64, i64, i64, i64)>;

fn start_of_hour(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_minute(0).unwrap().replace_second(0).unwrap().replace_nanosecond(0).unwrap()
}

/// When record `i` happened: every 5 minutes and some seconds from `base`, plus records on an
/// hour's first and last millisecond.
fn occurred(base: OffsetDateTime, i: i64) -> OffsetDateTime {
    match i {
        0 => base + Duration::hours(2),
        1 => base + Duration::hours(3) - Duration::milliseconds(1),
        _ => base + Duration::minutes(5 * i) + Duration::seconds((i * 13) % 60) + Duration::milliseconds(i),
    }
}

/// One `usage.applied` entry as lua/event.lua writes it (no budget moved: the rollups of
/// spend are not what this test is about).
fn entry(fx: &Fx, base: OffsetDateTime, i: i64) -> Vec<(String, String)> {
    let i_us = usize::try_from(i).unwrap();
    let mut metrics = json!({"tokens_output": i * 3});
    if i % 5 != 0 {
        metrics["tokens_input"] = json!(i * 100 + 7);
    }
    let mut x = json!({"model": MODELS[i_us % 3], "m": metrics});
    if let Some(k) = KEYS[(i_us / 2) % 3] {
        x["k"] = json!(k);
    }
    let data = json!({"event_id": format!("handmade-{i}"), "charged": (1_000 + i).to_string(), "spent": {},
        "x": x.to_string()});
    let unit = if i % 4 == 3 { "TOKENS" } else { USD };
    let ts = (occurred(base, i).unix_timestamp_nanos() / 1_000_000).to_string();
    [("t", "usage.applied"), ("ts", &ts), ("s", &fx.scope("")), ("u", unit), ("rq", ""), ("tr", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("d".to_string(), data.to_string())])
        .collect()
}

fn at_of(record: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(record["timestamp"].as_str().unwrap(), &Rfc3339).unwrap()
}

/// What the summary must say: the records' totals, filtered as the query says.
fn expected(
    records: &[Value],
    query: &[(&str, String)],
    window: (Option<OffsetDateTime>, Option<OffsetDateTime>),
) -> Totals {
    let mut out = Totals::new();
    let wanted =
        |r: &Value, field: &str| query.iter().filter(|(k, _)| *k == field).all(|(_, v)| r[field] == v.as_str());
    for r in records {
        let at = at_of(r);
        if window.0.is_some_and(|f| at < f) || window.1.is_some_and(|t| at > t) {
            continue;
        }
        if !(wanted(r, "tenant_id") && wanted(r, "api_key_id") && wanted(r, "model")) {
            continue;
        }
        let key = (r["model"].as_str().unwrap().to_string(), r["unit"].as_str().unwrap().to_string());
        let t = out.entry(key).or_default();
        t.0 += r["tokens_input"].as_i64().unwrap_or(0);
        t.1 += r["tokens_output"].as_i64().unwrap_or(0);
        t.2 += 1;
        t.3 += r["charged"].as_i64().unwrap();
    }
    out
}

fn totals_of(summary: &Value) -> Totals {
    let n = |m: &Value, f: &str| m[f].as_i64().unwrap();
    summary["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let key = (m["model"].as_str().unwrap().to_string(), m["unit"].as_str().unwrap().to_string());
            (key, (n(m, "tokens_input"), n(m, "tokens_output"), n(m, "calls"), n(m, "charged")))
        })
        .collect()
}

fn text(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

#[tokio::test]
async fn the_token_summary_equals_the_listed_records_for_every_window_and_filter() {
    let fx = Fx::new().await;
    fx.budget("", 1_000_000).await;
    // Stored means the drain has made the tenant's consumer group.
    wait_for_event(&fx.app, &fx.tenant, "budget.created").await;
    let base = start_of_hour(OffsetDateTime::now_utc()) - Duration::hours(8);
    let client = redis::Client::open(fx.app.env.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}:{{t:{}}}:outbox", fx.app.env.redis_prefix, fx.tenant);
    let mut pipe = redis::pipe();
    for i in 0..RECORDS {
        pipe.cmd("XADD").arg(&key).arg("*");
        for (name, value) in entry(&fx, base, i) {
            pipe.arg(name).arg(value);
        }
        pipe.ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    // A usage event through the API marks the stream for the drain, and adds a record now.
    let e = fx.event("now", json!({}), 30, json!({"metrics": {"tokens_input": 11, "model_version": "m-beta"}})).await;
    assert_eq!(e.status, 201, "{}", e.text);
    wait_for_records(&fx.app, &fx.tenant, usize::try_from(RECORDS).unwrap() + 1).await;
    let records = records_of(&fx.app, &[]).await;
    assert_eq!(records.len(), usize::try_from(RECORDS).unwrap() + 1);

    let h = |hours: i64, minutes: i64| base + Duration::hours(hours) + Duration::minutes(minutes);
    let us = Duration::microseconds(1);
    let ist = UtcOffset::from_hms(5, 30, 0).unwrap();
    let windows: Vec<(Option<OffsetDateTime>, Option<OffsetDateTime>)> = vec![
        (None, None),
        (Some(h(0, 0)), Some(h(3, 0) - us)),
        (Some(h(1, 0)), Some(h(3, 0))),
        (Some(h(0, 17)), Some(h(4, 5))),
        (Some(h(1, 0)), Some(h(2, 0) - us)),
        (Some(h(1, 10)), Some(h(1, 50))),
        (Some(h(1, 50)), Some(h(2, 10))),
        (None, Some(h(2, 30))),
        (Some(h(2, 30)), None),
        (Some(h(2, 0)), Some(h(2, 0))),
        (Some(h(3, 0) - Duration::milliseconds(1)), Some(h(3, 0) - Duration::milliseconds(1))),
        (Some(h(2, 59)), Some(h(5, 1))),
        (Some(h(0, 45).to_offset(ist)), Some(h(5, 15).to_offset(ist))),
        (Some(h(-3, 0)), Some(h(12, 0))),
    ];
    let t = fx.tenant.clone();
    let filters: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("tenant_id", t.clone())],
        vec![("tenant_id", t.clone()), ("api_key_id", "key-one".into())],
        vec![("model", "m-beta".into())],
        vec![("tenant_id", t.clone()), ("api_key_id", "key-two".into()), ("model", "m-alpha".into())],
        vec![("tenant_id", "someone-else".into())],
    ];
    let mut compared = 0;
    for window in &windows {
        for filter in &filters {
            let mut query = filter.clone();
            query.extend(window.0.map(|f| ("from", text(f))));
            query.extend(window.1.map(|t| ("to", text(t))));
            let r = send(fx.app.admin(Method::GET, "/v1/admin/token-usage/summary").query(&query)).await;
            assert_eq!(r.status, 200, "{query:?}: {}", r.text);
            let want = expected(&records, filter, *window);
            assert_eq!(totals_of(&r.body), want, "summary for {query:?}");
            compared += usize::from(!want.is_empty());
        }
    }
    println!("{} windows × {} filters, {compared} with records", windows.len(), filters.len());
    assert!(compared > windows.len() * 3, "most comparisons cover records");
}
