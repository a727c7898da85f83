//! The real Cycles clients against a running Tollgate, unmodified: the `runcycles` crate from
//! crates.io (its own typed calls, the harness only for setup), and the `runcycles` package
//! from PyPI driven by `tests/sdk/python_client.py` in the virtualenv `scripts/sdk-venv` makes.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use runcycles::models::{
    Action, Amount, Balance, BalanceParams, CommitRequest, CommitStatus, Decision, DecisionRequest, ErrorCode,
    EventCreateRequest, EventStatus, ExtendRequest, ExtendStatus, ListReservationsParams, ReleaseRequest,
    ReleaseStatus, ReservationCreateRequest, ReservationStatus, Subject, Unit,
};
use runcycles::{CyclesClient, Error, WithCyclesConfig, with_cycles};
use serde_json::json;

use crate::helpers::{TestApp, send, tenant_id};

const ALLOCATED: i64 = 1_000_000;

/// A running engine with a tenant, its key, a `tenant:<t>` USD_MICROCENTS budget of
/// [`ALLOCATED`], and a `runcycles` client for that key.
struct Sdk {
    app: TestApp,
    tenant: String,
    key: String,
    client: CyclesClient,
}

impl Sdk {
    async fn new() -> Sdk {
        let app = TestApp::spawn().await;
        let tenant = tenant_id("sdk");
        app.create_tenant(&tenant).await;
        let key = app.create_key(&tenant, json!({})).await["key_secret"].as_str().expect("key_secret").to_string();
        let sdk = Sdk {
            client: CyclesClient::builder(key.clone(), app.runtime_url(""))
                .tenant(tenant.clone())
                // Fail fast: a retried call would hide a wrong first answer. No journal: it
                // would write under ~/.runcycles.
                .retry_enabled(false)
                .journal_enabled(false)
                .build(),
            app,
            tenant,
            key,
        };
        sdk.budget("", ALLOCATED).await;
        sdk
    }

    fn scope(&self, suffix: &str) -> String {
        format!("tenant:{}{suffix}", self.tenant)
    }

    async fn budget(&self, suffix: &str, allocated: i64) {
        let r = send(self.app.admin(Method::POST, "/v1/admin/budgets").json(&json!({
            "tenant_id": self.tenant, "scope": self.scope(suffix), "unit": "USD_MICROCENTS",
            "allocated": {"unit": "USD_MICROCENTS", "amount": allocated},
        })))
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }

    fn subject(&self) -> Subject {
        Subject { tenant: Some(self.tenant.clone()), ..Default::default() }
    }

    fn reservation(&self, estimate: i64) -> ReservationCreateRequest {
        ReservationCreateRequest::builder()
            .subject(self.subject())
            .action(action())
            .estimate(Amount::usd_microcents(estimate))
            .build()
    }

    fn decision(&self, estimate: i64) -> DecisionRequest {
        DecisionRequest::builder()
            .subject(self.subject())
            .action(action())
            .estimate(Amount::usd_microcents(estimate))
            .build()
    }

    /// The ledger at `scope` through the client's `get_balances`.
    async fn balance(&self, scope: &str) -> Balance {
        let params = BalanceParams { tenant: Some(self.tenant.clone()), ..Default::default() };
        let all = self.client.get_balances(&params).await.expect("get_balances").balances;
        let mut mine = all.iter().filter(|b| b.scope == scope);
        let found = mine.next().unwrap_or_else(|| panic!("no {scope} in {all:?}"));
        assert!(mine.next().is_none(), "one ledger for {scope}: {all:?}");
        found.clone()
    }
}

fn action() -> Action {
    Action::new("llm.completion", "gpt-4o")
}

fn usd(amount: i64) -> Option<Amount> {
    Some(Amount::usd_microcents(amount))
}

/// Asserts allocated, spent and reserved, and remaining = allocated − spent − reserved − debt.
fn assert_ledger(b: &Balance, allocated: i64, spent: i64, reserved: i64) {
    assert_eq!(b.allocated, usd(allocated), "allocated: {b:?}");
    assert_eq!(b.spent, usd(spent), "spent: {b:?}");
    assert_eq!(b.reserved, usd(reserved), "reserved: {b:?}");
    let debt = b.debt.as_ref().map_or(0, |d| d.amount);
    assert_eq!(debt, 0, "debt: {b:?}");
    assert_eq!(b.remaining.unit, Unit::UsdMicrocents, "{b:?}");
    assert_eq!(
        b.remaining.amount,
        allocated - spent - reserved - debt,
        "remaining = allocated - spent - reserved - debt: {b:?}"
    );
    assert_ne!(b.is_over_limit, Some(true), "{b:?}");
}

