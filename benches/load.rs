//! Load harness: drives a running engine over HTTP and measures the ceiling beside it.
//!
//! `scripts/bench` is the one command (it starts a scratch engine and runs this with the right
//! pids, URLs and prefix); `cargo bench --bench load -- --help` lists the options.
//!
//! For every shape (`shared`: all clients reserve against one tenant/workspace/agent budget
//! chain; `agents`: each client has its own agent budget under a shared tenant and workspace)
//! and every concurrency, three steps run back to back for `--duration-s` each, each on a
//! fresh tenant:
//!
//! - `pair`    the client's loop: HTTP reserve → commit, closed loop per client;
//! - `reserve` HTTP reserve only (the fair counterpart of the ceiling);
//! - `ceiling` the engine's own reserve script, `Ledger::reserve` → EVALSHA straight on Redis
//!   from N tasks over one multiplexed connection (what the engine uses), no HTTP, no engine.
//!
//! Each step prints throughput, reserve latency percentiles (pair steps also the
//! reserve+commit pair), error rate, CPU per reserve of redis-server, of the engine and of this
//! process (utime+stime from /proc/<pid>/stat), the engine's peak VmRSS during the step, and a
//! ledger check: the tenant's balances (GET /v1/balances) against what the clients observed.
//!
//! Last, the idle step (`idle.rs`) seeds `--idle-tenants` tenants and counts the Redis commands
//! and Postgres transactions the idle engine makes per second; the usage step (`usage.rs`)
//! seeds a month of token usage for one tenant and times the admin plane's usage reads.
//!
//! Run under `cargo test --all-targets` (no `--bench` argument) it does nothing.

#[path = "load/flat.rs"]
mod flat;
#[path = "load/idle.rs"]
mod idle;
#[path = "load/overhead.rs"]
mod overhead;
#[path = "load/report.rs"]
mod report;
#[path = "load/sweep.rs"]
mod sweep;
#[path = "load/usage.rs"]
mod usage;
#[path = "load/yardstick.rs"]
mod yardstick;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{Value, json};

use tollgate::internals::{
    Action, ActionFacts, Correlation, ErrorCode, Keys, LEVELS, Ledger, Mode, RedisStore, ReserveInput, Scopes, Scripts,
    Subject, Unit, Units, new_reservation_id, request_hash,
};

/// Allocation of every benchmark budget: large enough that nothing is ever denied.
const ALLOCATION: i64 = 1_000_000_000_000_000_000;
/// Reservation TTL: a day, so nothing expires (and no sweeper work lands) during the run.
const TTL_MS: i64 = 86_400_000;
const UNIT: &str = "USD_MICROCENTS";
/// Error responses kept verbatim per step, for the report.
const ERROR_SAMPLES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Shape {
    /// One tenant; every client reserves against the same tenant → workspace → agent chain.
    Shared,
    /// One tenant and workspace; every client has its own agent budget.
    Agents,
}

impl Shape {
    fn as_str(self) -> &'static str {
        match self {
            Shape::Shared => "shared",
            Shape::Agents => "agents",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// HTTP reserve → commit loop.
    Pair,
    /// HTTP reserve only.
    Reserve,
    /// Ledger::reserve (EVALSHA) directly on Redis.
    Ceiling,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Pair => "pair",
            Phase::Reserve => "reserve",
            Phase::Ceiling => "ceiling",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "load",
    about = "Tollgate load harness: HTTP reserve/commit against a running engine, plus the EVALSHA ceiling"
)]
struct Args {
    /// Runtime plane base URL.
    #[arg(long, default_value = "http://127.0.0.1:7878")]
    runtime_url: String,
    /// Admin plane base URL.
    #[arg(long, default_value = "http://127.0.0.1:7979")]
    admin_url: String,
    /// The engine's admin key.
    /// Without it the harness does nothing (so a bare `cargo bench` skips it).
    #[arg(long, env = "ADMIN_API_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// The engine's Redis (the ceiling runs against it).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The engine's Redis key prefix (must match its TOLLGATE_REDIS_PREFIX).
    #[arg(long, env = "TOLLGATE_REDIS_PREFIX", default_value = "tg")]
    redis_prefix: String,
    /// Measured seconds per step (after a one-iteration warm-up per client).
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Concurrent clients, one step each.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50,200")]
    concurrency: Vec<usize>,
    /// Budget shapes.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "shared,agents")]
    shapes: Vec<Shape>,
    /// Steps run per shape and concurrency.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "pair,reserve,ceiling")]
    phases: Vec<Phase>,
    /// The engine's pid (default: the process listening on the runtime URL's port).
    #[arg(long)]
    engine_pid: Option<u32>,
    /// redis-server's pid (default: INFO server's process_id, else the listener on the port).
    #[arg(long)]
    redis_pid: Option<u32>,
    /// Subject depth = budgeted scopes per reserve (1..=6; 3 = tenant/workspace/agent).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=6))]
    scopes: u8,
    /// Estimate of every reservation.
    #[arg(long, default_value_t = 1_000)]
    estimate: i64,
    /// Actual of every commit (below the estimate: the rest is released).
    #[arg(long, default_value_t = 700)]
    actual: i64,
    /// Pause between steps, seconds.
    #[arg(long, default_value_t = 1.0)]
    settle_s: f64,
    /// Print, per step, where redis-server's time went (INFO commandstats deltas: the
    /// script call and the commands it ran).
    #[arg(long)]
    redis_breakdown: bool,
    /// Tenants seeded for the idle step (run last; 0 skips it). Needs --database-url.
    #[arg(long, default_value_t = 100_000)]
    idle_tenants: usize,
    /// Seconds over which the idle step counts the engine's Redis commands and Postgres
    /// transactions.
    #[arg(long, default_value_t = 10.0)]
    idle_window_s: f64,
    /// The engine's database (the idle step seeds tenants there and counts its transactions).
    #[arg(long)]
    database_url: Option<String>,
    /// Clients of the flat-cost step (0 skips it): HTTP reserves on an empty ledger, then on
    /// one holding --flat-budgets budgets over --flat-tenants tenants and --flat-active
    /// reservations in the measured tenant.
    #[arg(long, default_value_t = 50)]
    flat_clients: usize,
    #[arg(long, default_value_t = 1_000)]
    flat_tenants: usize,
    #[arg(long, default_value_t = 1_000_000)]
    flat_budgets: usize,
    #[arg(long, default_value_t = 100_000)]
    flat_active: usize,
    /// Reservations the expiry-sweep step expires at once (0 skips it).
    #[arg(long, default_value_t = 50_000)]
    sweep_reservations: usize,
    /// Token usage records seeded for the usage-read step (0 skips it). Needs --database-url.
    #[arg(long, default_value_t = 1_000_000)]
    usage_records: usize,
    /// Calls of the redis-benchmark yardstick step at 50 clients (0 skips it).
    #[arg(long, default_value_t = 300_000)]
    yardstick_requests: usize,
    /// Clients of the governance-overhead step (0 skips it): HTTP reserves on a plain tenant,
    /// one with 100 policies (5 matching) and one whose budgets have periods, in turn.
    #[arg(long, default_value_t = 50)]
    overhead_clients: usize,
    /// Rounds of the governance-overhead step (each measures all three tenants once).
    #[arg(long, default_value_t = 3)]
    overhead_rounds: usize,
    /// Also write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

// ------------------------------------------------------------------ /proc ----

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of a whole process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks_per_s())
}

