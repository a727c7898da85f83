//! The `policies` section: every policy's current rules, matched by `policy_id`. Import creates
//! a missing policy (version 1) and stores a differing one as a new version, as a PATCH does
//! (the last ten versions kept, the tenant's policy generation bumped); `replace` disables a
//! policy the snapshot lacks (policies are never deleted: their versions are history). Version
//! numbers and times are environment-specific and not exported.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Applying, Ctx, Mode, bad, within};
use crate::catalogue::Catalogue;
use crate::catalogue::policies::POLICIES_PER_TENANT_MAX;
use crate::domain::clock::now;
use crate::domain::error::Result;
use crate::domain::event::EventType;
use crate::domain::policy::{Policy, PolicyStatus, Rules, check_rules, differences};
use crate::store::pg::{PgTx, policies as store};

const ID_LEN_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySnap {
    pub policy_id: String,
    pub tenant_id: String,
    #[serde(flatten)]
    pub rules: Rules,
}

pub(super) async fn export(
    c: &Catalogue,
    tenants: &[String],
    allowance: &mut super::Allowance,
) -> Result<Vec<PolicySnap>> {
    let mut out = Vec::new();
    for t in tenants {
        let all = store::of_tenant(c.pg.pool(), t, POLICIES_PER_TENANT_MAX).await?;
        allowance.take(all.len())?;
        out.extend(all.into_iter().map(|p| PolicySnap {
            policy_id: p.policy_id,
            tenant_id: p.tenant_id,
            rules: p.rules,
        }));
    }
    Ok(out)
}

#[derive(Debug, Default)]
pub(super) struct Plan {
    create: Vec<Policy>,
    /// (current, next version), `delete` when `replace` disables it.
    update: Vec<(Policy, Policy)>,
    delete: Vec<(Policy, Policy)>,
    unchanged: usize,
}

fn next_version(cur: &Policy, rules: Rules) -> Policy {
    Policy { rules, version: cur.version + 1, updated_at: now(), ..cur.clone() }
}

/// Names stay unique per tenant, and tenants within their policy count, once the import applies.
fn check_names(current: &HashMap<String, Policy>, section: &[PolicySnap]) -> Result<()> {
    let mut owner_of: HashMap<String, (String, String)> =
        current.values().map(|p| (p.policy_id.clone(), (p.tenant_id.clone(), p.rules.name.clone()))).collect();
    for snap in section {
        owner_of.insert(snap.policy_id.clone(), (snap.tenant_id.clone(), snap.rules.name.clone()));
    }
    let mut named: HashMap<&(String, String), &str> = HashMap::new();
    for (id, key) in &owner_of {
        if named.insert(key, id).is_some() {
            return Err(bad("policies", id, "name", format!("{:?} names two policies of tenant {}", key.1, key.0)));
        }
    }
    let mut per_tenant: HashMap<&str, i64> = HashMap::new();
    for (tenant, _) in owner_of.values() {
        *per_tenant.entry(tenant).or_default() += 1;
        if per_tenant[tenant.as_str()] > POLICIES_PER_TENANT_MAX {
            return Err(bad(
                "policies",
                tenant,
                "tenant_id",
                format!("at most {POLICIES_PER_TENANT_MAX} policies per tenant"),
            ));
        }
    }
    Ok(())
}

