//! Reserve (live, dry run, observe) and decide: the tenant's policies are evaluated here,
//! against this instance's copy (`policies`), and the script checks that copy is current,
//! checks quotas and budgets, and holds and counts in one call (v0.1.26 evaluation order:
//! access lists, risk-class quotas, per-kind quotas, budgets, the atomic commit).

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::quotas::{RISK, quota_correlation};
use super::{Balance, Correlation, IDEM_RETENTION_MS, Ledger, Reply};
use crate::domain::CommitOveragePolicy;
use crate::domain::amount::{Unit, Units};
use crate::domain::error::{Error, Result};
use crate::domain::policy::eval::{self, Outcome, PolicyKeys, QuotaUse};
use crate::domain::policy::{Caps, QuotaWindow};
use crate::domain::scope::Scopes;

/// Counter TTLs of the calendar windows: cleanup only, a little past the bucket (the spec's
/// recommended values); the bucket in the key is what bounds the window.
const MINUTE_COUNTER_TTL_MS: i64 = 120_000;
const HOUR_COUNTER_TTL_MS: i64 = 3_660_000;
const DAY_COUNTER_TTL_MS: i64 = 90_000_000;
/// `per_run_counter_ttl_ms` when a rule leaves it out (the spec's default, 24 h).
pub const RUN_COUNTER_TTL_MS_DEFAULT: i64 = 86_400_000;

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

/// What policies look at besides the scopes: the action and the run it belongs to.
#[derive(Debug, Clone, Default)]
pub struct ActionFacts {
    pub kind: String,
    pub policy_keys: PolicyKeys,
    /// `subject.dimensions.run_id`: the window of `per_run` quotas.
    pub run_id: Option<String>,
}

/// A validated reservation (or decision) request.
#[derive(Debug, Clone)]
pub struct ReserveInput {
    pub tenant: String,
    pub mode: Mode,
    /// The request's observe mode (v0.1.26): `Some(true)` OBSERVE (evaluated like a dry run,
    /// reported with `reservation.observed_*`), `Some(false)` ENFORCE or DISABLED, `None` the
    /// tenant's `observe_mode` decides, which the script reads from the tenant mirror.
    pub observe: Option<bool>,
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
    pub action: ActionFacts,
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
    /// The policies' caps: the decision is then ALLOW_WITH_CAPS.
    pub caps: Option<Caps>,
    /// The spec's `DenyDetail` of a DENY, as the script reported it.
    pub deny_detail: Option<Value>,
}

fn policy_arg(p: Option<CommitOveragePolicy>) -> String {
    p.map(|p| p.as_str().to_string()).unwrap_or_default()
}

fn counter_ttl_ms(q: &QuotaUse) -> i64 {
    match q.window {
        QuotaWindow::Run => q.run_counter_ttl_ms.unwrap_or(RUN_COUNTER_TTL_MS_DEFAULT),
        QuotaWindow::Minute => MINUTE_COUNTER_TTL_MS,
        QuotaWindow::Hour => HOUR_COUNTER_TTL_MS,
        QuotaWindow::Day | QuotaWindow::TenantDay => DAY_COUNTER_TTL_MS,
    }
}

/// The spec's `ActionQuotaViolation` less `used` and `limit`, which the script adds.
fn violation(q: &QuotaUse) -> String {
    let mut v = json!({
        "action_kind": q.action_kind, "window": q.window.as_str(), "window_key": q.window_key,
        "scope": q.scope, "policy_id": q.policy_id,
    });
    if let Some(r) = q.risk_class {
        v["risk_class"] = json!(r.as_str());
    }
    v.to_string()
}

/// The spec's `EventDataQuotaThresholdApproaching` less `used`, which the script adds.
fn threshold_data(tenant: &str, q: &QuotaUse) -> String {
    let mut v = json!({
        "scope": q.scope, "action_kind": q.action_kind, "window": q.window.as_str(),
        "window_key": q.window_key, "limit": q.max_calls, "threshold_pct": q.threshold_pct,
        "policy_id": q.policy_id, "tenant_id": tenant,
    });
    if let Some(r) = q.risk_class {
        v["action_kind"] = json!(RISK);
        v["risk_class"] = json!(r.as_str());
    }
    v.to_string()
}

/// Evaluates `input` against the tenant's policies as this instance holds them.
fn evaluate(input: &ReserveInput, set: &super::policies::PolicySet) -> Result<Outcome> {
    let req = eval::Request {
        scopes: input.scopes.affected.clone(),
        action_kind: input.action.kind.clone(),
        risk_class: None,
        policy_keys: input.action.policy_keys.clone(),
        run_id: input.action.run_id.clone(),
        ttl_ms: input.ttl_ms,
    };
    let out = eval::evaluate_parsed(&set.policies, &set.patterns, &req, OffsetDateTime::now_utc())
        .map_err(|e| Error::invalid_field("action.kind", e))?;
    if out.run_id_required {
        return Err(Error::invalid_field(
            "subject.dimensions.run_id",
            "is required: a per_run quota of a matching policy applies to this action",
        ));
    }
    Ok(out)
}

