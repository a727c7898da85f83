//! Tenant lifecycle: create (idempotent on `tenant_id`), patch with the ACTIVE ↔ SUSPENDED →
//! CLOSED rules, and the close cascade.
//!
//! Close follows DESIGN.md: the Redis status mirror flips to CLOSED first (from then on the
//! ledger scripts refuse the tenant), then one Postgres transaction closes the tenant and
//! revokes its keys, with one audit entry per mutated object, then the ledger releases every
//! ACTIVE reservation (each exactly once) and closes every budget, emitting the cascade
//! events to its outbox. Re-closing a CLOSED tenant re-drives the cascade and touches only
//! what is still open, so it writes no duplicates.

use std::collections::BTreeMap;

use serde_json::json;

use super::Catalogue;
use super::audit::Actor;
use crate::domain::audit::AuditEntry;
use crate::domain::clock::now;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::event::{Event, EventType};
use crate::domain::tenant::{CommitOveragePolicy, ExpiryPolicy, ObserveMode, RateLimit, Tenant, TenantStatus, Tier};
use crate::domain::webhook::WebhookStatus;
use crate::events;
use crate::store::pg::{self, PgTx, api_keys, audit, tenants, webhooks};

/// The fields a PATCH may change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub status: Option<TenantStatus>,
    pub tier: Option<Tier>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub default_commit_overage_policy: Option<CommitOveragePolicy>,
    pub default_reservation_ttl_ms: Option<i64>,
    pub max_reservation_ttl_ms: Option<i64>,
    pub max_reservation_extensions: Option<i64>,
    pub reservation_expiry_policy: Option<ExpiryPolicy>,
    pub observe_mode: Option<ObserveMode>,
    /// `Some(None)` returns the tenant to its tier's default rate limit.
    pub rate_limit: Option<Option<RateLimit>>,
}

/// Tenants read per query while reseeding the mirror.
const RESEED_PAGE: u32 = 500;

fn not_found(id: &str) -> Error {
    Error::new(ErrorCode::TenantNotFound, format!("tenant {id} not found"))
}

/// The default TTL may not exceed the maximum TTL.
pub fn check_ttls(default_ms: i64, max_ms: i64) -> Result<()> {
    if default_ms > max_ms {
        return Err(Error::invalid_field(
            "default_reservation_ttl_ms",
            format!("must not exceed max_reservation_ttl_ms ({max_ms})"),
        ));
    }
    Ok(())
}

/// The children a tenant close reaches, each with its audit entry and its event under one
/// correlation id.
struct Cascade<'a> {
    actor: &'a Actor,
    tenant: &'a str,
    at: time::OffsetDateTime,
    correlation_id: &'a str,
}

impl Cascade<'_> {
    fn entry(&self, resource: (&str, &str), event_kind: &str) -> AuditEntry {
        let details =
            json!({ "event_kind": event_kind, "cascade": "tenant_close", "correlation_id": self.correlation_id });
        self.actor.entry("tenant_close_cascade", self.tenant, resource, 200, details)
    }

    fn event(&self, kind: EventType, data: serde_json::Value) -> Event {
        let mut event = self.actor.event(kind, self.tenant, data);
        event.correlation_id = Some(self.correlation_id.to_string());
        event
    }

    /// Revokes the tenant's live keys; returns the cache announcements for them.
    async fn revoke_keys(&self, tx: &mut PgTx, out: &mut Vec<Event>) -> Result<Vec<String>> {
        let revoked = api_keys::revoke_all_of_tenant(tx, self.tenant, self.at, "tenant_closed").await?;
        let mut announce = Vec::with_capacity(revoked.len() + 1);
        for (key_id, digest, name) in &revoked {
            let data = json!({
                "key_id": key_id, "name": name, "prior_status": "ACTIVE", "new_status": "REVOKED",
                "cascade_reason": "tenant_closed",
            });
            out.push(self.event(EventType::ApiKeyRevokedViaTenantCascade, data));
            audit::append(tx, &self.entry(("api_key", key_id), "api_key.revoked_via_tenant_cascade")).await?;
            announce.push(format!("key:{}", hex::encode(digest)));
        }
        Ok(announce)
    }

    /// Disables the tenant's enabled webhook subscriptions and cancels their queued deliveries.
    async fn disable_webhooks(&self, tx: &mut PgTx, out: &mut Vec<Event>) -> Result<()> {
        for stored in webhooks::enabled_of_tenant_for_update(tx, self.tenant).await? {
            let sub = &stored.sub;
            webhooks::set_status(tx, &sub.subscription_id, WebhookStatus::Disabled, self.at).await?;
            webhooks::cancel_pending(tx, &sub.subscription_id, "tenant was closed").await?;
            let entry = self.entry(("webhook", &sub.subscription_id), "webhook.disabled_via_tenant_cascade");
            audit::append(tx, &entry).await?;
            let data = json!({
                "subscription_id": sub.subscription_id, "name": sub.name, "prior_status": sub.status.as_str(),
                "new_status": "DISABLED", "cascade_reason": "tenant_closed",
            });
            out.push(self.event(EventType::WebhookDisabledViaTenantCascade, data));
        }
        Ok(())
    }
}

