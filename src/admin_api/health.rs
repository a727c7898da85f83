//! `GET /livez` (the process answers) and `GET /readyz` (Redis and Postgres answer in time).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

/// Readiness gives each store this long to answer; a slower store is reported down.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

#[utoipa::path(get, path = "/livez", operation_id = "livez", tag = "Health",
    responses((status = 200, description = "The process is up", body = Object), crate::http::openapi::E503)
)]
pub async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "Health",
    responses((status = 200, description = "Redis and Postgres answer", body = Object), (status = 503, description = "A store does not answer", body = Object))
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (redis, pg) = state.catalogue.probe_stores(PROBE_TIMEOUT).await;
    let verdict = |r: Option<Result<(), _>>| match r {
        Some(Ok(())) => "ok",
        Some(Err(_)) => "down",
        None => "timeout",
    };
    let (redis, postgres) = (verdict(redis), verdict(pg));
    let ready = redis == "ok" && postgres == "ok";
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "redis": redis, "postgres": postgres },
    });
    (status, Json(body))
}
