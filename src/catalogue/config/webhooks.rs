//! The `webhooks` section: every subscription (tenant-owned and system-wide) with its
//! selectors, URL, retry policy and status, matched by `subscription_id`. Never exported: the
//! signing secret and the custom header values (sealed at rest). Import creates a missing
//! subscription with a newly generated signing secret and no custom headers (set them with
//! PATCH afterwards); an update keeps the stored secret and headers; `replace` deletes a
//! subscription the snapshot lacks. URLs are checked by the SSRF guard like any create.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Allowance, Applying, Ctx, Mode, bad, within};
use crate::catalogue::Catalogue;
use crate::catalogue::webhooks::{
    SUBSCRIPTIONS_PER_OWNER_MAX, SubscriptionInput, check_input, field_error, new_secret,
};
use crate::domain::clock::now;
use crate::domain::error::Result;
use crate::domain::event::{EventCategory, EventType, SYSTEM_TENANT};
use crate::domain::tenant::TenantStatus;
use crate::domain::webhook::{RetryPolicy, Subscription, ThresholdConfig, WebhookStatus, check_invariants};
use crate::store::pg::webhooks::{self as store, Stored};
use crate::store::pg::{PgTx, page};

/// The subscription fields no export carries.
pub const OMITTED: [&str; 2] = ["signing_secret", "headers"];
const PAGE: u32 = 500;
const ID_LEN_MAX: usize = 128;

/// One subscription as a snapshot holds it (no secret, no header values, no delivery health).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSnap {
    pub subscription_id: String,
    /// The owning tenant, or `__system__` for a system-wide subscription.
    pub tenant_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub url: String,
    pub event_types: Vec<EventType>,
    #[serde(default)]
    pub event_categories: Vec<EventCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<ThresholdConfig>,
    pub status: WebhookStatus,
    pub retry_policy: RetryPolicy,
    pub disable_after_failures: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl WebhookSnap {
    fn of(s: &Subscription) -> Self {
        Self {
            subscription_id: s.subscription_id.clone(),
            tenant_id: s.tenant_id.clone(),
            name: s.name.clone(),
            description: s.description.clone(),
            url: s.url.clone(),
            event_types: s.event_types.clone(),
            event_categories: s.event_categories.clone(),
            scope_filter: s.scope_filter.clone(),
            thresholds: s.thresholds.clone(),
            status: s.status,
            retry_policy: s.retry_policy,
            disable_after_failures: s.disable_after_failures,
            metadata: s.metadata.clone(),
        }
    }

    /// `base` with this snapshot's fields (health and times kept).
    fn onto(&self, mut base: Subscription) -> Subscription {
        let wanted = Self::of(&base);
        if wanted != *self {
            base.updated_at = Some(now());
        }
        base.name = self.name.clone();
        base.description = self.description.clone();
        base.url = self.url.clone();
        base.event_types = self.event_types.clone();
        base.event_categories = self.event_categories.clone();
        base.scope_filter = self.scope_filter.clone();
        base.thresholds = self.thresholds.clone();
        base.status = self.status;
        base.retry_policy = self.retry_policy;
        base.disable_after_failures = self.disable_after_failures;
        base.metadata = self.metadata.clone();
        base
    }

    fn fresh(&self) -> Subscription {
        let blank = Subscription {
            subscription_id: self.subscription_id.clone(),
            tenant_id: self.tenant_id.clone(),
            name: None,
            description: None,
            url: String::new(),
            event_types: Vec::new(),
            event_categories: Vec::new(),
            scope_filter: None,
            thresholds: None,
            status: WebhookStatus::Active,
            retry_policy: RetryPolicy::default(),
            disable_after_failures: 10,
            consecutive_failures: 0,
            metadata: None,
            created_at: now(),
            updated_at: None,
            last_triggered_at: None,
            last_success_at: None,
            last_failure_at: None,
        };
        let mut sub = self.onto(blank);
        sub.updated_at = None;
        sub
    }

    async fn validate(&self, c: &Catalogue, ctx: &Ctx, url_changed: bool) -> Result<()> {
        let id = self.subscription_id.as_str();
        if id.is_empty() || id.len() > ID_LEN_MAX || id.contains('\0') {
            return Err(bad("webhooks", id, "subscription_id", format!("must be 1 to {ID_LEN_MAX} bytes")));
        }
        if self.tenant_id != SYSTEM_TENANT && !ctx.after.contains_key(&self.tenant_id) {
            return Err(bad("webhooks", id, "tenant_id", "no such tenant in the deployment or the snapshot"));
        }
        if ctx.after.get(&self.tenant_id) == Some(&TenantStatus::Closed) && self.status == WebhookStatus::Active {
            return Err(bad("webhooks", id, "status", "must not be ACTIVE: the tenant is CLOSED"));
        }
        let input = SubscriptionInput {
            name: self.name.clone(),
            description: self.description.clone(),
            scope_filter: self.scope_filter.clone(),
            thresholds: self.thresholds.clone(),
            retry_policy: Some(self.retry_policy),
            disable_after_failures: Some(self.disable_after_failures),
            metadata: self.metadata.clone(),
            ..Default::default()
        };
        check_input(&input).map_err(|e| within("webhooks", id, e))?;
        if self.event_types.is_empty() {
            return Err(bad("webhooks", id, "event_types", "must name at least one event type"));
        }
        check_invariants(&self.tenant_id, &self.event_types, &self.event_categories)
            .map_err(|e| within("webhooks", id, field_error(e)))?;
        if url_changed {
            c.check_url(&self.url).await.map_err(|e| within("webhooks", id, e))?;
        }
        Ok(())
    }
}