impl Catalogue {
    /// Revokes a closing tenant's keys and disables its webhooks in `tx`, one audit entry and
    /// event each, as a close does (the configuration import's close); returns the cache
    /// announcements, the tenant's included.
    pub(super) async fn cascade_children(
        &self,
        tx: &mut PgTx,
        actor: &Actor,
        tenant: &str,
        correlation_id: &str,
        out: &mut Vec<Event>,
    ) -> Result<Vec<String>> {
        let cascade = Cascade { actor, tenant, at: now(), correlation_id };
        let mut announce = cascade.revoke_keys(tx, out).await?;
        cascade.disable_webhooks(tx, out).await?;
        announce.push(format!("tenant:{tenant}"));
        Ok(announce)
    }
}

impl Catalogue {
    /// Creates `t`; returns the stored tenant and whether this call created it. A second
    /// create with the same id and name returns the existing tenant; another name is 409.
    pub async fn create_tenant(&self, actor: &Actor, t: Tenant) -> Result<(Tenant, bool)> {
        check_ttls(t.default_reservation_ttl_ms, t.max_reservation_ttl_ms)?;
        let mut tx = self.pg.begin().await?;
        let created = tenants::insert(&mut tx, &t).await?;
        let stored = if created {
            let id = t.tenant_id.as_str();
            let entry = actor.entry("createTenant", id, ("tenant", id), 201, json!({}));
            audit::append(&mut tx, &entry).await?;
            let data = json!({ "tenant_id": id, "new_status": t.status.as_str(), "changed_fields": [] });
            events::record(&mut tx, &[actor.event(EventType::TenantCreated, id, data)]).await?;
            pg::commit(tx).await?;
            t
        } else {
            drop(tx);
            let existing = tenants::get(self.pg.pool(), t.tenant_id.as_str())
                .await?
                .ok_or_else(|| Error::internal("tenant vanished during create"))?;
            if existing.name != t.name {
                return Err(Error::new(
                    ErrorCode::DuplicateResource,
                    format!("tenant {} exists with a different name", t.tenant_id),
                ));
            }
            existing
        };
        self.redis.mirror_tenant(&stored).await?;
        Ok((stored, created))
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Tenant> {
        tenants::get(self.pg.pool(), id).await?.ok_or_else(|| not_found(id))
    }

    pub async fn update_tenant(&self, actor: &Actor, id: &str, patch: TenantPatch) -> Result<Tenant> {
        if patch.status == Some(TenantStatus::Closed) {
            let current = self.get_tenant(id).await?;
            if let Some(changed) = changed_fields(&current, &patch).into_iter().find(|f| *f != "status") {
                return Err(Error::invalid_field(&changed, "cannot be changed in the request that closes the tenant"));
            }
            // The ledger must refuse the tenant before anything else changes.
            self.redis.mirror_status(id, TenantStatus::Closed.as_str()).await?;
            let closed = self.close_tenant(actor, id).await?;
            self.redis.mirror_tenant(&closed).await?;
            let report = self.ledger.close_tenant_ledger(id, &actor.ctx).await?;
            tracing::info!(
                tenant = id,
                reservations_released = report.reservations_released,
                budgets_closed = report.budgets_closed,
                "tenant close cascade finished in the ledger"
            );
            return Ok(closed);
        }
        let new_tier = match &patch.tier {
            Some(tier) => Some(self.tier_for_tenant(tier).await?),
            None => None,
        };
        let mut tx = self.pg.begin().await?;
        let current = tenants::get_for_update(&mut tx, id).await?.ok_or_else(|| not_found(id))?;
        if current.status == TenantStatus::Closed {
            if patch.status.is_some_and(|s| s != TenantStatus::Closed) {
                return Err(Error::invalid_field("status", "cannot transition from CLOSED; closing is irreversible"));
            }
            return Err(Error::new(ErrorCode::TenantClosed, format!("tenant {id} is closed")));
        }
        let changed = changed_fields(&current, &patch);
        let updated = apply(current.clone(), &patch);
        check_ttls(updated.default_reservation_ttl_ms, updated.max_reservation_ttl_ms)?;
        if updated != current {
            tenants::update(&mut tx, &updated).await?;
        }
        let entry = actor.entry("updateTenant", id, ("tenant", id), 200, json!({ "changed_fields": changed }));
        audit::append(&mut tx, &entry).await?;
        if let Some(kind) = update_event_type(&current, &updated, &changed) {
            let data = json!({
                "tenant_id": id,
                "previous_status": current.status.as_str(),
                "new_status": updated.status.as_str(),
                "changed_fields": changed,
            });
            events::record(&mut tx, &[actor.event(kind, id, data)]).await?;
        }
        // The runtime's key cache holds the tenant's status, tier and rate limit.
        let auth_relevant = updated.status != current.status
            || updated.tier != current.tier
            || updated.rate_limit != current.rate_limit;
        let announce = if auth_relevant { vec![format!("tenant:{id}")] } else { Vec::new() };
        self.commit_announcing(tx, &announce).await?;
        self.redis.mirror_tenant(&updated).await?;
        // Naming the tier again (a retry after a Redis outage) adds what is still missing.
        if let Some(tier) = new_tier.filter(|_| updated.status == TenantStatus::Active) {
            self.add_tier_budgets(actor, id, &tier).await?;
            self.create_tier_policies(actor, id, &tier.default_policies).await?;
        }
        Ok(updated)
    }

    /// Closes the tenant and revokes its keys in one transaction. Idempotent: on a tenant
    /// already CLOSED it only finishes children still open, and audits only those.
    async fn close_tenant(&self, actor: &Actor, id: &str) -> Result<Tenant> {
        let mut tx = self.pg.begin().await?;
        let current = tenants::get_for_update(&mut tx, id).await?.ok_or_else(|| not_found(id))?;
        let (closed, announce) = close_locked(&mut tx, actor, current, None).await?;
        self.commit_announcing(tx, &announce).await?;
        Ok(closed)
    }

    pub async fn list_tenants(
        &self,
        filter: &tenants::Filter,
        page: &pg::page::PageSpec,
    ) -> Result<pg::page::Page<Tenant>> {
        Ok(tenants::list(self.pg.pool(), filter, page).await?)
    }

    /// Copies every tenant's status and settings into Redis (at start, so a mirror lost with
    /// a Redis restart is rebuilt before the runtime serves).
    pub async fn reseed_mirror(&self) -> Result<usize> {
        let column = pg::page::SortColumn { expr: "tenant_id", cast: "text", id_expr: "tenant_id", id_cast: "text" };
        let mut spec = pg::page::PageSpec { column, descending: false, after: None, limit: RESEED_PAGE };
        let mut mirrored = 0;
        loop {
            let page = tenants::list(self.pg.pool(), &tenants::Filter::default(), &spec).await?;
            for t in &page.items {
                self.redis.mirror_tenant(t).await?;
            }
            mirrored += page.items.len();
            match page.next {
                Some(after) => spec.after = Some(after),
                None => return Ok(mirrored),
            }
        }
    }
}

/// Closes a tenant whose row `tx` holds locked and revokes its keys and disables its webhooks,
/// each with its audit entry and cascade event; returns the closed tenant and the cache
/// announcements to send at commit. A PATCH (`bulk` = `None`) writes its own `updateTenant`
/// entry; a bulk action's invocation entry covers the tenant, and its `tenant.closed` carries
/// the bulk correlation id. The cascade children keep `tenant_close_cascade:<tenant>:<request>`.
pub(super) async fn close_locked(
    tx: &mut PgTx,
    actor: &Actor,
    current: Tenant,
    bulk: Option<&str>,
) -> Result<(Tenant, Vec<String>)> {
    let id = current.tenant_id.to_string();
    let id = id.as_str();
    let at = now();
    let correlation_id = format!("tenant_close_cascade:{id}:{}", actor.ctx.request_id);
    let mut closed = current.clone();
    let mut cascade_events = Vec::new();
    if current.status != TenantStatus::Closed {
        closed.status = TenantStatus::Closed;
        closed.closed_at = Some(at);
        closed.updated_at = at;
        tenants::update(tx, &closed).await?;
        if bulk.is_none() {
            let details = json!({ "changed_fields": ["status"], "correlation_id": correlation_id });
            audit::append(tx, &actor.entry("updateTenant", id, ("tenant", id), 200, details)).await?;
        }
        let data = json!({
            "tenant_id": id,
            "previous_status": current.status.as_str(),
            "new_status": "CLOSED",
            "changed_fields": ["status"],
        });
        let mut event = actor.event(EventType::TenantClosed, id, data);
        event.correlation_id = Some(bulk.unwrap_or(&correlation_id).to_string());
        cascade_events.push(event);
    }
    let cascade = Cascade { actor, tenant: id, at, correlation_id: &correlation_id };
    let mut announce = cascade.revoke_keys(tx, &mut cascade_events).await?;
    cascade.disable_webhooks(tx, &mut cascade_events).await?;
    events::record(tx, &cascade_events).await?;
    announce.push(format!("tenant:{id}"));
    Ok((closed, announce))
}

/// Settings whose change is `tenant.settings_changed` ("default overage policy, TTL, or
/// overdraft limit changed"; the v0.1.26 governance extension adds `observe_mode`).
const SETTINGS_FIELDS: [&str; 6] = [
    "default_commit_overage_policy",
    "default_reservation_ttl_ms",
    "max_reservation_ttl_ms",
    "max_reservation_extensions",
    "reservation_expiry_policy",
    "observe_mode",
];

/// The one event a PATCH emits: the status-typed one when the status moved, else
/// `settings_changed` when a runtime setting moved, else `updated`; none for a no-op.
fn update_event_type(before: &Tenant, after: &Tenant, changed: &[String]) -> Option<EventType> {
    if changed.is_empty() {
        return None;
    }
    Some(match (before.status, after.status) {
        (TenantStatus::Active, TenantStatus::Suspended) => EventType::TenantSuspended,
        (TenantStatus::Suspended, TenantStatus::Active) => EventType::TenantReactivated,
        _ if changed.iter().any(|f| SETTINGS_FIELDS.contains(&f.as_str())) => EventType::TenantSettingsChanged,
        _ => EventType::TenantUpdated,
    })
}

/// Names of the fields `patch` would change on `t`, in schema order.
fn changed_fields(t: &Tenant, patch: &TenantPatch) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, differs: bool| {
        if differs {
            out.push(name.to_string());
        }
    };
    check("name", patch.name.as_ref().is_some_and(|v| *v != t.name));
    check("status", patch.status.is_some_and(|v| v != t.status));
    check("tier", patch.tier.as_ref().is_some_and(|v| *v != t.tier));
    check("metadata", patch.metadata.as_ref().is_some_and(|v| Some(v) != t.metadata.as_ref()));
    check(
        "default_commit_overage_policy",
        patch.default_commit_overage_policy.is_some_and(|v| v != t.default_commit_overage_policy),
    );
    check(
        "default_reservation_ttl_ms",
        patch.default_reservation_ttl_ms.is_some_and(|v| v != t.default_reservation_ttl_ms),
    );
    check("max_reservation_ttl_ms", patch.max_reservation_ttl_ms.is_some_and(|v| v != t.max_reservation_ttl_ms));
    check(
        "max_reservation_extensions",
        patch.max_reservation_extensions.is_some_and(|v| v != t.max_reservation_extensions),
    );
    check(
        "reservation_expiry_policy",
        patch.reservation_expiry_policy.is_some_and(|v| v != t.reservation_expiry_policy),
    );
    check("observe_mode", patch.observe_mode.is_some_and(|v| v != t.observe_mode));
    check("rate_limit", patch.rate_limit.is_some_and(|v| v != t.rate_limit));
    out
}

