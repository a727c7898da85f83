//! Logs and metrics, named once. Logs are structured (JSON by default); metrics are served
//! as Prometheus text by the admin plane's `/metrics`. The recorder is process-wide, so it is
//! installed once however many applications a process builds (the tests build many).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const AUTH_CACHE_LOOKUPS: &str = "cycles_auth_cache_lookups_total";
pub const SCRIPT_DURATION: &str = "cycles_redis_script_duration_seconds";
pub const EXPIRED: &str = "cycles_reservations_expired_total";
pub const EXPIRY_BACKLOG: &str = "cycles_expiry_backlog";

/// Histogram buckets (seconds) for store and request latencies: 50 µs to 2.5 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

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
        metrics::describe_counter!(
            AUTH_CACHE_LOOKUPS,
            "API-key cache lookups on the request path, by result (hit or miss)."
        );
        for result in ["hit", "miss"] {
            metrics::counter!(AUTH_CACHE_LOOKUPS, "result" => result).increment(0);
        }
        handle
    });
}

pub fn auth_cache_lookup(hit: bool) {
    metrics::counter!(AUTH_CACHE_LOOKUPS, "result" => if hit { "hit" } else { "miss" }).increment(1);
}

pub fn script_latency(script: &'static str, elapsed: std::time::Duration) {
    metrics::histogram!(SCRIPT_DURATION, "script" => script).record(elapsed.as_secs_f64());
}

pub fn expiry_sweep(expired: u64, backlog: u64) {
    metrics::counter!(EXPIRED).increment(expired);
    metrics::gauge!(EXPIRY_BACKLOG).set(backlog as f64);
}

/// Housekeeping the exporter needs periodically (histogram buckets roll over).
pub fn run_upkeep() {
    if let Some(h) = HANDLE.get() {
        h.run_upkeep();
    }
}

pub async fn render() -> impl IntoResponse {
    let body = HANDLE.get().map(PrometheusHandle::render).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Structured logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
