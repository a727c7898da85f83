//! Webhook subscriptions: create, patch, delete, test, replay, bulk actions and the security
//! config. Every mutation writes its audit entry and its `webhook.*` event in the transaction
//! of the change, and every path that persists selectors checks both WEBHOOK SUBSCRIPTION
//! INVARIANTS on the resulting state (the table's CHECK holds INVARIANT 1 as well).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Catalogue;
use super::audit::Actor;
use crate::domain::clock::now;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::event::{Event, EventCategory, EventType, SOURCE_DISPATCHER, SYSTEM_TENANT};
use crate::domain::tenant::TenantStatus;
use crate::domain::webhook::{
    DeliveryStatus, RetryPolicy, Subscription, ThresholdConfig, WebhookStatus, check_invariants, unstorable_number,
};
use crate::events::dispatch::SendOutcome;
use crate::events::guard::{Guard, SecurityConfig};
use crate::events::{self};
use crate::store::pg::webhooks::{self as store, NewDelivery, Stored};
use crate::store::pg::{self, PgTx, audit, events as event_store, tenants};

/// Bounds on what a subscription may carry.
const HEADERS_MAX: usize = 20;
const HEADER_VALUE_MAX: usize = 4096;
const METADATA_BYTES_MAX: usize = 8 * 1024;
const SECRET_LEN_MAX: usize = 1024;
const SCOPE_FILTER_MAX: usize = 1024;
const DISABLE_AFTER_MAX: i32 = 1_000_000;
/// Subscriptions one owner (a tenant, or `__system__`) may have: every event of a tenant is
/// matched against its owner's and the system's subscriptions.
pub const SUBSCRIPTIONS_PER_OWNER_MAX: i64 = 100;
/// Replays look at no more events than this while selecting (the spec's SCAN LIMIT).
pub const REPLAY_SCAN_LIMIT: i64 = 20_000;

/// Fields of a create or a PATCH; on a PATCH `None` keeps the stored value.
#[derive(Debug, Default, Clone)]
pub struct SubscriptionInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub event_categories: Option<Vec<EventCategory>>,
    pub scope_filter: Option<String>,
    pub thresholds: Option<ThresholdConfig>,
    pub signing_secret: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub retry_policy: Option<RetryPolicy>,
    pub disable_after_failures: Option<i32>,
    pub status: Option<WebhookStatus>,
    pub metadata: Option<Value>,
}

/// Who may see a subscription: the admin key sees all; a tenant key only its tenant's, and
/// another tenant's subscription looks like it does not exist.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    Admin,
    Tenant(&'a str),
}

fn not_found(id: &str) -> Error {
    Error::new(ErrorCode::WebhookNotFound, format!("webhook subscription {id} not found"))
}

/// Whether `id` could name a stored subscription: PostgreSQL text cannot hold U+0000.
fn findable(id: &str) -> bool {
    !id.contains('\0')
}

mod input;
mod ops;

pub(in crate::catalogue) use input::{check_input, field_error, new_secret};
pub use ops::delivery_status;

/// Locks the owning tenant's row and refuses a CLOSED tenant's subscriptions (409, Rule 2);
/// `__system__` has no row.
async fn lock_owner(tx: &mut PgTx, owner: &str) -> Result<()> {
    if owner == SYSTEM_TENANT {
        return Ok(());
    }
    let t = tenants::get_for_update(tx, owner)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::TenantNotFound, format!("tenant {owner} not found")))?;
    if t.status == TenantStatus::Closed {
        return Err(Error::new(ErrorCode::TenantClosed, format!("tenant {owner} is closed")));
    }
    Ok(())
}

/// Locks a subscription `viewer` may see (another tenant's is not found) and its owner,
/// refusing a CLOSED owner's (409, Rule 2).
async fn lock_for(tx: &mut PgTx, viewer: Viewer<'_>, id: &str) -> Result<Stored> {
    if !findable(id) {
        return Err(not_found(id));
    }
    let current = store::get_for_update(tx, id).await?.ok_or_else(|| not_found(id))?;
    if let Viewer::Tenant(t) = viewer
        && current.sub.tenant_id != t
    {
        return Err(not_found(id));
    }
    lock_owner(tx, &current.sub.tenant_id).await?;
    Ok(current)
}

fn lifecycle(
    sub: &Subscription,
    previous: Option<WebhookStatus>,
    new: Option<WebhookStatus>,
    changed: &[&str],
) -> Value {
    let mut data =
        json!({ "subscription_id": sub.subscription_id, "tenant_id": sub.tenant_id, "changed_fields": changed });
    if let Some(p) = previous {
        data["previous_status"] = json!(p.as_str());
    }
    if let Some(n) = new {
        data["new_status"] = json!(n.as_str());
    }
    data
}

