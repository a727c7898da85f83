//! Validation of a whole rule set, as it would be stored (a create, or a PATCH applied to the
//! stored rules), so every path refuses the same things. Each refusal is `INVALID_REQUEST`
//! naming the field by its JSON path (`action_quotas[2].max_calls`). Every number has an
//! upper limit, so an absurd value is refused rather than stored.

use super::pattern::ScopePattern;
use super::{ActionQuota, Caps, QuotaWindow, RateLimits, RiskClassQuota, Rules, TtlOverride, kinds};
use crate::domain::error::{Error, Result};

pub const NAME_LEN_MAX: usize = 256;
pub const DESCRIPTION_LEN_MAX: usize = 1024;
/// Highest priority: ample for ordering, small enough to stay an exact JSON number anywhere.
pub const PRIORITY_MAX: i64 = 1_000_000;
/// `max_tokens` above this is no cap a model has.
pub const MAX_TOKENS_MAX: i64 = 100_000_000;
pub const MAX_STEPS_MAX: i64 = 1_000_000;
/// A cooldown longer than a day is a suspension, not a cap.
pub const COOLDOWN_MS_MAX: i64 = 86_400_000;
pub const TOOLS_MAX: usize = 100;
pub const TOOL_NAME_LEN_MAX: usize = 256;
/// The spec's TTL bounds.
pub const TTL_MS_MIN: i64 = 1_000;
pub const TTL_MS_MAX: i64 = 86_400_000;
pub const EXTENSIONS_MAX: i64 = 1_000;
/// A rate above this per minute is no limit an instance can tell from none.
pub const PER_MINUTE_MAX: i64 = 1_000_000;
/// The spec's list bounds and `max_calls` range.
pub const ACTION_QUOTAS_MAX: usize = 50;
pub const RISK_CLASS_QUOTAS_MAX: usize = 20;
pub const KIND_LIST_MAX: usize = 200;
pub const MAX_CALLS_MAX: i64 = 100_000;
pub const RUN_TTL_MS_MIN: i64 = 60_000;
pub const RUN_TTL_MS_MAX: i64 = 604_800_000;
/// Entries of one quota allowlist (host, recipient domain, resource type).
pub const ALLOWLIST_MAX: usize = 100;
const HOST_LEN_MAX: usize = 253;
const RESOURCE_TYPE_LEN_MAX: usize = 128;

fn range(field: &str, v: i64, min: i64, max: i64) -> Result<()> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid_field(field, format!("must be from {min} to {max}")))
    }
}

fn text(field: &str, v: &str, min: usize, max: usize) -> Result<()> {
    let n = v.chars().count();
    if n < min || n > max || (min > 0 && v.trim().is_empty()) {
        return Err(Error::invalid_field(field, format!("must be {min} to {max} characters")));
    }
    Ok(())
}

fn strings(field: &str, list: &[String], count_max: usize, len_max: usize) -> Result<()> {
    if list.len() > count_max {
        return Err(Error::invalid_field(field, format!("must hold at most {count_max} entries")));
    }
    for (i, s) in list.iter().enumerate() {
        text(&format!("{field}[{i}]"), s, 1, len_max)?;
    }
    Ok(())
}

/// Validates `rules` for a policy of `tenant`.
pub fn check_rules(rules: &Rules, tenant: &str) -> Result<()> {
    text("name", &rules.name, 1, NAME_LEN_MAX)?;
    if let Some(d) = &rules.description {
        text("description", d, 0, DESCRIPTION_LEN_MAX)?;
    }
    let pattern = ScopePattern::parse(&rules.scope_pattern).map_err(|e| Error::invalid_field("scope_pattern", e))?;
    if pattern.tenant().is_some_and(|t| t != tenant) {
        return Err(Error::invalid_field("scope_pattern", format!("must start with tenant:{tenant} or a wildcard")));
    }
    range("priority", rules.priority, 0, PRIORITY_MAX)?;
    if let Some(c) = &rules.caps {
        check_caps(c)?;
    }
    if let Some(t) = &rules.reservation_ttl_override {
        check_ttl(t)?;
    }
    if let Some(r) = &rules.rate_limits {
        check_rates(r)?;
    }
    if let (Some(from), Some(until)) = (rules.effective_from, rules.effective_until)
        && from >= until
    {
        return Err(Error::invalid_field("effective_from", "must be before effective_until"));
    }
    check_kind_lists(rules)?;
    check_action_quotas(&rules.action_quotas)?;
    check_risk_quotas(&rules.risk_class_quotas)
}

fn check_caps(c: &Caps) -> Result<()> {
    if let Some(v) = c.max_tokens {
        range("caps.max_tokens", v, 0, MAX_TOKENS_MAX)?;
    }
    if let Some(v) = c.max_steps_remaining {
        range("caps.max_steps_remaining", v, 0, MAX_STEPS_MAX)?;
    }
    if let Some(v) = c.cooldown_ms {
        range("caps.cooldown_ms", v, 0, COOLDOWN_MS_MAX)?;
    }
    if let Some(l) = &c.tool_allowlist {
        strings("caps.tool_allowlist", l, TOOLS_MAX, TOOL_NAME_LEN_MAX)?;
    }
    if let Some(l) = &c.tool_denylist {
        strings("caps.tool_denylist", l, TOOLS_MAX, TOOL_NAME_LEN_MAX)?;
    }
    Ok(())
}

