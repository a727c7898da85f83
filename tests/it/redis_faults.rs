//! The ledger's Redis failing under the engine: refused connections, a restart that loads its
//! dataset slowly, a SIGKILL under load. Each test runs its own `redis-server` on a free
//! loopback port (AOF on, in a temporary directory), kills and restarts it, and is bounded in time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::fixture::{Fx, USD, amt, assert_invariant};
use crate::helpers::{TestApp, eventually, send};

/// The engine's Redis timeout in these tests, and what a failing request may add to it
/// (HTTP, auth, scheduling on a busy 2-core machine).
const REDIS_TIMEOUT_MS: u64 = 300;
const MARGIN: Duration = Duration::from_millis(700);

/// A `redis-server` owned by one test: restartable on the same port and data directory.
struct ScratchRedis {
    child: Option<tokio::process::Child>,
    port: u16,
    dir: PathBuf,
}

impl ScratchRedis {
    async fn start() -> ScratchRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("tollgate-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = ScratchRedis { child: None, port, dir };
        r.spawn(&[]).await;
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (AOF, fsync at every write) with `extra` arguments; waits until it accepts
    /// connections (it may still be loading).
    async fn spawn(&mut self, extra: &[&str]) {
        let port = self.port.to_string();
        let mut args = vec!["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"];
        args.extend(["--appendfsync", "always", "--enable-debug-command", "local"]);
        args.extend(extra);
        let child = tokio::process::Command::new("redis-server")
            .args(&args)
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        let up =
            eventually(Duration::from_secs(10), || async { tokio::net::TcpStream::connect(&addr).await.is_ok() }).await;
        assert!(up, "scratch redis listens");
    }

    /// SIGKILL: no shutdown, no final fsync.
    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    async fn cmd(&self, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut conn).await.unwrap()
    }
}