/// Copies the fields a PATCH sets onto `sub`; returns the names of those that changed.
fn apply_patch(sub: &mut Subscription, input: &SubscriptionInput) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! set {
        ($field:ident) => {
            if let Some(v) = input.$field.clone() {
                if sub.$field != v {
                    changed.push(stringify!($field));
                    sub.$field = v;
                }
            }
        };
        (opt $field:ident) => {
            if let Some(v) = input.$field.clone() {
                if sub.$field.as_ref() != Some(&v) {
                    changed.push(stringify!($field));
                    sub.$field = Some(v);
                }
            }
        };
    }
    set!(opt name);
    set!(opt description);
    set!(url);
    set!(event_types);
    set!(event_categories);
    set!(opt scope_filter);
    set!(opt thresholds);
    set!(retry_policy);
    set!(disable_after_failures);
    set!(opt metadata);
    changed
}

/// The audit entry and the one event of an update that changed something: `webhook.paused` or
/// `webhook.resumed` when the status moved, else `webhook.updated`.
async fn record_update(
    tx: &mut PgTx,
    actor: &Actor,
    before: &Subscription,
    after: &Subscription,
    changed: &[&str],
    status_moved: bool,
) -> Result<()> {
    let id = &after.subscription_id;
    let mut all_changed = changed.to_vec();
    if status_moved {
        all_changed.push("status");
    }
    let details = json!({ "changed_fields": all_changed });
    let entry = actor.entry("updateWebhookSubscription", &before.tenant_id, ("webhook", id), 200, details);
    audit::append(tx, &entry).await?;
    let kind = match (status_moved, after.status) {
        (true, WebhookStatus::Paused) => EventType::WebhookPaused,
        (true, _) => EventType::WebhookResumed,
        (false, _) => EventType::WebhookUpdated,
    };
    let data = lifecycle(after, Some(before.status), Some(after.status), changed);
    let mut event = actor.event(kind, &before.tenant_id, data);
    event.correlation_id = Some(format!("webhook_update:{id}:{}", actor.ctx.request_id));
    events::record(tx, &[event]).await?;
    Ok(())
}

