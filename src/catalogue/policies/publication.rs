//! Publishing a tenant's policy set to Redis, where the runtime enforces it without Postgres
//! (`ledger::policies`). Postgres and Redis share no transaction, so publication rolls
//! forward: a change commits, then its tenant's whole set is published before the admin gets
//! an answer (a Redis failure there is 503: the change is committed and not yet in force).
//! `published_generation` records what reached Redis; a recovery pass on every instance (at
//! start-up, then every few seconds, rows leased with `SKIP LOCKED`) publishes whatever lags,
//! and the next change of the tenant publishes everything anyway. Redis only ever moves a
//! tenant's generation forward, so racing publications converge on the newest.

use super::{Catalogue, POLICIES_PER_TENANT_MAX};
use crate::domain::error::Result;
use crate::store::pg::{self, policy_publication as publication};

/// Tenants one recovery pass publishes at most (each is one Redis call).
const RECOVERY_BATCH: i64 = 50;

impl Catalogue {
    /// Publishes the tenant's committed set; nothing to do for a tenant that never had a policy.
    pub async fn publish_policies(&self, tenant: &str) -> Result<()> {
        let mut tx = self.pg.begin().await?;
        let (generation, policies) = publication::snapshot(&mut tx, tenant, POLICIES_PER_TENANT_MAX).await?;
        if generation == 0 {
            return Ok(());
        }
        self.ledger.publish_policies(tenant, generation, &policies).await?;
        publication::mark_published_tx(&mut tx, tenant, generation).await?;
        pg::commit(tx).await?;
        Ok(())
    }

    /// One recovery pass: publishes up to [`RECOVERY_BATCH`] lagging tenants; returns how many.
    pub async fn recover_policy_publications(&self) -> Result<usize> {
        let mut tx = self.pg.begin().await?;
        let tenants = publication::lagging(&mut tx, RECOVERY_BATCH).await?;
        for tenant in &tenants {
            let (generation, policies) = publication::snapshot(&mut tx, tenant, POLICIES_PER_TENANT_MAX).await?;
            self.ledger.publish_policies(tenant, generation, &policies).await?;
            publication::mark_published_tx(&mut tx, tenant, generation).await?;
        }
        pg::commit(tx).await?;
        Ok(tenants.len())
    }

    /// Marks every set unpublished, so the recovery passes republish them all: run at start-up,
    /// because a Redis that lost its data (restored, replaced) would otherwise never learn the
    /// sets again. Publication is idempotent, so republishing what Redis holds costs one call.
    pub async fn republish_all_policies(&self) -> Result<()> {
        Ok(publication::reset_published(self.pg.pool()).await?)
    }
}
