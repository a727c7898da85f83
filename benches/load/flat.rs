//! The flat-cost step: does a reserve cost more in a big ledger? It measures HTTP reserves at
//! `--flat-clients` on a fresh tenant (the empty ledger), then seeds `--flat-budgets` budgets
//! spread over `--flat-tenants` tenants and `--flat-active` ACTIVE reservations in one tenant,
//! and measures the same step on that tenant. Target: the loaded step within 1.2× of the empty
//! one (throughput and Redis CPU per reserve).
//!
//! The filler budgets are written with the import script (`Ledger::import_budgets`, no outbox
//! events, so the drain has nothing to store); the reservations through `Ledger::reserve`,
//! exactly as the engine makes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use tollgate::internals::BudgetWrite;

use super::{ALLOCATION, Bench, CeilingPlan, ClientOut, Phase, Shape, StepResult, UNIT, ceiling_iteration};

/// Budgets per import call.
const IMPORT_CHUNK: usize = 1_000;
/// Concurrent seeding calls.
const SEED_TASKS: usize = 64;

pub struct FlatResult {
    pub budgets: usize,
    pub tenants: usize,
    pub active: usize,
    pub seed_s: f64,
    pub empty: StepResult,
    pub loaded: StepResult,
}

fn budget_fields(ledger_id: String, now_ms: i64) -> BTreeMap<String, String> {
    let now = now_ms.to_string();
    [
        ("st", "ACTIVE".to_string()),
        ("a", ALLOCATION.to_string()),
        ("s", "0".into()),
        ("r", "0".into()),
        ("d", "0".into()),
        ("o", "0".into()),
        ("x", "0".into()),
        ("p", String::new()),
        ("id", ledger_id),
        ("c", now.clone()),
        ("u", now),
        ("rp", "NONE".into()),
        ("ps", String::new()),
        ("pe", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl Bench {
    /// Writes `budgets` budgets over `tenants` filler tenants (none of them the measured one).
    async fn seed_budgets(&self, tenants: usize, budgets: usize) -> Result<()> {
        let per_tenant = budgets.div_ceil(tenants.max(1));
        let now_ms = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis())?;
        let sem = Arc::new(tokio::sync::Semaphore::new(8));
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..tenants {
            let tenant = format!("lf-{}-{t}", self.run_id);
            for start in (0..per_tenant).step_by(IMPORT_CHUNK) {
                let writes: Vec<BudgetWrite> = (start..(start + IMPORT_CHUNK).min(per_tenant))
                    .map(|j| {
                        let after = budget_fields(format!("{tenant}-{j}"), now_ms);
                        let before = after.keys().map(|k| (k.clone(), None)).collect();
                        BudgetWrite { m: format!("tenant:{tenant}/workspace:w{j}|{UNIT}"), before, after }
                    })
                    .collect();
                let (ledger, tenant, sem) = (self.ledger.clone(), tenant.clone(), sem.clone());
                tasks.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    ledger.import_budgets(&tenant, &writes).await.map_err(|e| anyhow::anyhow!("{e:?}"))
                });
            }
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(())
    }

    /// Makes `n` ACTIVE reservations (a day's TTL) on the tenant's first client subject;
    /// returns what they hold on each of its scopes.
    async fn seed_reservations(&self, setup: &super::TenantSetup, n: usize) -> Result<i64> {
        let plan = Arc::new(CeilingPlan {
            ledger: self.ledger.clone(),
            tenant: setup.id.clone(),
            estimate: self.args.estimate,
        });
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..SEED_TASKS {
            let (plan, cs) = (plan.clone(), setup.clients[0].clone());
            tasks.spawn(async move {
                let mut out = ClientOut::new();
                for i in (w..n).step_by(SEED_TASKS) {
                    ceiling_iteration(&plan, &cs, &format!("seed-{i}"), &mut out, false).await;
                }
                out
            });
        }
        let mut held = 0;
        while let Some(out) = tasks.join_next().await {
            let out = out?;
            anyhow::ensure!(out.warmup_errors == 0, "seeding reservations failed: {:?}", out.error_samples);
            held += out.held;
        }
        Ok(held)
    }

    pub(super) async fn flat_step(&self) -> Result<FlatResult> {
        let clients = self.args.flat_clients;
        let (tenants, budgets, active) = (self.args.flat_tenants, self.args.flat_budgets, self.args.flat_active);
        let id = format!("lb-{}-flat-empty-c{clients}", self.run_id);
        let setup = Arc::new(self.setup_tenant_as(id, Shape::Shared, clients).await?);
        let empty = self.measure(setup, Shape::Shared, Phase::Reserve, clients).await?;
        let started = Instant::now();
        let id = format!("lb-{}-flat-loaded-c{clients}", self.run_id);
        let mut setup = self.setup_tenant_as(id, Shape::Shared, clients).await?;
        self.seed_budgets(tenants.saturating_sub(1), budgets.saturating_sub(setup.budget_scopes.len())).await?;
        setup.preheld = self.seed_reservations(&setup, active).await?;
        let seed_s = started.elapsed().as_secs_f64();
        tokio::time::sleep(std::time::Duration::from_secs_f64(self.args.settle_s)).await;
        let loaded = self.measure(Arc::new(setup), Shape::Shared, Phase::Reserve, clients).await?;
        Ok(FlatResult { budgets, tenants, active, seed_s, empty, loaded })
    }
}
