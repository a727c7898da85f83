//! Tiers: the built-in four (seeded from the admission flags at start-up, never over an
//! operator's PATCH) and operator-defined ones; create and patch with their audit entry and
//! `system.tier_changed` event; and what a tenant's tier gives it: the budgets it adds and the
//! policies it starts with.
//!
//! A change of a tier's class or rate limit is announced on the auth channel (`tier:<name>`),
//! so every instance drops the cached keys of the tier's tenants at commit and admission uses
//! the new values from the next request on.

use serde_json::{Value, json};

use super::Catalogue;
use super::audit::Actor;
use crate::domain::clock::now;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::event::{EventType, SYSTEM_TENANT};
use crate::domain::policy::{NewRules, check_rules};
use crate::domain::tenant::RateLimit;
use crate::domain::tier::{BudgetTemplate, Class, TenantDefaults, Tier, TierDef};
use crate::events;
use crate::ledger::budgets::NewBudget;
use crate::store::pg::{self, audit, tiers};

/// The fields a tier PATCH may change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct TierPatch {
    pub description: Option<String>,
    pub class: Option<Class>,
    /// `Some(None)` removes the tier's rate limit.
    pub rate_limit: Option<Option<RateLimit>>,
    pub tenant_defaults: Option<TenantDefaults>,
    pub default_budgets: Option<Vec<BudgetTemplate>>,
    pub default_policies: Option<Vec<Value>>,
}

fn tier_not_found(tier: &str) -> Error {
    Error::not_found(format!("tier {tier} not found"))
}

/// The names of the fields `p` changes on `t`.
fn changed_fields(t: &TierDef, p: &TierPatch) -> Vec<&'static str> {
    let mut out = Vec::new();
    let d = &t.tenant_defaults;
    let checks = [
        ("description", p.description.as_ref().is_some_and(|v| Some(v) != t.description.as_ref())),
        ("admission_class", p.class.is_some_and(|v| v != t.class)),
        ("rate_limit", p.rate_limit.is_some_and(|v| v != t.rate_limit)),
        ("tenant_defaults", p.tenant_defaults.is_some_and(|v| v != *d)),
        ("default_budgets", p.default_budgets.as_ref().is_some_and(|v| *v != t.default_budgets)),
        ("default_policies", p.default_policies.as_ref().is_some_and(|v| *v != t.default_policies)),
    ];
    for (name, differs) in checks {
        if differs {
            out.push(name);
        }
    }
    out
}

fn apply(mut t: TierDef, p: TierPatch) -> TierDef {
    if let Some(v) = p.description {
        t.description = Some(v);
    }
    if let Some(v) = p.class {
        t.class = v;
    }
    if let Some(v) = p.rate_limit {
        t.rate_limit = v;
    }
    if let Some(v) = p.tenant_defaults {
        t.tenant_defaults = v;
    }
    if let Some(v) = p.default_budgets {
        t.default_budgets = v;
    }
    if let Some(v) = p.default_policies {
        t.default_policies = v;
    }
    t
}

impl Catalogue {
    /// Copies the flags' class and rate limit into the built-in tiers no operator has patched,
    /// and announces the tiers that changed. Configuration, not an admin mutation: no audit.
    pub async fn seed_built_in_tiers(&self, built_in: &[(Tier, Class, Option<RateLimit>)]) -> Result<()> {
        let mut tx = self.pg.begin().await?;
        let mut announce = Vec::new();
        for (tier, class, limit) in built_in {
            if tiers::seed_built_in(&mut tx, tier.as_str(), *class, *limit).await? {
                announce.push(format!("tier:{tier}"));
            }
        }
        self.commit_announcing(tx, &announce).await
    }

    pub async fn list_tiers(&self) -> Result<Vec<TierDef>> {
        Ok(tiers::list(self.pg.pool()).await?)
    }

    pub async fn get_tier(&self, tier: &str) -> Result<TierDef> {
        tiers::get(self.pg.pool(), tier).await?.ok_or_else(|| tier_not_found(tier))
    }

    /// The tier a request names for a tenant: unknown is 400 naming `tier`.
    pub async fn tier_for_tenant(&self, tier: &Tier) -> Result<TierDef> {
        tiers::get(self.pg.pool(), tier.as_str())
            .await?
            .ok_or_else(|| Error::invalid_field("tier", format!("unknown tier {tier}")))
    }

    pub async fn create_tier(&self, actor: &Actor, new: TierDef) -> Result<TierDef> {
        let mut tx = self.pg.begin().await?;
        if tiers::count(&mut tx).await? >= tiers::TIERS_MAX {
            return Err(Error::invalid_field("tier", format!("a deployment holds at most {} tiers", tiers::TIERS_MAX)));
        }
        if !tiers::insert(&mut tx, &new).await? {
            return Err(Error::new(ErrorCode::DuplicateResource, format!("tier {} exists", new.tier)));
        }
        let name = new.tier.as_str();
        audit::append(&mut tx, &actor.entry("createTier", SYSTEM_TENANT, ("tier", name), 201, json!({}))).await?;
        let data = json!({ "tier": name, "operation": "CREATE", "changed_fields": [] });
        events::record(&mut tx, &[actor.event(EventType::SystemTierChanged, SYSTEM_TENANT, data)]).await?;
        pg::commit(tx).await?;
        Ok(new)
    }

