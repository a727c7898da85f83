//! HTTP plumbing shared by both planes: correlation ids, strict extractors, the JSON
//! fallbacks for unknown routes and wrong methods, and the common middleware stack.

pub mod context;
pub mod extract;
pub mod openapi;
pub mod page;
pub mod serve;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};

/// Longest time one request may take before the server answers 503; well above any
/// healthy Redis or Postgres round trip, short enough that a stuck store frees its callers.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// 404 `NOT_FOUND` for any route the plane does not serve.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// 405 with a JSON body for a known path called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed on this route")
}

/// Wraps a plane's routes with the layers every response needs, outermost first:
/// correlation ids, a panic guard, a timeout, the body size limit, and the NUL refusal.
pub fn finish<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(extract::refuse_nul_in_uri))
        .layer(DefaultBodyLimit::max(extract::BODY_BYTES_MAX))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(axum::middleware::from_fn(context::middleware))
        .layer(axum::middleware::map_response(json_for_bare_errors))
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("request handler panicked").into_response()
}

/// Responses made by layers (timeouts, body limits, panics caught outside the context) carry
/// no JSON body; give every bare 4xx/5xx the spec's error body, keeping the layer's status
/// where the table has a row for it (any other 4xx becomes a 400).
async fn json_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::InternalError,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        _ => ErrorCode::InvalidRequest,
    };
    let (parts, _) = response.into_parts();
    let id = |name: &header::HeaderName| {
        parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    };
    let (request_id, trace_id) = (id(&context::X_REQUEST_ID), id(&context::X_CYCLES_TRACE_ID));
    let mut fresh = ApiError::new(code, status.canonical_reason().unwrap_or("error")).render(&request_id, &trace_id);
    for name in [&context::X_REQUEST_ID, &context::X_CYCLES_TRACE_ID] {
        if let Some(v) = parts.headers.get(name) {
            fresh.headers_mut().insert(name.clone(), v.clone());
        }
    }
    if code.is_transient() {
        fresh.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_S));
    }
    fresh
}
