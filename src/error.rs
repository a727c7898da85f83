//! The API edge of the one error table: an [`ApiError`] is a [`domain::Error`] on its way to
//! the client, plus the response headers some answers need (`Retry-After`, `X-RateLimit-*`).
//! The status comes from the code's row in `domain::error` and nothing overrides it.
//!
//! Bodies are `{error, message, request_id, trace_id, details}` exactly as the Cycles spec's
//! `ErrorResponse`. 5xx bodies are opaque: the cause was logged once where the error was made.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::domain::error::Error;
pub use crate::domain::error::ErrorCode;
use crate::http::context;

/// How long a client should wait before retrying after a store outage.
pub const UNAVAILABLE_RETRY_AFTER_S: u64 = 1;

/// A failure on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    /// Extra response headers (e.g. `Retry-After`, `X-RateLimit-*`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let mut out = Self { code: e.code, message: e.message, details: e.details, headers: Vec::new() };
        if e.code.is_transient() {
            out.headers.push((header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_S)));
        }
        // A policy rate limit the ledger enforced says when its minute ends.
        let retry_after_ms = out.details.as_ref().and_then(|d| d.get("retry_after_ms")).and_then(|v| v.as_u64());
        if let (ErrorCode::LimitExceeded, Some(ms)) = (out.code, retry_after_ms) {
            out.headers.push((header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000).max(1))));
        }
        out
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        Error::from(err).into()
    }
}

/// The constructors of [`Error`], answering an [`ApiError`] for handler code.
impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::new(code, message).into()
    }

    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> Self {
        Error::invalid_field(field, problem).into()
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::invalid(message).into()
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::not_found(message).into()
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::unauthorized(message).into()
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::forbidden(message).into()
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::internal(cause).into()
    }

    pub fn unavailable(store: &str, cause: impl std::fmt::Display) -> Self {
        Error::unavailable(store, cause).into()
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn http_status(&self) -> StatusCode {
        status_of(self.code)
    }
}

/// The status of a code's row, as an HTTP type.
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorCode,
    message: &'a str,
    request_id: &'a str,
    trace_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ctx = context::current();
        self.render(&ctx.request_id, &ctx.trace_id)
    }
}

impl ApiError {
    /// The response for explicit correlation ids (used where no request context is in scope).
    pub fn render(self, request_id: &str, trace_id: &str) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
            request_id,
            trace_id,
            details: self.details.as_ref(),
        };
        let mut response = (self.http_status(), axum::Json(body)).into_response();
        // Layers that audit refusals read the code from here rather than parse the body.
        response.extensions_mut().insert(self.code);
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_valid_http_status() {
        for code in ErrorCode::ALL {
            assert_eq!(status_of(*code).as_u16(), code.status(), "{code:?}");
        }
    }

    #[test]
    fn a_transient_error_tells_the_client_when_to_retry() {
        let e = ApiError::from(Error::unavailable("redis", "refused"));
        assert_eq!(e.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.headers.iter().any(|(n, _)| n == header::RETRY_AFTER));
    }
}
