//! Logs and metrics, named once. Logs are structured (JSON by default); metrics are served as
//! Prometheus text by the admin plane's `/metrics`. Every series is described at start and its
//! labels come from small fixed sets (the tenant label can be switched off). The recorder is
//! process-wide, so it is installed once however many applications a process builds.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::Unit;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "cycles_http_requests_total";
pub const HTTP_DURATION: &str = "cycles_http_request_duration_seconds";
pub const LEDGER_OPERATIONS: &str = "cycles_ledger_operations_total";
pub const LEDGER_AMOUNT: &str = "cycles_ledger_amount_total";
pub const OVERDRAFT_INCURRED: &str = "cycles_overdraft_incurred_total";
pub const SCRIPT_DURATION: &str = "cycles_redis_script_duration_seconds";
pub const LEDGER_BATCH: &str = "cycles_ledger_batch_size";
pub const EXPIRED: &str = "cycles_reservations_expired_total";
pub const EXPIRY_BACKLOG: &str = "cycles_expiry_backlog";
pub const OUTBOX_BACKLOG: &str = "cycles_outbox_backlog";
pub const OUTBOX_LAG: &str = "cycles_outbox_lag_seconds";
pub const EVENTS_STORED: &str = "cycles_events_stored_total";
pub const OUTBOX_REJECTED: &str = "cycles_outbox_rejected_total";
pub const OUTBOX_DEAD_LETTERS: &str = "cycles_outbox_dead_letters_total";
pub const WEBHOOK_ATTEMPTS: &str = "cycles_webhook_attempts_total";
pub const WEBHOOK_BACKLOG: &str = "cycles_webhook_backlog";
pub const WEBHOOK_LAG: &str = "cycles_webhook_lag_seconds";
pub const AUTH_CACHE_LOOKUPS: &str = "cycles_auth_cache_lookups_total";
pub const REFUSALS_UNAUDITED: &str = "cycles_admin_refusals_unaudited_total";
pub const RATE_LIMITED: &str = "cycles_rate_limited_total";
pub const GATE_REQUESTS: &str = "gateway_priority_requests_total";
pub const GATE_THROTTLED: &str = "gateway_priority_throttled_total";
pub const GATE_IN_FLIGHT: &str = "gateway_priority_in_flight";
pub const TOKENS: &str = "cycles_tokens_total";
pub const ALERTS_OPEN: &str = "cycles_alerts_open";
pub const EXHAUSTION_ETA: &str = "cycles_budget_exhaustion_eta_seconds";

/// Distinct `model` label values one process exports; further models count as `other`, so a
/// client naming a new model per request cannot grow the series without bound.
const MODEL_LABELS_MAX: usize = 50;
/// The exhaustion gauge's value while no budget is burning (a week: far beyond any alert).
pub const EXHAUSTION_ETA_NONE_SECONDS: f64 = 604_800.0;

/// Histogram buckets (seconds) for request and store latencies: 50 µs to 2.5 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static TENANT_LABEL: AtomicBool = AtomicBool::new(true);

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests served, by plane, route template, method and status.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request latency, by plane, route template and method.");
    describe_counter!(
        LEDGER_OPERATIONS,
        "Ledger script outcomes, by operation and outcome (ALLOW, DENY, OK, REPLAY or the error code) and deny reason."
    );
    describe_counter!(
        LEDGER_AMOUNT,
        "Amounts moved by the ledger, by operation (reserve: held, commit: charged, release: returned, event: charged) and unit."
    );
    describe_counter!(OVERDRAFT_INCURRED, "Debt created by overdraft charges, by unit.");
    describe_histogram!(SCRIPT_DURATION, Unit::Seconds, "Ledger script round trips (EVALSHA), by script.");
    describe_histogram!(
        LEDGER_BATCH,
        Unit::Count,
        "Operations per group-commit script call (one tenant's concurrent runtime mutations)."
    );
    describe_counter!(EXPIRED, "Reservations expired by this instance's sweeper.");
    describe_gauge!(EXPIRY_BACKLOG, "Reservations past their deadline at the end of the last sweep.");
    describe_gauge!(OUTBOX_BACKLOG, "Events waiting in the tenants' outbox streams, read by the drain once a second.");
    describe_gauge!(
        OUTBOX_LAG,
        Unit::Seconds,
        "Age of the oldest event waiting in any outbox stream, read by the drain once a second."
    );
    describe_counter!(
        EVENTS_STORED,
        "Events stored in Postgres by this instance (outbox drain and catalogue changes)."
    );
    describe_counter!(OUTBOX_REJECTED, "Outbox entries that did not decode as an event (set aside as dead letters).");
    describe_counter!(
        OUTBOX_DEAD_LETTERS,
        "Outbox entries set aside in outbox_dead_letters, by reason (undecodable or unstorable)."
    );
    describe_counter!(
        WEBHOOK_ATTEMPTS,
        "Webhook delivery attempts made by this instance, by outcome (success or failure)."
    );
    describe_gauge!(WEBHOOK_BACKLOG, "Webhook deliveries queued (PENDING or RETRYING), read every 10 seconds.");
    describe_gauge!(WEBHOOK_LAG, Unit::Seconds, "How long the most overdue queued webhook delivery has been due.");
    describe_counter!(
        REFUSALS_UNAUDITED,
        "Admin-plane 401/403 refusals left out of the audit log by the per-source limit."
    );
    describe_counter!(AUTH_CACHE_LOOKUPS, "API-key cache lookups on the request path, by result (hit or miss).");
    describe_counter!(
        RATE_LIMITED,
        "Runtime requests refused by a rate limit, by limiter (api_key, tenant, or public: the per-address limit of the public registry routes)."
    );
    describe_counter!(GATE_REQUESTS, "Runtime requests that reached the priority gate, by tenant and priority tier.");
    describe_counter!(GATE_THROTTLED, "Runtime requests the priority gate shed, by tenant and priority tier.");
    describe_gauge!(GATE_IN_FLIGHT, "Runtime requests in flight on this instance, by priority tier.");
    describe_counter!(
        TOKENS,
        "Tokens reported by commits and usage events drained by this instance, by model (at most 50, then other) and direction (input or output)."
    );
    describe_gauge!(ALERTS_OPEN, "Open alerts, by severity, read by the burn-rate check once a minute.");
    describe_gauge!(
        EXHAUSTION_ETA,
        Unit::Seconds,
        "Shortest time to exhaustion of any budget at its last hour's burn, read once a minute (a week when none burns)."
    );
}

