//! Budget periods (README §Periods and expiry policies): a budget whose period has ended is
//! rolled into the current one by whichever script touches it first, and every read shows the
//! rolled state. Periods here last 1 to 2 seconds; tests poll for a boundary to pass and assert
//! only what holds however many boundaries passed meanwhile (no timed assertions).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::events::{events_of, wait_for_event};
use crate::fixture::{Fx, USD, amt, assert_invariant, on_redis_and_cluster};
use crate::helpers::{eventually, send};

/// Now, truncated to whole milliseconds (period boundaries are ms).
pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

pub fn text(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap().format(&Rfc3339).unwrap()
}

pub fn ms_of(v: &Value) -> i64 {
    let t = OffsetDateTime::parse(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")), &Rfc3339).unwrap();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// Creates a budget whose first period is `[start, start + len_ms)`.
pub async fn periodic(fx: &Fx, suffix: &str, allocated: i64, start: i64, len_ms: i64, policy: &str) -> Value {
    let extra = json!({"period_start": text(start), "period_end": text(start + len_ms), "rollover_policy": policy});
    let r = fx.budget_with(suffix, USD, allocated, extra).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// Waits until the admin read of the budget shows a period starting after `start`.
pub async fn wait_for_roll(fx: &Fx, suffix: &str, start: i64) -> Value {
    let rolled =
        eventually(Duration::from_secs(20), || async { ms_of(&fx.ledger(suffix, USD).await["period_start"]) > start })
            .await;
    assert!(rolled, "the period starting at {start} never rolled: {}", fx.ledger(suffix, USD).await);
    fx.ledger(suffix, USD).await
}

/// The budget.period_rolled events of a scope, oldest first.
pub fn rolls(events: &[Value], scope: &str) -> Vec<Value> {
    events.iter().filter(|e| e["event_type"] == "budget.period_rolled" && e["scope"] == scope).cloned().collect()
}

/// The events form one chain from the period starting at `start`: each starts where the last
/// ended, and together they cross as many periods as the ledger has moved.
pub fn assert_chain(rolls: &[Value], start: i64, now_start: i64, len_ms: i64) {
    assert!(!rolls.is_empty());
    let mut at = start;
    let mut crossed = 0;
    for e in rolls {
        let d = &e["data"];
        assert_eq!(ms_of(&d["previous_period_start"]), at, "{e}");
        let n = d["periods_crossed"].as_i64().unwrap();
        assert_eq!(ms_of(&d["period_end"]) - ms_of(&d["period_start"]), len_ms, "{e}");
        at = ms_of(&d["period_start"]);
        crossed += n;
    }
    assert_eq!(at, now_start, "the events end in the budget's current period");
    assert_eq!(crossed, (now_start - start) / len_ms, "one event per period crossed: {rolls:?}");
}

/// Sets up a 2-second period: credit, spend and a hold, all inside the first period; retried
/// with a fresh scope when the machine was too slow to finish before the boundary.
async fn first_period(fx: &Fx, policy: &str) -> (String, i64) {
    for attempt in 0..5 {
        let suffix = format!("/workspace:{}{attempt}", policy.to_lowercase().replace('_', "-"));
        let start = now_ms();
        periodic(fx, &suffix, 1_000, start, 2_000, policy).await;
        assert_eq!(fx.fund(&suffix, "CREDIT", 1_000).await.status, 200);
        let ws = json!({"workspace": format!("{}{attempt}", policy.to_lowercase().replace('_', "-"))});
        let spent = fx.event(&format!("ev-{policy}-{attempt}"), ws.clone(), 300, json!({})).await;
        assert_eq!(spent.status, 201, "{}", spent.text);
        let hold = fx.reserve_with(&format!("hold-{policy}-{attempt}"), ws, 100, json!({"ttl_ms": 60_000})).await;
        assert_eq!(hold.status, 200, "{}", hold.text);
        let b = fx.ledger(&suffix, USD).await;
        if ms_of(&b["period_start"]) == start && amt(&b, "spent") == 300 {
            return (suffix, start);
        }
    }
    panic!("the first period never held its setup");
}

on_redis_and_cluster! {
    async fn a_budget_with_a_two_second_period_rolls_under_concurrent_reserves_with_the_exact_arithmetic_of_each_policy(fx: Fx) {
        // allocated 1000 + credit 1000, spent 300, held 100: 1600 unused, one period's allocation 1000.
        for (policy, carried, allocated) in
            [("NONE", 0, 1_000), ("CARRY_FORWARD", 1_600, 2_600), ("CAP_AT_ALLOCATED", 1_000, 2_000)]
        {
            let (suffix, start) = first_period(&fx, policy).await;
            wait_for_roll(&fx, &suffix, start).await;
            let ws = suffix.trim_start_matches("/workspace:").to_string();
            let reserves = (0..8).map(|i| {
                let (fx, ws) = (&fx, ws.clone());
                async move { fx.reserve(&format!("c-{policy}-{i}"), json!({"workspace": ws}), 10).await }
            });
            for r in futures_util::future::join_all(reserves).await {
                assert_eq!(r.status, 200, "{}", r.text);
            }
            let b = fx.ledger(&suffix, USD).await;
            assert_invariant(&b);
            assert_eq!((amt(&b, "spent"), amt(&b, "reserved")), (0, 180), "{b}");
            let scope = fx.scope(&suffix);
            let events = wait_for_event(&fx.app, &fx.tenant, "budget.period_rolled").await;
            let found = eventually(Duration::from_secs(15), || async {
                !rolls(&events_of(&fx.app, &fx.tenant).await, &scope).is_empty()
            })
            .await;
            assert!(found, "{events:?}");
            let first = rolls(&events_of(&fx.app, &fx.tenant).await, &scope)[0].clone();
            let d = &first["data"];
            assert_eq!(d["rollover_policy"], policy);
            assert_eq!(ms_of(&d["previous_period_start"]), start);
            assert_eq!(d["unused_amount"], 1_600, "{first}");
            assert_eq!(d["carried_amount"], carried, "{first}");
            assert_eq!(d["forfeited_amount"], 1_600 - carried, "{first}");
            assert_eq!(d["previous_state"]["spent"], 300, "{first}");
            assert_eq!(d["new_state"]["allocated"], allocated, "{first}");
            assert_eq!(d["new_state"]["spent"], 0, "{first}");
            assert_eq!(d["new_state"]["reserved"], 100, "a hold moves into the new period: {first}");
        }
    }
}

on_redis_and_cluster! {
    async fn a_period_crossed_while_idle_shows_rolled_in_balances_and_lookups(fx: Fx) {
        let start = now_ms();
        periodic(&fx, "/workspace:idle", 1_000, start, 1_000, "NONE").await;
        let spent = fx.event("idle-1", json!({"workspace": "idle"}), 400, json!({})).await;
        assert_eq!(spent.status, 201, "{}", spent.text);
        let b = wait_for_roll(&fx, "/workspace:idle", start).await;
        assert_eq!((amt(&b, "allocated"), amt(&b, "spent"), amt(&b, "remaining")), (1_000, 0, 1_000), "{b}");
        let now_start = ms_of(&b["period_start"]);
        assert_eq!(ms_of(&b["period_end"]) - now_start, 1_000);
        let balances = fx.get(&format!("/v1/balances?tenant={}&workspace=idle", fx.tenant)).await;
        assert_eq!(balances.status, 200, "{}", balances.text);
        let row = balances.body["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["scope"] == fx.scope("/workspace:idle"))
            .cloned()
            .unwrap_or_else(|| panic!("{}", balances.text));
        assert_eq!((amt(&row, "spent"), amt(&row, "remaining")), (0, 1_000), "{row}");
        let listed = send(fx.app.admin(Method::GET, "/v1/admin/budgets").query(&[("tenant_id", fx.tenant.clone())])).await;
        let ledger = listed.body["ledgers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["scope"] == fx.scope("/workspace:idle"))
            .cloned()
            .unwrap();
        assert_eq!(amt(&ledger, "spent"), 0, "{ledger}");
        // A read writes nothing: no roll event until a script touches the budget.
        assert!(rolls(&events_of(&fx.app, &fx.tenant).await, &fx.scope("/workspace:idle")).is_empty());
    }
}

on_redis_and_cluster! {
    async fn one_period_rolled_event_is_appended_per_period_crossed_even_when_several_passed_unseen(fx: Fx) {
        let start = now_ms();
        periodic(&fx, "/workspace:many", 500, start, 1_000, "CARRY_FORWARD").await;
        let passed = eventually(Duration::from_secs(30), || async {
            ms_of(&fx.ledger("/workspace:many", USD).await["period_start"]) >= start + 3_000
        })
        .await;
        assert!(passed);
        let r = fx.event("many-1", json!({"workspace": "many"}), 1, json!({})).await;
        assert_eq!(r.status, 201, "{}", r.text);
        // Every crossed period carried the whole allocation forward (nothing spent, nothing held).
        let scope = fx.scope("/workspace:many");
        let b = fx.ledger("/workspace:many", USD).await;
        let now_start = ms_of(&b["period_start"]);
        let crossed = (now_start - start) / 1_000;
        let all = eventually(Duration::from_secs(15), || async {
            rolls(&events_of(&fx.app, &fx.tenant).await, &scope).len() as i64 >= crossed
        })
        .await;
        assert!(all);
        let rolls = rolls(&events_of(&fx.app, &fx.tenant).await, &scope);
        assert_chain(&rolls, start, now_start, 1_000);
        let last = &rolls.last().unwrap()["data"];
        assert_eq!(last["new_state"]["allocated"], 500 * (crossed + 1), "{last}");
    }
}

on_redis_and_cluster! {
    async fn debt_survives_a_roll(fx: Fx) {
        let start = now_ms();
        let extra = json!({"period_start": text(start), "period_end": text(start + 1_000), "rollover_policy": "NONE",
            "overdraft_limit": {"unit": USD, "amount": 1_000}, "commit_overage_policy": "ALLOW_WITH_OVERDRAFT"});
        assert_eq!(fx.budget_with("/workspace:debt", USD, 1_000, extra).await.status, 201);
        let r = fx.event("debt-1", json!({"workspace": "debt"}), 1_500, json!({})).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let b = wait_for_roll(&fx, "/workspace:debt", start).await;
        assert_eq!(
            (amt(&b, "allocated"), amt(&b, "spent"), amt(&b, "debt"), amt(&b, "remaining")),
            (1_000, 0, 500, 500),
            "{b}"
        );
        // A script that writes the roll keeps the debt too (within the overdraft limit, reserving goes on).
        fx.reserved("debt-r", json!({"workspace": "debt"}), 1).await;
        let after = fx.ledger("/workspace:debt", USD).await;
        assert_eq!((amt(&after, "debt"), amt(&after, "reserved"), amt(&after, "spent")), (500, 1, 0), "{after}");
        let scope = fx.scope("/workspace:debt");
        let found = eventually(Duration::from_secs(15), || async {
            !rolls(&events_of(&fx.app, &fx.tenant).await, &scope).is_empty()
        })
        .await;
        assert!(found);
        let first = &rolls(&events_of(&fx.app, &fx.tenant).await, &scope)[0]["data"];
        assert_eq!((first["previous_state"]["debt"].clone(), first["new_state"]["debt"].clone()), (json!(500), json!(500)));
    }
}

#[tokio::test]
async fn bad_period_input_is_refused_naming_the_field_and_nothing_is_stored() {
    let fx = Fx::new().await;
    let t = |ms: i64| json!(text(ms));
    let s = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let cases = [
        (json!({"period_start": t(s), "period_end": t(s)}), "period_end"),
        (json!({"period_start": t(s), "period_end": t(s - 1)}), "period_end"),
        (json!({"period_start": t(s), "period_end": t(s + 3 * 86_400_000), "period": "P1D"}), "period"),
        (json!({"period_start": t(s), "period": "P3X"}), "period"),
        (json!({"period_start": t(s)}), "period_end"),
        (json!({"period_end": t(s)}), "period_start"),
        (json!({"period": "P1M"}), "period_start"),
        (json!({"rollover_policy": "CARRY_FORWARD"}), "rollover_policy"),
        (json!({"period_start": "2026-01-31T00:00:00Z", "period": "P1M"}), "period_start"),
        (json!({"period_start": t(s), "period_end": t(s + 10)}), "period_end"),
    ];
    for (extra, field) in cases {
        let r = fx.budget_with("/workspace:bad", USD, 1, extra.clone()).await;
        assert!(r.expect_error(400, "INVALID_REQUEST").contains(field), "{extra}: {}", r.text);
    }
    let lookup = send(
        fx.app
            .admin(Method::GET, "/v1/admin/budgets/lookup")
            .query(&[("scope", fx.scope("/workspace:bad")), ("unit", USD.into())]),
    )
    .await;
    lookup.expect_error(404, "BUDGET_NOT_FOUND");
    let month = fx
        .budget_with("/workspace:month", USD, 1, json!({"period_start": "2026-01-15T00:00:00Z", "period": "P1M"}))
        .await;
    assert_eq!(month.status, 201, "{}", month.text);
    assert_eq!(month.body["period"], "P1M");
    assert!(ms_of(&month.body["period_start"]) > s, "a period long over rolls on creation: {}", month.text);
    assert_eq!(month.body["period_start"].as_str().unwrap()[8..], *"15T00:00:00Z");
}

on_redis_and_cluster! {
    /// Straddle rule: a hold made in one period moves into the next; its commit settles against
    /// the period it runs in.
    async fn a_hold_that_straddles_a_boundary_moves_into_the_new_period_and_its_commit_settles_there(fx: Fx) {
        let start = now_ms();
        periodic(&fx, "/workspace:straddle", 1_000, start, 1_000, "NONE").await;
        let id = fx.reserved("straddle-r", json!({"workspace": "straddle"}), 100).await;
        let spent = fx.event("straddle-e", json!({"workspace": "straddle"}), 200, json!({})).await;
        assert_eq!(spent.status, 201, "{}", spent.text);
        let b = wait_for_roll(&fx, "/workspace:straddle", start).await;
        assert_eq!((amt(&b, "allocated"), amt(&b, "spent"), amt(&b, "reserved")), (1_000, 0, 100), "{b}");
        let c = fx.commit(&id, "straddle-c", 70).await;
        assert_eq!(c.status, 200, "{}", c.text);
        let after = fx.ledger("/workspace:straddle", USD).await;
        assert_invariant(&after);
        assert_eq!(amt(&after, "reserved"), 0, "{after}");
        assert!(amt(&after, "spent") <= 70, "the commit settles in the period it runs in: {after}");
        let scope = fx.scope("/workspace:straddle");
        let now_start = ms_of(&after["period_start"]);
        let found = eventually(Duration::from_secs(15), || async {
            rolls(&events_of(&fx.app, &fx.tenant).await, &scope).len() as i64 >= (now_start - start) / 1_000
        })
        .await;
        assert!(found);
        let events = rolls(&events_of(&fx.app, &fx.tenant).await, &scope);
        let first = &events[0]["data"];
        assert_eq!((first["previous_state"]["spent"].clone(), first["new_state"]["spent"].clone()), (json!(200), json!(0)));
        assert_eq!(first["new_state"]["reserved"], 100);
        assert_chain(&events, start, now_start, 1_000);
    }
}
