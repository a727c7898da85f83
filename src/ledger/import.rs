//! The budgets a configuration import writes: their stored fields as planning reads them, the
//! compare-and-set write (`budget_import.lua`) and its undo (`budget_restore.lua`). The
//! write emits no event of its own (the import records its events in its Postgres
//! transaction), only the `budget.period_rolled` of the rolls it owes first.

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

/// A budget's stored fields by name (those of a budget document), as the reads show them:
/// rolled into the current period. `None` when absent (an empty field reads the same).
pub type RawBudget = BTreeMap<String, Option<String>>;

impl Ledger {
    /// The fields of the tenant's budgets `members` (`<scope>|<unit>`), in order, rolled into
    /// their current period in memory (`budget_read.lua`): what an export of them shows, and
    /// what `budget_import.lua` finds once it has made the same roll.
    pub async fn raw_budgets(&self, tenant: &str, members: &[String]) -> Result<Vec<RawBudget>> {
        let pairs: Vec<(&str, &str)> = members.iter().map(|m| m.rsplit_once('|').unwrap_or((m, ""))).collect();
        let docs = self.rolled_docs(tenant, &pairs).await?;
        Ok(docs
            .into_iter()
            .map(|doc| {
                DOC_FIELDS
                    .iter()
                    .map(|f| {
                        let v = doc.get(*f).and_then(serde_json::Value::as_str).filter(|v| !v.is_empty());
                        (f.to_string(), v.map(String::from))
                    })
                    .collect()
            })
            .collect())
    }

    /// Every `<scope>|<unit>` in the tenant's budget index.
    pub async fn budget_index(&self, tenant: &str) -> Result<Vec<String>> {
        Ok(self.redis.budget_index_members(tenant, super::reads::BUDGETS_SCAN_MAX).await?)
    }

    /// Writes `writes` in one script call, refusing all of them (409) if any field no longer
    /// holds its planned value (after rolling the existing budgets, as planning read them).
    pub async fn import_budgets(&self, tenant: &str, writes: &[BudgetWrite]) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let k = self.keys();
        let keys = vec![k.ledger(tenant), k.budget_index(tenant), k.outbox(tenant)];
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
