//! Tenants: the id newtype and the enums of the `Tenant` schema (plus Tollgate's `tier`).

use serde::{Deserialize, Serialize};

/// A tenant id: `^[a-z0-9-]+$`, 3..64 characters (the admin spec's `Tenant.tenant_id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct TenantId(String);

pub const TENANT_ID_LEN_MIN: usize = 3;
pub const TENANT_ID_LEN_MAX: usize = 64;

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !(TENANT_ID_LEN_MIN..=TENANT_ID_LEN_MAX).contains(&raw.len()) {
            return Err(format!("must be {TENANT_ID_LEN_MIN} to {TENANT_ID_LEN_MAX} characters long"));
        }
        if !raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err("must match ^[a-z0-9-]+$".into());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        TenantId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $wire)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // The OpenAPI description: a string, one of the wire values.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($wire),+]))
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// ACTIVE ↔ SUSPENDED → CLOSED; CLOSED is terminal.
    TenantStatus { Active = "ACTIVE", Suspended = "SUSPENDED", Closed = "CLOSED" }
);

impl TenantStatus {
    /// Whether the lifecycle allows `self → to`. Staying put is allowed (a no-op, or for
    /// CLOSED a re-drive of the cascade); nothing leaves CLOSED.
    pub fn can_become(self, to: TenantStatus) -> bool {
        self == to || self != TenantStatus::Closed
    }
}

/// The commercial tier (a catalogue row: `domain::tier`).
pub use super::tier::Tier;

wire_enum!(
    /// What a commit whose actual exceeds the reservation may do.
    CommitOveragePolicy {
        Reject = "REJECT",
        AllowIfAvailable = "ALLOW_IF_AVAILABLE",
        AllowWithOverdraft = "ALLOW_WITH_OVERDRAFT",
    }
);

wire_enum!(
    /// What happens to a reservation past its TTL and grace.
    ExpiryPolicy {
        AutoRelease = "AUTO_RELEASE",
        ManualCleanup = "MANUAL_CLEANUP",
        GraceOnly = "GRACE_ONLY",
    }
);

wire_enum!(
    /// `Tenant.observe_mode` (governance extension v0.1.26): the default observe mode of the
    /// tenant's reservations. OBSERVE evaluates each one fully, holds nothing and reports the
    /// decision as a `reservation.observed_*` event; DISABLED is the spec's synonym for ENFORCE.
    /// A request's own `observe_mode` overrides it.
    ObserveMode { Disabled = "DISABLED", Observe = "OBSERVE", Enforce = "ENFORCE" }
);

/// Bounds of the tenant TTL settings (admin spec `Tenant`).
pub const RESERVATION_TTL_MS_MIN: i64 = 1_000;
pub const RESERVATION_TTL_MS_MAX: i64 = 86_400_000;
pub const DEFAULT_RESERVATION_TTL_MS: i64 = 60_000;
pub const DEFAULT_MAX_RESERVATION_TTL_MS: i64 = 3_600_000;
pub const DEFAULT_MAX_RESERVATION_EXTENSIONS: i64 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_outside_the_pattern_are_refused() {
        assert!(TenantId::parse("acme-1").is_ok());
        assert!(TenantId::parse("ab").is_err());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse("acme_1").is_err());
        assert!(TenantId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn closed_is_terminal() {
        assert!(TenantStatus::Active.can_become(TenantStatus::Closed));
        assert!(TenantStatus::Suspended.can_become(TenantStatus::Active));
        assert!(!TenantStatus::Closed.can_become(TenantStatus::Active));
        assert!(TenantStatus::Closed.can_become(TenantStatus::Closed));
    }
}

/// A tenant as the catalogue stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub tenant_id: TenantId,
    pub name: String,
    pub status: TenantStatus,
    pub tier: Tier,
    pub parent_tenant_id: Option<String>,
    pub default_commit_overage_policy: CommitOveragePolicy,
    pub default_reservation_ttl_ms: i64,
    pub max_reservation_ttl_ms: i64,
    pub max_reservation_extensions: i64,
    pub reservation_expiry_policy: ExpiryPolicy,
    /// The default observe mode of the tenant's reservations (mirrored into Redis).
    pub observe_mode: ObserveMode,
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    pub created_at: time::OffsetDateTime,
    pub updated_at: time::OffsetDateTime,
    pub suspended_at: Option<time::OffsetDateTime>,
    pub closed_at: Option<time::OffsetDateTime>,
    /// Overrides the tier's admission rate limit for this tenant.
    pub rate_limit: Option<RateLimit>,
}

/// An admission rate limit: sustained requests per second and the burst allowed above it,
/// per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}
