//! The runtime plane (port 7878): the Cycles runtime API. Every response carries the
//! correlation headers; unknown routes answer the spec's JSON 404.

use axum::Router;

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    crate::http::finish(Router::new()).with_state(state)
}