impl Catalogue {
    pub(in crate::catalogue) fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        self.dispatcher.sealer().seal(plain).map_err(Error::internal)
    }

    fn seal_headers(&self, headers: &BTreeMap<String, String>) -> Result<Option<Vec<u8>>> {
        if headers.is_empty() {
            return Ok(None);
        }
        let raw = serde_json::to_vec(headers).map_err(Error::internal)?;
        self.seal(&raw).map(Some)
    }

    pub(in crate::catalogue) async fn check_url(&self, url: &str) -> Result<()> {
        let guard = self.dispatcher.guard().current();
        guard.check_url(url).await.map(|_| ()).map_err(|why| {
            Error::new(ErrorCode::WebhookUrlInvalid, format!("url: {why}")).with_details(json!({ "field": "url" }))
        })
    }

    /// Creates a subscription owned by `owner` (a tenant, or `__system__`); returns it and
    /// its signing secret, which is shown this once.
    pub async fn create_webhook(
        &self,
        actor: &Actor,
        owner: &str,
        input: SubscriptionInput,
    ) -> Result<(Subscription, String)> {
        check_input(&input)?;
        let url = input.url.clone().ok_or_else(|| Error::invalid_field("url", "is required"))?;
        let event_types = input.event_types.clone().unwrap_or_default();
        if event_types.is_empty() {
            return Err(Error::invalid_field("event_types", "must name at least one event type"));
        }
        let event_categories = input.event_categories.clone().unwrap_or_default();
        check_invariants(owner, &event_types, &event_categories).map_err(field_error)?;
        self.check_url(&url).await?;
        let secret = match input.signing_secret.clone() {
            Some(s) => s,
            None => new_secret()?,
        };
        let headers = input.headers.clone().unwrap_or_default();
        let sub = Subscription {
            subscription_id: format!("whsub_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: owner.to_string(),
            name: input.name,
            description: input.description,
            url,
            event_types,
            event_categories,
            scope_filter: input.scope_filter,
            thresholds: input.thresholds,
            status: WebhookStatus::Active,
            retry_policy: input.retry_policy.unwrap_or_default(),
            disable_after_failures: input.disable_after_failures.unwrap_or(10),
            consecutive_failures: 0,
            metadata: input.metadata,
            created_at: now(),
            updated_at: None,
            last_triggered_at: None,
            last_success_at: None,
            last_failure_at: None,
        };
        let stored = Stored {
            sub: sub.clone(),
            secret_sealed: self.seal(secret.as_bytes())?,
            headers_sealed: self.seal_headers(&headers)?,
        };
        let mut tx = self.pg.begin().await?;
        lock_owner(&mut tx, owner).await?;
        if store::count_of_owner(&mut tx, owner).await? >= SUBSCRIPTIONS_PER_OWNER_MAX {
            return Err(Error::invalid(format!(
                "{owner} has {SUBSCRIPTIONS_PER_OWNER_MAX} webhook subscriptions, the most one owner may have"
            )));
        }
        store::save(&mut tx, &stored).await?;
        let id = sub.subscription_id.as_str();
        let entry = actor.entry("createWebhookSubscription", owner, ("webhook", id), 201, json!({}));
        audit::append(&mut tx, &entry).await?;
        let mut event = actor.event(EventType::WebhookCreated, owner, lifecycle(&sub, None, Some(sub.status), &[]));
        event.correlation_id = Some(format!("webhook_create:{id}"));
        events::record(&mut tx, &[event]).await?;
        pg::commit(tx).await?;
        Ok((sub, secret))
    }

    pub async fn get_webhook(&self, viewer: Viewer<'_>, id: &str) -> Result<Stored> {
        if !findable(id) {
            return Err(not_found(id));
        }
        let stored = store::get(self.pg.pool(), id).await?.ok_or_else(|| not_found(id))?;
        if let Viewer::Tenant(t) = viewer
            && stored.sub.tenant_id != t
        {
            return Err(not_found(id));
        }
        Ok(stored)
    }

    /// Applies a PATCH. Emits exactly one event when anything changed: `webhook.paused` or
    /// `webhook.resumed` when the status moved (the other changes in `changed_fields`), else
    /// `webhook.updated`; a no-op PATCH emits nothing.
    pub async fn update_webhook(
        &self,
        actor: &Actor,
        viewer: Viewer<'_>,
        id: &str,
        input: SubscriptionInput,
    ) -> Result<Subscription> {
        check_input(&input)?;
        if input.status == Some(WebhookStatus::Disabled) {
            return Err(Error::invalid_field(
                "status",
                "must be ACTIVE or PAUSED; DISABLED is set only by the dispatcher",
            ));
        }
        let mut tx = self.pg.begin().await?;
        let current = lock_for(&mut tx, viewer, id).await?;
        let before = current.sub.clone();
        let mut next = current.clone();
        let mut changed = apply_patch(&mut next.sub, &input);
        check_invariants(&next.sub.tenant_id, &next.sub.event_types, &next.sub.event_categories)
            .map_err(field_error)?;
        if input.url.is_some() {
            self.check_url(&next.sub.url).await?;
        }
        if let Some(secret) = &input.signing_secret {
            next.secret_sealed = self.seal(secret.as_bytes())?;
            changed.push("signing_secret");
        }
        if let Some(headers) = &input.headers {
            next.headers_sealed = self.seal_headers(headers)?;
            changed.push("headers");
        }
        let status_moved = input.status.is_some_and(|s| s != before.status);
        if let Some(status) = input.status.filter(|_| status_moved) {
            next.sub.status = status;
            if status == WebhookStatus::Active {
                // Re-enabling starts the failure count afresh.
                next.sub.consecutive_failures = 0;
            }
        }
        if changed.is_empty() && !status_moved {
            return Ok(before);
        }
        next.sub.updated_at = Some(now());
        store::save(&mut tx, &next).await?;
        record_update(&mut tx, actor, &before, &next.sub, &changed, status_moved).await?;
        pg::commit(tx).await?;
        Ok(next.sub)
    }

    /// Deletes a subscription and cancels its queued deliveries.
    pub async fn delete_webhook(&self, actor: &Actor, viewer: Viewer<'_>, id: &str) -> Result<()> {
        let mut tx = self.pg.begin().await?;
        let current = lock_for(&mut tx, viewer, id).await?;
        let correlation = format!("webhook_delete:{id}");
        self.delete_locked(&mut tx, actor, &current.sub, correlation, true).await?;
        pg::commit(tx).await?;
        Ok(())
    }

    /// Deletes a locked subscription with its event; `audited` writes its own audit entry (a
    /// bulk action writes one for the whole invocation instead).
    async fn delete_locked(
        &self,
        tx: &mut PgTx,
        actor: &Actor,
        sub: &Subscription,
        correlation: String,
        audited: bool,
    ) -> Result<()> {
        let id = sub.subscription_id.as_str();
        store::cancel_pending(tx, id, "subscription was deleted").await?;
        store::delete(tx, id).await?;
        if audited {
            let entry = actor.entry("deleteWebhookSubscription", &sub.tenant_id, ("webhook", id), 204, json!({}));
            audit::append(tx, &entry).await?;
        }
        let mut event =
            actor.event(EventType::WebhookDeleted, &sub.tenant_id, lifecycle(sub, Some(sub.status), None, &[]));
        event.correlation_id = Some(correlation);
        events::record(tx, &[event]).await?;
        Ok(())
    }

    pub async fn list_webhooks(
        &self,
        filter: &store::Filter,
        page: &pg::page::PageSpec,
    ) -> Result<pg::page::Page<Subscription>> {
        Ok(store::list(self.pg.pool(), filter, page).await?)
    }
}
