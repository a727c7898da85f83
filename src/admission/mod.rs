//! Admission, in process and without network IO, before the ledger: authenticate the caller,
//! apply the per-key and per-tenant rate limits, then the priority gate. A refused request
//! gets 429 `LIMIT_EXCEEDED` with `Retry-After` and never reaches the ledger. Every runtime
//! response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.

pub mod gate;
pub mod public;
pub mod rate;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{Authenticator, Caller, TenantCaller};
use crate::domain::tenant::{RateLimit, Tier};
use crate::error::{ApiError, ErrorCode};
pub use gate::{Class, Gate};
pub use rate::RateLimits;

static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// How long a client shed by the gate should wait: in-flight requests finish in milliseconds.
const GATE_RETRY_AFTER_S: u64 = 1;

/// The admission settings (`tollgate serve --help` documents their syntax). `tier_classes`
/// and `rate_limits` are the built-in tiers' defaults: start-up copies them into the tiers
/// catalogue (unless an operator patched the tier), and admission reads each tenant's class and
/// limit from its tier through the key cache.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    pub max_concurrent: usize,
    pub tier_classes: HashMap<Tier, Class>,
    pub class_shares_pct: [u8; 3],
    /// `None` switches rate limiting off.
    pub rate_limits: Option<HashMap<Tier, RateLimit>>,
}

impl AdmissionConfig {
    /// The built-in tiers' class and rate limit as the flags give them. With rate limiting
    /// off, the compiled-in limits are kept in the catalogue (and not enforced).
    pub fn built_in_tiers(&self) -> Vec<(Tier, Class, Option<RateLimit>)> {
        let compiled = parse_rate_limits(DEFAULT_RATE_LIMITS).ok().flatten().unwrap_or_default();
        let limits = self.rate_limits.as_ref().unwrap_or(&compiled);
        crate::domain::tier::BUILT_IN
            .iter()
            .map(|name| {
                let tier = Tier::built_in(name);
                let class = self.tier_classes.get(&tier).copied().unwrap_or(Class::Bulk);
                let limit = limits.get(&tier).copied();
                (tier, class, limit)
            })
            .collect()
    }
}

/// The compiled-in default of `--rate-limits`.
pub const DEFAULT_RATE_LIMITS: &str = "free=50/100,dev=200/400,pro=1000/2000,enterprise=5000/10000";

fn pairs(raw: &str) -> impl Iterator<Item = Result<(&str, &str), String>> {
    raw.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().split_once('=').ok_or_else(|| format!("{p:?} is not name=value")))
}

/// `enterprise=premium,pro=standard,dev=bulk,free=bulk`; tiers not named map to bulk.
pub fn parse_tier_classes(raw: &str) -> Result<HashMap<Tier, Class>, String> {
    let mut out: HashMap<Tier, Class> =
        crate::domain::tier::BUILT_IN.iter().map(|t| (Tier::built_in(t), Class::Bulk)).collect();
    for pair in pairs(raw) {
        let (tier, class) = pair?;
        let tier = built_in_tier(tier)?;
        let class = Class::parse(class).ok_or_else(|| format!("unknown class {class:?}"))?;
        out.insert(tier, class);
    }
    Ok(out)
}

/// The flags configure the built-in tiers only; operator tiers are set through the admin API.
fn built_in_tier(raw: &str) -> Result<Tier, String> {
    Tier::parse(raw).ok().filter(Tier::is_built_in).ok_or_else(|| format!("unknown built-in tier {raw:?}"))
}

/// `premium=100,standard=80,bulk=50` (percent of max_concurrent, 0..=100).
pub fn parse_class_shares(raw: &str) -> Result<[u8; 3], String> {
    let mut out = [100, 80, 50];
    for pair in pairs(raw) {
        let (class, pct) = pair?;
        let class = Class::parse(class).ok_or_else(|| format!("unknown class {class:?}"))?;
        let pct: u8 = pct.parse().ok().filter(|p| *p <= 100).ok_or_else(|| format!("share {pct:?} is not 0..=100"))?;
        out[class as usize] = pct;
    }
    Ok(out)
}

