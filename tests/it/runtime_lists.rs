//! `GET /v1/reservations` filters, sorting and cursors (§2 N) and `GET /v1/balances` (§2 O).

use std::collections::HashSet;

use futures_util::future::join_all;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fixture::{Fx, USD, amt, assert_invariant, on_redis_and_cluster};

fn ids(v: &Value) -> Vec<String> {
    v["reservations"].as_array().unwrap().iter().map(|r| r["reservation_id"].as_str().unwrap().to_string()).collect()
}

// R-N1..R-N8: status and subject filters, sort_by reserved with a cursor that pages through
// every row once, blank window values are unset, from > to is 400, include projects metadata.
on_redis_and_cluster! {
    async fn listing_reservations_filters_sorts_and_pages(fx: Fx) {
        fx.budget("", 10_000).await;
        let mut made = Vec::new();
        for (i, agent) in ["a", "b", "a", "c", "a"].iter().enumerate() {
            let r = fx
                .reserve_with(&format!("k{i}"), json!({"agent": agent}), 10 * (i as i64 + 1), json!({"metadata": {"n": i}}))
                .await;
            made.push(r.body["reservation_id"].as_str().unwrap().to_string());
        }
        fx.commit(&made[0], "c", 5).await;
        let agent_a = fx.get("/v1/reservations?agent=A").await;
        assert_eq!(ids(&agent_a.body).len(), 3);
        let active = fx.get("/v1/reservations?status=ACTIVE").await;
        assert_eq!(ids(&active.body).len(), 4);
        let committed = fx.get("/v1/reservations?status=COMMITTED").await;
        assert_eq!(amt(&committed.body["reservations"][0], "committed"), 5);
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let page =
                fx.get(&format!("/v1/reservations?sort_by=reserved&sort_dir=asc&limit=2&from=&cursor={cursor}")).await;
            assert_eq!(page.status, 200, "{}", page.text);
            seen.extend(ids(&page.body));
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        assert_eq!(seen, made, "ascending by reserved amount, every row once");
        let by_key = fx.get("/v1/reservations?idempotency_key=k3").await;
        assert_eq!(ids(&by_key.body), vec![made[3].clone()]);
        let with_meta = fx.get("/v1/reservations?include=metadata,bogus&limit=1&sort_by=reserved&sort_dir=asc").await;
        assert_eq!(with_meta.body["reservations"][0]["metadata"], json!({"n": 0}));
        let without = fx.get("/v1/reservations?limit=1").await;
        assert!(without.body["reservations"][0].get("metadata").is_none());
        let finalized = fx.get("/v1/reservations?finalized_from=2000-01-01T00:00:00Z").await;
        assert_eq!(ids(&finalized.body), vec![made[0].clone()], "rows without finalized_at_ms are excluded");
        for (query, field) in [
            ("from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", "from"),
            ("expires_from=yesterday", "expires_from"),
            ("sort_by=amount", "sort_by"),
            ("sort_dir=sideways", "sort_dir"),
            ("status=DONE", "status"),
            ("limit=201", "limit"),
            ("cursor=nope", "cursor"),
        ] {
            let r = fx.get(&format!("/v1/reservations?{query}")).await;
            assert!(r.expect_error(400, "INVALID_REQUEST").contains(field), "{query}");
        }
        let first = fx.get("/v1/reservations?sort_by=reserved&limit=1").await;
        let c = first.body["next_cursor"].as_str().unwrap();
        let other = fx.get(&format!("/v1/reservations?sort_by=reserved&limit=1&agent=a&cursor={c}")).await;
        other.expect_error(400, "INVALID_REQUEST");
        let unknown = fx.get("/v1/reservations?colour=red").await;
        assert_eq!(unknown.status, 200, "unknown parameters are ignored");
        let foreign = fx.get("/v1/reservations?tenant=someone-else").await;
        foreign.expect_error(403, "FORBIDDEN");
    }
}

