//! API keys as the catalogue stores them. The secret is never part of a record: only its
//! keyed digest is stored, and only `auth::secret` ever sees the secret.

use serde_json::Value;
use time::OffsetDateTime;

use super::Permission;
use super::tenant::{TenantId, wire_enum};
use serde::{Deserialize, Serialize};

wire_enum!(
    /// The wire status. EXPIRED is derived from `expires_at`; only ACTIVE and REVOKED are stored.
    KeyStatus { Active = "ACTIVE", Revoked = "REVOKED", Expired = "EXPIRED" }
);

/// Limits of the `ApiKey` schema.
pub const NAME_LEN_MAX: usize = 256;
pub const REVOKED_REASON_LEN_MAX: usize = 512;
/// Bounds what one key can carry, so a cached key stays small.
pub const SCOPE_FILTER_ENTRIES_MAX: usize = 64;
pub const SCOPE_FILTER_ENTRY_LEN_MAX: usize = 256;
/// A key's default lifetime when `expires_at` is not given (the spec recommends 90 days).
pub const DEFAULT_LIFETIME: time::Duration = time::Duration::days(90);

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub key_id: String,
    pub tenant_id: TenantId,
    pub key_prefix: String,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<Permission>,
    pub scope_filter: Vec<String>,
    /// ACTIVE or REVOKED as stored; see [`ApiKey::status_at`].
    pub stored_status: KeyStatus,
    pub metadata: Option<Value>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
}

impl ApiKey {
    /// The status a client sees at `now`: a stored ACTIVE key past `expires_at` is EXPIRED.
    pub fn status_at(&self, now: OffsetDateTime) -> KeyStatus {
        match self.stored_status {
            KeyStatus::Active if now >= self.expires_at => KeyStatus::Expired,
            status => status,
        }
    }
}
