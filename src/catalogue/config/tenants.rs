//! The `tenants` section: every tenant with all its settings, matched by `tenant_id`. Import
//! creates a missing tenant, updates a differing one under the lifecycle's rules (CLOSED is
//! terminal; `parent_tenant_id` never changes) and closes one that a `replace` snapshot lacks or
//! that the snapshot says is CLOSED: closed, never erased. A close revokes the tenant's keys and
//! disables its webhooks in the import's transaction, as a PATCH close does, and the ledger
//! cascade (budgets closed, reservations released) runs once the import has committed.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Allowance, Applying, Ctx, Mode, bad};
use crate::catalogue::Catalogue;
use crate::domain::clock::now;
use crate::domain::error::Result;
use crate::domain::event::EventType;
use crate::domain::tenant::{
    self as t, CommitOveragePolicy, ExpiryPolicy, ObserveMode, RateLimit, Tenant, TenantId, TenantStatus, Tier,
};
use crate::store::pg::{PgTx, page, tenants as store};

const NAME_LEN_MAX: usize = 256;
const METADATA_ENTRIES_MAX: usize = 32;
const METADATA_KEY_LEN_MAX: usize = 128;
const METADATA_VALUE_LEN_MAX: usize = 1024;
const MAX_EXTENSIONS_MAX: i64 = 10_000;
const RATE_LIMIT_MAX: u32 = 1_000_000;
/// Tenants read per query.
const PAGE: u32 = 500;

/// One tenant as a snapshot holds it: every setting, no timestamps (environment-specific).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSnap {
    pub tenant_id: TenantId,
    pub name: String,
    pub status: TenantStatus,
    pub tier: Tier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_tenant_id: Option<String>,
    pub default_commit_overage_policy: CommitOveragePolicy,
    pub default_reservation_ttl_ms: i64,
    pub max_reservation_ttl_ms: i64,
    pub max_reservation_extensions: i64,
    pub reservation_expiry_policy: ExpiryPolicy,
    /// Written only when not ENFORCE, so snapshots of tenants that never changed it read as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observe_mode: Option<ObserveMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_burst: Option<u32>,
}

impl TenantSnap {
    fn of(t: &Tenant) -> Self {
        Self {
            tenant_id: t.tenant_id.clone(),
            name: t.name.clone(),
            status: t.status,
            tier: t.tier.clone(),
            parent_tenant_id: t.parent_tenant_id.clone(),
            default_commit_overage_policy: t.default_commit_overage_policy,
            default_reservation_ttl_ms: t.default_reservation_ttl_ms,
            max_reservation_ttl_ms: t.max_reservation_ttl_ms,
            max_reservation_extensions: t.max_reservation_extensions,
            reservation_expiry_policy: t.reservation_expiry_policy,
            observe_mode: (t.observe_mode != ObserveMode::Enforce).then_some(t.observe_mode),
            metadata: t.metadata.clone(),
            rate_limit_per_second: t.rate_limit.map(|r| r.per_second),
            rate_limit_burst: t.rate_limit.map(|r| r.burst),
        }
    }

    /// The tenant this snapshot describes; times from `current` where it exists.
    fn to_tenant(&self, current: Option<&Tenant>) -> Tenant {
        let at = now();
        let rate_limit = match (self.rate_limit_per_second, self.rate_limit_burst) {
            (Some(per_second), Some(burst)) => Some(RateLimit { per_second, burst }),
            _ => None,
        };
        let since = |status: TenantStatus, was: Option<time::OffsetDateTime>| {
            (self.status == status).then(|| was.filter(|_| current.is_some_and(|c| c.status == status)).unwrap_or(at))
        };
        Tenant {
            tenant_id: self.tenant_id.clone(),
            name: self.name.clone(),
            status: self.status,
            tier: self.tier.clone(),
            parent_tenant_id: self.parent_tenant_id.clone(),
            default_commit_overage_policy: self.default_commit_overage_policy,
            default_reservation_ttl_ms: self.default_reservation_ttl_ms,
            max_reservation_ttl_ms: self.max_reservation_ttl_ms,
            max_reservation_extensions: self.max_reservation_extensions,
            reservation_expiry_policy: self.reservation_expiry_policy,
            observe_mode: self.observe_mode.unwrap_or(ObserveMode::Enforce),
            metadata: self.metadata.clone(),
            created_at: current.map_or(at, |c| c.created_at),
            updated_at: at,
            suspended_at: since(TenantStatus::Suspended, current.and_then(|c| c.suspended_at)),
            closed_at: since(TenantStatus::Closed, current.and_then(|c| c.closed_at)),
            rate_limit,
        }
    }

