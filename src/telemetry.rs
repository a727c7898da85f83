//! Logs and metrics, named once. Logs are structured (JSON by default); metrics are served
//! as Prometheus text by the admin plane's `/metrics`. The recorder is process-wide, so it is
//! installed once however many applications a process builds (the tests build many).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const AUTH_CACHE_LOOKUPS: &str = "cycles_auth_cache_lookups_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once) and describes every metric.
pub fn init_metrics() {
    HANDLE.get_or_init(|| {
        let handle = match PrometheusBuilder::new().install_recorder() {
            Ok(h) => h,
            // Another recorder is installed (only possible in tests); keep a detached one.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
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
    metrics::counter!(AUTH_CACHE_LOOKUPS, "result" => if hit { "hit" } else { "miss" })
        .increment(1);
}

/// Housekeeping the exporter needs periodically (histogram buckets roll over).
pub fn run_upkeep() {
    if let Some(h) = HANDLE.get() {
        h.run_upkeep();
    }
}

pub async fn render() -> impl IntoResponse {
    let body = HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Structured logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