fn self_pid() -> u32 {
    std::process::id()
}

/// A `VmXxx:` line of /proc/<pid>/status, in MB.
fn vm_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The pid of the process with a listening TCP socket on `port` (via /proc/net/tcp{,6} and
/// the fd links in /proc/*/fd), else from `ss -ltnp`.
fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let local_port = f[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if !inodes.is_empty()
        && let Ok(procs) = std::fs::read_dir("/proc")
    {
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
            for fd in fds.flatten() {
                if let Ok(link) = std::fs::read_link(fd.path())
                    && inodes.iter().any(|i| link.as_os_str() == i.as_str())
                {
                    return Some(pid);
                }
            }
        }
    }
    let out = std::process::Command::new("ss").args(["-Hltnp"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let needle = format!(":{port} ");
    let line = text.lines().find(|l| l.contains(&needle))?;
    let pid = line.split("pid=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?;
    pid.parse().ok()
}

fn url_port(url: &str) -> Result<u16> {
    let u = reqwest::Url::parse(url).with_context(|| format!("bad URL {url}"))?;
    u.port_or_known_default().ok_or_else(|| anyhow!("no port in {url}"))
}

// -------------------------------------------------------------- subjects ----

/// The subject levels used at depth `n`: the tenant, then the agent, then the levels between,
/// then the toolset; always in canonical order.
fn levels_at_depth(n: u8) -> Vec<usize> {
    let priority = [0_usize, 4, 1, 2, 3, 5];
    let mut chosen: Vec<usize> = priority[..usize::from(n)].to_vec();
    chosen.sort_unstable();
    chosen
}

#[derive(Clone)]
struct ClientSubject {
    subject: Subject,
    subject_json: String,
    scopes: Scopes,
}

fn client_subject(tenant: &str, levels: &[usize], agent: &str) -> ClientSubject {
    let mut values: [Option<String>; 6] = Default::default();
    for &l in levels {
        values[l] = Some(match LEVELS[l] {
            "tenant" => tenant.to_string(),
            "workspace" => "ws".into(),
            "app" => "app".into(),
            "workflow" => "wf".into(),
            "agent" => agent.to_string(),
            _ => "tools".into(),
        });
    }
    let subject = Subject {
        tenant: values[0].clone(),
        workspace: values[1].clone(),
        app: values[2].clone(),
        workflow: values[3].clone(),
        agent: values[4].clone(),
        toolset: values[5].clone(),
        dimensions: None,
    };
    let scopes = Scopes::derive(&subject.levels());
    let subject_json = serde_json::to_string(&subject).expect("subject serializes");
    ClientSubject { subject, subject_json, scopes }
}

// ----------------------------------------------------------------- setup ----

struct Bench {
    args: Args,
    admin: reqwest::Client,
    run_id: String,
    engine_pid: Option<u32>,
    redis_pid: Option<u32>,
    ledger: Ledger,
    /// The same Redis, for INFO commandstats.
    redis: RedisStore,
}

struct TenantSetup {
    id: String,
    key: String,
    clients: Vec<ClientSubject>,
    budget_scopes: Vec<String>,
    /// Held on every scope before the step by reservations it did not make (the flat step's).
    preheld: i64,
}

async fn expect_status(resp: reqwest::Response, what: &str) -> Result<Value> {
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

impl Bench {
    async fn admin_post(&self, path: &str, body: Value) -> Result<Value> {
        let resp = self
            .admin
            .post(format!("{}{path}", self.args.admin_url))
            .header("X-Admin-API-Key", self.args.admin_key.as_deref().unwrap_or_default())
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        expect_status(resp, &format!("POST {path}")).await
    }

    /// A fresh enterprise tenant with a huge rate limit, an API key, and one huge budget per
    /// scope any client touches.
    async fn setup_tenant(&self, shape: Shape, phase: Phase, clients: usize) -> Result<TenantSetup> {
        let id = format!("lb-{}-{}-{}-c{clients}", self.run_id, shape.as_str(), phase.as_str());
        self.setup_tenant_as(id, shape, clients).await
    }

    /// [`Bench::setup_tenant`] under the tenant id `id`.
    async fn setup_tenant_as(&self, id: String, shape: Shape, clients: usize) -> Result<TenantSetup> {
        self.setup_tenant_with(id, shape, clients, &Value::Null).await
    }

    /// [`Bench::setup_tenant_as`], each budget's create body merged with the object `budget_extra`.
    async fn setup_tenant_with(
        &self,
        id: String,
        shape: Shape,
        clients: usize,
        budget_extra: &Value,
    ) -> Result<TenantSetup> {
        self.admin_post(
            "/v1/admin/tenants",
            json!({
                "tenant_id": id, "name": format!("load bench {id}"), "tier": "enterprise",
                "rate_limit_per_second": 1_000_000, "rate_limit_burst": 2_000_000,
                "max_reservation_ttl_ms": TTL_MS,
            }),
        )
        .await?;
        let created = self.admin_post("/v1/admin/api-keys", json!({"tenant_id": id, "name": "load bench"})).await?;
        let key = created["key_secret"].as_str().ok_or_else(|| anyhow!("no key_secret in {created}"))?.to_string();
        let levels = levels_at_depth(self.args.scopes);
        let subjects: Vec<ClientSubject> = (0..clients)
            .map(|i| {
                let agent = match shape {
                    Shape::Shared => "agent-0".to_string(),
                    Shape::Agents => format!("agent-{i}"),
                };
                client_subject(&id, &levels, &agent)
            })
            .collect();
        let mut scopes: Vec<String> = subjects.iter().flat_map(|s| s.scopes.affected.iter().cloned()).collect();
        scopes.sort();
        scopes.dedup();
        let mut tasks = tokio::task::JoinSet::new();
        let sem = Arc::new(tokio::sync::Semaphore::new(8));
        for scope in &scopes {
            let (admin, url, key) =
                (self.admin.clone(), self.args.admin_url.clone(), self.args.admin_key.clone().unwrap_or_default());
            let mut body = json!({
                "tenant_id": id, "scope": scope, "unit": UNIT,
                "allocated": {"unit": UNIT, "amount": ALLOCATION},
            });
            if let (Some(b), Some(extra)) = (body.as_object_mut(), budget_extra.as_object()) {
                b.extend(extra.clone());
            }
            let sem = sem.clone();
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let resp = admin
                    .post(format!("{url}/v1/admin/budgets"))
                    .header("X-Admin-API-Key", key)
                    .json(&body)
                    .send()
                    .await?;
                expect_status(resp, "POST /v1/admin/budgets").await.map(|_| ())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(TenantSetup { id, key, clients: subjects, budget_scopes: scopes, preheld: 0 })
    }
}

// ------------------------------------------------------------ the clients ----

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

/// What one client saw.
struct ClientOut {
    /// Reserve latency (µs), successes inside the measured window.
    reserve: Histogram<u64>,
    /// Reserve + commit latency (µs), pair steps.
    pair: Histogram<u64>,
    reserves_ok: u64,
    commits_ok: u64,
    requests: u64,
    errors: u64,
    /// Everything below includes the warm-up iteration: it feeds the ledger check.
    charged: i64,
    /// Estimates of reservations left ACTIVE (reserve-only, ceiling, or a failed commit).
    held: i64,
    /// Requests whose outcome is unknown (transport error, timeout).
    unknown: u64,
    warmup_errors: u64,
    error_samples: Vec<String>,
}

impl ClientOut {
    fn new() -> Self {
        Self {
            reserve: new_hist(),
            pair: new_hist(),
            reserves_ok: 0,
            commits_ok: 0,
            requests: 0,
            errors: 0,
            charged: 0,
            held: 0,
            unknown: 0,
            warmup_errors: 0,
            error_samples: Vec::new(),
        }
    }

    fn error(&mut self, measured: bool, what: String) {
        if measured {
            self.errors += 1;
        } else {
            self.warmup_errors += 1;
        }
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.push(what);
        }
    }
}

#[derive(Deserialize)]
struct ReserveResp {
    decision: String,
    reservation_id: Option<String>,
}

#[derive(Deserialize)]
struct AmountResp {
    amount: i64,
}

#[derive(Deserialize)]
struct CommitResp {
    charged: AmountResp,
}

enum Outcome<T> {
    Ok(T),
    /// The server answered an error (its outcome is known: nothing changed).
    Refused(String),
    /// No answer (transport error): the outcome is unknown.
    Unknown(String),
}

async fn post_json<T: for<'de> Deserialize<'de>>(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: String,
) -> Outcome<T> {
    let resp = match http
        .post(url)
        .header("X-Cycles-API-Key", key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Outcome::Unknown(format!("transport: {e}")),
    };
    let status = resp.status();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return Outcome::Unknown(format!("body: {e}")),
    };
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        return Outcome::Refused(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>()));
    }
    match serde_json::from_slice(&bytes) {
        Ok(v) => Outcome::Ok(v),
        Err(e) => Outcome::Refused(format!("HTTP {status} undecodable ({e}): {}", String::from_utf8_lossy(&bytes))),
    }
}

struct HttpPlan {
    http: reqwest::Client,
    reserve_url: String,
    runtime_url: String,
    key: String,
    estimate: i64,
    actual: i64,
    commit: bool,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// One HTTP iteration: reserve, then (pair steps) commit.
async fn http_iteration(plan: &HttpPlan, subject_json: &str, idem: &str, out: &mut ClientOut, measured: bool) {
    let body = format!(
        r#"{{"idempotency_key":"{idem}","subject":{subject_json},"action":{{"kind":"llm.completion","name":"gpt-4o"}},"estimate":{{"unit":"{UNIT}","amount":{}}},"ttl_ms":{TTL_MS}}}"#,
        plan.estimate
    );
    let started = Instant::now();
    if measured {
        out.requests += 1;
    }
    let rid = match post_json::<ReserveResp>(&plan.http, &plan.reserve_url, &plan.key, body).await {
        Outcome::Ok(r) if r.decision == "ALLOW" && r.reservation_id.is_some() => {
            let rid = r.reservation_id.unwrap_or_default();
            if measured {
                out.reserves_ok += 1;
                out.reserve.saturating_record(micros(started.elapsed()));
            }
            rid
        }
        Outcome::Ok(r) => return out.error(measured, format!("reserve: decision {}", r.decision)),
        Outcome::Refused(e) => return out.error(measured, format!("reserve: {e}")),
        Outcome::Unknown(e) => {
            out.unknown += 1;
            return out.error(measured, format!("reserve: {e}"));
        }
    };
    if !plan.commit {
        out.held += plan.estimate;
        return;
    }
    let body = format!(r#"{{"idempotency_key":"{idem}-c","actual":{{"unit":"{UNIT}","amount":{}}}}}"#, plan.actual);
    let url = format!("{}/v1/reservations/{rid}/commit", plan.runtime_url);
    if measured {
        out.requests += 1;
    }
    match post_json::<CommitResp>(&plan.http, &url, &plan.key, body).await {
        Outcome::Ok(c) => {
            out.charged += c.charged.amount;
            if measured {
                out.commits_ok += 1;
                out.pair.saturating_record(micros(started.elapsed()));
            }
        }
        Outcome::Refused(e) => {
            out.held += plan.estimate;
            out.error(measured, format!("commit: {e}"));
        }
        Outcome::Unknown(e) => {
            out.held += plan.estimate;
            out.unknown += 1;
            out.error(measured, format!("commit: {e}"));
        }
    }
}

struct CeilingPlan {
    ledger: Ledger,
    tenant: String,
    estimate: i64,
}

/// One ceiling iteration: build the input exactly as the reserve handler does and call
/// `Ledger::reserve` (one EVALSHA).
async fn ceiling_iteration(plan: &CeilingPlan, cs: &ClientSubject, idem: &str, out: &mut ClientOut, measured: bool) {
    let started = Instant::now();
    let action = Action { kind: "llm.completion".into(), name: "gpt-4o".into(), tags: None, policy_keys: None };
    let wire_request = json!({
        "idempotency_key": idem,
        "subject": cs.subject,
        "action": action,
        "estimate": {"unit": UNIT, "amount": plan.estimate},
        "ttl_ms": TTL_MS,
    });
    let input = ReserveInput {
        tenant: plan.tenant.clone(),
        mode: Mode::Live,
        observe: None,
        action: ActionFacts { kind: action.kind.clone(), ..ActionFacts::default() },
        unit: Unit::UsdMicrocents,
        estimate: Units::new(plan.estimate).unwrap_or(Units::ZERO),
        ttl_ms: Some(TTL_MS),
        grace_ms: 5_000,
        overage_policy: None,
        idempotency_key: idem.to_string(),
        request_hash: request_hash(&wire_request).unwrap_or_default(),
        document: serde_json::json!({"subject": serde_json::from_str::<serde_json::Value>(&cs.subject_json).unwrap_or_default(), "action": action, "metadata": null, "idempotency_key": idem}).to_string(),
        scopes: cs.scopes.clone(),
    };
    let ctx = Correlation {
        request_id: uuid::Uuid::now_v7().to_string(),
        trace_id: format!("{:032x}", uuid::Uuid::new_v4().as_u128()),
        ..Correlation::default()
    };
    let rid = new_reservation_id(&plan.tenant);
    if measured {
        out.requests += 1;
    }
    match plan.ledger.reserve(&input, &rid, &ctx).await {
        Ok(o) if o.reservation_id.is_some() => {
            out.held += plan.estimate;
            if measured {
                out.reserves_ok += 1;
                out.reserve.saturating_record(micros(started.elapsed()));
            }
        }
        Ok(o) => out.error(measured, format!("ceiling: decision {:?}", o.decision)),
        Err(e) if matches!(e.code, ErrorCode::InternalError | ErrorCode::Unavailable) => {
            out.unknown += 1;
            out.error(measured, format!("ceiling: {} {}", e.code.as_str(), e.message));
        }
        Err(e) => out.error(measured, format!("ceiling: {} {}", e.code.as_str(), e.message)),
    }
}

// ----------------------------------------------------------------- steps ----

#[derive(Debug, Clone, Default)]
struct Pct {
    p50: f64,
    p95: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn pct(h: &Histogram<u64>) -> Pct {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Pct { p50: ms(0.50), p95: ms(0.95), p99: ms(0.99), p999: ms(0.999), max: h.max() as f64 / 1000.0 }
}

#[derive(Debug, Clone)]
struct LedgerCheck {
    scopes: usize,
    mismatches: usize,
    details: Vec<String>,
    expected_spent: i64,
    expected_reserved: i64,
    unknown: u64,
}

#[derive(Debug, Clone)]
struct StepResult {
    shape: Shape,
    phase: Phase,
    clients: usize,
    tenant: String,
    elapsed_s: f64,
    reserves_ok: u64,
    commits_ok: u64,
    requests: u64,
    errors: u64,
    reserve: Pct,
    pair: Option<Pct>,
    redis_cpu_s: Option<f64>,
    engine_cpu_s: Option<f64>,
    bench_cpu_s: Option<f64>,
    engine_rss_max_mb: Option<f64>,
    ledger: Result<LedgerCheck, String>,
    error_samples: Vec<String>,
    warmup_errors: u64,
    /// INFO commandstats deltas: (command, calls, usec), most time first (printed with
    /// `--redis-breakdown`).
    redis_commands: Vec<(String, u64, u64)>,
}

impl StepResult {
    fn reserves_per_s(&self) -> f64 {
        self.reserves_ok as f64 / self.elapsed_s
    }

    fn error_pct(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { 100.0 * self.errors as f64 / self.requests as f64 }
    }

    fn per_reserve_us(&self, cpu: Option<f64>) -> Option<f64> {
        cpu.filter(|_| self.reserves_ok > 0).map(|s| s * 1e6 / self.reserves_ok as f64)
    }
}

#[derive(Deserialize)]
struct BalancesPage {
    balances: Vec<BalanceResp>,
    next_cursor: Option<String>,
    has_more: bool,
}

#[derive(Deserialize)]
struct BalanceResp {
    scope: String,
    allocated: AmountResp,
    spent: AmountResp,
    reserved: AmountResp,
    debt: AmountResp,
    remaining: AmountResp,
}

/// Compares every budget of the tenant (GET /v1/balances, all pages) with what the clients
/// observed: spent = Σ charged and reserved = Σ estimates still held, per scope.
async fn ledger_check(
    http: &reqwest::Client,
    runtime_url: &str,
    setup: &TenantSetup,
    per_client: &[(i64, i64)],
    unknown: u64,
) -> Result<LedgerCheck> {
    let mut expected: BTreeMap<&str, (i64, i64)> =
        setup.budget_scopes.iter().map(|s| (s.as_str(), (0, setup.preheld))).collect();
    for (cs, (charged, held)) in setup.clients.iter().zip(per_client) {
        for scope in &cs.scopes.affected {
            let e = expected.entry(scope.as_str()).or_default();
            e.0 += charged;
            e.1 += held;
        }
    }
    let mut seen: BTreeMap<String, BalanceResp> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = http
            .get(format!("{runtime_url}/v1/balances"))
            .header("X-Cycles-API-Key", &setup.key)
            .query(&[("tenant", setup.id.as_str()), ("limit", "200")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c.as_str())]);
        }
        let resp = req.send().await.context("GET /v1/balances")?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!("GET /v1/balances: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        let page: BalancesPage = serde_json::from_slice(&body).context("balances body")?;
        for b in page.balances {
            seen.insert(b.scope.clone(), b);
        }
        if !page.has_more {
            break;
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let mut details = Vec::new();
    for (scope, (spent, reserved)) in &expected {
        match seen.get(*scope) {
            None => details.push(format!("{scope}: missing from /v1/balances")),
            Some(b) => {
                let invariant = b.allocated.amount - b.spent.amount - b.reserved.amount - b.debt.amount;
                if b.spent.amount != *spent
                    || b.reserved.amount != *reserved
                    || b.debt.amount != 0
                    || b.allocated.amount != ALLOCATION
                    || b.remaining.amount != invariant
                {
                    details.push(format!(
                        "{scope}: spent {} (expected {spent}), reserved {} (expected {reserved}), debt {}, allocated {}, remaining {} (allocated−spent−reserved−debt = {invariant})",
                        b.spent.amount, b.reserved.amount, b.debt.amount, b.allocated.amount, b.remaining.amount
                    ));
                }
            }
        }
    }
    for scope in seen.keys() {
        if !expected.contains_key(scope.as_str()) {
            details.push(format!("{scope}: unexpected budget"));
        }
    }
    let root = setup.budget_scopes.iter().find(|s| !s.contains('/')).and_then(|s| expected.get(s.as_str()));
    Ok(LedgerCheck {
        scopes: expected.len(),
        mismatches: details.len(),
        details,
        expected_spent: root.map_or(0, |r| r.0),
        expected_reserved: root.map_or(0, |r| r.1),
        unknown,
    })
}

impl Bench {
    async fn run_step(&self, shape: Shape, phase: Phase, clients: usize) -> Result<StepResult> {
        let setup = Arc::new(self.setup_tenant(shape, phase, clients).await?);
        self.measure(setup, shape, phase, clients).await
    }

    /// Runs one step's clients against a tenant already set up and checks its ledger.
    async fn measure(&self, setup: Arc<TenantSetup>, shape: Shape, phase: Phase, clients: usize) -> Result<StepResult> {
        let duration = Duration::from_secs_f64(self.args.duration_s);
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(clients)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        let barrier = Arc::new(tokio::sync::Barrier::new(clients + 1));
        let http_plan = Arc::new(HttpPlan {
            http: http.clone(),
            reserve_url: format!("{}/v1/reservations", self.args.runtime_url),
            runtime_url: self.args.runtime_url.clone(),
            key: setup.key.clone(),
            estimate: self.args.estimate,
            actual: self.args.actual,
            commit: phase == Phase::Pair,
        });
        let ceiling_plan = Arc::new(CeilingPlan {
            ledger: self.ledger.clone(),
            tenant: setup.id.clone(),
            estimate: self.args.estimate,
        });
        let mut tasks = Vec::with_capacity(clients);
        for i in 0..clients {
            let (setup, barrier, http_plan, ceiling_plan) =
                (setup.clone(), barrier.clone(), http_plan.clone(), ceiling_plan.clone());
            tasks.push(tokio::spawn(async move {
                let cs = &setup.clients[i];
                let mut out = ClientOut::new();
                let mut n: u64 = 0;
                // Warm-up: opens the keep-alive connection and fills the engine's key cache;
                // not measured, but counted in the ledger check.
                let idem = format!("c{i}-w");
                match phase {
                    Phase::Ceiling => ceiling_iteration(&ceiling_plan, cs, &idem, &mut out, false).await,
                    _ => http_iteration(&http_plan, &cs.subject_json, &idem, &mut out, false).await,
                }
                barrier.wait().await;
                let deadline = Instant::now() + duration;
                while Instant::now() < deadline {
                    n += 1;
                    let idem = format!("c{i}-{n}");
                    match phase {
                        Phase::Ceiling => ceiling_iteration(&ceiling_plan, cs, &idem, &mut out, true).await,
                        _ => http_iteration(&http_plan, &cs.subject_json, &idem, &mut out, true).await,
                    }
                }
                out
            }));
        }
        // Two INFO calls per step: cheap enough to take always (the overhead step uses them).
        let stats0 = Some(commandstats(&self.redis).await);
        barrier.wait().await;
        let started = Instant::now();
        let cpu0 =
            (self.redis_pid.and_then(cpu_seconds), self.engine_pid.and_then(cpu_seconds), cpu_seconds(self_pid()));
        let stop = Arc::new(AtomicBool::new(false));
        let rss_max_kb = Arc::new(AtomicU64::new(0));
        let sampler = self.engine_pid.map(|pid| {
            let (stop, rss_max_kb) = (stop.clone(), rss_max_kb.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(mb) = vm_mb(pid, "VmRSS:") {
                        rss_max_kb.fetch_max((mb * 1024.0) as u64, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        });
        let mut outs = Vec::with_capacity(clients);
        for t in tasks {
            outs.push(t.await?);
        }
        let elapsed_s = started.elapsed().as_secs_f64();
        let cpu1 =
            (self.redis_pid.and_then(cpu_seconds), self.engine_pid.and_then(cpu_seconds), cpu_seconds(self_pid()));
        let redis_commands = match &stats0 {
            Some(before) => commandstats_delta(before, &commandstats(&self.redis).await),
            None => Vec::new(),
        };
        stop.store(true, Ordering::Relaxed);
        if let Some(s) = sampler {
            let _ = s.await;
        }
        if let Some(mb) = self.engine_pid.and_then(|p| vm_mb(p, "VmRSS:")) {
            rss_max_kb.fetch_max((mb * 1024.0) as u64, Ordering::Relaxed);
        }
        let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);

        let mut reserve = new_hist();
        let mut pair = new_hist();
        let (mut reserves_ok, mut commits_ok, mut requests, mut errors, mut unknown, mut warmup_errors) =
            (0, 0, 0, 0, 0, 0);
        let mut error_samples = Vec::new();
        let mut per_client = Vec::with_capacity(clients);
        for o in &outs {
            reserve.add(&o.reserve).ok();
            pair.add(&o.pair).ok();
            reserves_ok += o.reserves_ok;
            commits_ok += o.commits_ok;
            requests += o.requests;
            errors += o.errors;
            unknown += o.unknown;
            warmup_errors += o.warmup_errors;
            per_client.push((o.charged, o.held));
            for e in &o.error_samples {
                if error_samples.len() < ERROR_SAMPLES {
                    error_samples.push(e.clone());
                }
            }
        }
        let ledger = ledger_check(&http, &self.args.runtime_url, &setup, &per_client, unknown)
            .await
            .map_err(|e| format!("{e:#}"));
        Ok(StepResult {
            shape,
            phase,
            clients,
            tenant: setup.id.clone(),
            elapsed_s,
            reserves_ok,
            commits_ok,
            requests,
            errors,
            reserve: pct(&reserve),
            pair: (phase == Phase::Pair).then(|| pct(&pair)),
            redis_cpu_s: delta(cpu0.0, cpu1.0),
            engine_cpu_s: delta(cpu0.1, cpu1.1),
            bench_cpu_s: delta(cpu0.2, cpu1.2),
            engine_rss_max_mb: self.engine_pid.map(|_| rss_max_kb.load(Ordering::Relaxed) as f64 / 1024.0),
            ledger,
            error_samples,
            warmup_errors,
            redis_commands,
        })
    }
}

// ---------------------------------------------------------------- output ----

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

const HEADER: &str = "shape   step     clients  reserves/s    p50 ms    p95 ms    p99 ms  p99.9 ms  err %  redis µs/rsv  engine µs/rsv  bench µs/rsv  RSS MB  ledger";

fn ledger_cell(r: &StepResult) -> String {
    match &r.ledger {
        Ok(l) if l.mismatches == 0 => format!("ok: {} scopes, 0 mismatches", l.scopes),
        Ok(l) => format!("{} MISMATCHES of {} scopes", l.mismatches, l.scopes),
        Err(e) => format!("check failed: {e}"),
    }
}

fn row(r: &StepResult) -> String {
    format!(
        "{:<7} {:<8} {:>7} {:>11.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>6.2} {:>13} {:>14} {:>13} {:>7}  {}",
        r.shape.as_str(),
        r.phase.as_str(),
        r.clients,
        r.reserves_per_s(),
        r.reserve.p50,
        r.reserve.p95,
        r.reserve.p99,
        r.reserve.p999,
        r.error_pct(),
        opt(r.per_reserve_us(r.redis_cpu_s), 1),
        opt(r.per_reserve_us(r.engine_cpu_s), 1),
        opt(r.per_reserve_us(r.bench_cpu_s), 1),
        opt(r.engine_rss_max_mb, 1),
        ledger_cell(r),
    )
}

fn pair_row(r: &StepResult) -> Option<String> {
    let p = r.pair.as_ref()?;
    Some(format!(
        "{:<7} {:<8} {:>7} {:>11.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3}   (reserve+commit pairs/s and pair latency; CPU columns above are per pair)",
        "",
        " └ pair",
        "",
        r.commits_ok as f64 / r.elapsed_s,
        p.p50,
        p.p95,
        p.p99,
        p.p999,
    ))
}

fn step_notes(r: &StepResult, breakdown: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if r.warmup_errors > 0 {
        notes.push(format!("    {} warm-up request(s) failed", r.warmup_errors));
    }
    for e in &r.error_samples {
        notes.push(format!("    error sample: {e}"));
    }
    match &r.ledger {
        Ok(l) => {
            notes.push(format!(
                "    ledger: tenant {}: {} scopes checked (spent = Σ charged, reserved = Σ held estimates); tenant scope expected spent {} reserved {}; {} mismatches{}",
                r.tenant,
                l.scopes,
                l.expected_spent,
                l.expected_reserved,
                l.mismatches,
                if l.unknown > 0 { format!(" ({} request outcomes unknown)", l.unknown) } else { String::new() }
            ));
            for d in l.details.iter().take(10) {
                notes.push(format!("      mismatch: {d}"));
            }
        }
        Err(e) => notes.push(format!("    ledger check failed: {e}")),
    }
    if breakdown && !r.redis_commands.is_empty() && r.reserves_ok > 0 {
        let parts: Vec<String> = r
            .redis_commands
            .iter()
            .take(12)
            .map(|(name, calls, usec)| {
                format!(
                    "{name} {:.2}×/rsv {:.1} µs/call {:.1} µs/rsv",
                    *calls as f64 / r.reserves_ok as f64,
                    *usec as f64 / *calls as f64,
                    *usec as f64 / r.reserves_ok as f64
                )
            })
            .collect();
        notes.push(format!("    redis commandstats (script time includes the commands it runs): {}", parts.join("; ")));
    }
    notes
}

fn find(results: &[StepResult], shape: Shape, phase: Phase, clients: usize) -> Option<&StepResult> {
    results.iter().find(|r| r.shape == shape && r.phase == phase && r.clients == clients)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn print_summary(args: &Args, results: &[StepResult], idle_rss: Option<f64>, hwm: Option<f64>) {
    println!();
    println!("== all steps ==");
    println!("{HEADER}");
    for r in results {
        println!("{}", row(r));
        if let Some(p) = pair_row(r) {
            println!("{p}");
        }
    }

    println!();
    println!("== engine / ceiling ==");
    println!(
        "reserve/s compared at the same concurrency and shape: HTTP reserve-only (engine: HTTP + auth + admission +"
    );
    println!(
        "validation + one EVALSHA) vs Ledger::reserve → EVALSHA straight on Redis (ceiling). The pair loop's reserve/s"
    );
    println!("is shown too; it also spends time on commits, so its ratio is not like for like.");
    println!("shape   clients  http reserve/s  ceiling reserve/s  ratio   pair-loop reserve/s  ratio");
    for &shape in &args.shapes {
        for &c in &args.concurrency {
            let ceil = find(results, shape, Phase::Ceiling, c).map(StepResult::reserves_per_s);
            let http = find(results, shape, Phase::Reserve, c).map(StepResult::reserves_per_s);
            let pair = find(results, shape, Phase::Pair, c).map(StepResult::reserves_per_s);
            let ratio = |v: Option<f64>| v.zip(ceil).filter(|(_, c)| *c > 0.0).map(|(v, c)| v / c);
            println!(
                "{:<7} {:>7} {:>15} {:>18} {:>6} {:>20} {:>6}",
                shape.as_str(),
                c,
                opt(http, 0),
                opt(ceil, 0),
                opt(ratio(http), 2),
                opt(pair, 0),
                opt(ratio(pair), 2),
            );
        }
    }

    println!();
    println!("== ledger check ==");
    let total_mismatch: usize = results.iter().filter_map(|r| r.ledger.as_ref().ok()).map(|l| l.mismatches).sum();
    let failed_checks = results.iter().filter(|r| r.ledger.is_err()).count();
    let scopes: usize = results.iter().filter_map(|r| r.ledger.as_ref().ok()).map(|l| l.scopes).sum();
    println!(
        "{} steps, {scopes} budgets checked against the clients' observations: {total_mismatch} mismatches{}",
        results.len(),
        if failed_checks > 0 { format!(", {failed_checks} checks could not run") } else { String::new() }
    );

    println!();
    println!("== targets ==");
    let depth = args.scopes;
    for &shape in &args.shapes {
        let s = shape.as_str();
        if let Some(r) = find(results, shape, Phase::Pair, 50) {
            let v = r.reserves_per_s();
            println!(
                "[{}] {s}: ≥ 20000 reserves/s at 50 clients (reserve→commit loop): {v:.0}/s",
                verdict(v >= 20_000.0)
            );
        }
        if let Some(r) = find(results, shape, Phase::Reserve, 50) {
            let v = r.reserves_per_s();
            println!(
                "[{}] {s}: ≥ 20000 reserves/s at 50 clients (HTTP reserve-only): {v:.0}/s",
                verdict(v >= 20_000.0)
            );
        }
        if let Some(r) = find(results, shape, Phase::Pair, 1) {
            let v = r.reserve.p50;
            println!("[{}] {s}: 1-client reserve p50 ≤ 0.5 ms (reserve→commit loop): {v:.3} ms", verdict(v <= 0.5));
        }
        if let Some(r) = find(results, shape, Phase::Pair, 50) {
            let v = r.reserve.p99;
            println!(
                "[{}] {s}: reserve p99 ≤ 10 ms at 50 clients (reserve→commit loop): {v:.3} ms",
                verdict(v <= 10.0)
            );
        }
        for phase in [Phase::Reserve, Phase::Ceiling] {
            if let Some(r) = find(results, shape, phase, 50)
                .or_else(|| results.iter().find(|r| r.shape == shape && r.phase == phase))
                && let Some(v) = r.per_reserve_us(r.redis_cpu_s)
            {
                println!(
                    "[info] {s}: redis-server CPU per {depth}-scope reserve ({} step, {} clients): {v:.1} µs (reference ≤ 25 µs)",
                    phase.as_str(),
                    r.clients
                );
            }
        }
    }
    let rss = results
        .iter()
        .filter_map(|r| r.engine_rss_max_mb)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    if let Some(rss) = rss {
        println!(
            "[{}] engine RSS ≤ 100 MB: peak VmRSS sampled during the steps {rss:.1} MB (idle before the run {}, VmHWM after {})",
            verdict(rss <= 100.0),
            opt(idle_rss, 1).to_string() + " MB",
            opt(hwm, 1).to_string() + " MB",
        );
    }
    println!(
        "[{}] ledger: {total_mismatch} mismatches across all steps",
        verdict(total_mismatch == 0 && failed_checks == 0)
    );
}

fn json_results(results: &[StepResult]) -> Value {
    let pct_json =
        |p: &Pct| json!({"p50_ms": p.p50, "p95_ms": p.p95, "p99_ms": p.p99, "p999_ms": p.p999, "max_ms": p.max});
    Value::Array(
        results
            .iter()
            .map(|r| {
                json!({
                    "shape": r.shape.as_str(), "step": r.phase.as_str(), "clients": r.clients, "tenant": r.tenant,
                    "elapsed_s": r.elapsed_s, "reserves_ok": r.reserves_ok, "commits_ok": r.commits_ok,
                    "requests": r.requests, "errors": r.errors, "reserves_per_s": r.reserves_per_s(),
                    "reserve_latency": pct_json(&r.reserve), "pair_latency": r.pair.as_ref().map(pct_json),
                    "redis_cpu_us_per_reserve": r.per_reserve_us(r.redis_cpu_s),
                    "engine_cpu_us_per_reserve": r.per_reserve_us(r.engine_cpu_s),
                    "bench_cpu_us_per_reserve": r.per_reserve_us(r.bench_cpu_s),
                    "engine_rss_max_mb": r.engine_rss_max_mb,
                    "ledger_mismatches": r.ledger.as_ref().ok().map(|l| l.mismatches),
                    "ledger_error": r.ledger.as_ref().err(),
                    "error_samples": r.error_samples,
                })
            })
            .collect(),
    )
}

// ------------------------------------------------------- commandstats ----

/// `cmdstat_<name>:calls=N,usec=U,...` → name → (calls, usec).
async fn commandstats(redis: &RedisStore) -> BTreeMap<String, (u64, u64)> {
    let Ok(text) = redis.info("commandstats").await else { return BTreeMap::new() };
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let field =
                |f: &str| rest.split(',').find_map(|kv| kv.strip_prefix(f)?.strip_prefix('=')?.parse::<u64>().ok());
            Some((name.to_string(), (field("calls")?, field("usec")?)))
        })
        .collect()
}

fn commandstats_delta(
    before: &BTreeMap<String, (u64, u64)>,
    after: &BTreeMap<String, (u64, u64)>,
) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = after
        .iter()
        .map(|(name, (calls, usec))| {
            let (c0, u0) = before.get(name).copied().unwrap_or_default();
            (name.clone(), calls.saturating_sub(c0), usec.saturating_sub(u0))
        })
        .filter(|(_, calls, _)| *calls > 0)
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.2));
    out
}

// ------------------------------------------------------------------ main ----

async fn redis_pid_from_info(redis_url: &str) -> Option<u32> {
    let client = redis::Client::open(redis_url).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await.ok()?;
    info.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|v| v.trim().parse().ok())
}

async fn run(args: Args) -> Result<()> {
    let engine_pid = match args.engine_pid {
        Some(p) => Some(p),
        None => pid_listening_on(url_port(&args.runtime_url)?),
    };
    let redis_pid = match args.redis_pid {
        Some(p) => Some(p),
        None => match redis_pid_from_info(&args.redis_url).await.filter(|p| comm(*p).contains("redis")) {
            Some(p) => Some(p),
            None => pid_listening_on(url_port(&args.redis_url)?),
        },
    };
    let keys = Keys::new(&args.redis_prefix).map_err(|e| anyhow!(e))?;
    let store = RedisStore::connect(&args.redis_url, &[], keys).await.context("connecting to Redis")?;
    let scripts = Scripts::new();
    scripts.load(&store).await.map_err(|e| anyhow!("loading the ledger scripts: {e:?}"))?;
    let ledger = Ledger::new(store.clone(), Arc::new(scripts));
    let admin = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    let ready = admin.get(format!("{}/readyz", args.admin_url)).send().await.context("engine /readyz")?;
    if !ready.status().is_success() {
        bail!("engine /readyz answered {}", ready.status());
    }
    let run_id = format!("{:06x}", uuid::Uuid::new_v4().as_u128() & 0xff_ffff);
    let idle_rss = engine_pid.and_then(|p| vm_mb(p, "VmRSS:"));

    println!("== Tollgate load harness (run {run_id}) ==");
    println!(
        "runtime {}  admin {}  redis {} (prefix {:?})",
        args.runtime_url, args.admin_url, args.redis_url, args.redis_prefix
    );
    println!(
        "engine pid {} ({})  redis-server pid {} ({})  cores {}",
        opt(engine_pid.map(f64::from), 0),
        engine_pid.map(comm).unwrap_or_default(),
        opt(redis_pid.map(f64::from), 0),
        redis_pid.map(comm).unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "{} budgeted scopes per reserve; {} s per step; shapes {:?}; clients {:?}; estimate {} / actual {} {UNIT}",
        args.scopes, args.duration_s, args.shapes, args.concurrency, args.estimate, args.actual
    );
    println!(
        "steps: pair = HTTP reserve→commit loop; reserve = HTTP reserve only; ceiling = Ledger::reserve → EVALSHA on Redis"
    );
    println!(
        "latency columns: the reserve call (ms); CPU columns: utime+stime of the process during the step ÷ reserves"
    );
    if engine_pid.is_none() {
        println!("warning: engine pid unknown (pass --engine-pid): no engine CPU / RSS");
    }
    if redis_pid.is_none() {
        println!("warning: redis-server pid unknown (pass --redis-pid): no Redis CPU");
    }
    println!();
    println!("{HEADER}");

    let bench = Bench { args, admin, run_id, engine_pid, redis_pid, ledger, redis: store };
    let mut results = Vec::new();
    for &shape in &bench.args.shapes {
        for &clients in &bench.args.concurrency {
            for &phase in &bench.args.phases {
                let r = bench
                    .run_step(shape, phase, clients)
                    .await
                    .with_context(|| format!("step {} {} c={clients}", shape.as_str(), phase.as_str()))?;
                println!("{}", row(&r));
                if let Some(p) = pair_row(&r) {
                    println!("{p}");
                }
                for n in step_notes(&r, bench.args.redis_breakdown) {
                    println!("{n}");
                }
                results.push(r);
                tokio::time::sleep(Duration::from_secs_f64(bench.args.settle_s)).await;
            }
        }
    }
    let hwm = engine_pid.and_then(|p| vm_mb(p, "VmHWM:"));
    print_summary(&bench.args, &results, idle_rss, hwm);
    let extra = bench.extra_steps().await?;
    report::print_targets(&bench.args, &results, &extra);
    if let Some(path) = &bench.args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&json_results(&results))?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

fn main() -> Result<()> {
    tollgate::internals::install_crypto_provider();
    if !std::env::args().any(|a| a == "--bench" || a == "--help" || a == "-h") {
        println!("load: skipped (a load test against a running engine; run it with scripts/bench)");
        return Ok(());
    }
    let args = Args::parse();
    if args.admin_key.is_none() {
        println!("load: skipped (no --admin-key / ADMIN_API_KEY; run it with scripts/bench)");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(args))
}
