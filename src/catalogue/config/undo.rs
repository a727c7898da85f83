//! The undo plan of an import's Redis writes, and the pass that applies the plans imports left.
//!
//! A plan is committed to `config_import_journal` before the first Redis write and deleted by
//! the import's own transaction, so a plan still there (and not locked by a running import)
//! belongs to an import whose Postgres changes never committed. Undoing it:
//! - tenant mirrors are copied again from Postgres (the mirror is a copy of the row; a tenant
//!   the rollback removed loses its mirror and roster entry);
//! - budgets get back, field by field, the values they had before (`budget_restore.lua`); a
//!   field changed since the import wrote it keeps its newer value.
//!
//! Both are idempotent, so a pass that fails half-way (Redis down again) is simply run again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;
use crate::domain::error::{Error, Result};
use crate::ledger::import::BudgetWrite;
use crate::store::pg::{PgTx, config_journal};

/// Plans applied per recovery pass.
const PLANS_PER_PASS: i64 = 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Undo {
    /// Tenants whose Redis mirror the import writes.
    pub tenants: Vec<String>,
    /// Budget writes per tenant.
    pub budgets: BTreeMap<String, Vec<BudgetWrite>>,
}

impl Undo {
    pub fn to_json(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(Error::internal)
    }
}

impl Catalogue {
    /// Puts Redis back as it was before the import of `undo`.
    async fn apply_undo(&self, undo: &Undo) -> Result<()> {
        for (tenant, writes) in &undo.budgets {
            let kept = self.ledger.restore_budgets(tenant, writes).await?;
            if kept > 0 {
                tracing::warn!(
                    tenant,
                    fields = kept,
                    "undoing an import kept budget fields changed after it wrote them"
                );
            }
        }
        for tenant in &undo.tenants {
            match crate::store::pg::tenants::get(self.pg.pool(), tenant).await? {
                Some(t) => self.redis.mirror_tenant(&t).await?,
                None => self.redis.forget_tenant(tenant).await?,
            }
        }
        Ok(())
    }

    /// Applies the plans of imports that did not commit; `tx` holds the import lock.
    pub(super) async fn recover_with(&self, tx: &mut PgTx) -> Result<usize> {
        let pending = config_journal::pending(tx, PLANS_PER_PASS).await?;
        for (import_id, raw) in &pending {
            let undo: Undo = serde_json::from_value(raw.clone()).map_err(Error::internal)?;
            self.apply_undo(&undo).await?;
            config_journal::delete(self.pg.pool(), import_id).await?;
            tracing::info!(import_id, "undid the Redis writes of an import that did not commit");
        }
        Ok(pending.len())
    }

    /// One recovery pass: applies leftover undo plans unless an import is running (`wait`:
    /// wait for it instead). Returns how many plans were applied.
    pub async fn recover_imports(&self, wait: bool) -> Result<usize> {
        let mut tx = self.pg.begin().await?;
        if wait {
            config_journal::lock(&mut tx).await?;
        } else if !config_journal::try_lock(&mut tx).await? {
            return Ok(0);
        }
        self.recover_with(&mut tx).await
    }
}
