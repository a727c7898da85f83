//! The policy evaluator: a pure function from a tenant's policies and one request to the
//! matching policies and the decision, following the v0.1.26 RESERVATION EVALUATION ORDER for
//! everything that needs no counter.
//!
//! - **Matching**: a policy in force (ACTIVE, inside `effective_from`..`effective_until`)
//!   whose `scope_pattern` matches a scope the request touches. Matches are ordered by
//!   priority (highest first), then creation time, then id, so the order is total.
//! - **Step 1, access control**: only the highest-priority match's lists apply. A kind in its
//!   `denied_action_kinds` is DENY `ACTION_KIND_DENIED`; with a non-empty
//!   `allowed_action_kinds` that lacks the kind, DENY `ACTION_KIND_NOT_ALLOWED`.
//! - **Steps 2 and 3, quotas**: only the highest-priority match's rules apply; they need
//!   counters, so the evaluator reports which ones the request would count against (risk-class
//!   rules first), with the window instance and scope, and whether a `per_run` rule lacks the
//!   `run_id` it requires.
//! - **Caps, TTL override, overage policy**: higher priority overrides lower field by field: each
//!   field comes from the highest-priority match that sets it. Any cap makes the decision
//!   ALLOW_WITH_CAPS. A requested TTL above the override's `max_ttl_ms` is capped, an absent
//!   one takes `default_ttl_ms`.
//!
//! Step 4 (budgets) and step 5 (the atomic commit) belong to the ledger.

use std::cmp::Ordering;

use time::OffsetDateTime;

use super::pattern::{ScopePattern, SplitPath};
use super::{Caps, Policy, QuotaWindow, RiskClass, kinds};
use crate::domain::CommitOveragePolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    AllowWithCaps,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "ALLOW",
            Decision::AllowWithCaps => "ALLOW_WITH_CAPS",
            Decision::Deny => "DENY",
        }
    }
}

/// `Action.policy_keys`: the dimensions quota allowlists filter on.
#[derive(Debug, Clone, Default)]
pub struct PolicyKeys {
    pub host: Option<String>,
    pub recipient_domain: Option<String>,
    pub resource_type: Option<String>,
}

/// One request as the evaluator sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Every scope the request touches, outermost first (`Scopes::affected`).
    pub scopes: Vec<String>,
    pub action_kind: String,
    /// The caller's risk class for the kind; else the registry's (`side_effect` if unknown).
    pub risk_class: Option<RiskClass>,
    pub policy_keys: PolicyKeys,
    pub run_id: Option<String>,
    pub ttl_ms: Option<i64>,
}

/// The spec's `DenyDetail` for the denials the evaluator can decide.
#[derive(Debug, Clone, PartialEq)]
pub struct DenyDetail {
    pub reason_code: &'static str,
    pub blocked_by_policy: String,
    pub suggested_fix: String,
}

/// A quota rule the request would count against.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaUse {
    pub policy_id: String,
    pub action_kind: String,
    /// Set for a risk-class rule.
    pub risk_class: Option<RiskClass>,
    pub window: QuotaWindow,
    /// The window instance: the run id, or the UTC minute, hour or day.
    pub window_key: Option<String>,
    pub max_calls: i64,
    /// The scope the counter is kept at.
    pub scope: String,
    /// A `per_run` rule's counter TTL (`per_run_counter_ttl_ms`), when it sets one.
    pub run_counter_ttl_ms: Option<i64>,
    /// The share of `max_calls` whose crossing is reported (`threshold_pct`, default 0.80).
    pub threshold_pct: f64,
}

/// `threshold_pct` when a quota rule leaves it out (the action-kinds spec's default).
pub const THRESHOLD_PCT_DEFAULT: f64 = 0.80;

