//! Property test of the money invariant: random sequences of reserve, commit, release, usage
//! events and credits run against the real scripts agree, step by step, with a model of the
//! ledger written from the spec's arithmetic (ALLOW_IF_AVAILABLE, no overdraft), and every
//! balance satisfies `remaining = allocated − spent − reserved − debt`.

use proptest::prelude::*;
use serde_json::json;

use crate::fixture::{Fx, USD, amt, assert_invariant};
use crate::helpers::TestApp;

#[derive(Debug, Clone)]
enum Op {
    Reserve(i64),
    Commit(usize, i64),
    Release(usize),
    Event(i64),
    Credit(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..150_i64).prop_map(Op::Reserve),
        3 => (0..8_usize, 0..200_i64).prop_map(|(i, a)| Op::Commit(i, a)),
        1 => (0..8_usize).prop_map(Op::Release),
        1 => (0..120_i64).prop_map(Op::Event),
        1 => (0..100_i64).prop_map(Op::Credit),
    ]
}

#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) allocated: i64,
    pub(crate) spent: i64,
    pub(crate) reserved: i64,
    pub(crate) over: bool,
    /// ACTIVE reservations: (id, estimate).
    pub(crate) active: Vec<(String, i64)>,
}

impl Model {
    pub(crate) fn remaining(&self) -> i64 {
        self.allocated - self.spent - self.reserved
    }

    /// Settles `actual` against a hold of `held` already taken off `reserved`: the overage is
    /// capped at what remained while the hold was in place, and a short scope goes over-limit.
    fn charge(&mut self, held: i64, actual: i64) -> i64 {
        let delta = actual - held;
        if delta <= 0 {
            self.spent += actual;
            return actual;
        }
        let remaining_before = self.remaining() - held;
        let cap = delta.min(remaining_before.max(0));
        if cap < delta && remaining_before < delta {
            self.over = true;
        }
        self.spent += held + cap;
        held + cap
    }
}

/// The ledger's balance equals the model's, and satisfies the invariant.
pub(crate) async fn check(fx: &Fx, model: &Model) {
    let b = fx.ledger("", USD).await;
    assert_invariant(&b);
    let got = (
        amt(&b, "allocated"),
        amt(&b, "spent"),
        amt(&b, "reserved"),
        amt(&b, "debt"),
        b["is_over_limit"].as_bool().unwrap(),
    );
    assert_eq!(got, (model.allocated, model.spent, model.reserved, 0, model.over), "ledger differs from the model");
}

async fn run(fx: &Fx, ops: &[Op]) {
    let mut m = Model { allocated: 500, ..Model::default() };
    for (n, op) in ops.iter().enumerate() {
        let key = format!("k{n}");
        match op {
            Op::Reserve(e) => {
                let r = fx.reserve(&key, json!({}), *e).await;
                if m.over {
                    r.expect_error(409, "OVERDRAFT_LIMIT_EXCEEDED");
                } else if m.remaining() < *e {
                    r.expect_error(409, "BUDGET_EXCEEDED");
                } else {
                    assert_eq!(r.status, 200, "{}", r.text);
                    m.reserved += e;
                    m.active.push((r.body["reservation_id"].as_str().unwrap().to_string(), *e));
                }
            }
            Op::Commit(i, a) if !m.active.is_empty() => {
                let (id, e) = m.active.remove(i % m.active.len());
                let r = fx.commit(&id, &key, *a).await;
                assert_eq!(r.status, 200, "{}", r.text);
                m.reserved -= e;
                let charged = m.charge(e, *a);
                assert_eq!(amt(&r.body, "charged"), charged);
            }
            Op::Release(i) if !m.active.is_empty() => {
                let (id, e) = m.active.remove(i % m.active.len());
                assert_eq!(fx.release(&id, &key).await.status, 200);
                m.reserved -= e;
            }
            Op::Event(a) => {
                let r = fx.event(&key, json!({}), *a, json!({})).await;
                assert_eq!(r.status, 201, "{}", r.text);
                m.charge(0, *a);
            }
            Op::Credit(c) => {
                assert_eq!(fx.fund("", "CREDIT", *c).await.status, 200);
                m.allocated += c;
                m.over = false;
            }
            _ => {}
        }
        check(fx, &m).await;
    }
}

/// Runs the property on an engine configured by `adjust`.
fn property_holds(adjust: fn(&mut tollgate::ServeConfig)) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = std::sync::Arc::new(rt.block_on(TestApp::spawn_with(adjust)));
    let cases: u32 = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let app = &app;
    proptest!(config, |(ops in prop::collection::vec(op(), 1..30))| {
        rt.block_on(async {
            let fx = Fx::with_tenant(app).await;
            fx.budget("", 500).await;
            run(&fx, &ops).await;
        });
    });
}

#[test]
fn random_operation_sequences_keep_the_ledger_equal_to_its_model() {
    property_holds(|c| c.group_commit_max = 0);
}

/// Every runtime mutation goes through the group-commit script (a batch of one when alone),
/// so the batched path is held to the same model step by step.
#[test]
fn random_operation_sequences_run_through_group_commit_keep_the_ledger_equal_to_its_model() {
    property_holds(|c| c.group_commit_always = true);
}