    /// Patches a tier. A new class or rate limit reaches every instance's admission at once;
    /// a patched built-in tier stops following the flags.
    pub async fn update_tier(&self, actor: &Actor, name: &str, patch: TierPatch) -> Result<TierDef> {
        let mut tx = self.pg.begin().await?;
        let current = tiers::get_for_update(&mut tx, name).await?.ok_or_else(|| tier_not_found(name))?;
        let changed = changed_fields(&current, &patch);
        let mut updated = apply(current.clone(), patch);
        let d = &updated.tenant_defaults;
        super::tenants::check_ttls(d.default_reservation_ttl_ms, d.max_reservation_ttl_ms)?;
        if changed.is_empty() {
            return Ok(current);
        }
        updated.operator_modified = true;
        updated.updated_at = now();
        tiers::update(&mut tx, &updated).await?;
        let details = json!({ "changed_fields": changed });
        audit::append(&mut tx, &actor.entry("updateTier", SYSTEM_TENANT, ("tier", name), 200, details)).await?;
        let data = json!({ "tier": name, "operation": "UPDATE", "changed_fields": changed });
        events::record(&mut tx, &[actor.event(EventType::SystemTierChanged, SYSTEM_TENANT, data)]).await?;
        let admission = updated.class != current.class || updated.rate_limit != current.rate_limit;
        let announce = if admission { vec![format!("tier:{name}")] } else { Vec::new() };
        self.commit_announcing(tx, &announce).await?;
        Ok(updated)
    }

    /// Creates the budgets of `tier` that `tenant` lacks, each audited like an admin create;
    /// budgets the tenant has (whatever their balance) are left untouched. Returns the
    /// budgets created.
    pub(super) async fn add_tier_budgets(
        &self,
        actor: &Actor,
        tenant: &str,
        tier: &TierDef,
    ) -> Result<Vec<crate::ledger::reads::BudgetDoc>> {
        let mut created = Vec::new();
        for template in &tier.default_budgets {
            let scope = template.scope_for(tenant);
            if self.ledger.budget(tenant, &scope, template.unit).await?.is_some() {
                continue;
            }
            let new = NewBudget {
                tenant: tenant.to_string(),
                scope,
                unit: template.unit,
                allocated: template.allocated,
                overdraft_limit: template.overdraft_limit,
                commit_overage_policy: template.commit_overage_policy,
                rollover_policy: String::new(),
                period: None,
            };
            match self.create_budget(actor, new).await {
                Ok(doc) => created.push(doc),
                // Created meanwhile by a concurrent call: exists, so nothing to add.
                Err(e) if e.code == ErrorCode::DuplicateResource => {}
                Err(e) => return Err(e),
            }
        }
        Ok(created)
    }

    /// Creates the tier's default policies for `tenant` through the policy catalogue (one audit
    /// entry and event each), skipping any whose name the tenant already has, so a retry or a
    /// recovery pass never duplicates one. Answers `{policy_id, name}` of each policy by that name.
    pub async fn create_tier_policies(&self, actor: &Actor, tenant: &str, policies: &[Value]) -> Result<Vec<Value>> {
        if policies.is_empty() {
            return Ok(Vec::new());
        }
        let existing = self.tenant_policies(tenant).await?;
        let mut out = Vec::with_capacity(policies.len());
        for (i, template) in policies.iter().enumerate() {
            let new = template_rules(i, template)?;
            let name = new.name.clone().unwrap_or_default();
            let policy = match existing.iter().find(|p| p.rules.name == name) {
                Some(p) => p.policy_id.clone(),
                None => self.create_policy(actor, tenant, new).await?.policy_id,
            };
            out.push(json!({ "policy_id": policy, "name": name }));
        }
        Ok(out)
    }
}

/// A tier's policy template as policy fields, checked as a policy of any tenant: its
/// `scope_pattern` must name the tenant by a wildcard (`tenant:*/…`).
pub fn template_rules(i: usize, template: &Value) -> Result<NewRules> {
    let field = format!("default_policies[{i}]");
    let new: NewRules = serde_json::from_value(template.clone())
        .map_err(|e| Error::invalid_field(&field, format!("is not a policy: {e}")))?;
    let rules = new.clone().into_rules().map_err(|e| e.prefix_field(&field))?;
    check_rules(&rules, "*").map_err(|e| e.prefix_field(&field))?;
    Ok(new)
}
