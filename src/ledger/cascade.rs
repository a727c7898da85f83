//! The ledger half of a tenant close: release every ACTIVE reservation (each exactly once)
//! in bounded batches, then close every budget. Safe to re-run: the script only touches what
//! is still open, and refuses to run unless the tenant's mirror already says CLOSED.

use crate::domain::error::Result;

use super::{Correlation, FINALIZED_RETENTION_MS, Ledger};

/// Reservations released per script call, so one call never blocks Redis for long.
const CASCADE_BATCH: usize = 200;
/// Batches one close runs at most before giving up (a re-close finishes the rest).
const CASCADE_BATCHES_MAX: usize = 10_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CascadeReport {
    pub reservations_released: u64,
    pub budgets_closed: u64,
}

impl Ledger {
    pub async fn close_tenant_ledger(&self, tenant: &str, corr: &Correlation) -> Result<CascadeReport> {
        let k = self.keys();
        let mut report = CascadeReport::default();
        for _ in 0..CASCADE_BATCHES_MAX {
            let ids = self.redis.active_ids(tenant, CASCADE_BATCH).await?;
            let last = ids.is_empty();
            let mut keys =
                vec![k.tenant(tenant), k.ledger(tenant), k.active(tenant), k.budget_index(tenant), k.outbox(tenant)];
            keys.extend(ids.iter().map(|id| k.reservation(tenant, id)));
            let mut args = vec![
                FINALIZED_RETENTION_MS.to_string(),
                if last { "1" } else { "0" }.to_string(),
                corr.request_id.clone(),
                corr.trace_id.clone(),
            ];
            args.extend(ids);
            let reply = self.run("cascade", &self.scripts.cascade, keys, args).await?;
            report.reservations_released += reply.int("released")?.unsigned_abs();
            report.budgets_closed += reply.int("closed")?.unsigned_abs();
            if last {
                break;
            }
        }
        Ok(report)
    }
}
