//! The runtime mutations: reserve (live, dry run, decide), commit, release, extend, and
//! usage events. One script call each.

use crate::domain::CommitOveragePolicy;
use crate::domain::amount::{Unit, Units};
use crate::domain::error::{Error, Result};
use crate::domain::scope::Scopes;

use super::{Balance, Correlation, EVENT_IDEM_RETENTION_MS, FINALIZED_RETENTION_MS, IDEM_RETENTION_MS, Ledger};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    DryRun,
    Decide,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::DryRun => "dry",
            Mode::Decide => "decide",
        }
    }
}

/// A validated reservation (or decision) request.
#[derive(Debug, Clone)]
pub struct ReserveInput {
    pub tenant: String,
    pub mode: Mode,
    pub unit: Unit,
    pub estimate: Units,
    pub ttl_ms: Option<i64>,
    pub grace_ms: i64,
    pub overage_policy: Option<CommitOveragePolicy>,
    pub idempotency_key: String,
    pub request_hash: String,
    /// The reservation's descriptive document (subject, action, metadata, idempotency key)
    /// as JSON, stored with it as it is.
    pub document: String,
    pub scopes: Scopes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

#[derive(Debug, Clone)]
pub struct ReserveOutcome {
    pub replay: bool,
    pub now_ms: i64,
    pub decision: Decision,
    pub reservation_id: Option<String>,
    pub expires_at_ms: Option<i64>,
    pub balances: Vec<Balance>,
}

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
    pub async fn reserve(
        &self,
        input: &ReserveInput,
        reservation_id: &str,
        corr: &Correlation,
    ) -> Result<ReserveOutcome> {
        let k = self.keys();
        let t = input.tenant.as_str();
        let op = if input.mode == Mode::Decide { "decide" } else { "reserve" };
        let keys = vec![
            k.tenant(t),
            k.ledger(t),
            k.idem(t, op, &input.idempotency_key),
            k.reservation(t, reservation_id),
            k.active(t),
            k.created(t),
            k.outbox(t),
        ];
        let mut args = vec![
            input.mode.as_str().to_string(),
            input.request_hash.clone(),
            input.unit.as_str().to_string(),
            input.estimate.to_string(),
            input.ttl_ms.map(|v| v.to_string()).unwrap_or_default(),
            input.grace_ms.to_string(),
            policy_arg(input.overage_policy),
            reservation_id.to_string(),
            input.document.clone(),
            corr.request_id.clone(),
            corr.trace_id.clone(),
            IDEM_RETENTION_MS.to_string(),
            input.scopes.path().to_string(),
        ];
        args.extend(input.scopes.affected.iter().cloned());
        let name = match input.mode {
            Mode::Live => "reserve",
            Mode::DryRun => "reserve_dry_run",
            Mode::Decide => "decide",
        };
        let reply = self.run(name, &self.scripts.reserve, keys, args).await?;
        let decision = match reply.str("decision")? {
            "DENY" => Decision::Deny(reply.str("reason_code")?.to_string()),
            _ => Decision::Allow,
        };
        let expires_at_ms = reply.opt_str("expires_at_ms").and_then(|s| s.parse().ok());
        if !reply.replay && input.mode == Mode::Live && decision == Decision::Allow {
            crate::telemetry::ledger_amount("reserve", input.unit.as_str(), input.estimate.get());
        }
        Ok(ReserveOutcome {
            replay: reply.replay,
            now_ms: reply.now_ms,
            decision,
            reservation_id: reply.opt_str("reservation_id").map(String::from),
            expires_at_ms,
            balances: reply.balances(input.unit)?,
        })
    }

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