fn check_ttl(t: &TtlOverride) -> Result<()> {
    if let Some(v) = t.default_ttl_ms {
        range("reservation_ttl_override.default_ttl_ms", v, TTL_MS_MIN, TTL_MS_MAX)?;
    }
    if let Some(v) = t.max_ttl_ms {
        range("reservation_ttl_override.max_ttl_ms", v, TTL_MS_MIN, TTL_MS_MAX)?;
    }
    if let (Some(d), Some(m)) = (t.default_ttl_ms, t.max_ttl_ms)
        && d > m
    {
        return Err(Error::invalid_field("reservation_ttl_override.default_ttl_ms", "must not exceed max_ttl_ms"));
    }
    if let Some(v) = t.max_extensions {
        range("reservation_ttl_override.max_extensions", v, 0, EXTENSIONS_MAX)?;
    }
    Ok(())
}

fn check_rates(r: &RateLimits) -> Result<()> {
    if let Some(v) = r.max_reservations_per_minute {
        range("rate_limits.max_reservations_per_minute", v, 1, PER_MINUTE_MAX)?;
    }
    if let Some(v) = r.max_commits_per_minute {
        range("rate_limits.max_commits_per_minute", v, 1, PER_MINUTE_MAX)?;
    }
    Ok(())
}

fn check_kind_lists(rules: &Rules) -> Result<()> {
    for (field, list) in
        [("allowed_action_kinds", &rules.allowed_action_kinds), ("denied_action_kinds", &rules.denied_action_kinds)]
    {
        if list.len() > KIND_LIST_MAX {
            return Err(Error::invalid_field(field, format!("must hold at most {KIND_LIST_MAX} kinds")));
        }
        for (i, kind) in list.iter().enumerate() {
            kinds::check_policy_kind(kind).map_err(|e| Error::invalid_field(&format!("{field}[{i}]"), e))?;
        }
    }
    if !rules.allowed_action_kinds.is_empty() && !rules.denied_action_kinds.is_empty() {
        return Err(Error::invalid_field(
            "allowed_action_kinds",
            "allowed_action_kinds and denied_action_kinds are mutually exclusive; clear one of them",
        ));
    }
    Ok(())
}

/// `per_run_counter_ttl_ms` (only with `per_run`) and `threshold_pct` of one quota rule.
fn check_window_options(at: &str, window: QuotaWindow, run_ttl: Option<i64>, pct: Option<f64>) -> Result<()> {
    if let Some(ttl) = run_ttl {
        if window != QuotaWindow::PerRun {
            return Err(Error::invalid_field(
                &format!("{at}.per_run_counter_ttl_ms"),
                "is allowed only with window per_run",
            ));
        }
        range(&format!("{at}.per_run_counter_ttl_ms"), ttl, RUN_TTL_MS_MIN, RUN_TTL_MS_MAX)?;
    }
    if let Some(p) = pct
        && !(0.01..=0.99).contains(&p)
    {
        return Err(Error::invalid_field(&format!("{at}.threshold_pct"), "must be from 0.01 to 0.99"));
    }
    Ok(())
}

fn check_action_quotas(quotas: &[ActionQuota]) -> Result<()> {
    if quotas.len() > ACTION_QUOTAS_MAX {
        return Err(Error::invalid_field("action_quotas", format!("must hold at most {ACTION_QUOTAS_MAX} rules")));
    }
    for (i, q) in quotas.iter().enumerate() {
        let at = format!("action_quotas[{i}]");
        kinds::check_policy_kind(&q.action_kind).map_err(|e| Error::invalid_field(&format!("{at}.action_kind"), e))?;
        range(&format!("{at}.max_calls"), q.max_calls, 1, MAX_CALLS_MAX)?;
        check_window_options(&at, q.window, q.per_run_counter_ttl_ms, q.threshold_pct)?;
        strings(&format!("{at}.host_allowlist"), &q.host_allowlist, ALLOWLIST_MAX, HOST_LEN_MAX)?;
        strings(
            &format!("{at}.recipient_domain_allowlist"),
            &q.recipient_domain_allowlist,
            ALLOWLIST_MAX,
            HOST_LEN_MAX,
        )?;
        strings(
            &format!("{at}.resource_type_allowlist"),
            &q.resource_type_allowlist,
            ALLOWLIST_MAX,
            RESOURCE_TYPE_LEN_MAX,
        )?;
    }
    Ok(())
}

fn check_risk_quotas(quotas: &[RiskClassQuota]) -> Result<()> {
    if quotas.len() > RISK_CLASS_QUOTAS_MAX {
        return Err(Error::invalid_field(
            "risk_class_quotas",
            format!("must hold at most {RISK_CLASS_QUOTAS_MAX} rules"),
        ));
    }
    for (i, q) in quotas.iter().enumerate() {
        let at = format!("risk_class_quotas[{i}]");
        range(&format!("{at}.max_calls"), q.max_calls, 1, MAX_CALLS_MAX)?;
        check_window_options(&at, q.window, q.per_run_counter_ttl_ms, q.threshold_pct)?;
    }
    Ok(())
}