pub(super) fn apply(mut t: Tenant, patch: &TenantPatch) -> Tenant {
    let before = t.clone();
    if let Some(v) = &patch.name {
        t.name = v.clone();
    }
    if let Some(v) = &patch.tier {
        t.tier = v.clone();
    }
    if let Some(v) = &patch.metadata {
        t.metadata = Some(v.clone());
    }
    if let Some(v) = patch.default_commit_overage_policy {
        t.default_commit_overage_policy = v;
    }
    if let Some(v) = patch.default_reservation_ttl_ms {
        t.default_reservation_ttl_ms = v;
    }
    if let Some(v) = patch.max_reservation_ttl_ms {
        t.max_reservation_ttl_ms = v;
    }
    if let Some(v) = patch.max_reservation_extensions {
        t.max_reservation_extensions = v;
    }
    if let Some(v) = patch.reservation_expiry_policy {
        t.reservation_expiry_policy = v;
    }
    if let Some(v) = patch.observe_mode {
        t.observe_mode = v;
    }
    if let Some(v) = patch.rate_limit {
        t.rate_limit = v;
    }
    if let Some(status) = patch.status
        && status != t.status
    {
        t.status = status;
        t.suspended_at = (status == TenantStatus::Suspended).then(now);
    }
    if t != before {
        t.updated_at = now();
    }
    t
}
