//! The catalogue's read side for the admin lists that have no rules of their own: the event
//! log, the outbox's dead letters, the audit log and its chain check, and store health.
//! Handlers read through here so that nothing above the catalogue holds a store handle.

use super::Catalogue;
use crate::domain::audit::{AuditEntry, ChainReport};
use crate::domain::audit_export::ChainedEntry;
use crate::domain::error::Result;
use crate::domain::event::Event;
use crate::store::StoreResult;
use crate::store::pg::dead_letters::{self, DeadLetter};
use crate::store::pg::page::{Page, PageSpec};
use crate::store::pg::{audit, events};

impl Catalogue {
    pub async fn list_events(&self, filter: &events::Filter, page: &PageSpec) -> Result<Page<Event>> {
        Ok(events::list(self.pg.pool(), filter, page).await?)
    }

    pub async fn get_event(&self, id: &str) -> Result<Option<Event>> {
        Ok(events::get(self.pg.pool(), id).await?)
    }

    /// Outbox entries the drain set aside (all tenants', or `tenant`'s).
    pub async fn list_dead_letters(&self, tenant: Option<&str>, page: &PageSpec) -> Result<Page<DeadLetter>> {
        Ok(dead_letters::list(self.pg.pool(), tenant, page).await?)
    }

    pub async fn list_audit(&self, filter: &audit::Filter, page: &PageSpec) -> Result<Page<AuditEntry>> {
        Ok(audit::list(self.pg.pool(), filter, page).await?)
    }

    /// Walks the audit chain and reports the first break, if any.
    pub async fn verify_audit(&self) -> Result<ChainReport> {
        Ok(audit::verify(self.pg.pool()).await?)
    }

    /// One batch of an audit export: entries matching `filter` after `after_seq`, in chain order.
    pub async fn export_audit(&self, filter: &audit::Filter, after_seq: i64, limit: i64) -> Result<Vec<ChainedEntry>> {
        Ok(audit::export_batch(self.pg.pool(), filter, after_seq, limit).await?)
    }

    /// Every tenant id (the admin budget list across tenants).
    pub async fn tenant_ids(&self) -> Result<Vec<String>> {
        Ok(crate::store::pg::tenants::ids(self.pg.pool()).await?)
    }

    /// One health probe of each store: `(redis, postgres)`, each bounded by `timeout`.
    pub async fn probe_stores(
        &self,
        timeout: std::time::Duration,
    ) -> (Option<StoreResult<()>>, Option<StoreResult<()>>) {
        let (redis, pg) = tokio::join!(
            tokio::time::timeout(timeout, self.redis.ping()),
            tokio::time::timeout(timeout, self.pg.ping())
        );
        (redis.ok(), pg.ok())
    }
}