impl QuotaUse {
    /// The count at which the threshold is crossed: the least n with n / max_calls ≥
    /// `threshold_pct`, within 1..=max_calls. The product is nudged down by far less than one
    /// call so that a share such as 0.7 (not exact in binary) still lands on 7 of 10.
    pub fn threshold_count(&self) -> i64 {
        let exact = self.threshold_pct * self.max_calls as f64;
        ((exact - 1e-9).ceil() as i64).clamp(1, self.max_calls.max(1))
    }
}

/// A per-minute rate limit of `rate_limits` that applies, and where it counts.
#[derive(Debug, Clone, PartialEq)]
pub struct RateUse {
    pub policy_id: String,
    /// The most specific scope the setting policy governs.
    pub scope: String,
    pub per_minute: i64,
}

/// What the policies make of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub decision: Decision,
    /// Ids of the matching policies, highest priority first.
    pub matched: Vec<String>,
    pub caps: Option<Caps>,
    pub deny: Option<DenyDetail>,
    pub quotas: Vec<QuotaUse>,
    /// A `per_run` rule applies and the request carries no `run_id` (a reserve is 400).
    pub run_id_required: bool,
    pub ttl_ms: Option<i64>,
    pub ttl_capped: bool,
    pub max_extensions: Option<i64>,
    pub commit_overage_policy: Option<CommitOveragePolicy>,
    /// `rate_limits.max_reservations_per_minute`, from the highest-priority match setting it.
    pub reservations_per_minute: Option<RateUse>,
    /// `rate_limits.max_commits_per_minute`, likewise.
    pub commits_per_minute: Option<RateUse>,
}

/// Each policy's `scope_pattern`, parsed (`None` for one that does not parse, which matches
/// nothing). The runtime parses a tenant's set once and keeps it with the set.
pub fn patterns(policies: &[Policy]) -> Vec<Option<ScopePattern>> {
    policies.iter().map(|p| ScopePattern::parse(&p.rules.scope_pattern).ok()).collect()
}

/// A matching policy with its parsed pattern.
type Match<'a, 'b> = (&'a Policy, &'b ScopePattern);

/// The policies of `policies` in force at `now` that match `scopes`, in evaluation order.
pub fn matching<'a>(policies: &'a [Policy], scopes: &[String], now: OffsetDateTime) -> Vec<&'a Policy> {
    let parsed = patterns(policies);
    matches(policies, &parsed, scopes, now).into_iter().map(|(p, _)| p).collect()
}

/// [`matching`] with the patterns parsed beforehand (`parsed[i]` is `policies[i]`'s).
fn matches<'a, 'b>(
    policies: &'a [Policy],
    parsed: &'b [Option<ScopePattern>],
    scopes: &[String],
    now: OffsetDateTime,
) -> Vec<Match<'a, 'b>> {
    let paths = SplitPath::all(scopes);
    let mut found: Vec<Match<'a, 'b>> = policies
        .iter()
        .zip(parsed)
        .filter(|(p, _)| p.rules.in_force(now))
        .filter_map(|(p, pat)| pat.as_ref().filter(|pat| pat.matches_any(&paths)).map(|pat| (p, pat)))
        .collect();
    found.sort_by(|a, b| order(a.0, b.0));
    found
}

fn order(a: &Policy, b: &Policy) -> Ordering {
    b.rules.priority.cmp(&a.rules.priority).then(a.created_at.cmp(&b.created_at)).then(a.policy_id.cmp(&b.policy_id))
}

/// Decides `req` against `policies` at `now`. `Err` names an undeclared `custom.*` kind, which
/// the spec refuses with 400 before any policy is consulted.
pub fn evaluate(policies: &[Policy], req: &Request, now: OffsetDateTime) -> Result<Outcome, String> {
    evaluate_parsed(policies, &patterns(policies), req, now)
}