#[tokio::test]
async fn the_runcycles_crate_reserves_and_commits_against_tollgate() {
    let sdk = Sdk::new().await;
    let guard = sdk.client.reserve(sdk.reservation(5_000)).await.expect("reserve");
    assert_eq!(guard.decision(), Decision::Allow);
    assert_eq!(guard.affected_scopes(), [sdk.scope("")]);
    assert!(guard.expires_at_ms().is_some());
    let id = guard.reservation_id().clone();
    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 0, 5_000);

    let committed =
        guard.commit(CommitRequest::builder().actual(Amount::usd_microcents(3_200)).build()).await.expect("commit");
    assert_eq!(committed.status, CommitStatus::Committed);
    assert_eq!(committed.charged, Amount::usd_microcents(3_200));
    assert!(!committed.is_recovered_via_event());
    if let Some(released) = &committed.released {
        assert_eq!(*released, Amount::usd_microcents(1_800));
    }

    let detail = sdk.client.get_reservation(&id).await.expect("get");
    assert_eq!(detail.status, ReservationStatus::Committed);
    assert_eq!(detail.reserved, Amount::usd_microcents(5_000));
    assert_eq!(detail.committed, usd(3_200));
    assert_eq!(detail.subject, sdk.subject());
    assert_eq!(detail.action, action());
    assert_eq!(detail.affected_scopes, [sdk.scope("")]);

    let listed = sdk
        .client
        .list_reservations(&ListReservationsParams {
            tenant: Some(sdk.tenant.clone()),
            status: Some("COMMITTED".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    let ids: Vec<&str> = listed.reservations.iter().map(|r| r.reservation_id.as_str()).collect();
    assert_eq!(ids, [id.as_str()]);

    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 3_200, 0);
}

#[tokio::test]
async fn the_runcycles_crate_reserves_and_releases_against_tollgate() {
    let sdk = Sdk::new().await;
    let guard = sdk.client.reserve(sdk.reservation(7_000)).await.expect("reserve");
    let id = guard.reservation_id().clone();
    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 0, 7_000);

    let released = guard.release("not needed").await.expect("release");
    assert_eq!(released.status, ReleaseStatus::Released);
    assert_eq!(released.released, Amount::usd_microcents(7_000));

    let detail = sdk.client.get_reservation(&id).await.expect("get");
    assert_eq!(detail.status, ReservationStatus::Released);
    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 0, 0);

    // The low-level call, too: a second reservation released with the crate's own request.
    let created = sdk.client.create_reservation(&sdk.reservation(1_000)).await.expect("create");
    let id = created.reservation_id.expect("reservation_id");
    let released = sdk.client.release_reservation(&id, &ReleaseRequest::new(None)).await.expect("release");
    assert_eq!(released.status, ReleaseStatus::Released);
    assert_eq!(released.released, Amount::usd_microcents(1_000));
    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 0, 0);
}

#[tokio::test]
async fn the_runcycles_crate_gets_allow_from_decide_within_the_budget() {
    let sdk = Sdk::new().await;
    let decided = sdk.client.decide(&sdk.decision(1_000)).await.expect("decide");
    assert_eq!(decided.decision, Decision::Allow);
    assert!(decided.caps.is_none(), "{decided:?}");
    if let Some(scopes) = &decided.affected_scopes {
        assert_eq!(scopes, &[sdk.scope("")]);
    }
    // decide reserves nothing.
    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 0, 0);
}

#[tokio::test]
async fn the_runcycles_crate_gets_deny_from_decide_when_the_estimate_exceeds_the_budget() {
    let sdk = Sdk::new().await;
    let decided = sdk.client.decide(&sdk.decision(ALLOCATED + 1)).await.expect("decide answers 200 DENY, not an error");
    assert_eq!(decided.decision, Decision::Deny);
    assert_eq!(decided.reason_code.as_deref(), Some("BUDGET_EXCEEDED"));

    // A live reserve past the budget is a 409 BUDGET_EXCEEDED, typed by the crate.
    match sdk.client.reserve(sdk.reservation(ALLOCATED + 1)).await {
        Err(Error::BudgetExceeded { status, .. }) => assert_eq!(status, Some(409)),
        other => panic!("expected BudgetExceeded, got {other:?}"),
    }
    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 0, 0);
}

