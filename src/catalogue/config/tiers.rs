//! The `tiers` section: every tier (built-in and operator-defined) with its admission class,
//! rate limit, tenant defaults and default budgets and policies, matched by name. Import creates a
//! missing tier and updates a differing one (a changed built-in tier stops following the
//! start-up flags, as a PATCH makes it). A tier is never deleted, not even by `replace`: tenants
//! refer to it and the catalogue has no delete. Tiers are applied before tenants, so a snapshot
//! may bring the tiers its tenants name.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Applying, Ctx, bad};
use crate::catalogue::Catalogue;
use crate::domain::clock::now;
use crate::domain::error::Result;
use crate::domain::event::{EventType, SYSTEM_TENANT};
use crate::domain::tenant::{self as t, CommitOveragePolicy, RateLimit};
use crate::domain::tier::{BudgetTemplate, Class, TenantDefaults, Tier, TierDef};
use crate::store::pg::{PgTx, tiers as store};

const DESCRIPTION_LEN_MAX: usize = 1024;
const TEMPLATES_MAX: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSnap {
    pub tier: Tier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub class: Class,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_burst: Option<u32>,
    pub default_commit_overage_policy: CommitOveragePolicy,
    pub default_reservation_ttl_ms: i64,
    pub max_reservation_ttl_ms: i64,
    pub max_reservation_extensions: i64,
    #[serde(default)]
    pub default_budgets: Vec<BudgetTemplate>,
    #[serde(default)]
    pub default_policies: Vec<Value>,
}

impl TierSnap {
    fn of(d: &TierDef) -> Self {
        let td = &d.tenant_defaults;
        Self {
            tier: d.tier.clone(),
            description: d.description.clone(),
            class: d.class,
            rate_limit_per_second: d.rate_limit.map(|r| r.per_second),
            rate_limit_burst: d.rate_limit.map(|r| r.burst),
            default_commit_overage_policy: td.default_commit_overage_policy,
            default_reservation_ttl_ms: td.default_reservation_ttl_ms,
            max_reservation_ttl_ms: td.max_reservation_ttl_ms,
            max_reservation_extensions: td.max_reservation_extensions,
            default_budgets: d.default_budgets.clone(),
            default_policies: d.default_policies.clone(),
        }
    }

    /// The stored tier this snapshot describes; times and flags from `current` where it exists.
    fn to_def(&self, current: Option<&TierDef>) -> TierDef {
        let at = now();
        let rate_limit = match (self.rate_limit_per_second, self.rate_limit_burst) {
            (Some(per_second), Some(burst)) => Some(RateLimit { per_second, burst }),
            _ => None,
        };
        TierDef {
            tier: self.tier.clone(),
            description: self.description.clone(),
            built_in: self.tier.is_built_in(),
            operator_modified: current.is_some_and(|c| c.operator_modified || Self::of(c) != *self),
            class: self.class,
            rate_limit,
            tenant_defaults: TenantDefaults {
                default_commit_overage_policy: self.default_commit_overage_policy,
                default_reservation_ttl_ms: self.default_reservation_ttl_ms,
                max_reservation_ttl_ms: self.max_reservation_ttl_ms,
                max_reservation_extensions: self.max_reservation_extensions,
            },
            default_budgets: self.default_budgets.clone(),
            default_policies: self.default_policies.clone(),
            created_at: current.map_or(at, |c| c.created_at),
            updated_at: at,
        }
    }

