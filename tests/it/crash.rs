//! The engine killed with SIGKILL while events flow, then restarted: every change that
//! happened has its event in Postgres exactly once, and no event describes a change that did
//! not happen.

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::events::events_of;
use crate::fixture::USD;
use crate::helpers::{ADMIN_KEY, Env, TestApp, eventually, send, tenant_id};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `tollgate` binary serving `env` on the given ports, with a short outbox reclaim time.
async fn start_engine(env: &Env, runtime: u16, admin: u16) -> Child {
    start_engine_with(env, runtime, admin, &[]).await
}

/// The `tollgate` binary serving `env`, with `extra` environment variables, once ready.
pub async fn start_engine_with(env: &Env, runtime: u16, admin: u16, extra: &[(&str, &str)]) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .envs(extra.iter().copied())
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", &env.redis_url)
        .env("TOLLGATE_REDIS_PREFIX", &env.redis_prefix)
        .env("TOLLGATE_DATA_DIR", &env.data_dir)
        .env("TOLLGATE_RUNTIME_ADDR", format!("127.0.0.1:{runtime}"))
        .env("TOLLGATE_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .env("TOLLGATE_RATE_LIMITS", "off")
        .env("TOLLGATE_OUTBOX_POLL_MS", "50")
        .env("TOLLGATE_OUTBOX_RECLAIM_MS", "500")
        .env("TOLLGATE_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the tollgate binary starts");
    let client = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            let url = format!("http://127.0.0.1:{admin}/readyz");
            client.get(url).send().await.is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    assert!(ready, "the engine did not become ready");
    child
}

/// Entries in the tenant's outbox stream, and how many a consumer holds unacknowledged.
async fn outbox_state(env: &Env, tenant: &str) -> (i64, i64) {
    let client = redis::Client::open(env.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}:{{t:{tenant}}}:outbox", env.redis_prefix);
    let len: i64 = redis::cmd("XLEN").arg(&key).query_async(&mut conn).await.unwrap();
    let pending: redis::Value =
        redis::cmd("XPENDING").arg(&key).arg("tollgate-drain").query_async(&mut conn).await.unwrap();
    let unacked = match pending {
        redis::Value::Array(v) => match v.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    };
    (len, unacked)
}

