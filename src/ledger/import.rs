//! The budgets a configuration import writes: their stored fields as planning reads them, the
//! compare-and-set write (`budget_import.lua`) and its undo (`budget_restore.lua`). The
//! write emits no outbox event: the import records its events in its Postgres transaction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Ledger;
use super::reads::DOC_FIELDS;
use crate::domain::error::Result;

/// One budget's write: `m` is `<scope>|<unit>`; `before` holds the value each field of
/// `after` had when the import was planned (`None`: absent). The undo plan is the same value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetWrite {
    pub m: String,
    pub before: BTreeMap<String, Option<String>>,
    pub after: BTreeMap<String, String>,
}

/// A budget's stored fields by name (the 14 of a budget document); `None` when absent.
pub type RawBudget = BTreeMap<String, Option<String>>;

impl Ledger {
    /// The stored fields of the tenant's budgets `members` (`<scope>|<unit>`), in order.
    pub async fn raw_budgets(&self, tenant: &str, members: &[String]) -> Result<Vec<RawBudget>> {
        let mut out = Vec::with_capacity(members.len());
        for chunk in members.chunks(super::reads::READ_BATCH) {
            let lists: Vec<Vec<String>> =
                chunk.iter().map(|m| DOC_FIELDS.iter().map(|f| format!("{m}|{f}")).collect()).collect();
            for values in self.redis.budgets_values(tenant, &lists).await? {
                out.push(DOC_FIELDS.iter().map(|f| f.to_string()).zip(values).collect());
            }
        }
        Ok(out)
    }

    /// Every `<scope>|<unit>` in the tenant's budget index.
    pub async fn budget_index(&self, tenant: &str) -> Result<Vec<String>> {
        Ok(self.redis.budget_index_members(tenant, super::reads::BUDGETS_SCAN_MAX).await?)
    }

    /// Writes `writes` in one script call, refusing all of them (409) if any field no longer
    /// holds its planned value.
    pub async fn import_budgets(&self, tenant: &str, writes: &[BudgetWrite]) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let k = self.keys();
        let keys = vec![k.ledger(tenant), k.budget_index(tenant)];
        let args = vec![serde_json::to_string(writes).map_err(crate::domain::error::Error::internal)?];
        self.run("budget_import", &self.scripts.budget_import, keys, args).await.map(|_| ())
    }

    /// Undoes [`Ledger::import_budgets`]; returns how many fields kept a newer value.
    pub async fn restore_budgets(&self, tenant: &str, writes: &[BudgetWrite]) -> Result<i64> {
        if writes.is_empty() {
            return Ok(0);
        }
        let k = self.keys();
        let keys = vec![k.ledger(tenant), k.budget_index(tenant)];
        let args = vec![serde_json::to_string(writes).map_err(crate::domain::error::Error::internal)?];
        let reply = self.run("budget_restore", &self.scripts.budget_restore, keys, args).await?;
        reply.int("kept")
    }
}