#[tokio::test]
async fn the_runcycles_crate_extends_a_reservation() {
    let sdk = Sdk::new().await;
    // The low-level create: a guard would also extend on its own (heartbeat).
    let created = sdk
        .client
        .create_reservation(
            &ReservationCreateRequest::builder()
                .subject(sdk.subject())
                .action(action())
                .estimate(Amount::usd_microcents(2_000))
                .ttl_ms(30_000)
                .build(),
        )
        .await
        .expect("create");
    assert_eq!(created.decision, Decision::Allow);
    let id = created.reservation_id.clone().expect("reservation_id");
    let expires = created.expires_at_ms.expect("expires_at_ms");
    if let Some(ttl) = created.remaining_ttl_ms {
        assert!(ttl <= 30_000, "{created:?}");
    }

    let extended = sdk.client.extend_reservation(&id, &ExtendRequest::new(60_000)).await.expect("extend");
    assert_eq!(extended.status, ExtendStatus::Active);
    // extend_by_ms counts from the current expiry, not from the request time.
    assert_eq!(extended.expires_at_ms, expires + 60_000);
    if let Some(ttl) = extended.remaining_ttl_ms {
        assert!(ttl > 30_000 && ttl <= 90_000, "{extended:?}");
    }
    let detail = sdk.client.get_reservation(&id).await.expect("get");
    assert_eq!(detail.status, ReservationStatus::Active);
    assert_eq!(detail.expires_at_ms, expires + 60_000);
    assert_eq!(detail.reserved, Amount::usd_microcents(2_000));

    // The guard's manual extend, on a reservation the guard holds.
    let guard = sdk.client.reserve(sdk.reservation(1_000)).await.expect("reserve");
    guard.extend(10_000).await.expect("guard extend");
    guard.release("done").await.expect("release");

    // Extending does not change what is reserved.
    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 0, 2_000);
}

#[tokio::test]
async fn the_runcycles_crate_posts_events_as_direct_debits() {
    let sdk = Sdk::new().await;
    let event = sdk
        .client
        .create_event(
            &EventCreateRequest::builder()
                .subject(sdk.subject())
                .action(action())
                .actual(Amount::usd_microcents(1_500))
                .build(),
        )
        .await
        .expect("event");
    assert_eq!(event.status, EventStatus::Applied);
    assert!(!event.event_id.as_str().is_empty());
    if let Some(charged) = &event.charged {
        assert_eq!(*charged, Amount::usd_microcents(1_500));
    }
    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 1_500, 0);
}

#[tokio::test]
async fn the_runcycles_crate_reads_balances_that_add_up() {
    let sdk = Sdk::new().await;
    sdk.budget("/agent:bot", 200_000).await;
    let bot = Subject { tenant: Some(sdk.tenant.clone()), agent: Some("bot".into()), ..Default::default() };

    // Spent 3 200 by commit and 1 500 by event; 2 000 still reserved; all through agent:bot.
    let guard = sdk
        .client
        .reserve(
            ReservationCreateRequest::builder()
                .subject(bot.clone())
                .action(action())
                .estimate(Amount::usd_microcents(5_000))
                .build(),
        )
        .await
        .expect("reserve");
    assert_eq!(guard.affected_scopes(), [sdk.scope(""), sdk.scope("/agent:bot")]);
    guard.commit(CommitRequest::builder().actual(Amount::usd_microcents(3_200)).build()).await.expect("commit");
    sdk.client
        .create_event(
            &EventCreateRequest::builder()
                .subject(bot.clone())
                .action(action())
                .actual(Amount::usd_microcents(1_500))
                .build(),
        )
        .await
        .expect("event");
    let held = sdk
        .client
        .create_reservation(
            &ReservationCreateRequest::builder()
                .subject(bot.clone())
                .action(action())
                .estimate(Amount::usd_microcents(2_000))
                .build(),
        )
        .await
        .expect("create");

    let params = BalanceParams { tenant: Some(sdk.tenant.clone()), ..Default::default() };
    let all = sdk.client.get_balances(&params).await.expect("balances");
    let mut scopes: Vec<&str> = all.balances.iter().map(|b| b.scope.as_str()).collect();
    scopes.sort_unstable();
    let (root, agent) = (sdk.scope(""), sdk.scope("/agent:bot"));
    assert_eq!(scopes, [root.as_str(), agent.as_str()]);
    assert_ledger(&sdk.balance(&root).await, ALLOCATED, 4_700, 2_000);
    assert_ledger(&sdk.balance(&agent).await, 200_000, 4_700, 2_000);

    // Filtering by agent narrows the answer to that subtree's ledgers.
    let by_agent = sdk
        .client
        .get_balances(&BalanceParams {
            tenant: Some(sdk.tenant.clone()),
            agent: Some("bot".into()),
            ..Default::default()
        })
        .await
        .expect("balances by agent");
    assert!(by_agent.balances.iter().any(|b| b.scope == agent), "{by_agent:?}");

    // The crate refuses an unfiltered balance query before sending it.
    assert!(matches!(sdk.client.get_balances(&BalanceParams::default()).await, Err(Error::Validation(_))));

    let id = held.reservation_id.expect("reservation_id");
    sdk.client.release_reservation(&id, &ReleaseRequest::new(None)).await.expect("release");
    assert_ledger(&sdk.balance(&root).await, ALLOCATED, 4_700, 0);
}

