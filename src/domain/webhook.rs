//! Webhook subscriptions: the stored shape, the retry policy and threshold config with the
//! spec's ranges and defaults, the two WEBHOOK SUBSCRIPTION INVARIANTS, and the matching
//! rule that decides which subscriptions receive an event.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::amount::{de_int, de_opt_int};
use super::event::{Event, EventCategory, EventType, SYSTEM_TENANT};
use super::tenant::wire_enum;

/// The first number in `v` that would not come back from the store. PostgreSQL jsonb prints
/// a number without an exponent (`1.7976931348623157e308` as 309 digits), and serde_json
/// reads some such long forms near the `f64` limits as out of range, which would make the
/// stored row unreadable.
pub fn unstorable_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            n.as_f64().filter(|f| serde_json::from_str::<Value>(&format!("{f}")).is_err())
        }
        Value::Array(items) => items.iter().find_map(unstorable_number),
        Value::Object(map) => map.values().find_map(unstorable_number),
        _ => None,
    }
}

/// An integer field of a webhook body: JSON Schema counts `10.0` as an integer, so an
/// integral number written with a fraction is read as that integer.
fn de_integer<'de, D: serde::Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    let v = de_int(d)?;
    T::try_from(v).map_err(|_| serde::de::Error::custom(format!("{v} is out of range")))
}

wire_enum!(
    /// ACTIVE receives events; PAUSED (operator) and DISABLED (dispatcher, after repeated
    /// failures) receive none, and events in the meantime are not queued.
    WebhookStatus { Active = "ACTIVE", Paused = "PAUSED", Disabled = "DISABLED" }
);

wire_enum!(
    DeliveryStatus { Pending = "PENDING", Success = "SUCCESS", Failed = "FAILED", Retrying = "RETRYING" }
);

/// `WebhookRetryPolicy`: up to `max_retries` retries after the first attempt, retry n
/// waiting `min(initial_delay_ms × backoff_multiplier^(n−1), max_delay_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookRetryPolicy)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    #[serde(deserialize_with = "de_integer")]
    pub max_retries: u32,
    #[serde(deserialize_with = "de_integer")]
    pub initial_delay_ms: u64,
    pub backoff_multiplier: f64,
    #[serde(deserialize_with = "de_integer")]
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 5, initial_delay_ms: 1_000, backoff_multiplier: 2.0, max_delay_ms: 60_000 }
    }
}

impl RetryPolicy {
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, range: &str| Err((format!("retry_policy.{field}"), format!("must be {range}")));
        if self.max_retries > 10 {
            return bad("max_retries", "from 0 to 10");
        }
        if !(100..=60_000).contains(&self.initial_delay_ms) {
            return bad("initial_delay_ms", "from 100 to 60000");
        }
        if !(1.0..=10.0).contains(&self.backoff_multiplier) {
            return bad("backoff_multiplier", "from 1.0 to 10.0");
        }
        if !(1_000..=3_600_000).contains(&self.max_delay_ms) {
            return bad("max_delay_ms", "from 1000 to 3600000");
        }
        Ok(())
    }

    /// The delay before retry `n` (1-based), without jitter, in ms.
    pub fn delay_ms(&self, n: u32) -> u64 {
        let exp = self.backoff_multiplier.powi(i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX));
        let raw = (self.initial_delay_ms as f64) * exp;
        if raw.is_finite() { (raw as u64).min(self.max_delay_ms) } else { self.max_delay_ms }
    }
}

/// `WebhookThresholdConfig`. Only `budget_utilization` affects delivery today: a
/// `budget.threshold_crossed` event reaches a subscription only for a threshold it lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookThresholdConfig)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_utilization: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burn_rate_multiplier: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_opt_int")]
    pub burn_rate_window_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial_rate_threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_rate_threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_failure_rate_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_opt_int")]
    pub rate_window_seconds: Option<i64>,
}

/// The thresholds the ledger reports crossings of (and a subscription's default list).
pub const DEFAULT_UTILIZATION_THRESHOLDS: [f64; 3] = [0.80, 0.95, 1.0];

impl ThresholdConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, range: &str| Err((format!("thresholds.{field}"), format!("must be {range}")));
        if let Some(list) = &self.budget_utilization {
            if list.len() > 20 {
                return bad("budget_utilization", "at most 20 values");
            }
            if list.iter().any(|v| !(0.0..=1.0).contains(v)) {
                return bad("budget_utilization", "values from 0.0 to 1.0");
            }
        }
        if self.burn_rate_multiplier.is_some_and(|v| !(v >= 1.5 && v.is_finite())) {
            return bad("burn_rate_multiplier", "at least 1.5");
        }
        if let Some(v) = self.burn_rate_multiplier.and_then(|v| unstorable_number(&Value::from(v))) {
            return Err((
                "thresholds.burn_rate_multiplier".into(),
                format!("{v} is too large to store; use a smaller multiplier"),
            ));
        }
        for (name, v) in [
            ("burn_rate_window_seconds", self.burn_rate_window_seconds),
            ("rate_window_seconds", self.rate_window_seconds),
        ] {
            if v.is_some_and(|v| !(60..=86_400).contains(&v)) {
                return bad(name, "from 60 to 86400");
            }
        }
        for (name, v) in [
            ("denial_rate_threshold", self.denial_rate_threshold),
            ("expiry_rate_threshold", self.expiry_rate_threshold),
            ("auth_failure_rate_threshold", self.auth_failure_rate_threshold),
        ] {
            if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                return bad(name, "from 0.0 to 1.0");
            }
        }
        Ok(())
    }
}

