//! Action quota counters as operators see them: listing a tenant's counters with the rule each
//! counts against (`lua/quota_read.lua`), and resetting one to 0 (`lua/quota_reset.lua`, which
//! appends `quota.counter_reset`). The counters themselves are written only by reserve and
//! given back by release and expiry; nothing here changes a budget or a reservation.

use serde_json::Value;
use time::OffsetDateTime;

use super::Ledger;
use crate::domain::error::{Error, Result};
use crate::domain::policy::eval::matching;
use crate::domain::policy::{QuotaWindow, RiskClass};

/// Most keys one listing examines in the tenant's slot: bounds the work of a request however
/// many keys the node holds. A listing that stops here says so (`truncated`).
pub const COUNTER_SCAN_KEYS_MAX: usize = 100_000;
/// The SCAN COUNT hint per step of the listing script.
const SCAN_STEP: usize = 1_000;
/// The counter-key name of a risk-class counter's kind.
pub const RISK: &str = "__risk__";

/// The key fields of one counter (the spec's `ActionQuotaCounterResetRequest` less tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey {
    pub scope: String,
    /// The action kind, or [`RISK`] with `risk_class` set.
    pub action_kind: String,
    pub risk_class: Option<RiskClass>,
    pub window: QuotaWindow,
    pub window_key: String,
}

impl CounterKey {
    /// The `what` part of the counter's Redis key (as reserve builds it).
    fn what(&self) -> String {
        match self.risk_class {
            Some(r) => format!("{RISK}:{}", r.as_str()),
            None => self.action_kind.clone(),
        }
    }

    /// Reads the key fields back from the part of a counter key after `<tenant tag>:q:`:
    /// `<scope>:<what>:<window>:<window key>`. A scope holds `:` and a run id may, so the
    /// window (a closed set of names) anchors the split.
    fn parse(rest: &str) -> Option<Self> {
        let (at, window) =
            [QuotaWindow::Run, QuotaWindow::Minute, QuotaWindow::Hour, QuotaWindow::Day, QuotaWindow::TenantDay]
                .into_iter()
                .filter_map(|w| rest.find(&format!(":{}:", w.as_str())).map(|at| (at, w)))
                .min_by_key(|(at, _)| *at)?;
        let window_key = rest[at + window.as_str().len() + 2..].to_string();
        let head = &rest[..at];
        let (scope, action_kind, risk_class) = match head.rsplit_once(&format!(":{RISK}:")) {
            Some((scope, class)) => (scope, RISK.to_string(), Some(RiskClass::parse(class)?)),
            None => {
                let (scope, kind) = head.rsplit_once(':')?;
                (scope, kind.to_string(), None)
            }
        };
        Some(Self { scope: scope.to_string(), action_kind, risk_class, window, window_key })
    }
}

/// One live counter and the rule it counts against.
#[derive(Debug, Clone)]
pub struct Counter {
    pub key: CounterKey,
    pub used: i64,
    /// The counting rule's `max_calls` and policy: of the highest-priority policy in force
    /// that matches the counter's scope and has a rule of this kind (or class) and window.
    pub limit: Option<(i64, String)>,
    /// When the counter's key expires, ms since the epoch (None: no TTL).
    pub expires_at_ms: Option<i64>,
}

/// What a reset did.
#[derive(Debug, Clone)]
pub struct Reset {
    pub counter: Counter,
    pub previous_used: i64,
}

impl Ledger {
    /// The rule a counter of `key` counts against now: `(max_calls, policy_id)`.
    pub async fn counter_rule(&self, tenant: &str, key: &CounterKey) -> Result<Option<(i64, String)>> {
        let set = self.reload_policies(tenant).await?;
        let scopes = [key.scope.clone()];
        for p in matching(&set.policies, &scopes, OffsetDateTime::now_utc()) {
            let r = &p.rules;
            let hit = match key.risk_class {
                Some(class) => r
                    .risk_class_quotas
                    .iter()
                    .find(|q| q.risk_class == class && q.window == key.window)
                    .map(|q| q.max_calls),
                None => r
                    .action_quotas
                    .iter()
                    .find(|q| q.action_kind == key.action_kind && q.window == key.window)
                    .map(|q| q.max_calls),
            };
            if let Some(max_calls) = hit {
                return Ok(Some((max_calls, p.policy_id.clone())));
            }
        }
        Ok(None)
    }

