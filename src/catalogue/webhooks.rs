//! Webhook subscriptions: create, patch, delete, test, replay, bulk actions and the security
//! config. Every mutation writes its audit entry and its `webhook.*` event in the transaction
//! of the change, and every path that persists selectors checks both WEBHOOK SUBSCRIPTION
//! INVARIANTS on the resulting state (the table's CHECK holds INVARIANT 1 as well).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::audit::Actor;
use super::{Catalogue, now};
use crate::domain::event::{Event, EventCategory, EventType, SOURCE_DISPATCHER, SYSTEM_TENANT};
use crate::domain::tenant::TenantStatus;
use crate::domain::webhook::{
    DeliveryStatus, RetryPolicy, Subscription, ThresholdConfig, WebhookStatus, check_invariants, unstorable_number,
};
use crate::error::{ApiError, ApiResult, ErrorCode};
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
/// Bulk actions touch at most this many subscriptions.
pub const BULK_MAX: usize = 500;

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

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::WebhookNotFound, format!("webhook subscription {id} not found"))
}

/// Whether `id` could name a stored subscription: PostgreSQL text cannot hold U+0000.
fn findable(id: &str) -> bool {
    !id.contains('\0')
}

/// Whether a JSON value holds U+0000 in any key or string (PostgreSQL jsonb refuses it).
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn field_error((field, message): (String, String)) -> ApiError {
    ApiError::invalid_field(&field, message)
}

fn new_secret() -> ApiResult<String> {
    let bytes = crate::auth::secret::random_bytes_32().map_err(ApiError::internal)?;
    Ok(format!("whsec_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

fn check_input(input: &SubscriptionInput) -> ApiResult<()> {
    let chars = |field: &str, v: &Option<String>, max: usize| -> ApiResult<()> {
        match v {
            Some(s) if s.chars().count() > max => {
                Err(ApiError::invalid_field(field, format!("must be at most {max} characters")))
            }
            _ => Ok(()),
        }
    };
    chars("name", &input.name, 256)?;
    chars("description", &input.description, 1024)?;
    chars("scope_filter", &input.scope_filter, SCOPE_FILTER_MAX)?;
    for (field, value) in
        [("name", &input.name), ("description", &input.description), ("scope_filter", &input.scope_filter)]
    {
        if value.as_deref().is_some_and(|s| s.contains('\0')) {
            return Err(ApiError::invalid_field(field, "must not contain NUL characters"));
        }
    }
    if input.scope_filter.as_deref() == Some("") {
        return Err(ApiError::invalid_field("scope_filter", "must not be empty; omit it to match every scope"));
    }
    if let Some(secret) = &input.signing_secret
        && (secret.is_empty() || secret.len() > SECRET_LEN_MAX)
    {
        return Err(ApiError::invalid_field("signing_secret", format!("must be 1 to {SECRET_LEN_MAX} bytes")));
    }
    if let Some(headers) = &input.headers {
        if headers.len() > HEADERS_MAX {
            return Err(ApiError::invalid_field("headers", format!("at most {HEADERS_MAX} headers")));
        }
        for (name, value) in headers {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ApiError::invalid_field("headers", format!("{name:?} is not a valid header name")));
            }
            if value.len() > HEADER_VALUE_MAX || axum::http::HeaderValue::from_str(value).is_err() {
                return Err(ApiError::invalid_field(
                    "headers",
                    format!("the value of {name} is not a valid header value"),
                ));
            }
        }
    }
    if let Some(policy) = &input.retry_policy {
        policy.validate().map_err(field_error)?;
    }
    if let Some(thresholds) = &input.thresholds {
        thresholds.validate().map_err(field_error)?;
    }
    if let Some(n) = input.disable_after_failures
        && !(1..=DISABLE_AFTER_MAX).contains(&n)
    {
        return Err(ApiError::invalid_field(
            "disable_after_failures",
            format!("must be from 1 to {DISABLE_AFTER_MAX}"),
        ));
    }
    if let Some(m) = &input.metadata {
        if !m.is_object() {
            return Err(ApiError::invalid_field("metadata", "must be an object"));
        }
        if has_nul(m) {
            return Err(ApiError::invalid_field("metadata", "must not contain NUL characters"));
        }
        if let Some(v) = unstorable_number(m) {
            return Err(ApiError::invalid_field(
                "metadata",
                format!("holds {v}, which is too large to store; use a smaller magnitude"),
            ));
        }
        if m.to_string().len() > METADATA_BYTES_MAX {
            return Err(ApiError::invalid_field(
                "metadata",
                format!("must serialize to at most {METADATA_BYTES_MAX} bytes"),
            ));
        }
    }
    Ok(())
}

/// Locks the owning tenant's row and refuses a CLOSED tenant's subscriptions (409, Rule 2);
/// `__system__` has no row.
async fn lock_owner(tx: &mut PgTx, owner: &str) -> ApiResult<()> {
    if owner == SYSTEM_TENANT {
        return Ok(());
    }
    let t = tenants::get_for_update(tx, owner)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::TenantNotFound, format!("tenant {owner} not found")))?;
    if t.status == TenantStatus::Closed {
        return Err(ApiError::new(ErrorCode::TenantClosed, format!("tenant {owner} is closed")));
    }
    Ok(())
}

