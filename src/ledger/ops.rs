//! The runtime mutations commit, release, extend, and usage events (reserve, live, dry run
//! and decide, is `reserve`). One script call each.

use crate::domain::CommitOveragePolicy;
use crate::domain::amount::{Unit, Units};
use crate::domain::error::{Error, Result};
use crate::domain::scope::Scopes;

use super::{Balance, Correlation, EVENT_IDEM_RETENTION_MS, FINALIZED_RETENTION_MS, Ledger};

pub use super::reserve::{ActionFacts, Decision, Mode, ReserveInput, ReserveOutcome};

#[derive(Debug, Clone)]
pub struct CommitOutcome {
    pub unit: Unit,
    pub charged: i64,
    pub released: i64,
    pub balances: Vec<Balance>,
}

#[derive(Debug, Clone)]
pub struct ReleaseOutcome {
    pub replay: bool,
    pub unit: Unit,
    pub released: i64,
    pub balances: Vec<Balance>,
}

#[derive(Debug, Clone)]
pub struct ExtendOutcome {
    pub expires_at_ms: i64,
    /// `max(0, expires_at_ms − now)` on the ledger clock; 0 once the reservation is final.
    pub remaining_ttl_ms: i64,
}

#[derive(Debug, Clone)]
pub struct EventOutcome {
    pub event_id: String,
    pub unit: Unit,
    pub charged: i64,
    pub capped: bool,
    pub balances: Vec<Balance>,
}

fn unit_of(reply: &super::Reply) -> Result<Unit> {
    Unit::parse(reply.str("unit")?).ok_or_else(|| Error::internal("ledger reply: unit"))
}

fn policy_arg(p: Option<CommitOveragePolicy>) -> String {
    p.map(|p| p.as_str().to_string()).unwrap_or_default()
}

impl Ledger {
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        &self,
        tenant: &str,
        reservation_id: &str,
        idempotency_key: &str,
        request_hash: &str,
        actual_unit: Unit,
        actual: Units,
        metadata_json: &str,
        usage_json: &str,
        corr: &Correlation,
    ) -> Result<CommitOutcome> {
        let k = self.keys();
        let keys = vec![
            k.tenant(tenant),
            k.ledger(tenant),
            k.idem_on(tenant, "commit", reservation_id, idempotency_key),
            k.reservation(tenant, reservation_id),
            k.active(tenant),
            k.outbox(tenant),
        ];
        let args = vec![
            request_hash.to_string(),
            actual_unit.as_str().to_string(),
            actual.to_string(),
            metadata_json.to_string(),
            reservation_id.to_string(),
            corr.request_id.clone(),
            corr.trace_id.clone(),
            FINALIZED_RETENTION_MS.to_string(),
            usage_json.to_string(),
        ];
        let reply = self.run("commit", &self.scripts.commit, keys, args).await?;
        let unit = unit_of(&reply)?;
        let outcome = CommitOutcome {
            unit,
            charged: reply.int("charged")?,
            released: reply.int("released")?,
            balances: reply.balances(unit)?,
        };
        if !reply.replay {
            crate::telemetry::ledger_amount("commit", unit.as_str(), outcome.charged);
            crate::telemetry::overdraft_incurred(unit.as_str(), reply.int("debt_added")?);
        }
        Ok(outcome)
    }

    pub async fn release(
        &self,
        tenant: &str,
        reservation_id: &str,
        idempotency_key: &str,
        request_hash: &str,
        reason: &str,
        corr: &Correlation,
    ) -> Result<ReleaseOutcome> {
        let k = self.keys();
        let keys = vec![
            k.tenant(tenant),
            k.ledger(tenant),
            k.idem_on(tenant, "release", reservation_id, idempotency_key),
            k.reservation(tenant, reservation_id),
            k.active(tenant),
            k.outbox(tenant),
        ];
        let args = vec![
            request_hash.to_string(),
            reason.to_string(),
            reservation_id.to_string(),
            corr.request_id.clone(),
            corr.trace_id.clone(),
            FINALIZED_RETENTION_MS.to_string(),
        ];
        let reply = self.run("release", &self.scripts.release, keys, args).await?;
        let unit = unit_of(&reply)?;
        if !reply.replay {
            crate::telemetry::ledger_amount("release", unit.as_str(), reply.int("released")?);
        }
        Ok(ReleaseOutcome {
            replay: reply.replay,
            unit,
            released: reply.int("released")?,
            balances: reply.balances(unit)?,
        })
    }

    pub async fn extend(
        &self,
        tenant: &str,
        reservation_id: &str,
        idempotency_key: &str,
        request_hash: &str,
        extend_by_ms: i64,
    ) -> Result<ExtendOutcome> {
        let k = self.keys();
        let keys = vec![
            k.tenant(tenant),
            k.idem_on(tenant, "extend", reservation_id, idempotency_key),
            k.reservation(tenant, reservation_id),
            k.active(tenant),
        ];
        let args = vec![request_hash.to_string(), extend_by_ms.to_string(), reservation_id.to_string()];
        let reply = self.run("extend", &self.scripts.extend, keys, args).await?;
        let expires_at_ms = reply.int("expires_at_ms")?;
        let active = reply.opt_str("active") == Some("1");
        let remaining_ttl_ms = if active { (expires_at_ms - reply.now_ms).max(0) } else { 0 };
        Ok(ExtendOutcome { expires_at_ms, remaining_ttl_ms })
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn event(
        &self,
        tenant: &str,
        idempotency_key: &str,
        request_hash: &str,
        unit: Unit,
        actual: Units,
        policy: Option<CommitOveragePolicy>,
        scopes: &Scopes,
        usage_json: &str,
        corr: &Correlation,
    ) -> Result<EventOutcome> {
        let k = self.keys();
        let keys = vec![k.tenant(tenant), k.ledger(tenant), k.idem(tenant, "event", idempotency_key), k.outbox(tenant)];
        let event_id = format!("evt_{}", uuid::Uuid::now_v7().simple());
        let mut args = vec![
            request_hash.to_string(),
            unit.as_str().to_string(),
            actual.to_string(),
            policy_arg(policy),
            event_id,
            corr.request_id.clone(),
            corr.trace_id.clone(),
            EVENT_IDEM_RETENTION_MS.to_string(),
            scopes.path().to_string(),
            usage_json.to_string(),
        ];
        args.extend(scopes.affected.iter().cloned());
        let reply = self.run("event", &self.scripts.event, keys, args).await?;
        let unit = unit_of(&reply)?;
        if !reply.replay {
            crate::telemetry::ledger_amount("event", unit.as_str(), reply.int("charged")?);
            crate::telemetry::overdraft_incurred(unit.as_str(), reply.int("debt_added")?);
        }
        Ok(EventOutcome {
            event_id: reply.str("event_id")?.to_string(),
            unit,
            charged: reply.int("charged")?,
            capped: reply.opt_str("capped") == Some("1"),
            balances: reply.balances(unit)?,
        })
    }
}