    fn validate(&self) -> Result<()> {
        let id = self.tenant_id.as_str();
        let len = self.name.chars().count();
        if len == 0 || len > NAME_LEN_MAX {
            return Err(bad("tenants", id, "name", format!("must be 1 to {NAME_LEN_MAX} characters")));
        }
        if let Some(parent) = &self.parent_tenant_id {
            TenantId::parse(parent).map_err(|e| bad("tenants", id, "parent_tenant_id", e))?;
        }
        let ttl = t::RESERVATION_TTL_MS_MIN..=t::RESERVATION_TTL_MS_MAX;
        for (field, v) in [
            ("default_reservation_ttl_ms", self.default_reservation_ttl_ms),
            ("max_reservation_ttl_ms", self.max_reservation_ttl_ms),
        ] {
            if !ttl.contains(&v) {
                return Err(bad("tenants", id, field, format!("must be between {} and {}", ttl.start(), ttl.end())));
            }
        }
        if self.default_reservation_ttl_ms > self.max_reservation_ttl_ms {
            return Err(bad("tenants", id, "default_reservation_ttl_ms", "must not exceed max_reservation_ttl_ms"));
        }
        if !(0..=MAX_EXTENSIONS_MAX).contains(&self.max_reservation_extensions) {
            return Err(bad("tenants", id, "max_reservation_extensions", format!("must be 0 to {MAX_EXTENSIONS_MAX}")));
        }
        if let Some(m) = &self.metadata
            && (m.len() > METADATA_ENTRIES_MAX
                || m.iter()
                    .any(|(k, v)| k.is_empty() || k.len() > METADATA_KEY_LEN_MAX || v.len() > METADATA_VALUE_LEN_MAX))
        {
            return Err(bad(
                "tenants",
                id,
                "metadata",
                format!(
                    "at most {METADATA_ENTRIES_MAX} entries, keys 1..{METADATA_KEY_LEN_MAX} bytes, values at most {METADATA_VALUE_LEN_MAX}"
                ),
            ));
        }
        match (self.rate_limit_per_second, self.rate_limit_burst) {
            (None, None) => Ok(()),
            (Some(p), Some(b)) if (1..=RATE_LIMIT_MAX).contains(&p) && (1..=RATE_LIMIT_MAX * 2).contains(&b) => Ok(()),
            _ => Err(bad(
                "tenants",
                id,
                "rate_limit_per_second",
                "with rate_limit_burst: both or neither, 1 to 1000000 (burst to 2000000)",
            )),
        }
    }
}

/// Every tenant, in id order, counted against the snapshot's allowance.
async fn all(c: &Catalogue, allowance: &mut Allowance) -> Result<Vec<Tenant>> {
    let column = page::SortColumn { expr: "tenant_id", cast: "text", id_expr: "tenant_id", id_cast: "text" };
    let mut spec = page::PageSpec { column, descending: false, after: None, limit: PAGE };
    let mut out = Vec::new();
    loop {
        let page = store::list(c.pg.pool(), &store::Filter::default(), &spec).await?;
        allowance.take(page.items.len())?;
        out.extend(page.items);
        match page.next {
            Some(after) => spec.after = Some(after),
            None => return Ok(out),
        }
    }
}