/// [`evaluate`] with the patterns parsed beforehand ([`patterns`]).
pub fn evaluate_parsed(
    policies: &[Policy],
    parsed: &[Option<ScopePattern>],
    req: &Request,
    now: OffsetDateTime,
) -> Result<Outcome, String> {
    let risk_class = match req.risk_class {
        Some(r) => r,
        None => kinds::risk_class_of(&req.action_kind)?,
    };
    let matched = matches(policies, parsed, &req.scopes, now);
    let mut out = Outcome {
        decision: Decision::Allow,
        matched: matched.iter().map(|(p, _)| p.policy_id.clone()).collect(),
        caps: None,
        deny: None,
        quotas: Vec::new(),
        run_id_required: false,
        ttl_ms: req.ttl_ms,
        ttl_capped: false,
        max_extensions: None,
        commit_overage_policy: matched.iter().find_map(|(p, _)| p.rules.commit_overage_policy),
        reservations_per_minute: rate_use(&matched, &req.scopes, |r| r.max_reservations_per_minute),
        commits_per_minute: rate_use(&matched, &req.scopes, |r| r.max_commits_per_minute),
    };
    let Some(&(top, top_pattern)) = matched.first() else {
        return Ok(out);
    };
    if let Some(deny) = access_control(top, &req.action_kind) {
        out.decision = Decision::Deny;
        out.deny = Some(deny);
        return Ok(out);
    }
    out.quotas = quota_uses(top, top_pattern, req, risk_class, now);
    out.run_id_required = req.run_id.is_none() && out.quotas.iter().any(|q| q.window == QuotaWindow::Run);
    apply_ttl(&matched, &mut out);
    let caps = merged_caps(&matched);
    if !caps.is_empty() {
        out.decision = Decision::AllowWithCaps;
        out.caps = Some(caps);
    }
    Ok(out)
}

/// The rate limit `field` of the highest-priority match that sets it, counted at the deepest
/// scope that policy governs.
fn rate_use(
    matched: &[Match<'_, '_>],
    scopes: &[String],
    field: fn(&super::RateLimits) -> Option<i64>,
) -> Option<RateUse> {
    let (p, pattern, per_minute) =
        matched.iter().find_map(|(p, pat)| p.rules.rate_limits.as_ref().and_then(field).map(|n| (*p, *pat, n)))?;
    let scope = scopes.iter().rev().find(|s| pattern.matches_path(s))?.clone();
    Some(RateUse { policy_id: p.policy_id.clone(), scope, per_minute })
}

/// Step 1 for the highest-priority match.
fn access_control(top: &Policy, kind: &str) -> Option<DenyDetail> {
    let (rules, id) = (&top.rules, &top.policy_id);
    if rules.denied_action_kinds.iter().any(|k| k == kind) {
        return Some(DenyDetail {
            reason_code: "ACTION_KIND_DENIED",
            blocked_by_policy: id.clone(),
            suggested_fix: format!("Remove '{kind}' from denied_action_kinds in policy '{id}'"),
        });
    }
    if !rules.allowed_action_kinds.is_empty() && !rules.allowed_action_kinds.iter().any(|k| k == kind) {
        return Some(DenyDetail {
            reason_code: "ACTION_KIND_NOT_ALLOWED",
            blocked_by_policy: id.clone(),
            suggested_fix: format!("Add '{kind}' to allowed_action_kinds in policy '{id}'"),
        });
    }
    None
}

/// A quota allowlist admits the request when empty, or when it holds the request's key.
fn admits(list: &[String], key: &Option<String>) -> bool {
    list.is_empty() || key.as_ref().is_some_and(|k| list.iter().any(|v| v.eq_ignore_ascii_case(k)))
}

fn window_key(window: QuotaWindow, run_id: &Option<String>, now: OffsetDateTime) -> Option<String> {
    let (d, t) = (now.date(), now.time());
    let day = format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    match window {
        QuotaWindow::Run => run_id.clone(),
        QuotaWindow::Minute => Some(format!("{day}T{:02}:{:02}", t.hour(), t.minute())),
        QuotaWindow::Hour => Some(format!("{day}T{:02}", t.hour())),
        QuotaWindow::Day | QuotaWindow::TenantDay => Some(day),
    }
}

