//! An import from end to end: check the document, plan every section against the deployment
//! (validation and diff, no writes), answer the diff on a dry run, else apply every plan in
//! one Postgres transaction with the Redis writes under a committed undo plan.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Allowance, Applying, Ctx, FORMAT, FORMAT_VERSION, Mode, OBJECTS_MAX, Snapshot, undo::Undo};
use super::{api_keys, budgets, policies, tenants, tiers, webhooks};
use crate::catalogue::Catalogue;
use crate::catalogue::audit::Actor;
use crate::domain::error::{Error, Result};
use crate::store::pg::{self, config_journal};

/// One kind's changes, by object id.
#[derive(Debug, Default, Clone, Serialize)]
pub struct KindDiff {
    pub create: Vec<String>,
    pub update: Vec<String>,
    pub delete: Vec<String>,
    /// Objects the import leaves as they are, with the reason (API keys it cannot create).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    pub unchanged: usize,
}

impl KindDiff {
    fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The answer of an import: its diff, and whether it was applied.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub import_id: String,
    pub mode: &'static str,
    pub dry_run: bool,
    pub applied: bool,
    pub changes: BTreeMap<&'static str, KindDiff>,
}

struct Plans {
    tiers: tiers::Plan,
    tenants: tenants::Plan,
    budgets: budgets::Plan,
    webhooks: webhooks::Plan,
    api_keys: api_keys::Plan,
    policies: policies::Plan,
}

fn check_header(s: &Snapshot) -> Result<()> {
    if s.format != FORMAT {
        return Err(Error::invalid_field("format", format!("must be {FORMAT}")));
    }
    if s.format_version != FORMAT_VERSION {
        return Err(Error::invalid_field("format_version", format!("must be {FORMAT_VERSION}")));
    }
    let mut allowance = Allowance(OBJECTS_MAX);
    allowance.take(s.tiers.as_ref().map_or(0, Vec::len))?;
    allowance.take(s.policies.as_ref().map_or(0, Vec::len))?;
    allowance.take(s.tenants.as_ref().map_or(0, Vec::len))?;
    allowance.take(s.budgets.as_ref().map_or(0, Vec::len))?;
    allowance.take(s.webhooks.as_ref().map_or(0, Vec::len))?;
    allowance.take(s.api_keys.as_ref().map_or(0, Vec::len))
}

impl Catalogue {
    /// Validates `snap` whole (one bad object: 400 naming it and its field, nothing changed),
    /// then answers the diff (`dry_run`) or applies it atomically.
    pub async fn import_config(&self, actor: &Actor, snap: Snapshot, mode: Mode, dry_run: bool) -> Result<Report> {
        check_header(&snap)?;
        let import_id = format!("imp_{}", uuid::Uuid::now_v7().simple());
        let mut tx = self.pg.begin().await?;
        // One import at a time: planning reads what applying will change.
        config_journal::lock(&mut tx).await?;
        if !dry_run {
            self.recover_with(&mut tx).await?;
        }
        let plans = self.plan_all(&snap, mode).await?;
        let changes = BTreeMap::from([
            ("tiers", plans.tiers.diff()),
            ("policies", plans.policies.diff()),
            ("tenants", plans.tenants.diff()),
            ("budgets", plans.budgets.diff()),
            ("webhooks", plans.webhooks.diff()),
            ("api_keys", plans.api_keys.diff()),
        ]);
        let nothing = changes.values().all(KindDiff::is_empty);
        let mut report = Report { import_id: import_id.clone(), mode: mode.as_str(), dry_run, applied: false, changes };
        if dry_run || nothing {
            return Ok(report);
        }
        let undo = Undo { tenants: plans.tenants.mirrored(), budgets: plans.budgets.writes() };
        config_journal::insert(self.pg.pool(), &import_id, &undo.to_json()?).await?;
        let mut applying = Applying { actor, import_id: &import_id, mode, events: Vec::new(), announce: Vec::new() };
        match self.apply_all(tx, &plans, &mut applying).await {
            Ok(()) => {}
            Err(e) => {
                self.recover_after_failure(&import_id).await;
                return Err(e);
            }
        }
        self.after_commit(&plans, actor).await;
        report.applied = true;
        Ok(report)
    }

    async fn plan_all(&self, snap: &Snapshot, mode: Mode) -> Result<Plans> {
        let mut ctx = Ctx { mode, tiers: Default::default(), after: Default::default(), closing: Default::default() };
        let tiers = tiers::plan(self, snap.tiers.as_deref(), &mut ctx).await?;
        let tenants = tenants::plan(self, snap.tenants.as_deref(), &mut ctx).await?;
        let budgets = budgets::plan(self, snap.budgets.as_deref(), &ctx).await?;
        let webhooks = webhooks::plan(self, snap.webhooks.as_deref(), &ctx).await?;
        let api_keys = api_keys::plan(self, snap.api_keys.as_deref(), &ctx).await?;
        let policies = policies::plan(self, snap.policies.as_deref(), &ctx).await?;
        Ok(Plans { tiers, tenants, budgets, webhooks, api_keys, policies })
    }

    /// Every plan in `tx`, Postgres and Redis alike, then the commit that also deletes the
    /// undo plan. The order puts the Postgres-only sections between the two Redis steps.
    async fn apply_all(&self, mut tx: pg::PgTx, plans: &Plans, a: &mut Applying<'_>) -> Result<()> {
        if !config_journal::remove(&mut tx, a.import_id).await? {
            return Err(Error::internal("the import's undo plan vanished before it applied"));
        }
        tiers::apply(&mut tx, &plans.tiers, a).await?;
        tenants::apply(self, &mut tx, &plans.tenants, a).await?;
        tenants::mirror(self, &plans.tenants).await?;
        webhooks::apply(self, &mut tx, &plans.webhooks, a).await?;
        api_keys::apply(&mut tx, &plans.api_keys, a).await?;
        policies::apply(&mut tx, &plans.policies, a).await?;
        budgets::apply(self, &mut tx, &plans.budgets, a).await?;
        crate::events::record(&mut tx, &a.events).await?;
        let announce = std::mem::take(&mut a.announce);
        self.commit_announcing(tx, &announce).await
    }

    /// After a failed apply (the transaction is gone): undo the Redis writes now if Redis
    /// answers, else leave the plan to the recovery pass.
    async fn recover_after_failure(&self, import_id: &str) {
        match self.recover_imports(true).await {
            Ok(_) => tracing::info!(import_id, "config import failed; its Redis writes were undone"),
            Err(e) => {
                self.imports_pending.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    import_id,
                    error = %e.message,
                    "config import failed and its Redis writes could not be undone yet; the recovery pass will"
                );
            }
        }
    }

    /// Whether an import of this instance left Redis writes to undo (cleared by a pass that
    /// succeeds).
    pub fn imports_pending(&self) -> bool {
        self.imports_pending.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn imports_recovered(&self) {
        self.imports_pending.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// The ledger half of the closes the import committed: budgets closed, reservations
    /// released. Idempotent; a failure here leaves CLOSED tenants whose cascade a re-close
    /// (PATCH status CLOSED) finishes.
    async fn after_commit(&self, plans: &Plans, actor: &Actor) {
        for tenant in plans.tenants.closed_ids() {
            if let Err(e) = self.ledger.close_tenant_ledger(&tenant, &actor.ctx).await {
                tracing::warn!(tenant, error = %e.message, "the ledger cascade of an imported close failed; re-close the tenant");
            }
        }
    }
}