    /// Every live counter of `tenant` (in key order), and whether the scan stopped at
    /// [`COUNTER_SCAN_KEYS_MAX`] before the end.
    pub async fn quota_counters(&self, tenant: &str) -> Result<(Vec<Counter>, bool)> {
        let k = self.keys();
        let prefix = k.quota_prefix(tenant);
        let args = vec![format!("{}*", glob_escape(&prefix)), COUNTER_SCAN_KEYS_MAX.to_string(), SCAN_STEP.to_string()];
        let raw: String = self.eval(&self.scripts.quota_read, vec![k.tenant(tenant)], &args).await?;
        let bad = || Error::internal("quota_read reply");
        let body: Value = serde_json::from_str(&raw).map_err(|_| bad())?;
        let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let mut out = Vec::new();
        for row in body["counters"].as_array().into_iter().flatten() {
            let (Some(name), Some(used), Some(pttl)) = (row[0].as_str(), row[1].as_str(), row[2].as_i64()) else {
                return Err(bad());
            };
            let Some(key) = name.strip_prefix(prefix.as_str()).and_then(CounterKey::parse) else { continue };
            let used = used.parse().map_err(|_| bad())?;
            let expires_at_ms = (pttl >= 0).then(|| now_ms as i64 + pttl);
            out.push(Counter { key, used, limit: None, expires_at_ms });
        }
        out.sort_by(|a, b| {
            (&a.key.scope, a.key.what(), a.key.window.as_str(), &a.key.window_key).cmp(&(
                &b.key.scope,
                b.key.what(),
                b.key.window.as_str(),
                &b.key.window_key,
            ))
        });
        for c in &mut out {
            c.limit = self.counter_rule(tenant, &c.key).await?;
        }
        Ok((out, body["truncated"].as_str() == Some("1")))
    }

    /// Sets one counter to 0 and appends `quota.counter_reset` with `actor_id` and `reason`;
    /// `None` when no counter has these key fields.
    pub async fn reset_quota_counter(
        &self,
        tenant: &str,
        key: &CounterKey,
        actor_id: &str,
        reason: Option<&str>,
        corr: &super::Correlation,
    ) -> Result<Option<Reset>> {
        let k = self.keys();
        let limit = self.counter_rule(tenant, key).await?;
        let mut data = serde_json::json!({
            "scope": key.scope, "action_kind": key.action_kind, "window": key.window.as_str(),
            "window_key": key.window_key, "actor_id": actor_id,
        });
        if let Some(r) = key.risk_class {
            data["risk_class"] = r.as_str().into();
        }
        if let Some(reason) = reason {
            data["reason"] = reason.into();
        }
        if let Some((max_calls, _)) = &limit {
            data["limit"] = (*max_calls).into();
        }
        let correlation = quota_correlation(tenant, &key.scope, &key.what(), key.window.as_str(), &key.window_key);
        let per_run = key.window == QuotaWindow::Run;
        // A per_run counter's TTL starts again as reserve sets it when a rule names none.
        let ttl_ms = super::reserve::RUN_COUNTER_TTL_MS_DEFAULT;
        let keys =
            vec![k.quota(tenant, &key.scope, &key.what(), key.window.as_str(), &key.window_key), k.outbox(tenant)];
        let args = vec![
            data.to_string(),
            if per_run { "1" } else { "" }.to_string(),
            ttl_ms.to_string(),
            corr.request_id.clone(),
            corr.trace_id.clone(),
            correlation,
            key.scope.clone(),
        ];
        let raw: String = self.eval(&self.scripts.quota_reset, keys, &args).await?;
        let reply = match super::decode(&raw) {
            Err(e) if e.code == crate::domain::error::ErrorCode::NotFound => return Ok(None),
            other => other?,
        };
        let previous_used = reply.str("previous_used")?.parse().map_err(|_| Error::internal("quota_reset reply"))?;
        let pttl = reply.int("pttl")?;
        let expires_at_ms = (pttl >= 0).then(|| reply.now_ms + pttl);
        let counter = Counter { key: key.clone(), used: 0, limit, expires_at_ms };
        Ok(Some(Reset { counter, previous_used }))
    }
}

/// The correlation id of a counter's `quota.*` events: the same for every event of one window
/// instance (its threshold crossing, its resets), so a dashboard can join them. `what` is the
/// kind, or `__risk__:<class>` for a risk-class counter.
pub fn quota_correlation(tenant: &str, scope: &str, what: &str, window: &str, window_key: &str) -> String {
    format!("quota:{tenant}:{scope}:{what}:{window}:{window_key}")
}

/// Escapes Redis glob characters so a key prefix matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_key_reads_back_into_its_fields() {
        let k = CounterKey::parse("tenant:acme/agent:x:llm.completion:per_run:run:1").unwrap();
        assert_eq!(k.scope, "tenant:acme/agent:x");
        assert_eq!(k.action_kind, "llm.completion");
        assert_eq!(k.window, QuotaWindow::Run);
        assert_eq!(k.window_key, "run:1");
        let r = CounterKey::parse("tenant:acme:__risk__:high_risk:per_hour_tumbling:2026-01-01T10").unwrap();
        assert_eq!((r.scope.as_str(), r.risk_class), ("tenant:acme", Some(RiskClass::HighRisk)));
        assert_eq!(r.what(), "__risk__:high_risk");
    }
}
