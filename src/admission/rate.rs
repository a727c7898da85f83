//! Per-instance rate limits (governor GCRA): one budget per API key and one per tenant, sized
//! by the tenant's tier (read with the key) unless the tenant overrides it. Limits are per instance; quotas that
//! must hold across instances belong to the ledger.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::domain::tenant::RateLimit;

type Limiter = RateLimiter<String, DashMapStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Where a limit stands after a request was allowed.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    pub limit: u32,
    pub remaining: u32,
}

/// A refused request: which limiter refused and how long until a token frees up.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub limit: u32,
    pub limiter: &'static str,
    pub wait: Duration,
}

pub struct RateLimits {
    /// `false` when rate limiting is switched off (`--rate-limits off`).
    enabled: bool,
    limiters: DashMap<RateLimit, Arc<Limiter>>,
}

impl RateLimits {
    pub fn new(enabled: bool) -> Self {
        Self { enabled, limiters: DashMap::new() }
    }

    fn limiter(&self, limit: RateLimit) -> Arc<Limiter> {
        self.limiters
            .entry(limit)
            .or_insert_with(|| {
                let rate = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::per_second(rate).allow_burst(burst);
                Arc::new(RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>())
            })
            .clone()
    }

    /// Checks the key's and the tenant's budgets against `limit`; `Ok(None)` when limiting is
    /// off or the tier has no limit.
    pub fn check(&self, tenant: &str, key_id: &str, limit: Option<RateLimit>) -> Result<Option<Allowed>, Refused> {
        let Some(limit) = limit.filter(|_| self.enabled) else { return Ok(None) };
        let limiter = self.limiter(limit);
        let mut remaining = u32::MAX;
        for (limiter_name, key) in [("api_key", format!("k:{key_id}")), ("tenant", format!("t:{tenant}"))] {
            match limiter.check_key(&key) {
                Ok(snapshot) => remaining = remaining.min(snapshot.remaining_burst_capacity()),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    return Err(Refused { limit: limit.per_second, limiter: limiter_name, wait });
                }
            }
        }
        Ok(Some(Allowed { limit: limit.per_second, remaining }))
    }

    /// Forgets keys that are back to a full budget, so memory follows the active keys.
    pub fn shrink(&self) {
        for limiter in self.limiters.iter() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_allowed_then_refused_with_a_wait() {
        let limits = RateLimits::new(true);
        let free = Some(RateLimit { per_second: 1, burst: 3 });
        for _ in 0..3 {
            assert!(limits.check("t", "k", free).is_ok());
        }
        let refused = limits.check("t", "k", free).unwrap_err();
        assert_eq!(refused.limiter, "api_key");
        assert!(refused.wait > Duration::ZERO);
        assert!(limits.check("t", "k", Some(RateLimit { per_second: 100, burst: 100 })).is_ok());
    }
}
