//! The admin plane's budget mutations: create, update, freeze/unfreeze, fund.

use serde_json::Value;

use crate::domain::CommitOveragePolicy;
use crate::domain::amount::{Unit, Units};
use crate::domain::error::{Error, Result};
use crate::domain::period::{BudgetPeriod, boundary_text};

use super::reads::BudgetDoc;
use super::{Correlation, IDEM_RETENTION_MS, Ledger};

#[derive(Debug, Clone)]
pub struct NewBudget {
    pub tenant: String,
    pub scope: String,
    pub unit: Unit,
    pub allocated: Units,
    pub overdraft_limit: Units,
    pub commit_overage_policy: Option<CommitOveragePolicy>,
    pub rollover_policy: String,
    /// The first period (validated by `domain::period::validate`); `None`: the budget has none.
    pub period: Option<BudgetPeriod>,
}

/// The five funding operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FundOp {
    Credit,
    Debit,
    Reset,
    ResetSpent,
    RepayDebt,
}

impl FundOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "CREDIT",
            Self::Debit => "DEBIT",
            Self::Reset => "RESET",
            Self::ResetSpent => "RESET_SPENT",
            Self::RepayDebt => "REPAY_DEBT",
        }
    }
}

/// A budget's numbers before or after a funding operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundState {
    pub allocated: i64,
    pub remaining: i64,
    pub debt: i64,
    pub spent: i64,
}

#[derive(Debug, Clone)]
pub struct FundOutcome {
    pub operation: String,
    pub previous: FundState,
    pub new: FundState,
    /// When the operation was applied (the original time on a replay).
    pub applied_at_ms: i64,
    pub replay: bool,
}

fn fund_state(v: Option<&Value>) -> Result<FundState> {
    let int = |k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| Error::internal(format!("fund reply {k}")))
    };
    Ok(FundState {
        allocated: int("allocated")?,
        remaining: int("remaining")?,
        debt: int("debt")?,
        spent: int("spent")?,
    })
}

impl Ledger {
    pub async fn create_budget(&self, b: &NewBudget, ledger_id: &str, corr: &Correlation) -> Result<BudgetDoc> {
        let k = self.keys();
        let t = b.tenant.as_str();
        let keys = vec![k.tenant(t), k.ledger(t), k.budget_index(t), k.outbox(t)];
        let p = b.period.as_ref();
        let text = |ms: Option<i64>| ms.map(boundary_text).unwrap_or_default();
        let num = |ms: Option<i64>| ms.map(|v| v.to_string()).unwrap_or_default();
        let (start, end) = (p.map(|p| p.start_ms), p.map(|p| p.end_ms));
        let args = vec![
            b.scope.clone(),
            b.unit.as_str().to_string(),
            b.allocated.to_string(),
            b.overdraft_limit.to_string(),
            b.commit_overage_policy.map(|p| p.as_str().to_string()).unwrap_or_default(),
            b.rollover_policy.clone(),
            text(start),
            text(end),
            ledger_id.to_string(),
            corr.request_id.clone(),
            corr.trace_id.clone(),
            num(start),
            num(end),
            p.map(|p| p.length.stored()).unwrap_or_default(),
        ];
        let reply = self.run("budget_create", &self.scripts.budget_create, keys, args).await?;
        BudgetDoc::from_json(t, &reply.body)
    }

    pub async fn update_budget(
        &self,
        tenant: &str,
        scope: &str,
        unit: Unit,
        overdraft_limit: Option<Units>,
        policy: Option<CommitOveragePolicy>,
        corr: &Correlation,
    ) -> Result<BudgetDoc> {
        let k = self.keys();
        let keys = vec![k.tenant(tenant), k.ledger(tenant), k.outbox(tenant)];
        let args = vec![
            scope.to_string(),
            unit.as_str().to_string(),
            overdraft_limit.map(|v| v.to_string()).unwrap_or_default(),
            policy.map(|p| p.as_str().to_string()).unwrap_or_default(),
            corr.request_id.clone(),
            corr.trace_id.clone(),
        ];
        let reply = self.run("budget_update", &self.scripts.budget_update, keys, args).await?;
        BudgetDoc::from_json(tenant, &reply.body)
    }

    /// Freezes (`freeze = true`) or unfreezes a budget; already in that state is a 409.
    pub async fn set_budget_status(
        &self,
        tenant: &str,
        scope: &str,
        unit: Unit,
        freeze: bool,
        reason: &str,
        corr: &Correlation,
    ) -> Result<BudgetDoc> {
        let k = self.keys();
        let keys = vec![k.tenant(tenant), k.ledger(tenant), k.outbox(tenant)];
        let target = if freeze { "FROZEN" } else { "ACTIVE" };
        let args = vec![
            scope.to_string(),
            unit.as_str().to_string(),
            target.to_string(),
            reason.to_string(),
            corr.request_id.clone(),
            corr.trace_id.clone(),
        ];
        let reply = self.run("budget_status", &self.scripts.budget_status, keys, args).await?;
        BudgetDoc::from_json(tenant, &reply.body)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn fund_budget(
        &self,
        tenant: &str,
        scope: &str,
        unit: Unit,
        op: FundOp,
        amount: Units,
        spent: Option<Units>,
        reason: &str,
        idempotency: Option<(&str, &str)>,
        corr: &Correlation,
        by_tenant_key: bool,
    ) -> Result<FundOutcome> {
        let k = self.keys();
        let (key, hash) = idempotency.unwrap_or(("", ""));
        let keys = vec![k.tenant(tenant), k.ledger(tenant), k.idem(tenant, "fund", key), k.outbox(tenant)];
        let args = vec![
            hash.to_string(),
            scope.to_string(),
            unit.as_str().to_string(),
            op.as_str().to_string(),
            amount.to_string(),
            spent.map(|s| s.to_string()).unwrap_or_default(),
            reason.to_string(),
            corr.request_id.clone(),
            corr.trace_id.clone(),
            IDEM_RETENTION_MS.to_string(),
            if by_tenant_key { "1" } else { "0" }.to_string(),
            corr.correlation_id.clone().unwrap_or_default(),
        ];
        let reply = self.run("budget_fund", &self.scripts.budget_fund, keys, args).await?;
        Ok(FundOutcome {
            operation: reply.str("operation")?.to_string(),
            previous: fund_state(reply.body.get("previous"))?,
            new: fund_state(reply.body.get("new"))?,
            applied_at_ms: reply.int("ts")?,
            replay: reply.replay,
        })
    }
}
