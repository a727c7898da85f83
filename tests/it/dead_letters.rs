//! The outbox drain never stalls behind an entry it cannot store: such an entry is set aside
//! in `outbox_dead_letters` with its raw bytes, counted, acknowledged, and the tenant's later
//! events flow on, also with two instances draining the same streams.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::json;

use crate::events::events_of;
use crate::fixture::{Fx, USD};
use crate::helpers::{eventually, send};

/// The sum over labels of `cycles_outbox_dead_letters_total{reason=<reason>}` in a scrape.
async fn dead_letters_counted(fx: &Fx, reason: &str) -> f64 {
    let r = send(fx.app.client.get(fx.app.admin_url("/metrics"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let label = format!("reason=\"{reason}\"");
    r.text
        .lines()
        .filter(|l| l.starts_with("cycles_outbox_dead_letters_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Fields as netstrings, the way the drain keeps a dead letter's raw content.
fn netstrings(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in fields.iter().flat_map(|(n, v)| [*n, *v]) {
        out.extend_from_slice(format!("{}:", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.push(b',');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poisoned_outbox_entry_is_set_aside_and_later_events_are_stored() {
    let fx = Fx::new().await;
    // A second drain on the same streams: an entry is still stored or set aside once.
    let _second = fx.app.another_instance().await;
    fx.budget("", 1_000).await;
    let (unstorable_before, undecodable_before) =
        (dead_letters_counted(&fx, "unstorable").await, dead_letters_counted(&fx, "undecodable").await);

    // Written as the scripts write entries (lua/lib.lua `emit`), but poisoned: Postgres
    // refuses a NUL in text and `\u0000` in jsonb; the other is not UTF-8, so not an event.
    let scope = fx.scope("");
    let ts = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let ts = ts.to_string();
    let handmade_rq = format!("handmade-{}", uuid::Uuid::new_v4().simple());
    let unstorable: Vec<(&[u8], &[u8])> = vec![
        (b"t", b"budget.funded"),
        (b"ts", ts.as_bytes()),
        (b"s", scope.as_bytes()),
        (b"u", USD.as_bytes()),
        (b"rq", b"poison\0request"),
        (b"tr", b""),
        (b"d", br#"{"note":"nul \u0000 here","amount":"5"}"#),
    ];
    let good: Vec<(&[u8], &[u8])> = vec![
        (b"t", b"budget.funded"),
        (b"ts", ts.as_bytes()),
        (b"s", scope.as_bytes()),
        (b"u", USD.as_bytes()),
        (b"rq", handmade_rq.as_bytes()),
        (b"tr", b""),
        (b"d", br#"{"amount":"7"}"#),
    ];
    let undecodable: Vec<(&[u8], &[u8])> = vec![(b"t", b"budget.funded"), (b"ts", ts.as_bytes()), (b"d", b"\xff{\0")];

    let key = format!("{}:{{t:{}}}:outbox", fx.app.env.redis_prefix, fx.tenant);
    let client = redis::Client::open(fx.app.env.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // One MULTI, so the drain reads the poison and the good entry between them in one batch.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for fields in [&unstorable, &good, &undecodable] {
        pipe.cmd("XADD").arg(&key).arg("*");
        for (name, value) in fields {
            pipe.arg(*name).arg(*value);
        }
    }
    let ids: Vec<String> = pipe.query_async(&mut conn).await.unwrap();

    // Later ledger changes through the API.
    let r = fx.fund("", "CREDIT", 500).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // 1 300 of 1 500 held: utilization crosses 0.80.
    fx.reserved("after-poison", json!({}), 1_300).await;

    let stored = eventually(Duration::from_secs(20), || async {
        let events = events_of(&fx.app, &fx.tenant).await;
        let funded = events.iter().filter(|e| e["event_type"] == "budget.funded").count();
        let crossed = events.iter().any(|e| e["event_type"] == "budget.threshold_crossed");
        funded == 2 && crossed
    })
    .await;
    let events = events_of(&fx.app, &fx.tenant).await;
    assert!(stored, "the events after the poison were not all stored: {events:#?}");
    assert!(events.iter().any(|e| e["request_id"] == handmade_rq.as_str()), "the good entry beside the poison");

    let rows: Vec<(String, Vec<u8>, String, String)> = sqlx::query_as(
        "SELECT stream_id, raw, reason, error FROM outbox_dead_letters WHERE tenant_id = $1 ORDER BY stream_id",
    )
    .bind(&fx.tenant)
    .fetch_all(&fx.app.pg)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].2.as_str()), (ids[0].as_str(), "unstorable"), "{rows:?}");
    assert_eq!(rows[0].1, netstrings(&unstorable), "the raw entry, byte for byte");
    assert!(rows[0].1.contains(&0), "the NUL is kept");
    assert!(!rows[0].3.is_empty());
    assert_eq!((rows[1].0.as_str(), rows[1].2.as_str()), (ids[2].as_str(), "undecodable"), "{rows:?}");
    assert_eq!(rows[1].1, netstrings(&undecodable), "the raw entry, byte for byte");

    // The admin read: newest first, raw content byte for byte (base64) and as text.
    let r = send(fx.app.admin(Method::GET, "/v1/admin/events/dead-letters").query(&[("tenant_id", &fx.tenant)])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let listed = r.body["dead_letters"].as_array().expect("dead_letters");
    assert_eq!(listed.len(), 2, "{}", r.text);
    let first = listed.iter().find(|d| d["stream_id"] == ids[0].as_str()).expect("the unstorable entry is listed");
    assert_eq!(first["reason"], "unstorable");
    let raw = STANDARD.decode(first["raw"].as_str().expect("raw")).expect("base64");
    assert_eq!(raw, netstrings(&unstorable));
    assert!(first["raw_text"].as_str().expect("raw_text").contains("poison\0request"), "{}", r.text);

    assert_eq!(dead_letters_counted(&fx, "unstorable").await - unstorable_before, 1.0);
    assert_eq!(dead_letters_counted(&fx, "undecodable").await - undecodable_before, 1.0);

    let drained = eventually(Duration::from_secs(20), || {
        let (mut conn, key) = (conn.clone(), key.clone());
        async move {
            let len: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut conn).await.unwrap();
            let pending: (u64, redis::Value, redis::Value, redis::Value) =
                redis::cmd("XPENDING").arg(&key).arg("tollgate-drain").query_async(&mut conn).await.unwrap();
            len == 0 && pending.0 == 0
        }
    })
    .await;
    assert!(drained, "the outbox stream still holds entries");
}
