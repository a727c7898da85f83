//! Property test of the money invariant under group commit, across two engine instances on one
//! ledger: random rounds of concurrent operations (half sent to each instance, so batches form
//! on both) agree with the ledger model of `ledger_model.rs`.
//!
//! Inside a round the order is the ledger's to choose, so the model follows the replies and
//! the test checks that every reply is one some serial order could give:
//! - a reserve round (only reserves): the admitted holds fit what remained before the round,
//!   and every refused estimate exceeds what remained after the admitted ones (the least any
//!   refused call can have seen); over-limit refuses them all with OVERDRAFT_LIMIT_EXCEEDED;
//! - a settle round (commits and releases of distinct reservations, and usage events): every
//!   charge lies between the hold (or nothing, for an event) and the actual, a short charge
//!   marks the scope over-limit, and all overage together fits what remained plus what the
//!   round freed;
//! - a credit runs alone.
//!
//! After every round the ledger's allocated, spent, reserved, debt and over-limit flag equal the
//! model's, and every balance satisfies the invariant.

use futures_util::future::join_all;
use proptest::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Fx, USD, amt};
use crate::helpers::{Instance, Reply, TestApp, send};
use crate::ledger_model::{Model, check};

#[derive(Debug, Clone)]
enum Settle {
    Commit(usize, i64),
    Release(usize),
    Event(i64),
}

#[derive(Debug, Clone)]
enum Round {
    Reserves(Vec<i64>),
    Settles(Vec<Settle>),
    Credit(i64),
}

fn settle() -> impl Strategy<Value = Settle> {
    prop_oneof![
        3 => (0..64_usize, 0..200_i64).prop_map(|(i, a)| Settle::Commit(i, a)),
        1 => (0..64_usize).prop_map(Settle::Release),
        1 => (0..120_i64).prop_map(Settle::Event),
    ]
}

fn round() -> impl Strategy<Value = Round> {
    prop_oneof![
        3 => prop::collection::vec(0..150_i64, 1..12).prop_map(Round::Reserves),
        3 => prop::collection::vec(settle(), 1..12).prop_map(Round::Settles),
        1 => (0..300_i64).prop_map(Round::Credit),
    ]
}

struct Pair<'a> {
    fx: &'a Fx,
    second: &'a Instance,
}

