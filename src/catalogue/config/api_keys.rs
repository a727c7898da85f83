//! The `api_keys` section: every key's metadata (name, description, permissions, scope filter,
//! status, expiry, metadata), matched by `key_id`. Never exported: the secret, its digest and
//! its displayed prefix. A key cannot be recreated without its secret, so import never creates
//! one: a key the deployment lacks is reported under `skipped` (mint it with POST
//! /v1/admin/api-keys). A key it has gets the snapshot's metadata; a snapshot that says REVOKED
//! revokes it (revocation is terminal: an ACTIVE snapshot of a revoked key is refused);
//! `replace` revokes a key the snapshot lacks.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Allowance, Applying, Ctx, Mode, bad};
use crate::catalogue::Catalogue;
use crate::domain::Permission;
use crate::domain::api_key::{self as k, ApiKey, KeyStatus};
use crate::domain::clock::now;
use crate::domain::error::Result;
use crate::domain::event::EventType;
use crate::store::pg::{PgTx, api_keys as store, page};

/// The key fields no export carries.
pub const OMITTED: [&str; 3] = ["key_secret", "key_hash", "key_prefix"];
const PAGE: u32 = 500;
const PERMISSIONS_MAX: usize = 64;
const DESCRIPTION_LEN_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySnap {
    pub key_id: String,
    pub tenant_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub permissions: Vec<Permission>,
    #[serde(default)]
    pub scope_filter: Vec<String>,
    /// ACTIVE, EXPIRED (derived from `expires_at`) or REVOKED.
    pub status: KeyStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl KeySnap {
    fn of(key: &ApiKey) -> Self {
        Self {
            key_id: key.key_id.clone(),
            tenant_id: key.tenant_id.to_string(),
            name: key.name.clone(),
            description: key.description.clone(),
            permissions: key.permissions.clone(),
            scope_filter: key.scope_filter.clone(),
            status: key.status_at(now()),
            expires_at: key.expires_at,
            metadata: key.metadata.clone(),
        }
    }

    fn validate(&self) -> Result<()> {
        let id = self.key_id.as_str();
        let name = self.name.chars().count();
        if name == 0 || name > k::NAME_LEN_MAX {
            return Err(bad("api_keys", id, "name", format!("must be 1 to {} characters", k::NAME_LEN_MAX)));
        }
        if self.description.as_ref().is_some_and(|d| d.chars().count() > DESCRIPTION_LEN_MAX) {
            return Err(bad(
                "api_keys",
                id,
                "description",
                format!("must be at most {DESCRIPTION_LEN_MAX} characters"),
            ));
        }
        if self.permissions.len() > PERMISSIONS_MAX {
            return Err(bad("api_keys", id, "permissions", format!("at most {PERMISSIONS_MAX}")));
        }
        if self.scope_filter.len() > k::SCOPE_FILTER_ENTRIES_MAX
            || self.scope_filter.iter().any(|s| s.is_empty() || s.len() > k::SCOPE_FILTER_ENTRY_LEN_MAX)
        {
            return Err(bad(
                "api_keys",
                id,
                "scope_filter",
                format!(
                    "at most {} entries of 1 to {} bytes",
                    k::SCOPE_FILTER_ENTRIES_MAX,
                    k::SCOPE_FILTER_ENTRY_LEN_MAX
                ),
            ));
        }
        if self.metadata.as_ref().is_some_and(|m| !m.is_object() || m.to_string().len() > 8 * 1024) {
            return Err(bad("api_keys", id, "metadata", "must be an object of at most 8 KiB"));
        }
        Ok(())
    }
}

async fn all(c: &Catalogue, allowance: &mut Allowance) -> Result<Vec<ApiKey>> {
    let column = page::SortColumn { expr: "k.key_id", cast: "text", id_expr: "k.key_id", id_cast: "text" };
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

pub(super) async fn export(c: &Catalogue, allowance: &mut Allowance) -> Result<Vec<KeySnap>> {
    Ok(all(c, allowance).await?.iter().map(KeySnap::of).collect())
}

#[derive(Debug, Default)]
pub(super) struct Plan {
    /// (current, wanted); `revoke` when the wanted key is revoked and the current is not.
    update: Vec<(ApiKey, ApiKey)>,
    revoke: Vec<(ApiKey, ApiKey)>,
    skipped: Vec<String>,
    unchanged: usize,
}

/// `cur` with the snapshot's metadata.
fn wanted(cur: &ApiKey, snap: &KeySnap) -> ApiKey {
    let mut w = cur.clone();
    w.name = snap.name.clone();
    w.description = snap.description.clone();
    w.permissions = snap.permissions.clone();
    w.scope_filter = snap.scope_filter.clone();
    w.expires_at = snap.expires_at;
    w.metadata = snap.metadata.clone();
    w
}

fn revoked(mut key: ApiKey, reason: &str) -> ApiKey {
    key.stored_status = KeyStatus::Revoked;
    key.revoked_at = Some(now());
    key.revoked_reason = Some(reason.to_string());
    key
}

pub(super) async fn plan(c: &Catalogue, section: Option<&[KeySnap]>, ctx: &Ctx) -> Result<Plan> {
    let mut plan = Plan::default();
    let Some(section) = section else { return Ok(plan) };
    let current: HashMap<String, ApiKey> =
        all(c, &mut Allowance(usize::MAX)).await?.into_iter().map(|key| (key.key_id.clone(), key)).collect();
    let mut seen = HashSet::new();
    for snap in section {
        let id = snap.key_id.as_str();
        if !seen.insert(id.to_string()) {
            return Err(bad("api_keys", id, "key_id", "appears more than once"));
        }
        snap.validate()?;
        let Some(cur) = current.get(id) else {
            plan.skipped.push(format!("{id}: not in this deployment; keys are never created by an import"));
            continue;
        };
        if cur.tenant_id.as_str() != snap.tenant_id {
            return Err(bad("api_keys", id, "tenant_id", "cannot change: a key keeps its tenant"));
        }
        if ctx.closing.contains(&snap.tenant_id) {
            continue;
        }
        let cur_revoked = cur.stored_status == KeyStatus::Revoked;
        let want_revoked = snap.status == KeyStatus::Revoked;
        if cur_revoked && !want_revoked {
            return Err(bad("api_keys", id, "status", "cannot change: the key is REVOKED, which is terminal"));
        }
        let w = wanted(cur, snap);
        match (cur_revoked, want_revoked) {
            (false, true) => plan.revoke.push((cur.clone(), revoked(w, "configuration import"))),
            _ if w == *cur => plan.unchanged += 1,
            _ => plan.update.push((cur.clone(), w)),
        }
    }
    if ctx.mode == Mode::Replace {
        let mut gone: Vec<&ApiKey> = current
            .values()
            .filter(|key| !seen.contains(&key.key_id) && key.stored_status != KeyStatus::Revoked)
            .filter(|key| ctx.owns(key.tenant_id.as_str()))
            .collect();
        gone.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        plan.revoke
            .extend(gone.into_iter().map(|key| (key.clone(), revoked(key.clone(), "configuration import (replace)"))));
    }
    Ok(plan)
}

impl Plan {
    pub fn diff(&self) -> super::plan::KindDiff {
        super::plan::KindDiff {
            create: Vec::new(),
            update: self.update.iter().map(|(k, _)| k.key_id.clone()).collect(),
            delete: self.revoke.iter().map(|(k, _)| k.key_id.clone()).collect(),
            skipped: self.skipped.clone(),
            unchanged: self.unchanged,
        }
    }
}

fn changed(a: &ApiKey, b: &ApiKey) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            out.push(name)
        }
    };
    check("name", a.name != b.name);
    check("description", a.description != b.description);
    check("permissions", a.permissions != b.permissions);
    check("scope_filter", a.scope_filter != b.scope_filter);
    check("expires_at", a.expires_at != b.expires_at);
    check("metadata", a.metadata != b.metadata);
    check("status", a.stored_status != b.stored_status);
    out
}

