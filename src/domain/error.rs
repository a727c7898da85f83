//! The error of every layer below the API: a protocol [`ErrorCode`], a message for the client,
//! optional `details`, and whether retrying may help. The ledger, the catalogue, the event
//! workers and the store conversions all answer this type; only the API edge (`crate::error`)
//! turns it into an HTTP response.
//!
//! The code table below is the one place that pairs a code with its wire string and its HTTP
//! status (a plain number here: this layer knows no HTTP types). Some spec codes appear twice,
//! with two statuses, because the spec fixes a different status for them on some operations
//! (`INVALID_REQUEST` as 409 for a state transition that is already done, `LIMIT_EXCEEDED` as 400
//! for a bulk filter that matches too much); the first row of a wire string is its usual meaning.

use serde::{Serialize, Serializer};
use serde_json::Value;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $wire:literal, $status:literal;)*) => {
        /// The union of the runtime and governance `ErrorCode` enums, plus the rows that give a
        /// spec code another status (see the module header).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every row of the table, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire string: the `error` field of a response body, metric labels, audit rows.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }

            /// The HTTP status this code is answered with.
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidRequest => "INVALID_REQUEST", 400;
    UnitMismatch => "UNIT_MISMATCH", 400;
    WebhookUrlInvalid => "WEBHOOK_URL_INVALID", 400;
    Unauthorized => "UNAUTHORIZED", 401;
    Forbidden => "FORBIDDEN", 403;
    InsufficientPermissions => "INSUFFICIENT_PERMISSIONS", 403;
    TenantSuspended => "TENANT_SUSPENDED", 403;
    /// A tenant-bound admin principal named another tenant (a Tollgate extension code,
    /// after DVARA's: the request is refused and audited, never narrowed).
    TenantScopeViolation => "TENANT_SCOPE_VIOLATION", 403;
    NotFound => "NOT_FOUND", 404;
    TenantNotFound => "TENANT_NOT_FOUND", 404;
    BudgetNotFound => "BUDGET_NOT_FOUND", 404;
    WebhookNotFound => "WEBHOOK_NOT_FOUND", 404;
    EventNotFound => "EVENT_NOT_FOUND", 404;
    BudgetExceeded => "BUDGET_EXCEEDED", 409;
    BudgetFrozen => "BUDGET_FROZEN", 409;
    BudgetClosed => "BUDGET_CLOSED", 409;
    ReservationFinalized => "RESERVATION_FINALIZED", 409;
    IdempotencyMismatch => "IDEMPOTENCY_MISMATCH", 409;
    OverdraftLimitExceeded => "OVERDRAFT_LIMIT_EXCEEDED", 409;
    DebtOutstanding => "DEBT_OUTSTANDING", 409;
    MaxExtensionsExceeded => "MAX_EXTENSIONS_EXCEEDED", 409;
    TenantClosed => "TENANT_CLOSED", 409;
    /// v0.1.26: a quota of the matching policy is used up (details carry `deny_detail`).
    ActionQuotaExceeded => "ACTION_QUOTA_EXCEEDED", 409;
    /// v0.1.26: the matching policy's `allowed_action_kinds` lacks the kind.
    ActionKindNotAllowed => "ACTION_KIND_NOT_ALLOWED", 409;
    /// v0.1.26: the matching policy's `denied_action_kinds` holds the kind.
    ActionKindDenied => "ACTION_KIND_DENIED", 409;
    DuplicateResource => "DUPLICATE_RESOURCE", 409;
    CountMismatch => "COUNT_MISMATCH", 409;
    ReplayInProgress => "REPLAY_IN_PROGRESS", 409;
    KeyRevoked => "KEY_REVOKED", 409;
    KeyExpired => "KEY_EXPIRED", 409;
    ReservationExpired => "RESERVATION_EXPIRED", 410;
    LimitExceeded => "LIMIT_EXCEEDED", 429;
    InternalError => "INTERNAL_ERROR", 500;
    /// A state change to the state the resource is already in (freeze a frozen budget): the
    /// spec answers 409 without a dedicated code.
    AlreadyInState => "INVALID_REQUEST", 409;
    /// A bulk action whose filter matches more rows than one call may change: the spec's 400.
    BulkLimitExceeded => "LIMIT_EXCEEDED", 400;
    /// A known path called with a method it does not serve.
    MethodNotAllowed => "INVALID_REQUEST", 405;
    /// A request body larger than the plane accepts.
    PayloadTooLarge => "INVALID_REQUEST", 413;
    /// A store that cannot be reached or timed out: retrying later may succeed.
    Unavailable => "INTERNAL_ERROR", 503;
}

impl ErrorCode {
    /// The code a wire string usually means (its first row), as scripts report them.
    pub fn parse(wire: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == wire)
    }

    /// Whether the same request may succeed later without change.
    pub fn is_transient(self) -> bool {
        self == ErrorCode::Unavailable
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A failure with the code the client will see. 5xx causes are logged once, where made.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None }
    }

    /// `INVALID_REQUEST` whose message starts with the offending field.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidRequest, format!("{field}: {problem}"))
            .with_details(serde_json::json!({ "field": field }))
    }

    /// The same error about a field inside `outer` (`outer.field` in message and details).
    pub fn prefix_field(mut self, outer: &str) -> Self {
        let inner = self.details.as_ref().and_then(|d| d.get("field")).and_then(Value::as_str).map(str::to_string);
        let field = inner.map_or_else(|| outer.to_string(), |f| format!("{outer}.{f}"));
        self.message = format!("{outer}.{}", self.message);
        self.details = Some(serde_json::json!({ "field": field }));
        self
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

    /// An unexpected failure: logged here once with its cause, opaque to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::InternalError, "internal error")
    }

    /// A store that cannot be reached or timed out (transient).
    pub fn unavailable(store: &str, cause: impl std::fmt::Display) -> Self {
        tracing::warn!(store, error = %cause, "store unavailable");
        Self::new(ErrorCode::Unavailable, format!("{store} is temporarily unavailable; retry"))
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn is_transient(&self) -> bool {
        self.code.is_transient()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn a_wire_string_parses_to_its_first_row() {
        assert_eq!(ErrorCode::parse("INVALID_REQUEST"), Some(ErrorCode::InvalidRequest));
        assert_eq!(ErrorCode::parse("LIMIT_EXCEEDED"), Some(ErrorCode::LimitExceeded));
        assert_eq!(ErrorCode::parse("INTERNAL_ERROR"), Some(ErrorCode::InternalError));
        assert_eq!(ErrorCode::parse("NOPE"), None);
    }

    #[test]
    fn every_code_round_trips_through_its_wire_string_to_a_row_with_that_string() {
        for code in ErrorCode::ALL {
            let parsed = ErrorCode::parse(code.as_str()).map(ErrorCode::as_str);
            assert_eq!(parsed, Some(code.as_str()));
        }
    }
}
