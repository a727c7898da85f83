//! The one error table: every failure a client can see is an [`ApiError`] carrying a
//! protocol [`ErrorCode`]; the code decides the HTTP status in [`ErrorCode::status`].
//!
//! Bodies are `{error, message, request_id, trace_id, details}` exactly as the Cycles
//! spec's `ErrorResponse`. 5xx bodies are opaque: the cause is logged once, here.
//! Nothing below the API layers builds an HTTP response itself.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::http::context;

/// The union of the runtime and governance `ErrorCode` enums, in the spec's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    BudgetExceeded,
    BudgetFrozen,
    BudgetClosed,
    BudgetNotFound,
    ReservationExpired,
    ReservationFinalized,
    IdempotencyMismatch,
    UnitMismatch,
    OverdraftLimitExceeded,
    DebtOutstanding,
    MaxExtensionsExceeded,
    LimitExceeded,
    TenantNotFound,
    TenantSuspended,
    TenantClosed,
    InsufficientPermissions,
    KeyRevoked,
    KeyExpired,
    DuplicateResource,
    CountMismatch,
    WebhookNotFound,
    WebhookUrlInvalid,
    EventNotFound,
    ReplayInProgress,
    InternalError,
    /// Not a spec code on the wire: rendered as `INTERNAL_ERROR` with status 503, for a
    /// store that cannot be reached. Kept apart so the status and `Retry-After` differ.
    #[serde(rename = "INTERNAL_ERROR")]
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status of each code; the spec fixes most pairs (RUNTIME-CHECKLIST R-R2).
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidRequest | UnitMismatch | WebhookUrlInvalid => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            Forbidden | InsufficientPermissions | TenantSuspended => StatusCode::FORBIDDEN,
            NotFound | TenantNotFound | BudgetNotFound | WebhookNotFound | EventNotFound => StatusCode::NOT_FOUND,
            BudgetExceeded
            | BudgetFrozen
            | BudgetClosed
            | ReservationFinalized
            | IdempotencyMismatch
            | OverdraftLimitExceeded
            | DebtOutstanding
            | MaxExtensionsExceeded
            | TenantClosed
            | DuplicateResource
            | CountMismatch
            | ReplayInProgress
            | KeyRevoked
            | KeyExpired => StatusCode::CONFLICT,
            ReservationExpired => StatusCode::GONE,
            LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The wire string, for logs, metrics labels and audit rows.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "INVALID_REQUEST",
            Unauthorized => "UNAUTHORIZED",
            Forbidden => "FORBIDDEN",
            NotFound => "NOT_FOUND",
            BudgetExceeded => "BUDGET_EXCEEDED",
            BudgetFrozen => "BUDGET_FROZEN",
            BudgetClosed => "BUDGET_CLOSED",
            BudgetNotFound => "BUDGET_NOT_FOUND",
            ReservationExpired => "RESERVATION_EXPIRED",
            ReservationFinalized => "RESERVATION_FINALIZED",
            IdempotencyMismatch => "IDEMPOTENCY_MISMATCH",
            UnitMismatch => "UNIT_MISMATCH",
            OverdraftLimitExceeded => "OVERDRAFT_LIMIT_EXCEEDED",
            DebtOutstanding => "DEBT_OUTSTANDING",
            MaxExtensionsExceeded => "MAX_EXTENSIONS_EXCEEDED",
            LimitExceeded => "LIMIT_EXCEEDED",
            TenantNotFound => "TENANT_NOT_FOUND",
            TenantSuspended => "TENANT_SUSPENDED",
            TenantClosed => "TENANT_CLOSED",
            InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            KeyRevoked => "KEY_REVOKED",
            KeyExpired => "KEY_EXPIRED",
            DuplicateResource => "DUPLICATE_RESOURCE",
            CountMismatch => "COUNT_MISMATCH",
            WebhookNotFound => "WEBHOOK_NOT_FOUND",
            WebhookUrlInvalid => "WEBHOOK_URL_INVALID",
            EventNotFound => "EVENT_NOT_FOUND",
            ReplayInProgress => "REPLAY_IN_PROGRESS",
            InternalError | Unavailable => "INTERNAL_ERROR",
        }
    }
}

/// How long a client should wait before retrying after a store outage.
const UNAVAILABLE_RETRY_AFTER_S: u64 = 1;

/// A failure on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    /// Extra response headers (e.g. `Retry-After`, `Allow`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Overrides the status the code implies (only 405 uses it).
    pub status: Option<StatusCode>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None, headers: Vec::new(), status: None }
    }

    /// 400 `INVALID_REQUEST` whose message starts with the offending field.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidRequest, format!("{field}: {problem}"))
            .with_details(serde_json::json!({ "field": field }))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// An unexpected failure: logged here once with its cause, opaque on the wire.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::InternalError, "internal error")
    }

    /// A store that cannot be reached or timed out: 503 with `Retry-After`.
    pub fn unavailable(store: &str, cause: impl std::fmt::Display) -> Self {
        tracing::warn!(store, error = %cause, "store unavailable");
        Self::new(ErrorCode::Unavailable, format!("{store} is temporarily unavailable; retry"))
            .with_header(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_S))
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub fn http_status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.code.status())
    }
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
        let status = self.http_status();
        let mut response = (status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match err {
            StoreError::Unavailable { store, cause } => ApiError::unavailable(store, cause),
            StoreError::Internal(cause) => ApiError::internal(cause),
        }
    }
}
