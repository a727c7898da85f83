//! The per-source limit of the public, unauthenticated routes (the action kind registry): the
//! spec requires abuse protection there and recommends 60 requests per minute per source
//! address, answered 429 with `Retry-After`. In memory, per instance, a fixed window per
//! address (the admin plane's failed-auth windows); off when rate limiting is off.

use std::time::Duration;

use axum::http::{HeaderValue, header};

use crate::auth::throttle::SourceWindows;
use crate::error::{ApiError, ErrorCode};

/// Requests one source address may make to the public routes per minute (the spec's baseline).
pub const PUBLIC_PER_MINUTE: u32 = 60;

pub struct PublicLimit {
    /// `None` when rate limiting is off.
    windows: Option<SourceWindows>,
}

impl PublicLimit {
    pub fn new(enabled: bool) -> Self {
        Self { windows: enabled.then(|| SourceWindows::new(PUBLIC_PER_MINUTE)) }
    }

    /// Counts one request from `source`; the 429 (with `Retry-After`) when it is over the limit.
    /// A request without a known address (never the case behind the listener) is not limited.
    pub fn check(&self, source: Option<&str>) -> Result<(), ApiError> {
        let (Some(windows), Some(source)) = (&self.windows, source) else { return Ok(()) };
        if windows.hit(source).is_some() {
            return Ok(());
        }
        let wait = windows.blocked(source).unwrap_or(Duration::from_secs(1));
        let wait_s = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        crate::telemetry::rate_limited("public");
        Err(ApiError::new(ErrorCode::LimitExceeded, "too many requests from this address; retry after Retry-After")
            .with_header(header::RETRY_AFTER, HeaderValue::from(wait_s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_over_the_baseline_is_refused_with_retry_after_and_others_are_not() {
        let limit = PublicLimit::new(true);
        for _ in 0..PUBLIC_PER_MINUTE {
            assert!(limit.check(Some("10.0.0.1")).is_ok());
        }
        let refused = limit.check(Some("10.0.0.1")).unwrap_err();
        assert_eq!(refused.http_status(), 429);
        assert!(limit.check(Some("10.0.0.2")).is_ok());
        assert!(PublicLimit::new(false).check(Some("10.0.0.1")).is_ok());
    }
}