/// Steps 2 and 3 for the highest-priority match: the rules the request would count against.
fn quota_uses(
    top: &Policy,
    pattern: &ScopePattern,
    req: &Request,
    risk_class: RiskClass,
    now: OffsetDateTime,
) -> Vec<QuotaUse> {
    // The most specific scope the policy governs; a per-tenant rule counts at the tenant.
    let deepest = req.scopes.iter().rev().find(|s| pattern.matches_path(s));
    let tenant = req.scopes.first();
    let scope_for = |w: QuotaWindow| {
        let s = if w == QuotaWindow::TenantDay { tenant } else { deepest };
        s.cloned().unwrap_or_default()
    };
    let risk = top.rules.risk_class_quotas.iter().filter(|q| q.risk_class == risk_class).map(|q| QuotaUse {
        policy_id: top.policy_id.clone(),
        action_kind: req.action_kind.clone(),
        risk_class: Some(q.risk_class),
        window: q.window,
        window_key: window_key(q.window, &req.run_id, now),
        max_calls: q.max_calls,
        scope: scope_for(q.window),
        run_counter_ttl_ms: q.per_run_counter_ttl_ms,
        threshold_pct: q.threshold_pct.unwrap_or(THRESHOLD_PCT_DEFAULT),
    });
    let keys = &req.policy_keys;
    let per_kind = top
        .rules
        .action_quotas
        .iter()
        .filter(|q| q.action_kind == req.action_kind)
        .filter(|q| admits(&q.host_allowlist, &keys.host))
        .filter(|q| admits(&q.recipient_domain_allowlist, &keys.recipient_domain))
        .filter(|q| admits(&q.resource_type_allowlist, &keys.resource_type))
        .map(|q| QuotaUse {
            policy_id: top.policy_id.clone(),
            action_kind: req.action_kind.clone(),
            risk_class: None,
            window: q.window,
            window_key: window_key(q.window, &req.run_id, now),
            max_calls: q.max_calls,
            scope: scope_for(q.window),
            run_counter_ttl_ms: q.per_run_counter_ttl_ms,
            threshold_pct: q.threshold_pct.unwrap_or(THRESHOLD_PCT_DEFAULT),
        });
    risk.chain(per_kind).collect()
}

fn apply_ttl(matched: &[Match<'_, '_>], out: &mut Outcome) {
    let field = |f: fn(&super::TtlOverride) -> Option<i64>| {
        matched.iter().find_map(|(p, _)| p.rules.reservation_ttl_override.as_ref().and_then(f))
    };
    let (default, max) = (field(|t| t.default_ttl_ms), field(|t| t.max_ttl_ms));
    out.max_extensions = field(|t| t.max_extensions);
    let ttl = out.ttl_ms.or(default);
    out.ttl_ms = match (ttl, max) {
        (Some(t), Some(m)) if t > m => {
            out.ttl_capped = true;
            Some(m)
        }
        (t, _) => t,
    };
}

/// Each cap from the highest-priority match that sets it.
fn merged_caps(matched: &[Match<'_, '_>]) -> Caps {
    let caps: Vec<&Caps> = matched.iter().filter_map(|(p, _)| p.rules.caps.as_ref()).collect();
    let first_list =
        |f: fn(&Caps) -> &Option<Vec<String>>| caps.iter().find_map(|c| f(c).clone().filter(|l| !l.is_empty()));
    Caps {
        max_tokens: caps.iter().find_map(|c| c.max_tokens),
        max_steps_remaining: caps.iter().find_map(|c| c.max_steps_remaining),
        tool_allowlist: first_list(|c| &c.tool_allowlist),
        tool_denylist: first_list(|c| &c.tool_denylist),
        cooldown_ms: caps.iter().find_map(|c| c.cooldown_ms),
    }
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