// R-O1..R-O3, R-D1: balances need a subject filter, match exact segments anywhere in the
// path, stay in the caller's tenant, page with a cursor and always satisfy the invariant.
on_redis_and_cluster! {
    async fn balances_match_exact_segments_and_page(fx: Fx) {
        fx.budget("", 1000).await;
        fx.budget("/workspace:eng", 500).await;
        fx.budget("/workspace:eng/agent:bot", 100).await;
        fx.budget("/workspace:eng-2/agent:bot", 100).await;
        fx.reserved("r", json!({"workspace": "eng", "agent": "bot"}), 40).await;
        let all = fx.get(&format!("/v1/balances?tenant={}", fx.tenant)).await;
        assert_eq!(all.body["balances"].as_array().unwrap().len(), 4, "{}", all.text);
        for b in all.body["balances"].as_array().unwrap() {
            assert_invariant(b);
        }
        let eng = fx.get("/v1/balances?workspace=ENG").await;
        let scopes: Vec<&str> =
            eng.body["balances"].as_array().unwrap().iter().map(|b| b["scope"].as_str().unwrap()).collect();
        assert_eq!(scopes, vec![fx.scope("/workspace:eng"), fx.scope("/workspace:eng/agent:bot")]);
        let bots = fx.get("/v1/balances?agent=bot").await;
        assert_eq!(bots.body["balances"].as_array().unwrap().len(), 2);
        let page = fx.get(&format!("/v1/balances?tenant={}&limit=3", fx.tenant)).await;
        assert_eq!((page.body["balances"].as_array().unwrap().len(), page.body["has_more"].clone()), (3, json!(true)));
        let rest = fx
            .get(&format!(
                "/v1/balances?tenant={}&limit=3&cursor={}",
                fx.tenant,
                page.body["next_cursor"].as_str().unwrap()
            ))
            .await;
        assert_eq!((rest.body["balances"].as_array().unwrap().len(), rest.body["has_more"].clone()), (1, json!(false)));
        fx.get("/v1/balances").await.expect_error(400, "INVALID_REQUEST");
        fx.get("/v1/balances?tenant=someone-else").await.expect_error(403, "FORBIDDEN");
        let reserved = fx.get("/v1/balances?agent=bot&workspace=eng").await;
        assert_eq!(amt(&reserved.body["balances"][0], "reserved"), 40);
        assert_eq!(reserved.body["balances"][0]["remaining"], json!({"unit": USD, "amount": 60}));
    }
}

/// Every page of `/v1/reservations?<query>` from the first to the last, in order.
async fn every_page(fx: &Fx, query: &str, pages_max: usize) -> Vec<String> {
    let (mut seen, mut cursor) = (Vec::new(), String::new());
    for _ in 0..pages_max {
        let page = fx.get(&format!("/v1/reservations?{query}&cursor={cursor}")).await;
        assert_eq!(page.status, 200, "{}", page.text);
        seen.extend(ids(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page.body["has_more"], true);
                cursor = c.to_string();
            }
            None => {
                assert_eq!(page.body["has_more"], false);
                return seen;
            }
        }
    }
    panic!("{query}: still paging after {pages_max} pages");
}

// Listing in creation order pages the tenant's creation index: twice as many reservations as
// one request may examine are listed completely, each once, and a filter that rejects all but
// the oldest row still reaches it (pages stop at the scan bound with a cursor, not with
// has_more=false).
#[tokio::test]
async fn listing_twenty_thousand_active_reservations_is_complete() {
    const N: usize = 20_000;
    const CLIENTS: usize = 64;
    let fx = Fx::new().await;
    fx.budget("", 1_000_000_000).await;
    let needle = fx.reserved("needle", json!({"agent": "needle"}), 1).await;
    let made: Vec<String> = join_all((0..CLIENTS).map(|c| {
        let fx = &fx;
        async move {
            let mut ids = Vec::new();
            for i in (c..N - 1).step_by(CLIENTS) {
                let r = fx.reserve_with(&format!("k{i}"), json!({}), 1, json!({"ttl_ms": 3_600_000})).await;
                assert_eq!(r.status, 200, "{}", r.text);
                ids.push(r.body["reservation_id"].as_str().unwrap().to_string());
            }
            ids
        }
    }))
    .await
    .into_iter()
    .flatten()
    .chain([needle.clone()])
    .collect();
    assert_eq!(made.len(), N);

    let seen = every_page(&fx, "status=ACTIVE&limit=200", N / 200 + 10).await;
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no reservation is listed twice");
    assert_eq!(unique, made.iter().collect::<HashSet<_>>(), "every ACTIVE reservation is listed");
    assert_eq!(seen.last(), Some(&needle), "newest first: the oldest comes last");

    assert_eq!(every_page(&fx, "agent=needle&limit=5", 10).await, vec![needle.clone()]);
    assert_eq!(every_page(&fx, "agent=needle&limit=5&sort_dir=asc", 10).await, vec![needle.clone()]);
    // A creation window starts the scan at its end: one page, not a scan of everything newer.
    let created_ms = fx.get(&format!("/v1/reservations/{needle}")).await.body["created_at_ms"].as_i64().unwrap();
    let to = OffsetDateTime::from_unix_timestamp_nanos(i128::from(created_ms) * 1_000_000)
        .unwrap()
        .format(&Rfc3339)
        .unwrap();
    let windowed = fx.get(&format!("/v1/reservations?agent=needle&to={to}")).await;
    assert_eq!(
        (ids(&windowed.body), windowed.body["has_more"].clone()),
        (vec![needle.clone()], json!(false)),
        "{}",
        windowed.text
    );
    // Another sort must see every row it orders: past the bound it refuses, never cuts short;
    // within a narrower window it answers.
    let msg = fx.get("/v1/reservations?sort_by=reserved").await.expect_error(400, "INVALID_REQUEST").to_string();
    assert!(msg.starts_with("sort_by:"), "{msg}");
    let sorted = fx.get(&format!("/v1/reservations?sort_by=reserved&agent=needle&to={to}")).await;
    assert_eq!(ids(&sorted.body), vec![needle], "{}", sorted.text);
}
