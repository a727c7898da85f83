//! One sweep of a tenant's due reservations: read the ids whose deadline
//! (`expires_at_ms + grace_ms`) has passed, then expire them in one script call that
//! re-checks each, so sweepers on every instance can run at once. The tenants to visit come
//! from the due index (`signals`), so a tenant with nothing to expire costs nothing.

use crate::domain::error::Result;

use super::{FINALIZED_RETENTION_MS, Ledger};

/// Reservations expired per script call (bounds how long one call holds Redis).
pub const SWEEP_BATCH: usize = 100;

impl Ledger {
    /// Expires up to one batch of the tenant's due reservations; returns how many it
    /// expired and whether a full batch was due (more may be waiting).
    pub async fn sweep_tenant(&self, tenant: &str, now_ms: i64) -> Result<(u64, bool)> {
        let k = self.keys();
        // With nothing due (a stale due time) the call only brings the due time up to date.
        let ids = self.redis.due_ids(tenant, now_ms, SWEEP_BATCH).await?;
        let full = ids.len() == SWEEP_BATCH;
        let mut keys = vec![k.ledger(tenant), k.active(tenant), k.outbox(tenant), k.tenant(tenant)];
        keys.extend(ids.iter().map(|id| k.reservation(tenant, id)));
        let mut args = vec![FINALIZED_RETENTION_MS.to_string()];
        args.extend(ids);
        let expired: i64 = self.eval(&self.scripts.expire, keys, &args).await?;
        Ok((expired.unsigned_abs(), full))
    }

    /// Number of reservations past their deadline (the expiry backlog), for one tenant.
    pub async fn due_count(&self, tenant: &str, now_ms: i64) -> Result<u64> {
        Ok(self.redis.due_count(tenant, now_ms).await?)
    }
}