pub(super) async fn export(c: &Catalogue, allowance: &mut Allowance) -> Result<Vec<TenantSnap>> {
    Ok(all(c, allowance).await?.iter().map(TenantSnap::of).collect())
}

#[derive(Debug, Default)]
pub(super) struct Plan {
    create: Vec<Tenant>,
    /// (current, wanted), neither CLOSED.
    update: Vec<(Tenant, Tenant)>,
    /// (current, wanted CLOSED).
    close: Vec<(Tenant, Tenant)>,
    unchanged: usize,
}

/// Names of the settings that differ.
fn changed(a: &Tenant, b: &Tenant) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            out.push(name)
        }
    };
    check("name", a.name != b.name);
    check("status", a.status != b.status);
    check("tier", a.tier != b.tier);
    check("metadata", a.metadata != b.metadata);
    check("default_commit_overage_policy", a.default_commit_overage_policy != b.default_commit_overage_policy);
    check("default_reservation_ttl_ms", a.default_reservation_ttl_ms != b.default_reservation_ttl_ms);
    check("max_reservation_ttl_ms", a.max_reservation_ttl_ms != b.max_reservation_ttl_ms);
    check("max_reservation_extensions", a.max_reservation_extensions != b.max_reservation_extensions);
    check("reservation_expiry_policy", a.reservation_expiry_policy != b.reservation_expiry_policy);
    check("observe_mode", a.observe_mode != b.observe_mode);
    check("rate_limit", a.rate_limit != b.rate_limit);
    out
}

/// Validates the section and diffs it; fills `ctx` with every tenant's status after the import.
pub(super) async fn plan(c: &Catalogue, section: Option<&[TenantSnap]>, ctx: &mut Ctx) -> Result<Plan> {
    let current: HashMap<String, Tenant> =
        all(c, &mut Allowance(usize::MAX)).await?.into_iter().map(|t| (t.tenant_id.to_string(), t)).collect();
    ctx.after = current.iter().map(|(id, t)| (id.clone(), t.status)).collect();
    let mut plan = Plan::default();
    let Some(section) = section else { return Ok(plan) };
    let mut seen = std::collections::HashSet::new();
    for snap in section {
        let id = snap.tenant_id.to_string();
        if !seen.insert(id.clone()) {
            return Err(bad("tenants", &id, "tenant_id", "appears more than once"));
        }
        snap.validate()?;
        if !ctx.tiers.contains(snap.tier.as_str()) {
            return Err(bad("tenants", &id, "tier", "no such tier in the deployment or the snapshot"));
        }
        let cur = current.get(&id);
        let wanted = snap.to_tenant(cur);
        ctx.after.insert(id.clone(), wanted.status);
        let Some(cur) = cur else {
            plan.create.push(wanted);
            continue;
        };
        if cur.parent_tenant_id != wanted.parent_tenant_id {
            return Err(bad("tenants", &id, "parent_tenant_id", "cannot change"));
        }
        let diff = changed(cur, &wanted);
        match (cur.status, wanted.status) {
            _ if diff.is_empty() => plan.unchanged += 1,
            (TenantStatus::Closed, _) => {
                return Err(bad("tenants", &id, diff[0], "cannot change: the tenant is CLOSED, which is terminal"));
            }
            (_, TenantStatus::Closed) => {
                ctx.closing.insert(id);
                plan.close.push((cur.clone(), wanted));
            }
            _ => plan.update.push((cur.clone(), wanted)),
        }
    }
    if ctx.mode == Mode::Replace {
        for (id, cur) in &current {
            if !seen.contains(id) && cur.status != TenantStatus::Closed {
                let mut wanted = cur.clone();
                wanted.status = TenantStatus::Closed;
                wanted.closed_at = Some(now());
                wanted.updated_at = now();
                ctx.after.insert(id.clone(), TenantStatus::Closed);
                ctx.closing.insert(id.clone());
                plan.close.push((cur.clone(), wanted));
            }
        }
    }
    Ok(plan)
}