impl Pair<'_> {
    /// POSTs to the first instance for even `i`, the second for odd.
    async fn post(&self, i: usize, path: &str, body: Value) -> Reply {
        let instance = if i.is_multiple_of(2) { &self.fx.app.instance } else { self.second };
        let url = format!("http://{}{path}", instance.runtime.expect("runtime plane"));
        let rb = self.fx.app.client.request(Method::POST, url).header("x-cycles-api-key", &self.fx.key);
        send(rb.json(&body)).await
    }

    async fn reserves(&self, m: &mut Model, round: usize, estimates: &[i64]) {
        let calls = estimates.iter().enumerate().map(|(i, e)| {
            let body = self.fx.reserve_body(&format!("r{round}-{i}"), json!({}), *e);
            self.post(i, "/v1/reservations", body)
        });
        let replies = join_all(calls).await;
        let before = m.remaining();
        let mut admitted = 0;
        let mut refused = Vec::new();
        for (r, e) in replies.iter().zip(estimates) {
            if r.status == 200 {
                assert!(!m.over, "a reserve was admitted on an over-limit scope: {}", r.text);
                admitted += e;
                m.active.push((r.body["reservation_id"].as_str().unwrap().to_string(), *e));
            } else if m.over {
                r.expect_error(409, "OVERDRAFT_LIMIT_EXCEEDED");
            } else {
                r.expect_error(409, "BUDGET_EXCEEDED");
                refused.push(*e);
            }
        }
        assert!(admitted <= before, "admitted {admitted} with {before} remaining");
        for e in refused {
            assert!(e > before - admitted, "refused {e} though {} remained after the admitted", before - admitted);
        }
        m.reserved += admitted;
    }

    async fn settles(&self, m: &mut Model, round: usize, ops: &[Settle]) {
        // Distinct reservations: each index picks one not yet picked in this round.
        let mut pool = std::mem::take(&mut m.active);
        let mut planned = Vec::new();
        for op in ops {
            match op {
                Settle::Commit(i, _) | Settle::Release(i) if !pool.is_empty() => {
                    let (id, e) = pool.remove(i % pool.len());
                    planned.push((op.clone(), Some((id, e))));
                }
                Settle::Event(_) => planned.push((op.clone(), None)),
                _ => {}
            }
        }
        m.active = pool;
        let calls = planned.iter().enumerate().map(|(i, (op, held))| {
            let key = format!("s{round}-{i}");
            let (path, body) = match (op, held) {
                (Settle::Commit(_, a), Some((id, _))) => (
                    format!("/v1/reservations/{id}/commit"),
                    json!({"idempotency_key": key, "actual": {"unit": USD, "amount": a}}),
                ),
                (Settle::Release(_), Some((id, _))) => {
                    (format!("/v1/reservations/{id}/release"), json!({"idempotency_key": key}))
                }
                (Settle::Event(a), _) => {
                    let mut body = self.fx.reserve_body(&key, json!({}), 0);
                    body["actual"] = json!({"unit": USD, "amount": a});
                    body.as_object_mut().map(|b| b.remove("estimate"));
                    ("/v1/events".to_string(), body)
                }
                _ => unreachable!("planned operations carry their reservation"),
            };
            async move { self.post(i, &path, body).await }
        });
        let replies = join_all(calls).await;
        let before = m.remaining();
        let (mut freed, mut overage) = (0, 0);
        for ((op, held), r) in planned.iter().zip(&replies) {
            let hold = held.as_ref().map_or(0, |(_, e)| *e);
            let actual = match op {
                Settle::Release(_) => {
                    assert_eq!(r.status, 200, "{}", r.text);
                    m.reserved -= hold;
                    freed += hold;
                    continue;
                }
                Settle::Commit(_, a) => {
                    assert_eq!(r.status, 200, "{}", r.text);
                    *a
                }
                Settle::Event(a) => {
                    assert_eq!(r.status, 201, "{}", r.text);
                    *a
                }
            };
            let charged = if r.body.get("charged").is_some() { amt(&r.body, "charged") } else { actual };
            if actual <= hold {
                assert_eq!(charged, actual, "{}", r.text);
                freed += hold - actual;
            } else {
                assert!((hold..=actual).contains(&charged), "charged {charged} of {actual} over a hold of {hold}");
                overage += charged - hold;
                m.over |= charged < actual;
            }
            m.reserved -= hold;
            m.spent += charged;
        }
        assert!(overage <= before.max(0) + freed, "overage {overage} with {before} remaining and {freed} freed");
    }
}

async fn run(pair: &Pair<'_>, rounds: &[Round]) {
    let mut m = Model { allocated: 500, ..Model::default() };
    for (n, round) in rounds.iter().enumerate() {
        match round {
            Round::Reserves(estimates) => pair.reserves(&mut m, n, estimates).await,
            Round::Settles(ops) => pair.settles(&mut m, n, ops).await,
            Round::Credit(c) => {
                assert_eq!(pair.fx.fund("", "CREDIT", *c).await.status, 200);
                m.allocated += c;
                m.over = false;
            }
        }
        check(pair.fx, &m).await;
    }
}

#[test]
fn concurrent_rounds_on_two_instances_through_group_commit_keep_the_ledger_equal_to_its_model() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = std::sync::Arc::new(rt.block_on(TestApp::spawn_with(|c| c.group_commit_always = true)));
    let second = rt.block_on(app.another_instance_with(|c| c.group_commit_always = true));
    let cases: u32 = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let (app, second) = (&app, &second);
    proptest!(config, |(rounds in prop::collection::vec(round(), 1..16))| {
        rt.block_on(async {
            let fx = Fx::with_tenant(app).await;
            fx.budget("", 500).await;
            run(&Pair { fx: &fx, second }, &rounds).await;
        });
    });
    let grouped = rt.block_on(async {
        let text = send(app.admin(Method::GET, "/metrics")).await.text;
        let metric =
            |name: &str| -> f64 { text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0) };
        metric("cycles_ledger_batch_size_sum ") - metric("cycles_ledger_batch_size_count ")
    });
    assert!(grouped > 0.0, "no script call carried more than one operation");
}