#[tokio::test]
async fn a_killed_engine_loses_and_invents_no_events() {
    // An in-process instance without event workers sets things up and serves the reads; the
    // engine under test is the binary, the only one draining.
    let app = TestApp::spawn_with(|c| c.events_workers = false).await;
    let tenant = tenant_id("crash");
    app.create_tenant(&tenant).await;
    let key = app.create_key(&tenant, json!({})).await["key_secret"].as_str().unwrap().to_string();
    let scope = format!("tenant:{tenant}");
    let budget = json!({
        "tenant_id": tenant, "scope": scope, "unit": USD, "allocated": {"unit": USD, "amount": 1_000_000},
    });
    let r = send(app.admin(Method::POST, "/v1/admin/budgets").json(&budget)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (runtime, admin) = (free_port(), free_port());
    let mut engine = start_engine(&app.env, runtime, admin).await;

    // Writers: admin CREDITs of 1 (each one event, budget.funded) and reserve→commit pairs
    // committing 2 against an estimate of 1 (each one event, reservation.commit_overage).
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (stop, client, tenant, scope, key) =
            (stop.clone(), client.clone(), tenant.clone(), scope.clone(), key.clone());
        writers.push(tokio::spawn(async move {
            let mut reserved = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                if w % 2 == 0 {
                    let _ = client
                        .post(format!("http://127.0.0.1:{admin}/v1/admin/budgets/fund"))
                        .header("x-admin-api-key", ADMIN_KEY)
                        .query(&[("tenant_id", tenant.as_str()), ("scope", scope.as_str()), ("unit", USD)])
                        .json(&json!({"operation": "CREDIT", "amount": {"unit": USD, "amount": 1}}))
                        .send()
                        .await;
                    continue;
                }
                let body = json!({
                    "idempotency_key": format!("r-{w}-{i}"), "subject": {"tenant": tenant},
                    "action": {"kind": "llm.completion", "name": "m"}, "estimate": {"unit": USD, "amount": 1},
                    "overage_policy": "ALLOW_IF_AVAILABLE",
                });
                let Ok(resp) = client
                    .post(format!("http://127.0.0.1:{runtime}/v1/reservations"))
                    .header("x-cycles-api-key", &key)
                    .json(&body)
                    .send()
                    .await
                else {
                    continue;
                };
                let Ok(v) = resp.json::<Value>().await else { continue };
                let Some(id) = v["reservation_id"].as_str() else { continue };
                reserved.push(id.to_string());
                let _ = client
                    .post(format!("http://127.0.0.1:{runtime}/v1/reservations/{id}/commit"))
                    .header("x-cycles-api-key", &key)
                    .json(&json!({"idempotency_key": format!("c-{w}-{i}"), "actual": {"unit": USD, "amount": 2}}))
                    .send()
                    .await;
            }
            reserved
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    engine.start_kill().expect("SIGKILL the engine");
    engine.wait().await.expect("the engine exits");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut reservations = BTreeSet::new();
    for w in writers {
        reservations.extend(w.await.unwrap());
    }
    assert!(!reservations.is_empty(), "no traffic reached the engine before the kill");
    let (waiting, unacked) = outbox_state(&app.env, &tenant).await;

    // Restart on the same stores: the new consumer drains what was never read and reclaims
    // what the dead one had read but not acknowledged.
    let _engine = start_engine(&app.env, runtime, admin).await;
    let ledger = |admin: u16| {
        let (client, tenant, scope) = (client.clone(), tenant.clone(), scope.clone());
        async move {
            let r = client
                .get(format!("http://127.0.0.1:{admin}/v1/admin/budgets/lookup"))
                .header("x-admin-api-key", ADMIN_KEY)
                .query(&[("tenant_id", tenant.as_str()), ("scope", scope.as_str()), ("unit", USD)])
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let allocated = ledger(admin).await["allocated"]["amount"].as_i64().unwrap();
    let credits = allocated - 1_000_000;
    assert!(credits > 0, "no CREDIT happened before the kill");
    let settled = eventually(Duration::from_secs(20), || async {
        let events = events_of(&app, &tenant).await;
        events.iter().filter(|e| e["event_type"] == "budget.funded").count() as i64 >= credits
    })
    .await;
    assert!(settled, "budget.funded events never caught up with the ledger's {credits} credits");
    // Let the drain finish anything still in flight, then read the final log.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let events = events_of(&app, &tenant).await;

    // CREDITs: one event per credit that happened, none twice, none for a credit that did not.
    let mut allocations: Vec<i64> = events
        .iter()
        .filter(|e| e["event_type"] == "budget.funded")
        .map(|e| e["data"]["new_state"]["allocated"].as_i64().unwrap())
        .collect();
    allocations.sort_unstable();
    let expected: Vec<i64> = (1..=credits).map(|k| 1_000_000 + k).collect();
    assert_eq!(allocations, expected, "budget.funded events do not match the credits in the ledger");

    // Commits: every COMMITTED reservation has exactly one overage event; every overage
    // event names a reservation that is COMMITTED.
    let mut overages: HashMap<String, usize> = HashMap::new();
    for e in events.iter().filter(|e| e["event_type"] == "reservation.commit_overage") {
        *overages.entry(e["data"]["reservation_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let status_of = |id: String| {
        let (client, key) = (client.clone(), key.clone());
        async move {
            let r = client
                .get(format!("http://127.0.0.1:{runtime}/v1/reservations/{id}"))
                .header("x-cycles-api-key", &key)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["status"].as_str().unwrap_or_default().to_string()
        }
    };
    let mut committed = 0;
    for id in reservations.iter().chain(overages.keys().filter(|id| !reservations.contains(*id))) {
        let status = status_of(id.clone()).await;
        let n = overages.get(id).copied().unwrap_or(0);
        if status == "COMMITTED" {
            committed += 1;
            assert_eq!(n, 1, "committed reservation {id} has {n} overage events");
        } else {
            assert_eq!(n, 0, "reservation {id} is {status} but has {n} overage events");
        }
    }
    assert!(committed > 0, "no commit happened before the kill");
    eprintln!(
        "crash test: {credits} credits, {committed} commits, {} events; at the kill {waiting} entries waited in \
         the outbox, {unacked} of them read but not acknowledged",
        events.len()
    );
    let ids: BTreeSet<&str> = events.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "an event id appears twice");
}