async fn all(c: &Catalogue, allowance: &mut Allowance) -> Result<Vec<Subscription>> {
    let column =
        page::SortColumn { expr: "subscription_id", cast: "text", id_expr: "subscription_id", id_cast: "text" };
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

pub(super) async fn export(c: &Catalogue, allowance: &mut Allowance) -> Result<Vec<WebhookSnap>> {
    Ok(all(c, allowance).await?.iter().map(WebhookSnap::of).collect())
}

#[derive(Debug, Default)]
pub(super) struct Plan {
    create: Vec<Subscription>,
    update: Vec<(Subscription, Subscription)>,
    delete: Vec<Subscription>,
    unchanged: usize,
}

pub(super) async fn plan(c: &Catalogue, section: Option<&[WebhookSnap]>, ctx: &Ctx) -> Result<Plan> {
    let mut plan = Plan::default();
    let Some(section) = section else { return Ok(plan) };
    let current: HashMap<String, Subscription> =
        all(c, &mut super::Allowance(usize::MAX)).await?.into_iter().map(|s| (s.subscription_id.clone(), s)).collect();
    let mut per_owner: HashMap<String, i64> = HashMap::new();
    for s in current.values() {
        *per_owner.entry(s.tenant_id.clone()).or_default() += 1;
    }
    let mut seen = HashSet::new();
    for snap in section {
        let id = snap.subscription_id.as_str();
        if !seen.insert(id.to_string()) {
            return Err(bad("webhooks", id, "subscription_id", "appears more than once"));
        }
        let cur = current.get(id);
        if ctx.closing.contains(&snap.tenant_id) {
            continue;
        }
        snap.validate(c, ctx, cur.is_none_or(|s| s.url != snap.url)).await?;
        match cur {
            None => {
                let n = per_owner.entry(snap.tenant_id.clone()).or_default();
                *n += 1;
                if *n > SUBSCRIPTIONS_PER_OWNER_MAX {
                    return Err(bad(
                        "webhooks",
                        id,
                        "tenant_id",
                        format!("{} would have more than {SUBSCRIPTIONS_PER_OWNER_MAX} subscriptions", snap.tenant_id),
                    ));
                }
                plan.create.push(snap.fresh());
            }
            Some(cur) if cur.tenant_id != snap.tenant_id => {
                return Err(bad("webhooks", id, "tenant_id", "cannot change: a subscription keeps its owner"));
            }
            Some(cur) if WebhookSnap::of(cur) == *snap => plan.unchanged += 1,
            Some(cur) => plan.update.push((cur.clone(), snap.onto(cur.clone()))),
        }
    }
    if ctx.mode == Mode::Replace {
        let mut gone: Vec<&Subscription> = current
            .values()
            .filter(|s| !seen.contains(&s.subscription_id) && (s.tenant_id == SYSTEM_TENANT || ctx.owns(&s.tenant_id)))
            .collect();
        gone.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        plan.delete = gone.into_iter().cloned().collect();
    }
    Ok(plan)
}

impl Plan {
    pub fn diff(&self) -> super::plan::KindDiff {
        super::plan::KindDiff {
            create: self.create.iter().map(|s| s.subscription_id.clone()).collect(),
            update: self.update.iter().map(|(s, _)| s.subscription_id.clone()).collect(),
            delete: self.delete.iter().map(|s| s.subscription_id.clone()).collect(),
            skipped: Vec::new(),
            unchanged: self.unchanged,
        }
    }
}

fn data(sub: &Subscription, previous: Option<WebhookStatus>) -> Value {
    json!({
        "subscription_id": sub.subscription_id, "tenant_id": sub.tenant_id,
        "previous_status": previous.map(WebhookStatus::as_str), "new_status": sub.status.as_str(),
    })
}

pub(super) async fn apply(c: &Catalogue, tx: &mut PgTx, plan: &Plan, a: &mut Applying<'_>) -> Result<()> {
    for sub in &plan.create {
        let secret = new_secret()?;
        let stored = Stored { sub: sub.clone(), secret_sealed: c.seal(secret.as_bytes())?, headers_sealed: None };
        store::save(tx, &stored).await?;
        let id = sub.subscription_id.as_str();
        a.audit(tx, &sub.tenant_id, ("webhook", id), "create", json!({ "signing_secret": "generated" })).await?;
        a.event(EventType::WebhookCreated, &sub.tenant_id, None, data(sub, None));
    }
    for (cur, next) in &plan.update {
        let id = cur.subscription_id.as_str();
        let stored = store::get_for_update(tx, id)
            .await?
            .ok_or_else(|| bad("webhooks", id, "subscription_id", "was deleted meanwhile; retry the import"))?;
        store::save(tx, &Stored { sub: next.clone(), ..stored }).await?;
        a.audit(tx, &cur.tenant_id, ("webhook", id), "update", json!({})).await?;
        a.event(EventType::WebhookUpdated, &cur.tenant_id, None, data(next, Some(cur.status)));
    }
    for sub in &plan.delete {
        let id = sub.subscription_id.as_str();
        store::cancel_pending(tx, id, "subscription was deleted by a configuration import").await?;
        store::delete(tx, id).await?;
        a.audit(tx, &sub.tenant_id, ("webhook", id), "delete", json!({})).await?;
        a.event(EventType::WebhookDeleted, &sub.tenant_id, None, data(sub, Some(sub.status)));
    }
    Ok(())
}
