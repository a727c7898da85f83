//! The work signals (`lua/lib.lua`, `store/redis/keys.rs`): which tenants have events waiting
//! in their outbox, and when each next has a reservation to expire. The scripts that append
//! events or hold reservations keep them, so background work reads only these and costs
//! nothing for a tenant with nothing to do.

use crate::domain::error::Result;

use super::Ledger;

/// Members read from one signal key per pass; the rest wait for the next pass.
pub const SIGNAL_BATCH: usize = 1_000;

impl Ledger {
    /// The `(dirty, due)` key pairs to read: one on a single Redis; on a cluster one per slot
    /// that holds a tenant (from the roster).
    async fn signal_pairs(&self) -> Result<Vec<(String, String)>> {
        let k = self.keys();
        if !k.is_clustered() {
            return Ok(k.signal_pairs([]));
        }
        let roster = self.redis.roster().await?;
        Ok(k.signal_pairs(roster.iter().map(String::as_str)))
    }

    /// Tenants with a reservation whose deadline is at or before `now_ms` (possibly a stale
    /// earlier deadline, which the next sweep of the tenant corrects).
    pub async fn due_tenants(&self, now_ms: i64) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (_, due) in self.signal_pairs().await? {
            let members = self.redis.due_members(&due, now_ms, SIGNAL_BATCH).await?;
            out.extend(members.iter().filter_map(|m| self.keys().tenant_of(m, "active")).map(String::from));
        }
        Ok(out)
    }

    /// Tenants whose outbox may hold events not yet drained.
    pub async fn dirty_tenants(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (dirty, _) in self.signal_pairs().await? {
            let members = self.redis.dirty_members(&dirty, SIGNAL_BATCH).await?;
            out.extend(members.iter().filter_map(|m| self.keys().tenant_of(m, "outbox")).map(String::from));
        }
        Ok(out)
    }

    /// After a drain pass: the tenant leaves the dirty set if its stream is empty. Returns
    /// whether it did.
    pub async fn settle_dirty(&self, tenant: &str) -> Result<bool> {
        self.signal(tenant, "drained").await
    }

    /// Sets every tenant's signals from its keys, for data written before the signals existed.
    /// Runs once per deployment: a marker records that it finished.
    pub async fn backfill_signals(&self) -> Result<usize> {
        if self.redis.signals_marked().await? {
            return Ok(0);
        }
        let roster = self.redis.roster().await?;
        for tenant in &roster {
            self.signal(tenant, "refresh").await?;
        }
        self.redis.mark_signals().await?;
        Ok(roster.len())
    }

    async fn signal(&self, tenant: &str, what: &str) -> Result<bool> {
        let k = self.keys();
        let keys = vec![k.outbox(tenant), k.active(tenant)];
        let done: i64 = self.eval(&self.scripts.signals, keys, &[what.to_string()]).await?;
        Ok(done == 1)
    }
}
