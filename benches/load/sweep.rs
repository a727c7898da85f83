//! The expiry-sweep step: how fast the engine's sweeper expires a backlog. It makes
//! `--sweep-reservations` reservations in one tenant whose deadlines all fall on the same
//! instant (each call's TTL is the time left to it, grace 0), then watches the tenant's
//! ACTIVE index empty. The rate is the reservations expired over the time from the first one
//! seen expired to the last (the sweeper's tick delay before the first is reported apart).
//! Target: ≥ 20 000 expiries per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use tollgate::internals::{
    Action, ActionFacts, Correlation, Mode, ReserveInput, Unit, Units, new_reservation_id, request_hash,
};

use super::{Bench, Shape};

/// Concurrent reserving calls.
const SEED_TASKS: usize = 64;
/// How often the ACTIVE index is counted.
const POLL: Duration = Duration::from_millis(20);
/// Longest wait for the backlog to empty.
const PATIENCE: Duration = Duration::from_secs(120);

pub struct SweepResult {
    pub reservations: usize,
    pub seed_s: f64,
    /// From the common deadline to the first expiry seen.
    pub first_after_s: f64,
    /// From the first expiry seen to the last.
    pub sweep_s: f64,
    pub per_s: f64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Bench {
    async fn active_count(&self, conn: &mut redis::aio::MultiplexedConnection, tenant: &str) -> Result<u64> {
        let key = self.ledger.keys().active(tenant);
        Ok(redis::cmd("ZCARD").arg(&key).query_async(conn).await?)
    }

    pub(super) async fn sweep_step(&self) -> Result<SweepResult> {
        let n = self.args.sweep_reservations;
        let id = format!("lb-{}-sweep", self.run_id);
        let setup = self.setup_tenant_as(id, Shape::Shared, 1).await?;
        let mut conn = redis::Client::open(self.args.redis_url.as_str())?.get_multiplexed_async_connection().await?;
        // Reserving at ~10k/s, n calls need n/10k s; leave five times that before the deadline.
        let lead_ms = i64::try_from(n / 2).unwrap_or(i64::MAX).max(5_000);
        let deadline = now_ms() + lead_ms;
        let started = Instant::now();
        let cs = Arc::new(setup.clients[0].clone());
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..SEED_TASKS {
            let (ledger, cs, tenant, estimate) =
                (self.ledger.clone(), cs.clone(), setup.id.clone(), self.args.estimate);
            tasks.spawn(async move {
                for i in (w..n).step_by(SEED_TASKS) {
                    let ttl = deadline - now_ms();
                    if ttl < 1_000 {
                        bail!("reserving took too long: a reservation would have had {ttl} ms to live");
                    }
                    let idem = format!("sweep-{i}");
                    let action = Action { kind: "llm.completion".into(), name: "gpt-4o".into(), tags: None, policy_keys: None };
                    let wire = serde_json::json!({"idempotency_key": idem, "subject": cs.subject, "action": action,
                        "estimate": {"unit": super::UNIT, "amount": estimate}, "ttl_ms": ttl, "grace_period_ms": 0});
                    let input = ReserveInput {
                        tenant: tenant.clone(),
                        mode: Mode::Live,
                        observe: None,
                        action: ActionFacts { kind: action.kind.clone(), ..ActionFacts::default() },
                        unit: Unit::UsdMicrocents,
                        estimate: Units::new(estimate).unwrap_or(Units::ZERO),
                        ttl_ms: Some(ttl),
                        grace_ms: 0,
                        overage_policy: None,
                        idempotency_key: idem.clone(),
                        request_hash: request_hash(&wire).unwrap_or_default(),
                        document: serde_json::json!({"subject": cs.subject, "action": action, "metadata": null, "idempotency_key": idem}).to_string(),
                        scopes: cs.scopes.clone(),
                    };
                    let out = ledger
                        .reserve(&input, &new_reservation_id(&tenant), &Correlation::default())
                        .await
                        .map_err(|e| anyhow!("reserve: {e:?}"))?;
                    if out.reservation_id.is_none() {
                        bail!("reserve: decision {:?}", out.decision);
                    }
                }
                Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        let seed_s = started.elapsed().as_secs_f64();
        let total = self.active_count(&mut conn, &setup.id).await?;
        if total < n as u64 {
            bail!("{total} of {n} reservations are ACTIVE before their deadline");
        }
        tokio::time::sleep(Duration::from_millis(u64::try_from(deadline - now_ms()).unwrap_or(0))).await;
        let due = Instant::now();
        let mut first = None;
        loop {
            let left = self.active_count(&mut conn, &setup.id).await?;
            if first.is_none() && left < total {
                first = Some(Instant::now());
            }
            if left == 0 {
                break;
            }
            if due.elapsed() > PATIENCE {
                bail!("{left} of {total} reservations still ACTIVE {PATIENCE:?} after their deadline");
            }
            tokio::time::sleep(POLL).await;
        }
        let first = first.unwrap_or(due);
        let sweep_s = first.elapsed().as_secs_f64().max(POLL.as_secs_f64());
        Ok(SweepResult {
            reservations: n,
            seed_s,
            first_after_s: first.duration_since(due).as_secs_f64(),
            sweep_s,
            per_s: total as f64 / sweep_s,
        })
    }
}
