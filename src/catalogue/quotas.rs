//! Resetting an action quota counter on an operator's word: the ledger does the reset (and
//! appends `quota.counter_reset`); the catalogue records who did it.

use serde_json::json;

use super::Catalogue;
use super::audit::Actor;
use crate::domain::error::Result;
use crate::ledger::quotas::{CounterKey, Reset};

impl Catalogue {
    /// Sets one counter of `tenant` to 0, audited; `None` when no counter has these key fields.
    pub async fn reset_quota_counter(
        &self,
        actor: &Actor,
        tenant: &str,
        key: &CounterKey,
        reason: Option<&str>,
    ) -> Result<Option<Reset>> {
        let details = json!({
            "scope": key.scope, "action_kind": key.action_kind, "risk_class": key.risk_class.map(|r| r.as_str()),
            "window": key.window.as_str(), "window_key": key.window_key, "reason": reason,
        });
        let resource = format!("{}:{}:{}:{}", key.scope, key.action_kind, key.window.as_str(), key.window_key);
        let entry = actor.entry("resetActionQuotaCounter", tenant, ("action_quota_counter", &resource), 200, details);
        let name = actor.name();
        let reset = self.ledger.reset_quota_counter(tenant, key, &name, reason, &actor.ctx);
        self.audited(entry, reset, Option::is_some).await
    }
}
