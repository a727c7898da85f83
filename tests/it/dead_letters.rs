//! The outbox drain never stalls behind an entry it cannot store: such an entry is set aside
//! in `outbox_dead_letters` with its raw bytes, counted, acknowledged, and the tenant's later
//! events flow on, whether a drain reads it first or reclaims it from a consumer that died,
//! and with two instances draining the same streams.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::json;

use crate::events::{events_of, wait_for_event};
use crate::fixture::{Fx, USD};
use crate::helpers::{eventually, send};

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The sum of `cycles_outbox_dead_letters_total{reason=<reason>}` in a scrape.
async fn dead_letters_counted(fx: &Fx, reason: &str) -> f64 {
    let r = send(fx.app.admin(reqwest::Method::GET, "/metrics")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let label = format!("reason=\"{reason}\"");
    r.text
        .lines()
        .filter(|l| l.starts_with("cycles_outbox_dead_letters_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Fields as netstrings, the way the drain keeps a dead letter's raw content.
fn netstrings(fields: &Fields) -> Vec<u8> {
    let mut out = Vec::new();
    for part in fields.iter().flat_map(|(n, v)| [n, v]) {
        out.extend_from_slice(format!("{}:", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.push(b',');
    }
    out
}

fn fields(pairs: &[(&str, &[u8])]) -> Fields {
    pairs.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec())).collect()
}

/// Two poisoned entries around a good one, appended to a tenant's outbox in one MULTI.
struct Poison {
    key: String,
    /// Stream ids of the unstorable, good and undecodable entries.
    ids: Vec<String>,
    unstorable: Fields,
    undecodable: Fields,
    good_request_id: String,
}

/// Appends the poison as the scripts write entries (lua/lib.lua `emit`): Postgres refuses a
/// NUL in text and `\u0000` in jsonb; the other entry is not UTF-8, so not an event. One
/// MULTI, so a drain reads the three in one batch; with `ghost`, a consumer that then dies
/// reads them first, so only the reclaim path (XAUTOCLAIM) can get them.
async fn append_poison(fx: &Fx, conn: &mut redis::aio::MultiplexedConnection, ghost: bool) -> Poison {
    let (scope, ts) = (fx.scope(""), (time::OffsetDateTime::now_utc().unix_timestamp() * 1000).to_string());
    let good_request_id = format!("handmade-{}", uuid::Uuid::new_v4().simple());
    let common = |rq: &[u8], d: &[u8]| {
        let head: [(&str, &[u8]); 4] =
            [("t", b"budget.funded"), ("ts", ts.as_bytes()), ("s", scope.as_bytes()), ("u", USD.as_bytes())];
        let mut f = fields(&head);
        f.extend(fields(&[("rq", rq), ("tr", b""), ("d", d)]));
        f
    };
    let unstorable = common(b"poison\0request", br#"{"note":"nul \u0000 here","amount":"5"}"#);
    let good = common(good_request_id.as_bytes(), br#"{"amount":"7"}"#);
    let undecodable = fields(&[("t", b"budget.funded"), ("ts", ts.as_bytes()), ("d", b"\xff{\0")]);

    let key = format!("{}:{{t:{}}}:outbox", fx.app.env.redis_prefix, fx.tenant);
    let mut pipe = redis::pipe();
    pipe.atomic();
    for entry in [&unstorable, &good, &undecodable] {
        pipe.cmd("XADD").arg(&key).arg("*");
        for (name, value) in entry {
            pipe.arg(name).arg(value);
        }
    }
    if ghost {
        pipe.cmd("XREADGROUP").arg("GROUP").arg("tollgate-drain").arg("ghost").arg("COUNT").arg(100);
        pipe.arg("STREAMS").arg(&key).arg(">").ignore();
    }
    let ids: Vec<String> = pipe.query_async(conn).await.unwrap();
    if ghost {
        // Held by the ghost until a drain reclaims them (after `outbox_reclaim_ms`, 1 s here).
        let held: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg(&key)
            .arg("tollgate-drain")
            .arg("-")
            .arg("+")
            .arg(10)
            .arg("ghost")
            .query_async(conn)
            .await
            .unwrap();
        assert_eq!(held.len(), 3, "the ghost consumer holds the poison");
    }
    Poison { key, ids, unstorable, undecodable, good_request_id }
}

/// Mutates the ledger through the API after the poison and checks that everything arrived:
/// the later events and the good entry stored, the poison set aside byte for byte (in the
/// table and through the admin read), and the stream empty with nothing pending.
async fn assert_set_aside_and_flowing(fx: &Fx, conn: &redis::aio::MultiplexedConnection, poison: &Poison) {
    let r = fx.fund("", "CREDIT", 500).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // 1 300 of 1 500 held: utilization crosses 0.80.
    fx.reserved("after-poison", json!({}), 1_300).await;
    let stored = eventually(Duration::from_secs(20), || async {
        let events = events_of(&fx.app, &fx.tenant).await;
        let funded = events.iter().filter(|e| e["event_type"] == "budget.funded").count();
        funded == 2 && events.iter().any(|e| e["event_type"] == "budget.threshold_crossed")
    })
    .await;
    let events = events_of(&fx.app, &fx.tenant).await;
    assert!(stored, "the events after the poison were not all stored: {events:#?}");
    assert!(
        events.iter().any(|e| e["request_id"] == poison.good_request_id.as_str()),
        "the good entry beside the poison"
    );

    let rows: Vec<(String, Vec<u8>, String, String)> = sqlx::query_as(
        "SELECT stream_id, raw, reason, error FROM outbox_dead_letters WHERE tenant_id = $1 ORDER BY stream_id",
    )
    .bind(&fx.tenant)
    .fetch_all(&fx.app.pg)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].2.as_str()), (poison.ids[0].as_str(), "unstorable"), "{rows:?}");
    assert_eq!(rows[0].1, netstrings(&poison.unstorable), "the raw entry, byte for byte");
    assert!(rows[0].1.contains(&0), "the NUL is kept");
    assert!(!rows[0].3.is_empty());
    assert_eq!((rows[1].0.as_str(), rows[1].2.as_str()), (poison.ids[2].as_str(), "undecodable"), "{rows:?}");
    assert_eq!(rows[1].1, netstrings(&poison.undecodable), "the raw entry, byte for byte");

    // The admin read: raw content byte for byte (base64) and as text.
    let r = send(fx.app.admin(Method::GET, "/v1/admin/events/dead-letters").query(&[("tenant_id", &fx.tenant)])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let listed = r.body["dead_letters"].as_array().expect("dead_letters");
    assert_eq!(listed.len(), 2, "{}", r.text);
    let first = listed.iter().find(|d| d["stream_id"] == poison.ids[0].as_str()).expect("the unstorable entry");
    assert_eq!(first["reason"], "unstorable");
    let raw = STANDARD.decode(first["raw"].as_str().expect("raw")).expect("base64");
    assert_eq!(raw, netstrings(&poison.unstorable));
    assert!(first["raw_text"].as_str().expect("raw_text").contains("poison\0request"), "{}", r.text);

    let drained = eventually(Duration::from_secs(20), || {
        let (mut conn, key) = (conn.clone(), poison.key.clone());
        async move {
            let len: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut conn).await.unwrap();
            let pending: (u64, redis::Value, redis::Value, redis::Value) =
                redis::cmd("XPENDING").arg(&key).arg("tollgate-drain").query_async(&mut conn).await.unwrap();
            len == 0 && pending.0 == 0
        }
    })
    .await;
    assert!(drained, "the outbox stream of {} still holds entries", fx.tenant);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poisoned_outbox_entry_is_set_aside_and_later_events_are_stored() {
    let read = Fx::new().await;
    let reclaimed = Fx::with_tenant(&read.app).await;
    // A second drain on the same streams: an entry is still stored or set aside once.
    let _second = read.app.another_instance().await;
    let client = redis::Client::open(read.app.env.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for fx in [&read, &reclaimed] {
        fx.budget("", 1_000).await;
        // Stored means the drain has made the tenant's consumer group (the ghost needs it).
        wait_for_event(&fx.app, &fx.tenant, "budget.created").await;
    }
    let before = (dead_letters_counted(&read, "unstorable").await, dead_letters_counted(&read, "undecodable").await);

    let poison = append_poison(&read, &mut conn, false).await;
    assert_set_aside_and_flowing(&read, &conn, &poison).await;
    let poison = append_poison(&reclaimed, &mut conn, true).await;
    assert_set_aside_and_flowing(&reclaimed, &conn, &poison).await;

    // Once per entry, however many drains and deliveries: this test made the only ones.
    assert_eq!(dead_letters_counted(&read, "unstorable").await - before.0, 2.0);
    assert_eq!(dead_letters_counted(&read, "undecodable").await - before.1, 2.0);
}
