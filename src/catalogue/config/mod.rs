//! Configuration snapshots (a Tollgate extension, after DVARA's config export/import): `export`
//! writes the deployment's tenants, budgets, webhook subscriptions and API key metadata as one
//! versioned document; `import` validates a document whole, answers its diff, and applies it
//! atomically across Postgres and Redis.
//!
//! One module per kind, each with the same steps: `export` its section, `plan` (validate it and
//! diff it against the deployment) and `apply` the plan. Adding a kind is adding a module and
//! its line in each step of [`Catalogue::export_config`] and [`Catalogue::import_config`].
//!
//! Atomicity (docs/DESIGN.md §Configuration import): one Postgres transaction holds every
//! catalogue change, its audit entries and events; the Redis writes (tenant mirrors, budgets)
//! run inside it after an undo plan was committed to `config_import_journal`; the transaction
//! deletes that plan, so a plan that outlives its import belongs to one that never committed,
//! and `undo` puts Redis back (at once, or by the recovery pass once Redis answers again).

pub mod api_keys;
pub mod budgets;
mod plan;
pub mod policies;
pub mod tenants;
pub mod tiers;
mod undo;
pub mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Catalogue;
use super::audit::Actor;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::event::Event;
use crate::domain::tenant::TenantStatus;
use crate::store::pg::{PgTx, audit};

pub use plan::Report;

/// The document's `format`, and the version this build reads and writes.
pub const FORMAT: &str = "tollgate.config";
pub const FORMAT_VERSION: u32 = 1;
/// Objects one snapshot may hold, all kinds together: an export above it is refused (400
/// `LIMIT_EXCEEDED`) rather than built, and an import must fit in memory and one transaction.
pub const OBJECTS_MAX: usize = 10_000;

/// A configuration snapshot. A section left out of an import is left alone, even by `replace`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub format: String,
    pub format_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<String>,
    #[serde(default)]
    pub includes_balances: bool,
    /// Fields never exported, per kind (informational; ignored on import).
    #[serde(default)]
    pub omitted_fields: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<Vec<tiers::TierSnap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<tenants::TenantSnap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Vec<budgets::BudgetSnap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<webhooks::WebhookSnap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<Vec<api_keys::KeySnap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<policies::PolicySnap>>,
}

/// `merge` creates and updates; `replace` also deletes what the snapshot's sections lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Merge,
    Replace,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Merge => "merge",
            Mode::Replace => "replace",
        }
    }
}

/// 400 naming one object of the snapshot and its field: `budgets[tenant:a|TOKENS].allocated`.
pub(super) fn bad(kind: &str, id: &str, field: &str, problem: impl std::fmt::Display) -> Error {
    Error::invalid_field(&format!("{kind}[{id}].{field}"), problem)
}

/// A field error of one of the catalogue's own checks, renamed to the snapshot object it is on.
pub(super) fn within(kind: &str, id: &str, mut e: Error) -> Error {
    if let Some(Value::String(field)) = e.details.as_ref().and_then(|d| d.get("field")).cloned() {
        let named = format!("{kind}[{id}].{field}");
        e.message = e.message.replacen(&field, &named, 1);
        e.details = Some(json!({ "field": named }));
    } else {
        e.message = format!("{kind}[{id}]: {}", e.message);
    }
    e
}

/// What is left of [`OBJECTS_MAX`] while a snapshot is built or read.
pub(super) struct Allowance(usize);

impl Allowance {
    pub(super) fn take(&mut self, n: usize) -> Result<()> {
        self.0 = self.0.checked_sub(n).ok_or_else(|| {
            Error::new(
                ErrorCode::BulkLimitExceeded,
                format!("a configuration snapshot holds at most {OBJECTS_MAX} objects"),
            )
        })?;
        Ok(())
    }
}

/// What every section's plan may need to know of the others.
pub(super) struct Ctx {
    pub mode: Mode,
    /// Every tier once the import applies.
    pub tiers: HashSet<String>,
    /// Each tenant's status once the import applies.
    pub after: HashMap<String, TenantStatus>,
    /// Tenants this import closes: their keys, webhooks and budgets are left to the close
    /// cascade, so the other sections neither change nor report them.
    pub closing: HashSet<String>,
}

impl Ctx {
    /// Whether objects of `tenant` are the import's to change (it exists, and is not being
    /// closed by this import).
    pub fn owns(&self, tenant: &str) -> bool {
        self.after.contains_key(tenant) && !self.closing.contains(tenant)
    }
}

/// The state of an import being applied: its audit entries name it; events and cache
/// announcements are gathered for the end of the transaction.
pub(super) struct Applying<'a> {
    pub actor: &'a Actor,
    pub import_id: &'a str,
    pub mode: Mode,
    pub events: Vec<Event>,
    pub announce: Vec<String>,
}

impl Applying<'_> {
    /// One audit entry for one change of one object.
    pub async fn audit(
        &self,
        tx: &mut PgTx,
        tenant: &str,
        object: (&str, &str),
        change: &str,
        extra: Value,
    ) -> Result<()> {
        let mut details = json!({ "import_id": self.import_id, "mode": self.mode.as_str(), "change": change });
        if let (Some(d), Value::Object(extra)) = (details.as_object_mut(), extra) {
            d.extend(extra);
        }
        let entry = self.actor.entry("importConfig", tenant, object, 200, details);
        audit::append(tx, &entry).await?;
        Ok(())
    }

    pub fn event(&mut self, kind: crate::domain::event::EventType, tenant: &str, scope: Option<String>, data: Value) {
        let mut event = self.actor.event(kind, tenant, data);
        event.scope = scope;
        event.correlation_id = Some(format!("config_import:{}", self.import_id));
        self.events.push(event);
    }
}

impl Catalogue {
    /// The whole configuration as one document; balances only when asked.
    pub async fn export_config(&self, include_balances: bool) -> Result<Snapshot> {
        let mut allowance = Allowance(OBJECTS_MAX);
        let tiers = tiers::export(self, &mut allowance).await?;
        let tenants = tenants::export(self, &mut allowance).await?;
        let ids: Vec<String> = tenants.iter().map(|t| t.tenant_id.to_string()).collect();
        let budgets = budgets::export(self, &ids, include_balances, &mut allowance).await?;
        let webhooks = webhooks::export(self, &mut allowance).await?;
        let api_keys = api_keys::export(self, &mut allowance).await?;
        let policies = policies::export(self, &ids, &mut allowance).await?;
        let omitted_fields = BTreeMap::from([
            ("webhooks".to_string(), webhooks::OMITTED.iter().map(|s| s.to_string()).collect()),
            ("api_keys".to_string(), api_keys::OMITTED.iter().map(|s| s.to_string()).collect()),
        ]);
        Ok(Snapshot {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            exported_at: crate::domain::clock::now().format(&time::format_description::well_known::Rfc3339).ok(),
            includes_balances: include_balances,
            omitted_fields,
            tiers: Some(tiers),
            tenants: Some(tenants),
            budgets: Some(budgets),
            webhooks: Some(webhooks),
            api_keys: Some(api_keys),
            policies: Some(policies),
        })
    }
}
