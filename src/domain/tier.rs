//! Tiers: templates a tenant is made from. A tier names its admission class and rate limit
//! (read by the runtime's admission), the tenant settings a new tenant starts with, the budgets
//! a tenant of the tier gets (scopes relative to the tenant) and the policies it starts with.
//! `free`, `dev`, `pro` and `enterprise` are built in; operators define more.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::amount::{Unit, Units};
use super::tenant::{CommitOveragePolicy, RateLimit};

/// A tier's name: `^[a-z0-9][a-z0-9-]*$`, 1..=64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Tier(String);

pub const TIER_LEN_MAX: usize = 64;
/// The tiers every deployment has; their class and rate limit follow `--tier-classes` and
/// `--rate-limits` until an operator patches them.
pub const BUILT_IN: [&str; 4] = ["free", "dev", "pro", "enterprise"];
/// The tier of a tenant created without one.
pub const DEFAULT_TIER: &str = "free";

impl Tier {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > TIER_LEN_MAX {
            return Err(format!("must be 1 to {TIER_LEN_MAX} characters long"));
        }
        let ok =
            raw.bytes().enumerate().all(|(i, b)| b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && b == b'-'));
        if !ok {
            return Err("must match ^[a-z0-9][a-z0-9-]*$".into());
        }
        Ok(Self(raw.to_string()))
    }

    /// A name known to be valid (the built-in names).
    pub fn built_in(name: &'static str) -> Self {
        Self(name.to_string())
    }

    pub fn default_tier() -> Self {
        Self::built_in(DEFAULT_TIER)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_built_in(&self) -> bool {
        BUILT_IN.contains(&self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Tier::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request's priority class at the admission gate, given by its tenant's tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AdmissionClass)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Premium,
    Standard,
    Bulk,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Premium, Class::Standard, Class::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Premium => "premium",
            Class::Standard => "standard",
            Class::Bulk => "bulk",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The class's slot in per-class arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A budget a tier gives its tenants: `scope` is relative to the tenant (`""` is the tenant
/// scope itself, `workspace:default` the tenant's default workspace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetTemplate {
    pub scope: String,
    pub unit: Unit,
    pub allocated: Units,
    pub overdraft_limit: Units,
    pub commit_overage_policy: Option<CommitOveragePolicy>,
}

impl BudgetTemplate {
    /// The absolute scope path of this budget for `tenant`.
    pub fn scope_for(&self, tenant: &str) -> String {
        if self.scope.is_empty() { format!("tenant:{tenant}") } else { format!("tenant:{tenant}/{}", self.scope) }
    }
}

/// The tenant settings a tier gives a tenant created in it (the tenant fields of the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantDefaults {
    pub default_commit_overage_policy: CommitOveragePolicy,
    pub default_reservation_ttl_ms: i64,
    pub max_reservation_ttl_ms: i64,
    pub max_reservation_extensions: i64,
}

/// A tier as the catalogue stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct TierDef {
    pub tier: Tier,
    pub description: Option<String>,
    pub built_in: bool,
    /// Set by the first PATCH of a built-in tier: from then on start-up no longer copies the
    /// flags' class and rate limit into it.
    pub operator_modified: bool,
    pub class: Class,
    /// `None`: no rate limit for this tier.
    pub rate_limit: Option<RateLimit>,
    pub tenant_defaults: TenantDefaults,
    pub default_budgets: Vec<BudgetTemplate>,
    /// Policy objects in the shape of the governance spec's `PolicyCreateRequest` without
    /// `tenant_id`, each with a `scope_pattern` and a `priority`.
    pub default_policies: Vec<Value>,
    pub created_at: time::OffsetDateTime,
    pub updated_at: time::OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_names_outside_the_pattern_are_refused() {
        assert!(Tier::parse("gold-2").is_ok());
        assert!(Tier::parse("").is_err());
        assert!(Tier::parse("-gold").is_err());
        assert!(Tier::parse("Gold").is_err());
        assert!(Tier::parse(&"a".repeat(65)).is_err());
    }
}

/// One budget a provisioning call will create, fixed before anything is written: its absolute
/// scope, its amounts and the ledger id it will carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedBudget {
    pub scope: String,
    pub unit: Unit,
    pub allocated: Units,
    pub overdraft_limit: Units,
    pub commit_overage_policy: Option<CommitOveragePolicy>,
    pub ledger_id: String,
}
