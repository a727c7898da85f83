//! An audit entry: one per admin mutation (and one per object a tenant-close cascade
//! mutates), written in the same transaction as the change.

use serde_json::Value;
use time::OffsetDateTime;

/// Sentinel `tenant_id` for entries not scoped to one tenant (the spec's `__admin__`).
pub const ADMIN_TENANT: &str = "__admin__";

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub log_id: uuid::Uuid,
    pub timestamp: OffsetDateTime,
    pub tenant_id: String,
    pub key_id: Option<String>,
    pub user_agent: Option<String>,
    pub source_ip: Option<String>,
    pub operation: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub status: i32,
    pub error_code: Option<String>,
    /// `actor_type`, `changed_fields`, cascade `event_kind`/`correlation_id`, reasons.
    pub metadata: Option<Value>,
}

impl AuditEntry {
    /// The bytes a chain link hashes: every stored field in canonical JSON, the timestamp as
    /// whole microseconds (the precision Postgres keeps).
    pub fn canonical(&self, seq: i64) -> String {
        let micros = self.timestamp.unix_timestamp_nanos() / 1_000;
        let doc = serde_json::json!({
            "seq": seq,
            "log_id": self.log_id.to_string(),
            "timestamp_us": micros.to_string(),
            "tenant_id": self.tenant_id,
            "key_id": self.key_id,
            "user_agent": self.user_agent,
            "source_ip": self.source_ip,
            "operation": self.operation,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "status": self.status,
            "error_code": self.error_code,
            "metadata": self.metadata,
        });
        crate::canonical::to_string(&doc)
    }

    /// `sha256(prev_hash || canonical(seq))`.
    pub fn link_hash(&self, seq: i64, prev_hash: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(prev_hash);
        h.update(self.canonical(seq).as_bytes());
        h.finalize().to_vec()
    }
}

/// The first place the chain does not hold, as `tollgate audit verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub log_id: Option<uuid::Uuid>,
    pub reason: String,
}

/// What a verification walked and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub entries: u64,
    pub broken: Option<BrokenLink>,
}