/// Creates the label sets dashboards query, so panels show 0 rather than "no data".
fn precreate() {
    for result in ["hit", "miss"] {
        metrics::counter!(AUTH_CACHE_LOOKUPS, "result" => result).increment(0);
    }
    for limiter in ["api_key", "tenant", "public"] {
        metrics::counter!(RATE_LIMITED, "limiter" => limiter).increment(0);
    }
    for tier in ["premium", "standard", "bulk"] {
        metrics::gauge!(GATE_IN_FLIGHT, "tier" => tier).set(0.0);
        metrics::counter!(GATE_REQUESTS, "tenant" => "all", "tier" => tier).increment(0);
        metrics::counter!(GATE_THROTTLED, "tenant" => "all", "tier" => tier).increment(0);
    }
    for outcome in ["success", "failure"] {
        metrics::counter!(WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(0);
    }
    metrics::gauge!(WEBHOOK_BACKLOG).set(0.0);
    metrics::gauge!(WEBHOOK_LAG).set(0.0);
    metrics::counter!(EVENTS_STORED).increment(0);
    metrics::counter!(OUTBOX_REJECTED).increment(0);
    for direction in ["input", "output"] {
        metrics::counter!(TOKENS, "model" => "other", "direction" => direction).increment(0);
    }
    for severity in ["info", "warning", "critical"] {
        metrics::gauge!(ALERTS_OPEN, "severity" => severity).set(0.0);
    }
    metrics::gauge!(EXHAUSTION_ETA).set(EXHAUSTION_ETA_NONE_SECONDS);
    metrics::counter!(EXPIRED).increment(0);
    metrics::gauge!(EXPIRY_BACKLOG).set(0.0);
    metrics::gauge!(OUTBOX_BACKLOG).set(0.0);
    metrics::gauge!(OUTBOX_LAG).set(0.0);
    for reason in crate::events::dead_letters::REASONS {
        metrics::counter!(OUTBOX_DEAD_LETTERS, "reason" => reason).increment(0);
    }
    for unit in crate::domain::amount::Unit::ALL {
        metrics::counter!(OVERDRAFT_INCURRED, "unit" => unit.as_str()).increment(0);
    }
}

/// Installs the Prometheus recorder (once) and describes every metric.
pub fn init_metrics() {
    HANDLE.get_or_init(|| {
        let builder =
            || PrometheusBuilder::new().set_buckets(LATENCY_BUCKETS).unwrap_or_else(|_| PrometheusBuilder::new());
        let handle = match builder().install_recorder() {
            Ok(h) => h,
            // Another recorder is installed (only possible in tests); keep a detached one.
            Err(_) => builder().build_recorder().handle(),
        };
        describe();
        precreate();
        handle
    });
}

/// Whether gateway metrics carry the tenant (`false` folds every tenant into `all`).
pub fn set_tenant_label(on: bool) {
    TENANT_LABEL.store(on, Ordering::Relaxed);
}

fn tenant_label(tenant: &str) -> String {
    if TENANT_LABEL.load(Ordering::Relaxed) { tenant.to_string() } else { "all".to_string() }
}

pub fn auth_cache_lookup(hit: bool) {
    metrics::counter!(AUTH_CACHE_LOOKUPS, "result" => if hit { "hit" } else { "miss" }).increment(1);
}

pub fn refusal_audit_suppressed() {
    metrics::counter!(REFUSALS_UNAUDITED).increment(1);
}

/// One group-commit call carrying `operations` runtime mutations.
pub fn ledger_batch(operations: usize) {
    metrics::histogram!(LEDGER_BATCH).record(operations as f64);
}

pub fn script_latency(script: &'static str, elapsed: Duration) {
    metrics::histogram!(SCRIPT_DURATION, "script" => script).record(elapsed.as_secs_f64());
}

/// One ledger outcome: `outcome` is ALLOW, DENY, OK, REPLAY or an error code.
pub fn ledger_outcome(operation: &'static str, outcome: &str, reason: &str) {
    metrics::counter!(LEDGER_OPERATIONS, "operation" => operation, "outcome" => outcome.to_string(), "reason" => reason.to_string())
        .increment(1);
}

pub fn ledger_amount(operation: &'static str, unit: &'static str, amount: i64) {
    metrics::counter!(LEDGER_AMOUNT, "operation" => operation, "unit" => unit).increment(amount.unsigned_abs());
}

pub fn overdraft_incurred(unit: &'static str, amount: i64) {
    metrics::counter!(OVERDRAFT_INCURRED, "unit" => unit).increment(amount.unsigned_abs());
}

pub fn expiry_sweep(expired: u64, backlog: u64) {
    metrics::counter!(EXPIRED).increment(expired);
    metrics::gauge!(EXPIRY_BACKLOG).set(backlog as f64);
}

pub fn outbox(backlog: u64, lag: Duration) {
    metrics::gauge!(OUTBOX_BACKLOG).set(backlog as f64);
    metrics::gauge!(OUTBOX_LAG).set(lag.as_secs_f64());
}

/// Tokens of one drained commit or usage event.
pub fn tokens(model: &str, input: i64, output: i64) {
    static MODELS: OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> = OnceLock::new();
    let known = MODELS.get_or_init(Default::default);
    let label = match known.lock() {
        Ok(mut set) if set.contains(model) || set.len() < MODEL_LABELS_MAX => {
            set.insert(model.to_string());
            model.to_string()
        }
        _ => "other".to_string(),
    };
    metrics::counter!(TOKENS, "model" => label.clone(), "direction" => "input").increment(input.unsigned_abs());
    metrics::counter!(TOKENS, "model" => label, "direction" => "output").increment(output.unsigned_abs());
}

/// The open alerts by severity (info, warning, critical) and the shortest exhaustion ETA.
pub fn spend_gauges(open: [(&'static str, i64); 3], eta_seconds: f64) {
    for (severity, n) in open {
        metrics::gauge!(ALERTS_OPEN, "severity" => severity).set(n as f64);
    }
    metrics::gauge!(EXHAUSTION_ETA).set(eta_seconds);
}

pub fn events_stored(n: usize) {
    metrics::counter!(EVENTS_STORED).increment(n as u64);
}

pub fn outbox_rejected() {
    metrics::counter!(OUTBOX_REJECTED).increment(1);
}

pub fn outbox_dead_letter(reason: &'static str) {
    metrics::counter!(OUTBOX_DEAD_LETTERS, "reason" => reason).increment(1);
}

pub fn webhook_attempt(success: bool) {
    let outcome = if success { "success" } else { "failure" };
    metrics::counter!(WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1);
}

pub fn webhook_backlog(queued: i64, overdue: Duration) {
    metrics::gauge!(WEBHOOK_BACKLOG).set(queued as f64);
    metrics::gauge!(WEBHOOK_LAG).set(overdue.as_secs_f64());
}

pub fn rate_limited(limiter: &'static str) {
    metrics::counter!(RATE_LIMITED, "limiter" => limiter).increment(1);
}

pub fn gate_request(tenant: &str, tier: &'static str) {
    metrics::counter!(GATE_REQUESTS, "tenant" => tenant_label(tenant), "tier" => tier).increment(1);
}

pub fn gate_throttled(tenant: &str, tier: &'static str) {
    metrics::counter!(GATE_THROTTLED, "tenant" => tenant_label(tenant), "tier" => tier).increment(1);
}

pub fn gate_in_flight(tier: &'static str, n: usize) {
    metrics::gauge!(GATE_IN_FLIGHT, "tier" => tier).set(n as f64);
}

/// Route-layer middleware: request counts and latency by route template (never the raw URI).
pub async fn track_http(plane: &'static str, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "plane" => plane, "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, "plane" => plane, "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// Housekeeping the exporter needs periodically (histogram buckets roll over).
pub fn run_upkeep() {
    if let Some(h) = HANDLE.get() {
        h.run_upkeep();
    }
}

/// `GET /metrics`, for the metrics token or the admin key only (the series name tenants).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "Health",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"), crate::http::openapi::E401_503)
)]
pub async fn render(
    axum::extract::State(auth): axum::extract::State<std::sync::Arc<crate::auth::Authenticator>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(e) = auth.require_metrics(&headers) {
        return e.into_response();
    }
    let body = HANDLE.get().map(PrometheusHandle::render).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Structured logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
