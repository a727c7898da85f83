//! The admin plane (port 7979): tenants, API keys, budgets, auth validation and introspection,
//! the audit log, health and metrics. Handlers are thin: extract, validate the wire
//! values, call `catalogue`, map the reply.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod budgets;
pub mod health;
pub mod pagination;
pub mod tenants;

use axum::Router;
use axum::routing::{get, patch, post};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::telemetry::render))
        .route("/v1/admin/tenants", post(tenants::create).get(tenants::list))
        .route("/v1/admin/tenants/{tenant_id}", get(tenants::get).patch(tenants::update))
        .route("/v1/admin/api-keys", post(api_keys::create).get(api_keys::list))
        .route("/v1/admin/api-keys/{key_id}", patch(api_keys::update).delete(api_keys::revoke))
        .route("/v1/admin/budgets", post(budgets::create).get(budgets::list).patch(budgets::update))
        .route("/v1/admin/budgets/lookup", get(budgets::lookup))
        .route("/v1/admin/budgets/fund", post(budgets::fund))
        .route("/v1/admin/budgets/freeze", post(budgets::freeze))
        .route("/v1/admin/budgets/unfreeze", post(budgets::unfreeze))
        .route("/v1/auth/validate", post(auth::validate))
        .route("/v1/auth/introspect", get(auth::introspect))
        .route("/v1/admin/audit/logs", get(audit::list))
        .route("/v1/x-tollgate/audit/verify", get(audit::verify))
        .route("/v1/admin/priority/stats", get(priority_stats))
        .route_layer(axum::middleware::from_fn(|r, n| crate::telemetry::track_http("admin", r, n)));
    crate::http::finish(routes).with_state(state)
}

/// `GET /v1/admin/priority/stats`: the priority gate's in-flight counts and shares.
async fn priority_stats(
    axum::extract::State(state): axum::extract::State<AppState>,
    _: crate::auth::AdminAuth,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "object": "priority_stats", "data": state.admission.gate.stats() }))
}
