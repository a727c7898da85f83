//! The runtime plane (port 7878): the Cycles runtime API. Handlers are thin: authenticate,
//! validate the wire values, call the ledger once, map the reply. Every response carries the
//! correlation headers; unknown routes answer the spec's JSON 404.

pub mod action_kinds;
pub mod balances;
pub mod common;
pub mod events;
pub mod openapi;
pub mod reads;
pub mod reservations;
pub mod settle;
pub mod wire;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// `serve_metrics`: also answer `GET /metrics` here (for instances that run no admin plane).
pub fn router(state: AppState, serve_metrics: bool) -> Router {
    let routes = Router::new()
        .route("/v1/decide", post(reservations::decide))
        .route("/v1/reservations", post(reservations::create).get(reads::list))
        .route("/v1/reservations/{reservation_id}", get(reads::get))
        .route("/v1/reservations/{reservation_id}/commit", post(settle::commit))
        .route("/v1/reservations/{reservation_id}/release", post(settle::release))
        .route("/v1/reservations/{reservation_id}/extend", post(settle::extend))
        .route("/v1/balances", get(balances::list))
        .route("/v1/events", post(events::create))
        .route_layer(axum::middleware::from_fn_with_state(state.admission.clone(), crate::admission::middleware))
        .route_layer(axum::middleware::from_fn(|r, n| crate::telemetry::track_http("runtime", r, n)));
    // Public, like the admin plane's health routes: outside the admission layer. The registry
    // routes carry no key; they are limited per source address instead (`admission::public`).
    let registry = Router::new()
        .route("/v1/action-kinds", get(action_kinds::list))
        .route("/v1/action-kinds/{kind}", get(action_kinds::get))
        .route_layer(axum::middleware::from_fn(|r, n| crate::telemetry::track_http("runtime", r, n)));
    let routes = routes.merge(registry).route("/openapi.json", get(openapi::serve));
    let routes = if serve_metrics { routes.route("/metrics", get(crate::telemetry::render)) } else { routes };
    crate::http::finish(routes).with_state(state)
}
