//! History replay for the policy dry run (a Tollgate extension): the candidate is decided, with
//! the same evaluator, against every reservation the tenant made in the last N days, and the
//! answer says how many it would have denied or capped, and where.
//!
//! The history is the ledger's creation index, read only: every reservation the ledger admitted,
//! with the request document it stored (subject, action), kept 30 days after it was finalized,
//! which is why a replay reaches back at most 30 days. The event log cannot serve: the protocol
//! has no event for an admitted reservation ("there is no reservation.allowed event"), only for
//! denials. Each reservation is decided at its creation time (so `effective_from`/`until` apply
//! as they would have), newest first, and at most [`REPLAY_READ_MAX`] are read; a replay that
//! stops there says so. Nothing is written and no hold is taken.

use std::collections::HashMap;

use serde_json::Value;
use time::OffsetDateTime;

use super::Catalogue;
use crate::domain::error::Result;
use crate::domain::policy::Policy;
use crate::domain::policy::eval::{self, Decision, PolicyKeys, Request};
use crate::ledger::reads::ReservationRecord;
use crate::ledger::scan::{CreatedAt, SCAN_ENTRIES_MAX};

/// The longest history a replay covers: finalized reservations stay in the ledger 30 days.
pub const REPLAY_DAYS_MAX: i64 = 30;
/// Reservations one replay reads at most (newest first): a bound on one request's work.
pub const REPLAY_READ_MAX: usize = 100_000;
/// Scopes the answer names at most, most denied first.
pub const TOP_SCOPES_MAX: usize = 10;

const DAY_MS: i64 = 86_400_000;

/// What the candidate would have done to one scope's reservations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeImpact {
    pub scope: String,
    pub denied: u64,
    pub capped: u64,
}

/// The replay's answer.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    pub days: i64,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Reservations replayed.
    pub reservations: u64,
    /// Of them, denied with the candidate in place.
    pub denied: u64,
    /// Of them, allowed with caps with the candidate in place.
    pub capped: u64,
    /// Of them, whose decision or caps differ from the tenant's policies as they are.
    pub changed: u64,
    /// Reservations whose stored request names no action kind, or an undeclared `custom.*` one.
    pub skipped: u64,
    /// The scopes (each reservation's deepest) with the most denials, then caps.
    pub top_scopes: Vec<ScopeImpact>,
    /// The replay stopped at [`REPLAY_READ_MAX`]: older reservations of the window were not read.
    pub read_limit_reached: bool,
}

/// The evaluator's request for a stored reservation; `None` when it names no action kind.
fn request_of(r: &ReservationRecord) -> Option<Request> {
    let kind = r.action.get("kind").and_then(Value::as_str).filter(|k| !k.is_empty())?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let keys = r.action.get("policy_keys").cloned().unwrap_or(Value::Null);
    Some(Request {
        scopes: r.affected_scopes.clone(),
        action_kind: kind.to_string(),
        risk_class: None,
        policy_keys: PolicyKeys {
            host: text(&keys, "host"),
            recipient_domain: text(&keys, "recipient_domain"),
            resource_type: text(&keys, "resource_type"),
        },
        run_id: r.subject.get("dimensions").and_then(|d| text(d, "run_id")),
        ttl_ms: None,
    })
}

/// Tallies of one replay in progress.
#[derive(Default)]
struct Tally {
    replay: Replay,
    scopes: HashMap<String, (u64, u64)>,
}

impl Tally {
    fn add(&mut self, r: &ReservationRecord, current: &[Policy], with: &[Policy]) {
        self.replay.reservations += 1;
        let Some(req) = request_of(r) else {
            self.replay.skipped += 1;
            return;
        };
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(r.created_at_ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let (Ok(before), Ok(after)) = (eval::evaluate(current, &req, at), eval::evaluate(with, &req, at)) else {
            self.replay.skipped += 1;
            return;
        };
        self.replay.changed += u64::from(before.decision != after.decision || before.caps != after.caps);
        let (denied, capped) = (after.decision == Decision::Deny, after.decision == Decision::AllowWithCaps);
        if denied || capped {
            self.replay.denied += u64::from(denied);
            self.replay.capped += u64::from(capped);
            let entry = self.scopes.entry(r.scope_path.clone()).or_default();
            entry.0 += u64::from(denied);
            entry.1 += u64::from(capped);
        }
    }

    fn finish(mut self) -> Replay {
        let mut top: Vec<ScopeImpact> =
            self.scopes.into_iter().map(|(scope, (denied, capped))| ScopeImpact { scope, denied, capped }).collect();
        top.sort_by(|a, b| b.denied.cmp(&a.denied).then(b.capped.cmp(&a.capped)).then(a.scope.cmp(&b.scope)));
        top.truncate(TOP_SCOPES_MAX);
        self.replay.top_scopes = top;
        self.replay
    }
}

impl Catalogue {
    /// Replays `tenant`'s reservations of the last `days` days (1..=30, checked by the caller)
    /// against its policies as they are (`current`) and with the candidate in place (`with`).
    pub(super) async fn replay_history(
        &self,
        tenant: &str,
        days: i64,
        current: &[Policy],
        with: &[Policy],
        now: OffsetDateTime,
    ) -> Result<Replay> {
        let to_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        let from_ms = to_ms.saturating_sub(days.saturating_mul(DAY_MS));
        let mut tally = Tally::default();
        tally.replay.days = days;
        tally.replay.from_ms = from_ms;
        tally.replay.to_ms = to_ms;
        let (mut after, mut read) = (None::<CreatedAt>, 0usize);
        loop {
            let want = SCAN_ENTRIES_MAX.min(REPLAY_READ_MAX - read);
            let window = (Some(from_ms), Some(to_ms));
            let scanned = self.ledger.scan_by_creation(tenant, after.as_ref(), true, window, want, |_| true).await?;
            read += scanned.rows.len();
            for r in &scanned.rows {
                tally.add(r, current, with);
            }
            after = match scanned.rows.last() {
                Some(last) if scanned.rows.len() == want => {
                    Some(CreatedAt { created_at_ms: last.created_at_ms, id: last.reservation_id.clone() })
                }
                _ => scanned.stopped_at,
            };
            if after.is_none() {
                break;
            }
            if read >= REPLAY_READ_MAX {
                tally.replay.read_limit_reached = true;
                break;
            }
        }
        Ok(tally.finish())
    }
}