impl Ledger {
    pub async fn reserve(
        &self,
        input: &ReserveInput,
        reservation_id: &str,
        corr: &Correlation,
    ) -> Result<ReserveOutcome> {
        let mut set = self.cached_policies(&input.tenant);
        let mut reloaded = false;
        loop {
            let out = evaluate(input, &set)?;
            let reply = self.reserve_once(input, reservation_id, corr, set.generation, &out).await?;
            if reply.opt_str("stale").is_none() {
                return outcome(input, reply);
            }
            // One reload and retry: a second stale answer means the set changed again within
            // one round trip; the client may retry.
            if reloaded {
                return Err(Error::unavailable("redis", "the tenant's policies changed during the request"));
            }
            set = self.reload_policies(&input.tenant).await?;
            reloaded = true;
        }
    }

    async fn reserve_once(
        &self,
        input: &ReserveInput,
        reservation_id: &str,
        corr: &Correlation,
        generation: i64,
        out: &Outcome,
    ) -> Result<Reply> {
        let k = self.keys();
        let t = input.tenant.as_str();
        let op = if input.mode == Mode::Decide { "decide" } else { "reserve" };
        let mut keys = vec![
            k.tenant(t),
            k.ledger(t),
            k.idem(t, op, &input.idempotency_key),
            k.reservation(t, reservation_id),
            k.active(t),
            k.created(t),
            k.outbox(t),
        ];
        let (deny_code, deny_detail) = match &out.deny {
            Some(d) => (
                d.reason_code.to_string(),
                json!({"reason_code": d.reason_code, "blocked_by_policy": d.blocked_by_policy,
                       "suggested_fix": d.suggested_fix})
                .to_string(),
            ),
            None => (String::new(), String::new()),
        };
        let caps = match &out.caps {
            Some(c) => serde_json::to_string(c).map_err(Error::internal)?,
            None => String::new(),
        };
        let mut args = vec![
            input.mode.as_str().to_string(),
            input.request_hash.clone(),
            input.unit.as_str().to_string(),
            input.estimate.to_string(),
            out.ttl_ms.map(|v| v.to_string()).unwrap_or_default(),
            input.grace_ms.to_string(),
            policy_arg(input.overage_policy.or(out.commit_overage_policy)),
            reservation_id.to_string(),
            input.document.clone(),
            corr.request_id.clone(),
            corr.trace_id.clone(),
            IDEM_RETENTION_MS.to_string(),
            input.scopes.path().to_string(),
            generation.to_string(),
            out.max_extensions.map(|v| v.to_string()).unwrap_or_default(),
            deny_code,
            deny_detail,
            caps,
            match input.observe {
                Some(true) => "1",
                Some(false) => "0",
                None => "",
            }
            .to_string(),
        ];
        self.counter_args(t, out, &mut keys, &mut args);
        args.extend(input.scopes.affected.iter().cloned());
        let name = match input.mode {
            Mode::Live => "reserve",
            Mode::DryRun => "reserve_dry_run",
            Mode::Decide => "decide",
        };
        self.run(name, &self.scripts.reserve, keys, args).await
    }
}

impl Ledger {
    /// The rate-limit prefixes and the quota counters of the script's contract (ARGV[20..]
    /// and the counter KEYS).
    fn counter_args(&self, t: &str, out: &Outcome, keys: &mut Vec<String>, args: &mut Vec<String>) {
        let k = self.keys();
        for (op, rate) in [("reserve", &out.reservations_per_minute), ("commit", &out.commits_per_minute)] {
            match rate {
                Some(r) => args.extend([k.rate(t, op, &r.scope), r.per_minute.to_string()]),
                None => args.extend([String::new(), String::new()]),
            }
        }
        args.push(out.quotas.len().to_string());
        let mut markers = Vec::with_capacity(out.quotas.len());
        for q in &out.quotas {
            let what = match q.risk_class {
                Some(r) => format!("{RISK}:{}", r.as_str()),
                None => q.action_kind.clone(),
            };
            let bucket = q.window_key.as_deref().unwrap_or("");
            keys.push(k.quota(t, &q.scope, &what, q.window.as_str(), bucket));
            markers.push(k.quota_threshold(t, &q.scope, &what, q.window.as_str(), bucket));
            args.push(q.max_calls.to_string());
            args.push(counter_ttl_ms(q).to_string());
            args.push(if q.window == QuotaWindow::Run { "1" } else { "" }.to_string());
            args.push(violation(q));
            args.push(q.threshold_count().to_string());
            args.push(threshold_data(t, q));
            args.push(quota_correlation(t, &q.scope, &what, q.window.as_str(), bucket));
        }
        keys.extend(markers);
    }
}

fn outcome(input: &ReserveInput, reply: Reply) -> Result<ReserveOutcome> {
    let decision = match reply.str("decision")? {
        "DENY" => Decision::Deny(reply.str("reason_code")?.to_string()),
        _ => Decision::Allow,
    };
    let expires_at_ms = reply.opt_str("expires_at_ms").and_then(|s| s.parse().ok());
    // A live request the tenant's observe mode turned into a dry run holds nothing.
    if !reply.replay && reply.opt_str("reservation_id").is_some() {
        crate::telemetry::ledger_amount("reserve", input.unit.as_str(), input.estimate.get());
    }
    let caps = match reply.opt_str("caps") {
        Some(raw) => Some(serde_json::from_str(raw).map_err(|_| Error::internal("ledger reply: caps"))?),
        None => None,
    };
    Ok(ReserveOutcome {
        replay: reply.replay,
        now_ms: reply.now_ms,
        decision,
        reservation_id: reply.opt_str("reservation_id").map(String::from),
        expires_at_ms,
        balances: reply.balances(input.unit)?,
        caps,
        deny_detail: reply.body.get("deny_detail").filter(|v| v.is_object()).cloned(),
    })
}