/// Locks a subscription `viewer` may see (another tenant's is not found) and its owner,
/// refusing a CLOSED owner's (409, Rule 2).
async fn lock_for(tx: &mut PgTx, viewer: Viewer<'_>, id: &str) -> ApiResult<Stored> {
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

impl Catalogue {
    fn seal(&self, plain: &[u8]) -> ApiResult<Vec<u8>> {
        self.dispatcher.sealer().seal(plain).map_err(ApiError::internal)
    }

    fn seal_headers(&self, headers: &BTreeMap<String, String>) -> ApiResult<Option<Vec<u8>>> {
        if headers.is_empty() {
            return Ok(None);
        }
        let raw = serde_json::to_vec(headers).map_err(ApiError::internal)?;
        self.seal(&raw).map(Some)
    }

    async fn check_url(&self, url: &str) -> ApiResult<()> {
        let guard = self.dispatcher.guard().current();
        guard.check_url(url).await.map(|_| ()).map_err(|why| {
            ApiError::new(ErrorCode::WebhookUrlInvalid, format!("url: {why}")).with_details(json!({ "field": "url" }))
        })
    }

    /// Creates a subscription owned by `owner` (a tenant, or `__system__`); returns it and
    /// its signing secret, which is shown this once.
    pub async fn create_webhook(
        &self,
        actor: &Actor,
        owner: &str,
        input: SubscriptionInput,
    ) -> ApiResult<(Subscription, String)> {
        check_input(&input)?;
        let url = input.url.clone().ok_or_else(|| ApiError::invalid_field("url", "is required"))?;
        let event_types = input.event_types.clone().unwrap_or_default();
        if event_types.is_empty() {
            return Err(ApiError::invalid_field("event_types", "must name at least one event type"));
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
            return Err(ApiError::invalid(format!(
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

    pub async fn get_webhook(&self, viewer: Viewer<'_>, id: &str) -> ApiResult<Stored> {
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
    ) -> ApiResult<Subscription> {
        check_input(&input)?;
        if input.status == Some(WebhookStatus::Disabled) {
            return Err(ApiError::invalid_field(
                "status",
                "must be ACTIVE or PAUSED; DISABLED is set only by the dispatcher",
            ));
        }
        let mut tx = self.pg.begin().await?;
        let current = lock_for(&mut tx, viewer, id).await?;
        let before = current.sub.clone();
        let mut next = current.clone();
        let mut changed: Vec<&str> = Vec::new();
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = input.$field.clone() {
                    if next.sub.$field != v {
                        changed.push(stringify!($field));
                        next.sub.$field = v;
                    }
                }
            };
            (opt $field:ident) => {
                if let Some(v) = input.$field.clone() {
                    if next.sub.$field.as_ref() != Some(&v) {
                        changed.push(stringify!($field));
                        next.sub.$field = Some(v);
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
        let mut all_changed = changed.clone();
        if status_moved {
            all_changed.push("status");
        }
        let entry = actor.entry(
            "updateWebhookSubscription",
            &before.tenant_id,
            ("webhook", id),
            200,
            json!({ "changed_fields": all_changed }),
        );
        audit::append(&mut tx, &entry).await?;
        let kind = match (status_moved, next.sub.status) {
            (true, WebhookStatus::Paused) => EventType::WebhookPaused,
            (true, _) => EventType::WebhookResumed,
            (false, _) => EventType::WebhookUpdated,
        };
        let data = lifecycle(&next.sub, Some(before.status), Some(next.sub.status), &changed);
        let mut event = actor.event(kind, &before.tenant_id, data);
        event.correlation_id = Some(format!("webhook_update:{id}:{}", actor.ctx.request_id));
        events::record(&mut tx, &[event]).await?;
        pg::commit(tx).await?;
        Ok(next.sub)
    }

    /// Deletes a subscription and cancels its queued deliveries.
    pub async fn delete_webhook(&self, actor: &Actor, viewer: Viewer<'_>, id: &str) -> ApiResult<()> {
        let mut tx = self.pg.begin().await?;
        let current = lock_for(&mut tx, viewer, id).await?;
        let correlation = format!("webhook_delete:{id}");
        self.delete_locked(&mut tx, actor, &current.sub, correlation).await?;
        pg::commit(tx).await?;
        Ok(())
    }

    async fn delete_locked(
        &self,
        tx: &mut PgTx,
        actor: &Actor,
        sub: &Subscription,
        correlation: String,
    ) -> ApiResult<()> {
        let id = sub.subscription_id.as_str();
        store::cancel_pending(tx, id, "subscription was deleted").await?;
        store::delete(tx, id).await?;
        let entry = actor.entry("deleteWebhookSubscription", &sub.tenant_id, ("webhook", id), 204, json!({}));
        audit::append(tx, &entry).await?;
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
    ) -> ApiResult<pg::page::Page<Subscription>> {
        Ok(store::list(self.pg.pool(), filter, page).await?)
    }

    /// Sends the synthetic `system.webhook_test` event once. Counts toward nothing and
    /// changes nothing; the event is not stored.
    pub async fn test_webhook(&self, actor: &Actor, viewer: Viewer<'_>, id: &str) -> ApiResult<(SendOutcome, String)> {
        let stored = self.get_webhook(viewer, id).await?;
        self.require_open_owner(&stored.sub.tenant_id).await?;
        let data = json!({
            "component": "webhook_dispatcher",
            "severity": "info",
            "message": "Test event from Tollgate",
            "details": { "subscription_id": id },
        });
        let mut event = Event::new(EventType::SystemWebhookTest, &stored.sub.tenant_id, SOURCE_DISPATCHER, data);
        event.actor = Some(crate::domain::event::EventActor::of(actor.actor_type, actor.key_id.clone()));
        event.request_id = Some(actor.ctx.request_id.clone());
        event.trace_id = Some(actor.ctx.trace_id.clone());
        let (secret, headers) = self.dispatcher.open_secrets(&stored).map_err(ApiError::internal)?;
        let outcome = self.dispatcher.send(&stored.sub, &secret, &headers, &event).await;
        Ok((outcome, event.event_id))
    }

    async fn require_open_owner(&self, owner: &str) -> ApiResult<()> {
        if owner == SYSTEM_TENANT {
            return Ok(());
        }
        match tenants::get(self.pg.pool(), owner).await? {
            Some(t) if t.status == TenantStatus::Closed => {
                Err(ApiError::new(ErrorCode::TenantClosed, format!("tenant {owner} is closed")))
            }
            _ => Ok(()),
        }
    }

    pub async fn list_deliveries(
        &self,
        viewer: Viewer<'_>,
        id: &str,
        filter: &store::DeliveryFilter,
        page: &pg::page::PageSpec,
    ) -> ApiResult<pg::page::Page<store::Delivery>> {
        self.get_webhook(viewer, id).await?;
        Ok(store::list_deliveries(self.pg.pool(), id, filter, page).await?)
    }

    /// Queues every deliverable event of `[from, to]` to the subscription, oldest first;
    /// 400 when the window holds more than `max_events` of them or more than the scan
    /// limit of candidates. Returns the replay id and how many deliveries were queued.
    pub async fn replay(
        &self,
        actor: &Actor,
        id: &str,
        window: (OffsetDateTime, OffsetDateTime),
        event_types: Option<Vec<EventType>>,
        max_events: usize,
    ) -> ApiResult<(String, usize)> {
        let stored = self.get_webhook(Viewer::Admin, id).await?;
        let sub = stored.sub;
        let mut filter = event_store::Filter { from: Some(window.0), to: Some(window.1), ..Default::default() };
        if sub.tenant_id != SYSTEM_TENANT {
            filter.tenants = vec![sub.tenant_id.clone()];
        }
        let candidates = event_store::in_order(self.pg.pool(), &filter, REPLAY_SCAN_LIMIT + 1).await?;
        if candidates.len() as i64 > REPLAY_SCAN_LIMIT {
            return Err(ApiError::invalid(format!(
                "the window holds more than {REPLAY_SCAN_LIMIT} events; narrow from/to"
            )));
        }
        let selected: Vec<&Event> = candidates
            .iter()
            .filter(|e| event_types.as_ref().is_none_or(|types| types.contains(&e.event_type)))
            .filter(|e| sub.wants(e))
            .collect();
        if selected.len() > max_events {
            return Err(ApiError::invalid_field(
                "max_events",
                format!(
                    "the window holds {} deliverable events, more than max_events ({max_events}); narrow from/to or raise max_events",
                    selected.len()
                ),
            ));
        }
        let replay_id = format!("replay_{}", uuid::Uuid::now_v7().simple());
        let mut tx = self.pg.begin().await?;
        let locked = lock_for(&mut tx, Viewer::Admin, id).await?;
        if store::replay_in_progress(&mut tx, id).await? {
            return Err(ApiError::new(
                ErrorCode::ReplayInProgress,
                "a replay to this subscription is still in progress",
            ));
        }
        let mut queued = 0;
        if locked.sub.status == WebhookStatus::Active {
            let at = now();
            for event in &selected {
                let delivery = NewDelivery {
                    subscription_id: id,
                    event_id: &event.event_id,
                    event_type: event.event_type,
                    trace_id: event.trace_id.as_deref(),
                    replay_id: Some(&replay_id),
                    at,
                };
                if store::insert_delivery(&mut tx, &delivery).await? {
                    queued += 1;
                }
            }
        }
        let entry = actor.entry(
            "replayEvents",
            &locked.sub.tenant_id,
            ("webhook", id),
            202,
            json!({ "replay_id": replay_id, "events_queued": queued }),
        );
        audit::append(&mut tx, &entry).await?;
        pg::commit(tx).await?;
        Ok((replay_id, queued))
    }

    /// One row of a bulk action, in its own transaction. `Ok(None)` succeeded, `Ok(Some)`
    /// was skipped with that reason; `Err` failed with a row-level code and message.
    pub async fn bulk_webhook_row(
        &self,
        actor: &Actor,
        id: &str,
        action: &str,
        correlation: &str,
    ) -> Result<Option<&'static str>, (&'static str, String)> {
        let internal = |e: crate::store::StoreError| ("INTERNAL_ERROR", e.to_string());
        let mut tx = self.pg.begin().await.map_err(internal)?;
        let Some(current) = store::get_for_update(&mut tx, id).await.map_err(internal)? else {
            return if action == "DELETE" {
                Ok(Some("ALREADY_DELETED"))
            } else {
                Err(("NOT_FOUND", format!("{id} not found")))
            };
        };
        if let Err(e) = lock_owner(&mut tx, &current.sub.tenant_id).await {
            return Err(("INVALID_TRANSITION", e.message));
        }
        let sub = &current.sub;
        let target = match (action, sub.status) {
            ("DELETE", _) => None,
            ("PAUSE", WebhookStatus::Active) => Some(WebhookStatus::Paused),
            ("PAUSE", _) => return Ok(Some("ALREADY_IN_TARGET_STATE")),
            ("RESUME", WebhookStatus::Paused) => Some(WebhookStatus::Active),
            ("RESUME", WebhookStatus::Active) => return Ok(Some("ALREADY_IN_TARGET_STATE")),
            ("RESUME", _) => {
                return Err((
                    "INVALID_TRANSITION",
                    "a DISABLED subscription is re-enabled with PATCH status ACTIVE".into(),
                ));
            }
            _ => return Err(("INVALID_TRANSITION", format!("unknown action {action}"))),
        };
        match target {
            None => self
                .delete_locked(&mut tx, actor, sub, correlation.to_string())
                .await
                .map_err(|e| ("INTERNAL_ERROR", e.message))?,
            Some(status) => {
                let mut next = current.clone();
                next.sub.status = status;
                next.sub.updated_at = Some(now());
                if status == WebhookStatus::Active {
                    next.sub.consecutive_failures = 0;
                }
                store::save(&mut tx, &next).await.map_err(internal)?;
                let entry = actor.entry(
                    "bulkActionWebhooks",
                    &sub.tenant_id,
                    ("webhook", id),
                    200,
                    json!({ "action": action, "correlation_id": correlation }),
                );
                audit::append(&mut tx, &entry).await.map_err(internal)?;
                let kind =
                    if status == WebhookStatus::Paused { EventType::WebhookPaused } else { EventType::WebhookResumed };
                let mut event =
                    actor.event(kind, &sub.tenant_id, lifecycle(&next.sub, Some(sub.status), Some(status), &[]));
                event.correlation_id = Some(correlation.to_string());
                events::record(&mut tx, &[event]).await.map_err(internal)?;
            }
        }
        pg::commit(tx).await.map_err(internal)?;
        Ok(None)
    }

    /// The stored response of an earlier bulk request with idempotency key `key`, to replay;
    /// 409 `IDEMPOTENCY_MISMATCH` when the key was used for another request.
    pub async fn bulk_replay(&self, key: &str, request_hash: &str) -> ApiResult<Option<Value>> {
        match store::bulk_action(self.pg.pool(), key).await? {
            Some((hash, _)) if hash != request_hash => Err(ApiError::new(
                ErrorCode::IdempotencyMismatch,
                "idempotency_key was used with a different bulk request",
            )),
            Some((_, response)) => Ok(Some(response)),
            None => Ok(None),
        }
    }

    pub async fn bulk_remember(&self, key: &str, request_hash: &str, response: &Value) -> ApiResult<()> {
        Ok(store::remember_bulk_action(self.pg.pool(), key, request_hash, response).await?)
    }

    pub fn security_config(&self) -> SecurityConfig {
        self.dispatcher.guard().current().config.clone()
    }

    /// Replaces the security config; later creates and updates are checked against it.
    pub async fn put_security_config(&self, actor: &Actor, config: SecurityConfig) -> ApiResult<SecurityConfig> {
        let guard = Guard::new(config.clone()).map_err(field_error)?;
        let raw = serde_json::to_value(&config).map_err(ApiError::internal)?;
        let mut tx = self.pg.begin().await?;
        let written_at = store::put_security_config(&mut tx, &raw).await?;
        let entry =
            actor.entry("updateWebhookSecurityConfig", "__admin__", ("config", "webhook-security"), 200, json!({}));
        audit::append(&mut tx, &entry).await?;
        pg::commit(tx).await?;
        self.dispatcher.guard().replace(guard, written_at);
        Ok(config)
    }
}

/// The status of a delivery row as the API spells it (rows are written only with these).
pub fn delivery_status(raw: &str) -> DeliveryStatus {
    DeliveryStatus::parse(raw).unwrap_or(DeliveryStatus::Failed)
}
