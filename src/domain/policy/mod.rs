//! Policies: caps, TTL and rate rules, action-kind allow/deny lists and quotas for the scopes a
//! `scope_pattern` matches (governance admin v0.1.25 `Policy` with the v0.1.26 extensions).
//! The types carry the spec's field names: the catalogue stores [`Rules`] as JSON and the admin
//! API serves them. `check` validates a whole rule set, `eval` decides a request against a
//! tenant's policies. Nothing here does IO.

pub mod check;
pub mod eval;
pub mod kinds;
pub mod pattern;
pub mod registry;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::CommitOveragePolicy;
use crate::domain::tenant::wire_enum;

pub use check::check_rules;

wire_enum!(
    /// ACTIVE policies are evaluated; DISABLED ones are kept but never match.
    PolicyStatus { Active = "ACTIVE", Disabled = "DISABLED" }
);

wire_enum!(
    /// The spec's `ActionQuotaWindow` (its wire names all start with `per_`).
    #[allow(clippy::enum_variant_names)]
    QuotaWindow {
        Run = "per_run",
        Minute = "per_minute_tumbling",
        Hour = "per_hour_tumbling",
        Day = "per_day_tumbling",
        TenantDay = "per_tenant_per_day",
    }
);

wire_enum!(
    /// The spec's `ActionRiskClass`, in ascending risk.
    RiskClass {
        ReadOnly = "read_only",
        LocalMutation = "local_mutation",
        SideEffect = "side_effect",
        ExternalSideEffect = "external_side_effect",
        HighRisk = "high_risk",
    }
);

/// Soft-landing constraints (the protocol's `Caps`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps_remaining: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_allowlist: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_denylist: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_ms: Option<i64>,
}

impl Caps {
    pub fn is_empty(&self) -> bool {
        *self == Caps::default()
    }
}

/// The spec's `ReservationTtlOverride`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtlOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_extensions: Option<i64>,
}

/// The spec's `RateLimits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reservations_per_minute: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_commits_per_minute: Option<i64>,
}

/// The spec's `ActionQuota`: at most `max_calls` reservations of one kind per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionQuota {
    pub action_kind: String,
    pub max_calls: i64,
    pub window: QuotaWindow,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_allowlist: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipient_domain_allowlist: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_type_allowlist: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_run_counter_ttl_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_pct: Option<f64>,
}

/// The spec's `RiskClassQuota`: at most `max_calls` reservations of a risk class per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskClassQuota {
    pub risk_class: RiskClass,
    pub max_calls: i64,
    pub window: QuotaWindow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_run_counter_ttl_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_pct: Option<f64>,
}

/// Every mutable field of a policy: what a version stores and a rollback restores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub scope_pattern: String,
    pub priority: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Caps>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_overage_policy: Option<CommitOveragePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_ttl_override: Option<TtlOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
    pub status: PolicyStatus,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub effective_from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub effective_until: Option<OffsetDateTime>,
    #[serde(default)]
    pub action_quotas: Vec<ActionQuota>,
    #[serde(default)]
    pub risk_class_quotas: Vec<RiskClassQuota>,
    #[serde(default)]
    pub allowed_action_kinds: Vec<String>,
    #[serde(default)]
    pub denied_action_kinds: Vec<String>,
}

impl Rules {
    /// Whether any quota rule is configured (the `has_action_quotas` filter).
    pub fn has_quotas(&self) -> bool {
        !self.action_quotas.is_empty() || !self.risk_class_quotas.is_empty()
    }

    /// Every action kind the quotas and the allow/deny lists name (`references_action_kind`).
    pub fn action_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .action_quotas
            .iter()
            .map(|q| q.action_kind.clone())
            .chain(self.allowed_action_kinds.iter().cloned())
            .chain(self.denied_action_kinds.iter().cloned())
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// Whether the policy is in force at `at`: ACTIVE, and inside its effective window.
    pub fn in_force(&self, at: OffsetDateTime) -> bool {
        self.status == PolicyStatus::Active
            && self.effective_from.is_none_or(|from| from <= at)
            && self.effective_until.is_none_or(|until| at < until)
    }
}

/// A stored policy: its identity, owner, rules and version.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub policy_id: String,
    pub tenant_id: String,
    pub rules: Rules,
    /// The version its current rules were stored as (1 at creation).
    pub version: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The fields of `POST /v1/admin/policies` (`PolicyCreateRequest` with the v0.1.26 fields),
/// less `tenant_id`, which the API resolves.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRules {
    pub name: Option<String>,
    pub description: Option<String>,
    pub scope_pattern: Option<String>,
    pub priority: Option<i64>,
    pub caps: Option<Caps>,
    pub commit_overage_policy: Option<CommitOveragePolicy>,
    pub reservation_ttl_override: Option<TtlOverride>,
    pub rate_limits: Option<RateLimits>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub effective_from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub effective_until: Option<OffsetDateTime>,
    pub action_quotas: Option<Vec<ActionQuota>>,
    pub risk_class_quotas: Option<Vec<RiskClassQuota>>,
    pub allowed_action_kinds: Option<Vec<String>>,
    pub denied_action_kinds: Option<Vec<String>>,
}

