//! The policy catalogue: create, patch, read and list a tenant's policies, their versions and
//! rollback (`versions`), and the dry run (`dry_run`). Every change locks the owning tenant's
//! row (so a tenant's policy changes are serialised and a CLOSED tenant is refused, 409), stores
//! the resulting rules as a new version (the last 10 kept), bumps the tenant's policy
//! generation, and writes one audit entry and its `policy.*` event, all in one transaction;
//! then publishes the tenant's set to Redis before answering (`publication`).

mod dry_run;
mod publication;
mod replay;
mod versions;

use serde_json::json;

use super::Catalogue;
use super::audit::Actor;
use crate::domain::clock::now;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::event::EventType;
use crate::domain::policy::{NewRules, Policy, RulesPatch, check_rules};
use crate::domain::tenant::TenantStatus;
use crate::events;
use crate::store::pg::policies::{self as store, Filter};
use crate::store::pg::{self, PgTx, audit, page, tenants};

pub use dry_run::{Candidate, DryRun};
pub use replay::{REPLAY_READ_MAX, Replay};
pub use store::VERSIONS_KEPT;

/// Policies one tenant may hold: every evaluation reads them all, so they stay few.
pub const POLICIES_PER_TENANT_MAX: i64 = 1_000;

/// Who asks: a tenant key sees only its tenant's policies (another's look absent); the admin
/// plane's principals are confined by the access table before they get here.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    Admin,
    Tenant(&'a str),
}

fn not_found(id: &str) -> Error {
    Error::new(ErrorCode::NotFound, format!("policy {id} not found"))
}

/// Locks the tenant's row, refusing an unknown (404) or CLOSED (409) tenant.
async fn lock_tenant(tx: &mut PgTx, tenant: &str) -> Result<()> {
    let t = tenants::get_for_update(tx, tenant)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::TenantNotFound, format!("tenant {tenant} not found")))?;
    if t.status == TenantStatus::Closed {
        return Err(Error::new(
            ErrorCode::TenantClosed,
            format!("tenant {tenant} is closed; its policies are read-only"),
        ));
    }
    Ok(())
}

async fn check_name_free(tx: &mut PgTx, p: &Policy) -> Result<()> {
    if store::name_taken(tx, &p.tenant_id, &p.rules.name, &p.policy_id).await? {
        return Err(Error::new(
            ErrorCode::DuplicateResource,
            format!("name: a policy named {:?} exists", p.rules.name),
        )
        .with_details(json!({ "field": "name" })));
    }
    Ok(())
}

/// The version, generation, audit entry and event of a change already applied to `p`.
async fn record(tx: &mut PgTx, actor: &Actor, p: &Policy, change: (&str, Option<i32>), changed: &[&str]) -> Result<()> {
    let (kind, restored) = change;
    store::save(tx, p).await?;
    store::save_version(tx, p, kind, restored).await?;
    let generation = store::bump_generation(tx, &p.tenant_id).await?;
    let (operation, status, event_type) = match kind {
        "create" => ("createPolicy", 201, EventType::PolicyCreated),
        "rollback" => ("rollbackPolicy", 200, EventType::PolicyUpdated),
        _ => ("updatePolicy", 200, EventType::PolicyUpdated),
    };
    let mut details = json!({ "version": p.version, "policy_generation": generation, "changed_fields": changed });
    if let Some(v) = restored {
        details["restored_version"] = json!(v);
    }
    let id = p.policy_id.as_str();
    audit::append(tx, &actor.entry(operation, &p.tenant_id, ("policy", id), status, details)).await?;
    let data = json!({ "policy_id": id, "name": p.rules.name, "scope_pattern": p.rules.scope_pattern, "changed_fields": changed });
    let mut event = actor.event(event_type, &p.tenant_id, data);
    event.correlation_id = Some(format!("policy_{kind}:{id}:{}", actor.ctx.request_id));
    events::record(tx, &[event]).await?;
    Ok(())
}

impl Catalogue {
    /// Creates a policy for `tenant` (version 1).
    pub async fn create_policy(&self, actor: &Actor, tenant: &str, new: NewRules) -> Result<Policy> {
        let rules = new.into_rules()?;
        check_rules(&rules, tenant)?;
        let at = now();
        let policy = Policy {
            policy_id: format!("pol_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: tenant.to_string(),
            rules,
            version: 1,
            created_at: at,
            updated_at: at,
        };
        let mut tx = self.pg.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        if store::count_of_tenant(&mut tx, tenant).await? >= POLICIES_PER_TENANT_MAX {
            return Err(Error::invalid(format!(
                "tenant {tenant} has {POLICIES_PER_TENANT_MAX} policies, the most one tenant may have"
            )));
        }
        check_name_free(&mut tx, &policy).await?;
        record(&mut tx, actor, &policy, ("create", None), &[]).await?;
        pg::commit(tx).await?;
        self.publish_policies(tenant).await?;
        Ok(policy)
    }

    /// Reads a policy `viewer` may see.
    pub async fn get_policy(&self, viewer: Viewer<'_>, id: &str) -> Result<Policy> {
        if id.contains('\0') {
            return Err(not_found(id));
        }
        let p = store::get(self.pg.pool(), id).await?.ok_or_else(|| not_found(id))?;
        match viewer {
            Viewer::Tenant(t) if p.tenant_id != t => Err(not_found(id)),
            _ => Ok(p),
        }
    }

    /// Locks the tenant owning the policy `viewer` names, then reads the policy.
    async fn lock_policy(&self, tx: &mut PgTx, viewer: Viewer<'_>, id: &str) -> Result<Policy> {
        let owner = self.get_policy(viewer, id).await?.tenant_id;
        lock_tenant(tx, &owner).await?;
        store::get_for_update(tx, id).await?.ok_or_else(|| not_found(id))
    }

    /// Applies a PATCH. A change stores a new version and emits `policy.updated` naming the
    /// changed fields; a PATCH that changes nothing writes nothing.
    pub async fn update_policy(
        &self,
        actor: &Actor,
        viewer: Viewer<'_>,
        id: &str,
        patch: &RulesPatch,
    ) -> Result<Policy> {
        let mut tx = self.pg.begin().await?;
        let current = self.lock_policy(&mut tx, viewer, id).await?;
        let mut next = current.clone();
        let changed = patch.apply(&mut next.rules);
        check_rules(&next.rules, &next.tenant_id)?;
        if changed.is_empty() {
            return Ok(current);
        }
        if changed.contains(&"name") {
            check_name_free(&mut tx, &next).await?;
        }
        next.version += 1;
        next.updated_at = now();
        record(&mut tx, actor, &next, ("update", None), &changed).await?;
        pg::commit(tx).await?;
        self.publish_policies(&next.tenant_id).await?;
        Ok(next)
    }

    pub async fn list_policies(&self, filter: &Filter, page: &page::PageSpec) -> Result<page::Page<Policy>> {
        Ok(store::list(self.pg.pool(), filter, page).await?)
    }

    /// The tenant's policy generation: bumped by every policy change (0 before the first), so
    /// whoever holds a copy of the tenant's policies can tell when it is stale.
    pub async fn policy_generation(&self, tenant: &str) -> Result<i64> {
        Ok(store::generation(self.pg.pool(), tenant).await?)
    }

    /// Every policy of `tenant` (at most [`POLICIES_PER_TENANT_MAX`]), for evaluation.
    pub async fn tenant_policies(&self, tenant: &str) -> Result<Vec<Policy>> {
        Ok(store::of_tenant(self.pg.pool(), tenant, POLICIES_PER_TENANT_MAX).await?)
    }
}