/// `off`, or `free=50/100,dev=200/400,pro=1000/2000,enterprise=5000/10000` (per second/burst).
pub fn parse_rate_limits(raw: &str) -> Result<Option<HashMap<Tier, RateLimit>>, String> {
    if raw.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let mut out = HashMap::new();
    for pair in pairs(raw) {
        let (tier, spec) = pair?;
        let tier = built_in_tier(tier)?;
        let (rate, burst) = spec.split_once('/').unwrap_or((spec, spec));
        let parse = |v: &str| {
            v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| format!("{v:?} is not a positive integer"))
        };
        out.insert(tier, RateLimit { per_second: parse(rate)?, burst: parse(burst)? });
    }
    Ok(Some(out))
}

pub struct Admission {
    pub gate: Arc<Gate>,
    pub limits: RateLimits,
    /// The per-address limit of the public routes (they carry no key to limit by).
    pub public: public::PublicLimit,
    auth: Arc<Authenticator>,
}

impl Admission {
    pub fn new(config: &AdmissionConfig, auth: Arc<Authenticator>) -> Self {
        Self {
            gate: Gate::new(config.max_concurrent, config.class_shares_pct),
            limits: RateLimits::new(config.rate_limits.is_some()),
            public: public::PublicLimit::new(config.rate_limits.is_some()),
            auth,
        }
    }
}

fn now_unix_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn limited(message: &str, retry_after_s: u64, limit: Option<u32>) -> Response {
    let mut err = ApiError::new(ErrorCode::LimitExceeded, message)
        .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_s))
        .with_header(X_RATELIMIT_REMAINING.clone(), HeaderValue::from(0))
        .with_header(X_RATELIMIT_RESET.clone(), HeaderValue::from(now_unix_s() + retry_after_s));
    if let Some(limit) = limit {
        err = err.with_header(X_RATELIMIT_LIMIT.clone(), HeaderValue::from(limit));
    }
    err.into_response()
}

/// Middleware of the runtime routes: authenticate, rate-limit, gate, then run the handler.
pub async fn middleware(State(adm): State<Arc<Admission>>, mut request: Request, next: Next) -> Response {
    let caller = match adm.auth.any(request.headers()).await {
        Ok(c) => c,
        Err(e) => return with_limit_headers(e.into_response(), None),
    };
    let (tenant_label, class, allowed) = match &caller {
        Caller::Admin => ("__admin__".to_string(), Class::Premium, None),
        Caller::Tenant(TenantCaller { key }) => {
            let tenant = key.tenant_id.as_str();
            match adm.limits.check(tenant, &key.key_id, key.rate_limit()) {
                Ok(allowed) => (tenant.to_string(), key.tier_class, allowed),
                Err(refused) => {
                    crate::telemetry::rate_limited(refused.limiter);
                    let wait_s = refused.wait.as_secs() + u64::from(refused.wait.subsec_nanos() > 0);
                    return limited(
                        "rate limit exceeded; retry after the delay in Retry-After",
                        wait_s.max(1),
                        Some(refused.limit),
                    );
                }
            }
        }
    };
    crate::telemetry::gate_request(&tenant_label, class.as_str());
    let Some(permit) = adm.gate.try_admit(class) else {
        crate::telemetry::gate_throttled(&tenant_label, class.as_str());
        return limited(
            "the server is at capacity for this priority; retry shortly",
            GATE_RETRY_AFTER_S,
            allowed.map(|a| a.limit),
        );
    };
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    drop(permit);
    with_limit_headers(response, allowed)
}

/// Adds the rate-limit headers; where no limit applies (admin key, limiting off, or the
/// caller is not yet known) they carry the sentinels -1 / -1 / 0.
fn with_limit_headers(mut response: Response, allowed: Option<rate::Allowed>) -> Response {
    let (limit, remaining, reset) = match allowed {
        Some(a) => (i64::from(a.limit), i64::from(a.remaining), now_unix_s() + 1),
        None => (-1, -1, 0),
    };
    let headers = response.headers_mut();
    headers.insert(X_RATELIMIT_LIMIT.clone(), HeaderValue::from(limit));
    headers.insert(X_RATELIMIT_REMAINING.clone(), HeaderValue::from(remaining));
    headers.insert(X_RATELIMIT_RESET.clone(), HeaderValue::from(reset));
    response
}