    fn validate(&self) -> Result<()> {
        let id = self.tier.as_str();
        if self.description.as_ref().is_some_and(|d| d.chars().count() > DESCRIPTION_LEN_MAX) {
            return Err(bad("tiers", id, "description", format!("must be at most {DESCRIPTION_LEN_MAX} characters")));
        }
        let ttl = t::RESERVATION_TTL_MS_MIN..=t::RESERVATION_TTL_MS_MAX;
        if !ttl.contains(&self.default_reservation_ttl_ms) || !ttl.contains(&self.max_reservation_ttl_ms) {
            return Err(bad("tiers", id, "default_reservation_ttl_ms", "TTLs must be between 1000 and 86400000"));
        }
        if self.default_reservation_ttl_ms > self.max_reservation_ttl_ms {
            return Err(bad("tiers", id, "default_reservation_ttl_ms", "must not exceed max_reservation_ttl_ms"));
        }
        if !(0..=10_000).contains(&self.max_reservation_extensions) {
            return Err(bad("tiers", id, "max_reservation_extensions", "must be 0 to 10000"));
        }
        if self.rate_limit_per_second.is_some() != self.rate_limit_burst.is_some()
            || self.rate_limit_per_second == Some(0)
            || self.rate_limit_burst == Some(0)
        {
            return Err(bad("tiers", id, "rate_limit_per_second", "with rate_limit_burst: both positive, or neither"));
        }
        if self.default_budgets.len() > TEMPLATES_MAX || self.default_policies.len() > TEMPLATES_MAX {
            return Err(bad("tiers", id, "default_budgets", format!("at most {TEMPLATES_MAX} budgets and policies")));
        }
        Ok(())
    }
}

pub(super) async fn export(c: &Catalogue, allowance: &mut super::Allowance) -> Result<Vec<TierSnap>> {
    let all = c.list_tiers().await?;
    allowance.take(all.len())?;
    Ok(all.iter().map(TierSnap::of).collect())
}

#[derive(Debug, Default)]
pub(super) struct Plan {
    create: Vec<TierDef>,
    update: Vec<(TierDef, TierDef)>,
    unchanged: usize,
}

/// Validates the section and diffs it; records in `ctx` every tier that exists after the import.
pub(super) async fn plan(c: &Catalogue, section: Option<&[TierSnap]>, ctx: &mut Ctx) -> Result<Plan> {
    let current: HashMap<String, TierDef> =
        c.list_tiers().await?.into_iter().map(|d| (d.tier.to_string(), d)).collect();
    ctx.tiers = current.keys().cloned().collect();
    let mut plan = Plan::default();
    let Some(section) = section else { return Ok(plan) };
    let mut seen = std::collections::HashSet::new();
    for snap in section {
        let id = snap.tier.to_string();
        if !seen.insert(id.clone()) {
            return Err(bad("tiers", &id, "tier", "appears more than once"));
        }
        ctx.tiers.insert(id.clone());
        snap.validate()?;
        match current.get(&id) {
            None => plan.create.push(snap.to_def(None)),
            Some(cur) if TierSnap::of(cur) == *snap => plan.unchanged += 1,
            Some(cur) => plan.update.push((cur.clone(), snap.to_def(Some(cur)))),
        }
    }
    if (current.len() + plan.create.len()) as i64 > store::TIERS_MAX {
        return Err(bad("tiers", "*", "tier", format!("a deployment holds at most {} tiers", store::TIERS_MAX)));
    }
    Ok(plan)
}

impl Plan {
    pub fn diff(&self) -> super::plan::KindDiff {
        super::plan::KindDiff {
            create: self.create.iter().map(|d| d.tier.to_string()).collect(),
            update: self.update.iter().map(|(d, _)| d.tier.to_string()).collect(),
            delete: Vec::new(),
            skipped: Vec::new(),
            unchanged: self.unchanged,
        }
    }
}

pub(super) async fn apply(tx: &mut PgTx, plan: &Plan, a: &mut Applying<'_>) -> Result<()> {
    for d in &plan.create {
        let name = d.tier.as_str();
        if !store::insert(tx, d).await? {
            return Err(bad("tiers", name, "tier", "was created meanwhile; retry the import"));
        }
        a.audit(tx, SYSTEM_TENANT, ("tier", name), "create", json!({})).await?;
        a.event(EventType::SystemTierChanged, SYSTEM_TENANT, None, json!({ "tier": name, "operation": "CREATE" }));
    }
    for (cur, next) in &plan.update {
        let name = cur.tier.as_str();
        store::update(tx, next).await?;
        a.audit(tx, SYSTEM_TENANT, ("tier", name), "update", json!({})).await?;
        a.event(EventType::SystemTierChanged, SYSTEM_TENANT, None, json!({ "tier": name, "operation": "UPDATE" }));
        if cur.class != next.class || cur.rate_limit != next.rate_limit {
            a.announce.push(format!("tier:{name}"));
        }
    }
    Ok(())
}