impl NewRules {
    /// The rules of a new policy (ACTIVE, priority 0 and empty lists unless given); `name` and
    /// `scope_pattern` are required.
    pub fn into_rules(self) -> crate::domain::error::Result<Rules> {
        use crate::domain::error::Error;
        Ok(Rules {
            name: self.name.ok_or_else(|| Error::invalid_field("name", "is required"))?,
            scope_pattern: self.scope_pattern.ok_or_else(|| Error::invalid_field("scope_pattern", "is required"))?,
            description: self.description,
            priority: self.priority.unwrap_or(0),
            caps: self.caps,
            commit_overage_policy: self.commit_overage_policy,
            reservation_ttl_override: self.reservation_ttl_override,
            rate_limits: self.rate_limits,
            status: PolicyStatus::Active,
            effective_from: self.effective_from,
            effective_until: self.effective_until,
            action_quotas: self.action_quotas.unwrap_or_default(),
            risk_class_quotas: self.risk_class_quotas.unwrap_or_default(),
            allowed_action_kinds: self.allowed_action_kinds.unwrap_or_default(),
            denied_action_kinds: self.denied_action_kinds.unwrap_or_default(),
        })
    }
}

/// The body of `PATCH /v1/admin/policies/{policy_id}`: absent keeps, present replaces
/// (lists whole; `[]` clears).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub priority: Option<i64>,
    pub caps: Option<Caps>,
    pub commit_overage_policy: Option<CommitOveragePolicy>,
    pub reservation_ttl_override: Option<TtlOverride>,
    pub rate_limits: Option<RateLimits>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub effective_from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub effective_until: Option<OffsetDateTime>,
    pub status: Option<PolicyStatus>,
    pub action_quotas: Option<Vec<ActionQuota>>,
    pub risk_class_quotas: Option<Vec<RiskClassQuota>>,
    pub allowed_action_kinds: Option<Vec<String>>,
    pub denied_action_kinds: Option<Vec<String>>,
}

impl RulesPatch {
    /// Applies the patch to `rules`; returns the names of the fields whose value changed.
    pub fn apply(&self, rules: &mut Rules) -> Vec<&'static str> {
        let mut changed = Vec::new();
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = &self.$field
                    && rules.$field != *v
                {
                    changed.push(stringify!($field));
                    rules.$field = v.clone();
                }
            };
            (opt $field:ident) => {
                if let Some(v) = &self.$field
                    && rules.$field.as_ref() != Some(v)
                {
                    changed.push(stringify!($field));
                    rules.$field = Some(v.clone());
                }
            };
        }
        set!(name);
        set!(opt description);
        set!(priority);
        set!(opt caps);
        set!(opt commit_overage_policy);
        set!(opt reservation_ttl_override);
        set!(opt rate_limits);
        set!(opt effective_from);
        set!(opt effective_until);
        set!(status);
        set!(action_quotas);
        set!(risk_class_quotas);
        set!(allowed_action_kinds);
        set!(denied_action_kinds);
        changed
    }
}

/// The names of the fields in which two rule sets differ (a rollback's `changed_fields`).
pub fn differences(a: &Rules, b: &Rules) -> Vec<&'static str> {
    let patch = RulesPatch {
        name: Some(b.name.clone()),
        description: b.description.clone(),
        priority: Some(b.priority),
        caps: b.caps.clone(),
        commit_overage_policy: b.commit_overage_policy,
        reservation_ttl_override: b.reservation_ttl_override.clone(),
        rate_limits: b.rate_limits.clone(),
        effective_from: b.effective_from,
        effective_until: b.effective_until,
        status: Some(b.status),
        action_quotas: Some(b.action_quotas.clone()),
        risk_class_quotas: Some(b.risk_class_quotas.clone()),
        allowed_action_kinds: Some(b.allowed_action_kinds.clone()),
        denied_action_kinds: Some(b.denied_action_kinds.clone()),
    };
    let mut copy = a.clone();
    let mut changed = patch.apply(&mut copy);
    // Optional fields `b` leaves unset count when `a` sets them.
    macro_rules! unset {
        ($($field:ident),*) => {$(
            if b.$field.is_none() && a.$field.is_some() {
                changed.push(stringify!($field));
            }
        )*};
    }
    unset!(
        description,
        caps,
        commit_overage_policy,
        reservation_ttl_override,
        rate_limits,
        effective_from,
        effective_until
    );
    if a.scope_pattern != b.scope_pattern {
        changed.push("scope_pattern");
    }
    changed
}