impl Drop for ScratchRedis {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn app_on(redis: &ScratchRedis) -> Fx {
    let url = redis.url();
    Fx::on(
        TestApp::spawn_with(|c| {
            c.redis_url = url;
            c.redis_timeout_ms = REDIS_TIMEOUT_MS;
        })
        .await,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_get_503_with_retry_after_within_the_redis_timeout_when_redis_refuses_connections() {
    let mut redis = ScratchRedis::start().await;
    let fx = app_on(&redis).await;
    fx.budget("", 1_000_000).await;
    fx.reserved("before", json!({}), 10).await;
    redis.kill().await;
    let bound = Duration::from_millis(REDIS_TIMEOUT_MS) + MARGIN;
    for i in 0..5 {
        let started = Instant::now();
        let r = fx.reserve(&format!("down-{i}"), json!({}), 10).await;
        let took = started.elapsed();
        r.expect_error(503, "INTERNAL_ERROR");
        assert_eq!(r.header("retry-after"), "1");
        assert!(took <= bound, "reserve {i} took {took:?} (bound {bound:?})");
        let started = Instant::now();
        let r = fx.fund("", "CREDIT", 5).await;
        assert_eq!(r.status, 503, "{}", r.text);
        assert!(started.elapsed() <= bound, "fund {i} took {:?}", started.elapsed());
        let started = Instant::now();
        let r = fx.get(&format!("/v1/balances?tenant={}", fx.tenant)).await;
        assert_eq!(r.status, 503, "{}", r.text);
        assert!(started.elapsed() <= bound, "balances {i} took {:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_loading_its_dataset_answers_only_503_until_it_has_loaded() {
    let mut redis = ScratchRedis::start().await;
    // A dataset in the AOF's RDB base that takes seconds to load with a per-key delay.
    redis.cmd(&["DEBUG", "POPULATE", "30000", "filler", "10"]).await;
    redis.cmd(&["BGREWRITEAOF"]).await;
    let fx = app_on(&redis).await;
    fx.budget("", 1_000_000).await;
    let rewritten = eventually(Duration::from_secs(10), || async {
        let redis::Value::BulkString(info) = redis.cmd(&["INFO", "persistence"]).await else {
            return false;
        };
        String::from_utf8_lossy(&info).contains("aof_rewrite_in_progress:0")
    })
    .await;
    assert!(rewritten, "AOF rewrite finished");
    redis.kill().await;
    redis.spawn(&["--key-load-delay", "50", "--loading-process-events-interval-bytes", "1024"]).await;

    let (deadline, mut unavailable, mut n) = (Instant::now() + Duration::from_secs(20), 0, 0);
    let bound = Duration::from_millis(REDIS_TIMEOUT_MS) + MARGIN;
    loop {
        n += 1;
        let started = Instant::now();
        let r = fx.reserve(&format!("loading-{n}"), json!({}), 1).await;
        assert!(started.elapsed() <= bound, "request {n} took {:?}", started.elapsed());
        if r.status == 200 {
            break;
        }
        r.expect_error(503, "INTERNAL_ERROR");
        assert_eq!(r.header("retry-after"), "1");
        unavailable += 1;
        assert!(Instant::now() < deadline, "Redis still loading after 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(unavailable > 0, "no request saw the loading Redis");
    eprintln!("redis loading: {unavailable} requests answered 503, then 200");
    let balance = fx.ledger("", USD).await;
    assert_eq!(amt(&balance, "reserved"), 1, "the budget survived the restart: {balance}");
}

/// One client's acknowledged work: reservation ids with the amount each commit charged.
type Acked = Vec<(String, i64)>;

/// Sends `body` to `path` until it is answered 200 (same idempotency key each time), or panics
/// after `deadline`. 503 is the only other answer allowed.
async fn until_ok(fx: &Fx, path: &str, body: serde_json::Value, deadline: Instant) -> serde_json::Value {
    loop {
        let r = send(fx.rt(Method::POST, path).json(&body)).await;
        if r.status == 200 {
            return r.body;
        }
        assert_eq!(r.status, 503, "{path}: {}", r.text);
        assert!(Instant::now() < deadline, "{path} not acknowledged before the deadline");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn client(fx: Arc<Fx>, c: usize, stop: Instant, deadline: Instant) -> Acked {
    let mut acked = Vec::new();
    let mut i = 0;
    while Instant::now() < stop {
        i += 1;
        let body = fx.reserve_body(&format!("c{c}-r{i}"), json!({"agent": format!("a{c}")}), 100);
        let r = until_ok(&fx, "/v1/reservations", body, deadline).await;
        assert_eq!(r["decision"], "ALLOW", "{r}");
        let id = r["reservation_id"].as_str().unwrap().to_string();
        let actual = 1 + (i % 7) as i64;
        let body = json!({"idempotency_key": format!("c{c}-c{i}"), "actual": {"unit": USD, "amount": actual}});
        until_ok(&fx, &format!("/v1/reservations/{id}/commit"), body, deadline).await;
        acked.push((id, actual));
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_killed_under_load_and_restarted_from_its_aof_loses_no_acknowledged_operation() {
    let mut redis = ScratchRedis::start().await;
    let fx = Arc::new(app_on(&redis).await);
    fx.budget("", 1_000_000_000).await;
    let started = Instant::now();
    let (stop, deadline) = (started + Duration::from_secs(4), started + Duration::from_secs(25));
    let clients: Vec<_> = (0..8).map(|c| tokio::spawn(client(fx.clone(), c, stop, deadline))).collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    redis.kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.spawn(&[]).await;
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.unwrap());
    }
    assert!(acked.len() > 20, "the load ran: {} pairs", acked.len());

    let ledger = fx.ledger("", USD).await;
    assert_invariant(&ledger);
    let charged: i64 = acked.iter().map(|(_, a)| a).sum();
    let mut mismatches = Vec::new();
    if amt(&ledger, "spent") != charged || amt(&ledger, "reserved") != 0 {
        mismatches.push(format!("ledger {ledger} vs charged {charged}"));
    }
    for (id, actual) in &acked {
        let r = fx.get(&format!("/v1/reservations/{id}")).await;
        if r.body["status"] != "COMMITTED" || r.body["committed"]["amount"] != *actual {
            mismatches.push(format!("{id}: {}", r.text));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} acknowledged pairs lost: {mismatches:?}", mismatches.len(), acked.len());
    eprintln!("redis SIGKILL under load: {} acknowledged pairs, 0 lost, 0 mismatches", acked.len());
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

/// `redis-server --version` of the machine: (major, minor).
fn redis_version() -> (u32, u32) {
    let out = std::process::Command::new("redis-server").arg("--version").output().expect("redis-server --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().find_map(|w| w.strip_prefix("v=")).unwrap_or("0.0");
    let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[tokio::test]
async fn durable_ack_starts_only_on_a_redis_that_can_waitaof_and_says_why_otherwise() {
    let redis = ScratchRedis::start().await;
    let mut env = crate::helpers::Env::new().await;
    env.redis_url = redis.url();
    let mut config = env.config();
    config.durable_ack = true;
    let started = crate::helpers::Instance::start(config).await;
    if redis_version() >= (7, 2) {
        // WAITAOF exists and the scratch Redis runs with AOF on.
        started.expect("--durable-ack starts on Redis 7.2+ with AOF").stop().await.unwrap();
    } else {
        let msg = format!("{:#}", started.err().expect("refused on Redis < 7.2"));
        assert!(msg.contains("--durable-ack needs WAITAOF") && msg.contains("7.2"), "{msg}");
    }
}