pub(super) async fn plan(c: &Catalogue, section: Option<&[PolicySnap]>, ctx: &Ctx) -> Result<Plan> {
    let mut plan = Plan::default();
    let Some(section) = section else { return Ok(plan) };
    let mut current: HashMap<String, Policy> = HashMap::new();
    for tenant in ctx.after.keys().filter(|t| ctx.owns(t)) {
        for p in store::of_tenant(c.pg.pool(), tenant, POLICIES_PER_TENANT_MAX).await? {
            current.insert(p.policy_id.clone(), p);
        }
    }
    check_names(&current, section)?;
    let mut seen = HashSet::new();
    for snap in section {
        let id = snap.policy_id.as_str();
        if id.is_empty() || id.len() > ID_LEN_MAX || !seen.insert(id.to_string()) {
            return Err(bad("policies", id, "policy_id", format!("must be 1 to {ID_LEN_MAX} bytes and appear once")));
        }
        if ctx.closing.contains(&snap.tenant_id) {
            continue;
        }
        if !ctx.after.contains_key(&snap.tenant_id) {
            return Err(bad("policies", id, "tenant_id", "no such tenant in the deployment or the snapshot"));
        }
        check_rules(&snap.rules, &snap.tenant_id).map_err(|e| within("policies", id, e))?;
        match current.get(id) {
            None => {
                let at = now();
                let p = Policy {
                    policy_id: id.to_string(),
                    tenant_id: snap.tenant_id.clone(),
                    rules: snap.rules.clone(),
                    version: 1,
                    created_at: at,
                    updated_at: at,
                };
                plan.create.push(p);
            }
            Some(cur) if cur.tenant_id != snap.tenant_id => {
                return Err(bad("policies", id, "tenant_id", "cannot change: a policy keeps its tenant"));
            }
            Some(cur) if cur.rules == snap.rules => plan.unchanged += 1,
            Some(cur) => plan.update.push((cur.clone(), next_version(cur, snap.rules.clone()))),
        }
    }
    if ctx.mode == Mode::Replace {
        let mut gone: Vec<&Policy> = current
            .values()
            .filter(|p| !seen.contains(&p.policy_id) && p.rules.status != PolicyStatus::Disabled)
            .collect();
        gone.sort_by(|a, b| a.policy_id.cmp(&b.policy_id));
        for p in gone {
            let mut rules = p.rules.clone();
            rules.status = PolicyStatus::Disabled;
            plan.delete.push((p.clone(), next_version(p, rules)));
        }
    }
    Ok(plan)
}

impl Plan {
    pub fn diff(&self) -> super::plan::KindDiff {
        super::plan::KindDiff {
            create: self.create.iter().map(|p| p.policy_id.clone()).collect(),
            update: self.update.iter().map(|(p, _)| p.policy_id.clone()).collect(),
            delete: self.delete.iter().map(|(p, _)| p.policy_id.clone()).collect(),
            skipped: Vec::new(),
            unchanged: self.unchanged,
        }
    }
}

async fn store_change(tx: &mut PgTx, p: &Policy, kind: &str) -> Result<()> {
    store::save(tx, p).await?;
    store::save_version(tx, p, kind, None).await?;
    store::bump_generation(tx, &p.tenant_id).await?;
    Ok(())
}

pub(super) async fn apply(tx: &mut PgTx, plan: &Plan, a: &mut Applying<'_>) -> Result<()> {
    for p in &plan.create {
        store_change(tx, p, "create").await?;
        let id = p.policy_id.as_str();
        a.audit(tx, &p.tenant_id, ("policy", id), "create", json!({ "version": 1 })).await?;
        a.event(
            EventType::PolicyCreated,
            &p.tenant_id,
            None,
            json!({ "policy_id": id, "name": p.rules.name, "changed_fields": [] }),
        );
    }
    for ((cur, next), change) in
        plan.update.iter().map(|u| (u, "update")).chain(plan.delete.iter().map(|d| (d, "delete")))
    {
        store_change(tx, next, "update").await?;
        let id = cur.policy_id.as_str();
        let fields = differences(&cur.rules, &next.rules);
        a.audit(
            tx,
            &cur.tenant_id,
            ("policy", id),
            change,
            json!({ "version": next.version, "changed_fields": fields }),
        )
        .await?;
        a.event(
            EventType::PolicyUpdated,
            &cur.tenant_id,
            None,
            json!({ "policy_id": id, "name": next.rules.name, "changed_fields": fields }),
        );
    }
    Ok(())
}