#[tokio::test]
async fn the_runcycles_crate_with_cycles_commits_what_the_guarded_work_reports() {
    let sdk = Sdk::new().await;
    let answer = with_cycles(
        &sdk.client,
        WithCyclesConfig::new(Amount::usd_microcents(4_000)).action("llm.completion", "gpt-4o").subject(sdk.subject()),
        |ctx| async move {
            assert_eq!(ctx.decision, Decision::Allow);
            Ok(("done", Amount::usd_microcents(2_500)))
        },
    )
    .await
    .expect("with_cycles");
    assert_eq!(answer, "done");
    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 2_500, 0);
}

#[tokio::test]
async fn the_runcycles_crate_surfaces_tollgate_errors_as_typed_errors() {
    let sdk = Sdk::new().await;
    // Unknown reservation: 404 NOT_FOUND.
    let missing = runcycles::models::ReservationId::new("rsv_does_not_exist");
    match sdk.client.get_reservation(&missing).await {
        Err(Error::Api { status, code, .. }) => {
            assert_eq!((status, code), (404, Some(ErrorCode::NotFound)));
        }
        other => panic!("expected 404, got {other:?}"),
    }
    // A second commit on a committed reservation: 409 RESERVATION_FINALIZED.
    let created = sdk.client.create_reservation(&sdk.reservation(1_000)).await.expect("create");
    let id = created.reservation_id.expect("reservation_id");
    let commit = |amount| CommitRequest::builder().actual(Amount::usd_microcents(amount)).build();
    sdk.client.commit_reservation(&id, &commit(1_000)).await.expect("commit");
    match sdk.client.commit_reservation(&id, &commit(500)).await {
        Err(Error::Api { status, code, .. }) => {
            assert_eq!((status, code), (409, Some(ErrorCode::ReservationFinalized)));
        }
        other => panic!("expected 409 RESERVATION_FINALIZED, got {other:?}"),
    }
    // A wrong key: 401 UNAUTHORIZED.
    let stranger =
        CyclesClient::builder("not-a-key", sdk.app.runtime_url("")).retry_enabled(false).journal_enabled(false).build();
    match stranger.decide(&sdk.decision(1)).await {
        Err(e) => {
            assert!(e.is_auth_error(), "{e:?}");
            assert_eq!(e.status(), Some(401));
        }
        other => panic!("expected 401, got {other:?}"),
    }
}

/// Runs `scripts/sdk-venv` (creates `.venv-sdk` with the pinned `runcycles` if needed) and
/// returns the interpreter it prints.
pub async fn sdk_python(root: &Path) -> String {
    let out = tokio::process::Command::new(root.join("scripts/sdk-venv"))
        .current_dir(root)
        .output()
        .await
        .expect("run scripts/sdk-venv");
    assert!(
        out.status.success(),
        "scripts/sdk-venv failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(Path::new(&python).is_file(), "no interpreter at {python:?}");
    python
}

#[tokio::test]
async fn the_runcycles_python_package_drives_tollgate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = sdk_python(root).await;
    let sdk = Sdk::new().await;

    // The engine runs on this test's runtime: wait for the child without blocking it.
    let run = tokio::process::Command::new(&python)
        .arg(root.join("tests/sdk/python_client.py"))
        .current_dir(root)
        .env("TOLLGATE_URL", sdk.app.runtime_url(""))
        .env("CYCLES_API_KEY", &sdk.key)
        .env("TOLLGATE_TENANT", &sdk.tenant)
        .env("TOLLGATE_BUDGET", ALLOCATED.to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("python client finishes within 120 s")
        .expect("run the python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python client failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}", out.status);
    print!("{stdout}");
    assert!(stdout.contains("all steps passed"), "--- stdout\n{stdout}--- stderr\n{stderr}");

    // What the script did, seen from here: spent 3 200 + 1 500 + 2 500, nothing left reserved.
    assert_ledger(&sdk.balance(&sdk.scope("")).await, ALLOCATED, 7_200, 0);
}
