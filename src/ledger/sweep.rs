//! One sweep of a tenant's due reservations: read the ids whose deadline
//! (`expires_at_ms + grace_ms`) has passed, then expire them in one script call that
//! re-checks each, so sweepers on every instance can run at once.

use crate::domain::error::Result;

use super::{FINALIZED_RETENTION_MS, Ledger};

/// Reservations expired per script call (bounds how long one call holds Redis).
pub const SWEEP_BATCH: usize = 100;

impl Ledger {
    /// The tenants the sweeper visits: every tenant that is not CLOSED, read from Redis, so
    /// expiry keeps returning held budget through a Postgres outage.
    pub async fn sweepable_tenants(&self) -> Result<Vec<String>> {
        Ok(self.redis.roster().await?)
    }

    /// Expires up to one batch of the tenant's due reservations; returns how many it
    /// expired and whether a full batch was due (more may be waiting).
    pub async fn sweep_tenant(&self, tenant: &str, now_ms: i64) -> Result<(u64, bool)> {
        let k = self.keys();
        let ids = self.redis.due_ids(tenant, now_ms, SWEEP_BATCH).await?;
        if ids.is_empty() {
            return Ok((0, false));
        }
        let full = ids.len() == SWEEP_BATCH;
        let mut keys = vec![k.ledger(tenant), k.active(tenant), k.outbox(tenant)];
        keys.extend(ids.iter().map(|id| k.reservation(tenant, id)));
        let mut args = vec![FINALIZED_RETENTION_MS.to_string()];
        args.extend(ids);
        let expired: i64 = self.redis.eval(&self.scripts.expire, &keys, &args).await?;
        Ok((expired.unsigned_abs(), full))
    }

    /// Number of reservations past their deadline (the expiry backlog), for one tenant.
    pub async fn due_count(&self, tenant: &str, now_ms: i64) -> Result<u64> {
        Ok(self.redis.due_count(tenant, now_ms).await?)
    }
}
