//! The admin rules of budgets: who may create one where, and the one audit entry each budget
//! mutation writes. The budget itself lives in the ledger (Redis); each mutation runs its
//! script inside [`Catalogue::audited`], so the entry commits only when the ledger changed.

use serde_json::json;

use super::Catalogue;
use super::audit::Actor;
use crate::domain::amount::{Unit, Units};
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::scope::scope_tenant;
use crate::domain::{CommitOveragePolicy, TenantStatus};
use crate::ledger::budgets::{FundOp, FundOutcome, NewBudget};
use crate::ledger::ops::ReleaseOutcome;
use crate::ledger::reads::BudgetDoc;

/// One budget: the tenant that owns it, its scope path and its unit.
#[derive(Debug, Clone)]
pub struct BudgetRef {
    pub tenant: String,
    pub scope: String,
    pub unit: Unit,
}

impl BudgetRef {
    /// The budget named by a scope path, owned by the scope's tenant.
    pub fn of_scope(scope: String, unit: Unit) -> Self {
        Self { tenant: scope_tenant(&scope).to_string(), scope, unit }
    }

    fn resource_id(&self) -> String {
        format!("{}|{}", self.scope, self.unit)
    }
}

/// A funding operation as the admin asked for it.
#[derive(Debug, Clone)]
pub struct Funding {
    pub op: FundOp,
    pub amount: Units,
    /// The new `spent`, for `RESET_SPENT` only.
    pub spent: Option<Units>,
    pub reason: String,
    /// The caller's idempotency key and the fingerprint of its request.
    pub idempotency: Option<(String, String)>,
}

impl Catalogue {
    /// Creates `new` for `new.tenant`, which must exist and not be closed; the scope must be
    /// the tenant's own.
    pub async fn create_budget(&self, actor: &Actor, new: NewBudget) -> Result<BudgetDoc> {
        if scope_tenant(&new.scope) != new.tenant {
            return Err(Error::invalid_field("scope", format!("must start with tenant:{}", new.tenant)));
        }
        let tenant = self.get_tenant(&new.tenant).await.map_err(|e| {
            if e.code == ErrorCode::TenantNotFound { Error::invalid_field("tenant_id", "tenant not found") } else { e }
        })?;
        if tenant.status == TenantStatus::Closed {
            return Err(Error::new(ErrorCode::TenantClosed, format!("tenant {} is closed", new.tenant)));
        }
        let ledger_id = uuid::Uuid::now_v7().to_string();
        let details = json!({ "scope": new.scope, "unit": new.unit });
        let entry = actor.entry("createBudget", &new.tenant, ("budget", &ledger_id), 201, details);
        self.audited(entry, self.ledger.create_budget(&new, &ledger_id, &actor.ctx), |_| true).await
    }

    /// Changes a budget's overdraft limit and/or overage policy.
    pub async fn update_budget(
        &self,
        actor: &Actor,
        budget: BudgetRef,
        overdraft_limit: Option<Units>,
        policy: Option<CommitOveragePolicy>,
    ) -> Result<BudgetDoc> {
        let mut changed = Vec::new();
        if overdraft_limit.is_some() {
            changed.push("overdraft_limit");
        }
        if policy.is_some() {
            changed.push("commit_overage_policy");
        }
        let details = json!({ "changed_fields": changed });
        let entry = actor.entry("updateBudget", &budget.tenant, ("budget", &budget.resource_id()), 200, details);
        let b = &budget;
        let update = self.ledger.update_budget(&b.tenant, &b.scope, b.unit, overdraft_limit, policy, &actor.ctx);
        self.audited(entry, update, |_| true).await
    }

    /// Freezes (`freeze = true`) or unfreezes a budget; already in that state is a 409.
    pub async fn set_budget_status(
        &self,
        actor: &Actor,
        budget: BudgetRef,
        freeze: bool,
        reason: String,
    ) -> Result<BudgetDoc> {
        let op = if freeze { "freezeBudget" } else { "unfreezeBudget" };
        let details = json!({ "reason": reason });
        let entry = actor.entry(op, &budget.tenant, ("budget", &budget.resource_id()), 200, details);
        let b = &budget;
        let set = self.ledger.set_budget_status(&b.tenant, &b.scope, b.unit, freeze, &reason, &actor.ctx);
        self.audited(entry, set, |_| true).await
    }

    /// Funds a budget of `tenant`; the budget must be the tenant's. A replay of the same
    /// idempotency key answers the original outcome and writes no second audit entry.
    pub async fn fund_budget(&self, actor: &Actor, tenant: &str, budget: BudgetRef, f: Funding) -> Result<FundOutcome> {
        if budget.tenant != tenant {
            return Err(Error::forbidden("the budget belongs to another tenant"));
        }
        let key = f.idempotency.as_ref().map(|(k, _)| k.clone());
        let details =
            json!({ "operation": f.op.as_str(), "amount": f.amount.get().to_string(), "idempotency_key": key });
        let entry = actor.entry("fundBudget", tenant, ("budget", &budget.resource_id()), 200, details);
        let (b, idem) = (&budget, f.idempotency.as_ref().map(|(k, h)| (k.as_str(), h.as_str())));
        // A tenant key may not fund while its tenant is suspended; the script checks it atomically.
        let by_tenant_key = actor.key_id.is_some();
        let fund = self.ledger.fund_budget(
            &b.tenant,
            &b.scope,
            b.unit,
            f.op,
            f.amount,
            f.spent,
            &f.reason,
            idem,
            &actor.ctx,
            by_tenant_key,
        );
        self.audited(entry, fund, |o| !o.replay).await
    }

    /// Releases a tenant's reservation on its behalf (the admin key), audited as such.
    pub async fn release_on_behalf(
        &self,
        actor: &Actor,
        tenant: &str,
        reservation_id: &str,
        idempotency: (&str, &str),
        reason: &str,
    ) -> Result<ReleaseOutcome> {
        let details = json!({ "reason": reason });
        let entry = actor.entry("releaseReservation", tenant, ("reservation", reservation_id), 200, details);
        let (key, hash) = idempotency;
        let release = self.ledger.release(tenant, reservation_id, key, hash, reason, &actor.ctx);
        self.audited(entry, release, |o| !o.replay).await
    }
}