impl Plan {
    pub fn diff(&self) -> super::plan::KindDiff {
        let ids = |v: &[(Tenant, Tenant)]| {
            let mut ids: Vec<String> = v.iter().map(|(c, _)| c.tenant_id.to_string()).collect();
            ids.sort();
            ids
        };
        super::plan::KindDiff {
            create: self.create.iter().map(|t| t.tenant_id.to_string()).collect(),
            update: ids(&self.update),
            delete: ids(&self.close),
            skipped: Vec::new(),
            unchanged: self.unchanged,
        }
    }

    /// Tenants whose Redis mirror the import writes.
    pub fn mirrored(&self) -> Vec<String> {
        let mut out: Vec<String> = self.create.iter().map(|t| t.tenant_id.to_string()).collect();
        out.extend(self.update.iter().chain(&self.close).map(|(c, _)| c.tenant_id.to_string()));
        out
    }

    pub fn closed_ids(&self) -> Vec<String> {
        self.close.iter().map(|(c, _)| c.tenant_id.to_string()).collect()
    }
}

pub(super) async fn apply(c: &Catalogue, tx: &mut PgTx, plan: &Plan, a: &mut Applying<'_>) -> Result<()> {
    for t in &plan.create {
        let id = t.tenant_id.as_str();
        if !store::insert(tx, t).await? {
            return Err(crate::domain::error::Error::invalid_field(
                &format!("tenants[{id}].tenant_id"),
                "was created meanwhile; retry the import",
            ));
        }
        a.audit(tx, id, ("tenant", id), "create", json!({})).await?;
        a.event(
            EventType::TenantCreated,
            id,
            None,
            json!({ "tenant_id": id, "new_status": t.status.as_str(), "changed_fields": [] }),
        );
    }
    for (cur, wanted) in &plan.update {
        let id = cur.tenant_id.as_str();
        store::update(tx, wanted).await?;
        let fields = changed(cur, wanted);
        a.audit(tx, id, ("tenant", id), "update", json!({ "changed_fields": fields })).await?;
        let kind = match (cur.status, wanted.status) {
            (TenantStatus::Active, TenantStatus::Suspended) => EventType::TenantSuspended,
            (TenantStatus::Suspended, TenantStatus::Active) => EventType::TenantReactivated,
            _ => EventType::TenantUpdated,
        };
        let data = json!({ "tenant_id": id, "previous_status": cur.status.as_str(), "new_status": wanted.status.as_str(), "changed_fields": fields });
        a.event(kind, id, None, data);
        a.announce.push(format!("tenant:{id}"));
    }
    for (cur, wanted) in &plan.close {
        let id = cur.tenant_id.as_str();
        store::update(tx, wanted).await?;
        let fields = changed(cur, wanted);
        a.audit(tx, id, ("tenant", id), "delete", json!({ "changed_fields": fields, "closed": true })).await?;
        let data = json!({ "tenant_id": id, "previous_status": cur.status.as_str(), "new_status": "CLOSED", "changed_fields": fields });
        a.event(EventType::TenantClosed, id, None, data);
        let correlation = format!("tenant_close_cascade:{id}:{}", a.import_id);
        let announce = c.cascade_children(tx, a.actor, id, &correlation, &mut a.events).await?;
        a.announce.extend(announce);
    }
    Ok(())
}

/// Writes the Redis mirror of every tenant the plan creates, changes or closes.
pub(super) async fn mirror(c: &Catalogue, plan: &Plan) -> Result<()> {
    for t in plan.create.iter().chain(plan.update.iter().chain(&plan.close).map(|(_, w)| w)) {
        c.redis.mirror_tenant(t).await?;
    }
    Ok(())
}