pub(super) async fn apply(tx: &mut PgTx, plan: &Plan, a: &mut Applying<'_>) -> Result<()> {
    for (cur, next) in plan.update.iter().chain(&plan.revoke) {
        let id = cur.key_id.as_str();
        let (_, digest) = store::get_for_update(tx, id)
            .await?
            .ok_or_else(|| bad("api_keys", id, "key_id", "was deleted meanwhile; retry the import"))?;
        store::update(tx, next).await?;
        let tenant = cur.tenant_id.as_str();
        let is_revoke = next.stored_status == KeyStatus::Revoked;
        let fields = changed(cur, next);
        a.audit(
            tx,
            tenant,
            ("api_key", id),
            if is_revoke { "delete" } else { "update" },
            json!({ "changed_fields": fields }),
        )
        .await?;
        let data = json!({
            "key_id": id, "key_name": next.name, "previous_status": cur.status_at(now()).as_str(),
            "new_status": next.status_at(now()).as_str(), "permissions": next.permissions,
        });
        if is_revoke {
            a.event(EventType::ApiKeyRevoked, tenant, None, data);
        } else if cur.permissions != next.permissions {
            a.event(EventType::ApiKeyPermissionsChanged, tenant, None, data);
        }
        a.announce.push(format!("key:{}", hex::encode(&digest)));
    }
    Ok(())
}