/// A subscription as stored, without its secrets: the signing secret and custom headers stay
/// sealed in the store row and are opened only to send.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub subscription_id: String,
    pub tenant_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub event_categories: Vec<EventCategory>,
    pub scope_filter: Option<String>,
    pub thresholds: Option<ThresholdConfig>,
    pub status: WebhookStatus,
    pub retry_policy: RetryPolicy,
    pub disable_after_failures: i32,
    pub consecutive_failures: i32,
    pub metadata: Option<Value>,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
    pub last_triggered_at: Option<OffsetDateTime>,
    pub last_success_at: Option<OffsetDateTime>,
    pub last_failure_at: Option<OffsetDateTime>,
}

/// Why a selector set cannot be persisted (both invariants answer 400 `INVALID_REQUEST`).
pub fn check_invariants(
    owner: &str,
    types: &[EventType],
    categories: &[EventCategory],
) -> Result<(), (String, String)> {
    if types.is_empty() && categories.is_empty() {
        return Err(("event_types".into(), "at least one of event_types or event_categories must be non-empty".into()));
    }
    if owner != SYSTEM_TENANT {
        if let Some(t) = types.iter().find(|t| !t.category().tenant_accessible()) {
            return Err((
                "event_types".into(),
                format!(
                    "{t} is an admin-only event type; a tenant-owned subscription may select only budget.*, reservation.* and tenant.* events"
                ),
            ));
        }
        if let Some(c) = categories.iter().find(|c| !c.tenant_accessible()) {
            return Err((
                "event_categories".into(),
                format!(
                    "{c} is an admin-only category; a tenant-owned subscription may select only budget, reservation and tenant"
                ),
            ));
        }
    }
    Ok(())
}

/// `scope_filter` against an event's scope: absent matches everything; `*` any scoped
/// event; `x/*` strict descendants of `x`; anything else the exact scope. A filter never
/// matches an event without a scope.
pub fn scope_matches(filter: Option<&str>, scope: Option<&str>) -> bool {
    let Some(filter) = filter else { return true };
    let Some(scope) = scope else { return false };
    if filter == "*" {
        return true;
    }
    match filter.strip_suffix("/*") {
        Some(base) => scope.len() > base.len() + 1 && scope.starts_with(base) && scope.as_bytes()[base.len()] == b'/',
        None => scope == filter,
    }
}

impl Subscription {
    /// Whether `event` is for this subscription: owner, selectors, scope, thresholds, and
    /// (defense in depth) never an admin-only event to a tenant-owned subscription.
    pub fn wants(&self, event: &Event) -> bool {
        if self.tenant_id != SYSTEM_TENANT && (self.tenant_id != event.tenant_id || !event.category.tenant_accessible())
        {
            return false;
        }
        let selected = self.event_types.contains(&event.event_type) || self.event_categories.contains(&event.category);
        if !selected || !scope_matches(self.scope_filter.as_deref(), event.scope.as_deref()) {
            return false;
        }
        if event.event_type == EventType::BudgetThresholdCrossed {
            let wanted = self
                .thresholds
                .as_ref()
                .and_then(|t| t.budget_utilization.clone())
                .unwrap_or_else(|| DEFAULT_UTILIZATION_THRESHOLDS.to_vec());
            let crossed = event.data.get("threshold").and_then(Value::as_f64);
            return crossed.is_some_and(|c| wanted.iter().any(|w| (w - c).abs() < 1e-9));
        }
        true
    }
}

/// An HTTP header name as RFC 9110 allows it: one or more token characters.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP header value that can be sent as is: visible characters, spaces and tabs only
/// (no CR, LF, NUL or other control characters).
pub fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_from_the_initial_delay_up_to_the_cap() {
        let p = RetryPolicy::default();
        let delays: Vec<u64> = (1..=6).map(|n| p.delay_ms(n)).collect();
        assert_eq!(delays, vec![1_000, 2_000, 4_000, 8_000, 16_000, 32_000]);
        let capped = RetryPolicy { max_delay_ms: 5_000, ..p };
        assert_eq!(capped.delay_ms(4), 5_000);
    }

    #[test]
    fn numbers_near_the_f64_limits_are_the_unstorable_ones() {
        for v in [f64::MAX, f64::MIN] {
            assert_eq!(unstorable_number(&serde_json::json!({"a": [1, {"b": v}]})), Some(v));
        }
        for v in [1e300, -1e300, 2.225073858507e-311, 0.5, 1e-300] {
            assert_eq!(unstorable_number(&serde_json::json!({"a": v})), None, "{v}");
        }
        assert_eq!(unstorable_number(&serde_json::json!({"a": u64::MAX, "b": i64::MIN})), None);
    }

    #[test]
    fn scope_filters_match_exact_wildcard_and_descendants() {
        assert!(scope_matches(None, None));
        assert!(!scope_matches(Some("*"), None));
        assert!(scope_matches(Some("*"), Some("tenant:a")));
        assert!(scope_matches(Some("tenant:a/*"), Some("tenant:a/workspace:w")));
        assert!(!scope_matches(Some("tenant:a/*"), Some("tenant:a")));
        assert!(!scope_matches(Some("tenant:a/*"), Some("tenant:ab/workspace:w")));
        assert!(scope_matches(Some("tenant:a"), Some("tenant:a")));
    }

    #[test]
    fn tenant_owned_selectors_exclude_admin_only_types_and_categories() {
        assert!(check_invariants("acme", &[], &[]).is_err());
        assert!(check_invariants("acme", &[EventType::ApiKeyCreated], &[]).is_err());
        assert!(check_invariants("acme", &[], &[EventCategory::Webhook]).is_err());
        assert!(check_invariants("acme", &[EventType::BudgetExhausted], &[EventCategory::Tenant]).is_ok());
        assert!(check_invariants(SYSTEM_TENANT, &[EventType::ApiKeyCreated], &[EventCategory::System]).is_ok());
    }
}
