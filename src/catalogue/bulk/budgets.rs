//! `bulkActionBudgets`: one funding operation (the five of `fundBudget`) applied to every
//! budget of one tenant that a filter matches. Each row is the ledger's fund script, which
//! changes the budget and appends its `budget.*` event (carrying the bulk correlation id) in
//! one step; the invocation's audit entry is written in the transaction opened before the
//! first row and committed after the last, as `Catalogue::audited` does for one budget.
//!
//! Each row runs under its own idempotency key, derived from the bulk request, so a retry of
//! an invocation that was cut short (a crash, a Redis outage mid-way) replays the rows already
//! applied instead of applying them twice.

use serde_json::{Value, json};

use super::{Bulk, RowOutcome};
use crate::catalogue::Catalogue;
use crate::catalogue::audit::Actor;
use crate::domain::Correlation;
use crate::domain::amount::{Unit, Units};
use crate::domain::error::{ErrorCode, Result};
use crate::ledger::budgets::FundOp;
use crate::ledger::reads::BudgetDoc;

/// The operation of a budget bulk request, validated.
#[derive(Debug, Clone)]
pub struct BulkFunding {
    /// The tenant of the filter: every matched budget is its.
    pub tenant: String,
    pub op: FundOp,
    pub amount: Units,
    /// The amount's unit; a budget in another unit fails its row.
    pub unit: Unit,
    /// The new `spent`, for `RESET_SPENT` only.
    pub spent: Option<Units>,
    pub reason: String,
}

/// The row outcome decided from the budget as matched, before its script runs: another unit
/// or a CLOSED budget fails; an operation that would change nothing is skipped.
fn precheck(d: &BudgetDoc, f: &BulkFunding) -> Option<RowOutcome> {
    let b = &d.balance;
    if b.unit != f.unit {
        let why = format!("the budget is in {}, the amount in {}", b.unit, f.unit);
        return Some(RowOutcome::failed("INVALID_TRANSITION", why));
    }
    if d.status == "CLOSED" {
        return Some(RowOutcome::failed("INVALID_TRANSITION", "the budget is closed"));
    }
    let amount = f.amount.get();
    let no_op = match f.op {
        FundOp::RepayDebt => b.debt == 0,
        FundOp::Reset => b.allocated == amount,
        FundOp::ResetSpent => b.allocated == amount && b.spent == f.spent.map_or(0, Units::get),
        FundOp::Credit | FundOp::Debit => amount == 0,
    };
    no_op.then_some(RowOutcome::Skipped("ALREADY_IN_TARGET_STATE"))
}

impl Catalogue {
    /// Applies `f` to every budget in `matched` (see the module header).
    pub async fn bulk_budgets(
        &self,
        actor: &Actor,
        mut bulk: Bulk,
        matched: Vec<BudgetDoc>,
        f: BulkFunding,
    ) -> Result<Value> {
        bulk.admit(matched.len())?;
        let correlation = bulk.correlation_id("budget_bulk_action", actor);
        let mut ctx = actor.ctx.clone();
        ctx.correlation_id = Some(correlation.clone());
        // The request hash in the row keys: the same key reused for another request after the
        // replay window applies afresh rather than colliding with the first request's rows.
        let hash = bulk.req.request_hash.clone();
        let key_base = format!("bulk:{}:{}", hash.get(..16).unwrap_or(&hash), bulk.req.idempotency_key);
        for d in &matched {
            let outcome = match precheck(d, &f) {
                Some(outcome) => outcome,
                None => self.fund_row(d, &f, (&format!("{key_base}:{}", d.ledger_id), &hash), &ctx).await?,
            };
            bulk.record(&d.ledger_id, outcome);
        }
        let extra = json!({
            "reason": f.reason,
            "amount": { "unit": f.unit, "amount": f.amount.get() },
            "spent": f.spent.map(|s| json!({ "unit": f.unit, "amount": s.get() })),
        });
        let entry = bulk.entry(actor, &f.tenant, "budget", &correlation, extra);
        bulk.finish(self, Some(entry), &[]).await
    }

    /// One row's fund script. A store outage aborts the invocation (503; a retry with the same
    /// key replays the rows already applied); any other refusal is the row's failure.
    async fn fund_row(
        &self,
        d: &BudgetDoc,
        f: &BulkFunding,
        idempotency: (&str, &str),
        ctx: &Correlation,
    ) -> Result<RowOutcome> {
        let b = &d.balance;
        let run = self
            .ledger
            .fund_budget(&d.tenant, &b.scope, b.unit, f.op, f.amount, f.spent, &f.reason, Some(idempotency), ctx, false)
            .await;
        let e = match run {
            Ok(_) => return Ok(RowOutcome::Succeeded),
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => e,
        };
        Ok(match e.code {
            ErrorCode::BudgetExceeded => RowOutcome::failed(ErrorCode::BudgetExceeded.as_str(), e.message),
            ErrorCode::BudgetFrozen | ErrorCode::BudgetClosed => RowOutcome::failed("INVALID_TRANSITION", e.message),
            ErrorCode::BudgetNotFound => RowOutcome::failed(ErrorCode::NotFound.as_str(), e.message),
            ErrorCode::InternalError => RowOutcome::failed(ErrorCode::InternalError.as_str(), "the operation failed"),
            code => RowOutcome::failed(code.as_str(), e.message),
        })
    }
}
