//! API keys: mint (the secret leaves exactly once, in the create response), patch, revoke.
//! Every change to a key is announced on the auth channel so every instance's cache drops it.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Catalogue;
use super::audit::Actor;
use crate::auth::secret;
use crate::domain::Permission;
use crate::domain::api_key::{ApiKey, KeyStatus};
use crate::domain::clock::now;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::event::{Event, EventActor, EventType, SOURCE_ADMIN};
use crate::domain::tenant::{TenantId, TenantStatus};
use crate::events;
use crate::store::pg::{self, PgTx, api_keys, audit, tenants};

/// A key to mint, already validated.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub tenant_id: TenantId,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<Permission>,
    pub scope_filter: Vec<String>,
    pub expires_at: OffsetDateTime,
    pub metadata: Option<Value>,
}

#[derive(Debug, Default, Clone)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub permissions: Option<Vec<Permission>>,
    pub scope_filter: Option<Vec<String>>,
    pub expires_at: Option<OffsetDateTime>,
    pub metadata: Option<Value>,
}

/// Keys announced as expired per pass.
const EXPIRY_BATCH: i64 = 500;

fn key_not_found(id: &str) -> Error {
    Error::not_found(format!("API key {id} not found"))
}

/// Locks the owning tenant's row and refuses mutations of a CLOSED tenant's objects (409,
/// CASCADE Rule 2). Holding the lock means a concurrent close waits for this change.
async fn lock_open_tenant(tx: &mut PgTx, tenant: &str) -> Result<()> {
    let t = tenants::get_for_update(tx, tenant)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::TenantNotFound, format!("tenant {tenant} not found")))?;
    if t.status == TenantStatus::Closed {
        return Err(Error::new(ErrorCode::TenantClosed, format!("tenant {tenant} is closed")));
    }
    Ok(())
}

/// Locks an ACTIVE key and its open tenant for a change: a revoked key is 409 `KEY_REVOKED`,
/// an expired one 409 `KEY_EXPIRED`, a closed tenant's 409 `TENANT_CLOSED`.
pub(super) async fn lock_active_key(tx: &mut PgTx, key_id: &str, at: OffsetDateTime) -> Result<(ApiKey, Vec<u8>)> {
    let (current, digest) = api_keys::get_for_update(tx, key_id).await?.ok_or_else(|| key_not_found(key_id))?;
    lock_open_tenant(tx, current.tenant_id.as_str()).await?;
    match current.status_at(at) {
        KeyStatus::Active => Ok((current, digest)),
        KeyStatus::Revoked => Err(Error::new(ErrorCode::KeyRevoked, "key is revoked and cannot be modified")),
        KeyStatus::Expired => Err(Error::new(ErrorCode::KeyExpired, "key is expired and cannot be modified")),
    }
}

impl Catalogue {
    /// Mints a key; returns the record and the secret, which is stored nowhere.
    pub async fn create_key(&self, actor: &Actor, new: NewKey) -> Result<(ApiKey, String)> {
        let created_at = now();
        if new.expires_at <= created_at {
            return Err(Error::invalid_field("expires_at", "must be in the future"));
        }
        let minted = secret::mint_key().map_err(Error::internal)?;
        let key = ApiKey {
            key_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: new.tenant_id,
            key_prefix: minted.prefix,
            name: new.name,
            description: new.description,
            permissions: new.permissions,
            scope_filter: new.scope_filter,
            stored_status: KeyStatus::Active,
            metadata: new.metadata,
            created_at,
            last_used_at: None,
            expires_at: new.expires_at,
            revoked_at: None,
            revoked_reason: None,
        };
        let digest = self.hasher.digest(&minted.secret);
        let mut tx = self.pg.begin().await?;
        lock_open_tenant(&mut tx, key.tenant_id.as_str()).await?;
        api_keys::insert(&mut tx, &key, &digest).await?;
        let entry = actor.entry("createApiKey", key.tenant_id.as_str(), ("api_key", &key.key_id), 201, json!({}));
        audit::append(&mut tx, &entry).await?;
        let data = json!({
            "key_id": key.key_id, "key_name": key.name, "new_status": "ACTIVE", "permissions": key.permissions,
        });
        events::record(&mut tx, &[actor.event(EventType::ApiKeyCreated, key.tenant_id.as_str(), data)]).await?;
        pg::commit(tx).await?;
        Ok((key, minted.secret))
    }

    pub async fn update_key(&self, actor: &Actor, key_id: &str, patch: KeyPatch) -> Result<ApiKey> {
        let mut tx = self.pg.begin().await?;
        let at = now();
        let (current, digest) = lock_active_key(&mut tx, key_id, at).await?;
        if patch.expires_at.is_some_and(|e| e <= at) {
            return Err(Error::invalid_field("expires_at", "must be in the future"));
        }
        let mut key = current.clone();
        let mut changed = Vec::new();
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = patch.$field.clone() {
                    if key.$field != v {
                        changed.push(stringify!($field));
                    }
                    key.$field = v;
                }
            };
            (opt $field:ident) => {
                if let Some(v) = patch.$field.clone() {
                    if key.$field.as_ref() != Some(&v) {
                        changed.push(stringify!($field));
                    }
                    key.$field = Some(v);
                }
            };
        }
        set!(name);
        set!(opt description);
        set!(permissions);
        set!(scope_filter);
        set!(expires_at);
        set!(opt metadata);
        if key != current {
            api_keys::update(&mut tx, &key).await?;
        }
        let tenant = key.tenant_id.as_str();
        let entry = actor.entry("updateApiKey", tenant, ("api_key", key_id), 200, json!({ "changed_fields": changed }));
        audit::append(&mut tx, &entry).await?;
        if changed.iter().any(|f| *f == "permissions" || *f == "scope_filter") {
            let data = json!({
                "key_id": key.key_id, "key_name": key.name, "previous_status": "ACTIVE", "new_status": "ACTIVE",
                "permissions": key.permissions,
            });
            events::record(&mut tx, &[actor.event(EventType::ApiKeyPermissionsChanged, tenant, data)]).await?;
        }
        self.commit_announcing(tx, &[format!("key:{}", hex::encode(&digest))]).await?;
        Ok(key)
    }

    pub async fn revoke_key(&self, actor: &Actor, key_id: &str, reason: Option<String>) -> Result<ApiKey> {
        let mut tx = self.pg.begin().await?;
        let (mut key, digest) =
            api_keys::get_for_update(&mut tx, key_id).await?.ok_or_else(|| key_not_found(key_id))?;
        lock_open_tenant(&mut tx, key.tenant_id.as_str()).await?;
        if key.stored_status == KeyStatus::Revoked {
            return Err(Error::new(ErrorCode::KeyRevoked, format!("API key {key_id} is already revoked")));
        }
        let current_status = key.status_at(now());
        key.stored_status = KeyStatus::Revoked;
        key.revoked_at = Some(now());
        key.revoked_reason = reason.clone();
        api_keys::update(&mut tx, &key).await?;
        let tenant = key.tenant_id.as_str();
        let entry = actor.entry("revokeApiKey", tenant, ("api_key", key_id), 200, json!({ "reason": reason }));
        audit::append(&mut tx, &entry).await?;
        let previous = if current_status == KeyStatus::Expired { "EXPIRED" } else { "ACTIVE" };
        let data = json!({
            "key_id": key.key_id, "key_name": key.name, "previous_status": previous, "new_status": "REVOKED",
            "permissions": key.permissions,
        });
        events::record(&mut tx, &[actor.event(EventType::ApiKeyRevoked, tenant, data)]).await?;
        self.commit_announcing(tx, &[format!("key:{}", hex::encode(&digest))]).await?;
        Ok(key)
    }

    /// Emits `api_key.expired` once for each key that has passed its expiry (a key expires
    /// by the clock, with no request to hang the event on). Returns how many it announced.
    pub async fn announce_expired_keys(&self) -> Result<usize> {
        let mut tx = self.pg.begin().await?;
        let expired = api_keys::take_newly_expired(&mut tx, EXPIRY_BATCH).await?;
        let events: Vec<Event> = expired
            .into_iter()
            .map(|(key_id, tenant, name, permissions)| {
                let data = json!({
                    "key_id": key_id, "key_name": name, "previous_status": "ACTIVE", "new_status": "EXPIRED",
                    "permissions": permissions,
                });
                let mut e = Event::new(EventType::ApiKeyExpired, &tenant, SOURCE_ADMIN, data);
                e.actor = Some(EventActor::of("system", None));
                e
            })
            .collect();
        events::record(&mut tx, &events).await?;
        pg::commit(tx).await?;
        Ok(events.len())
    }

    pub async fn list_keys(
        &self,
        filter: &api_keys::Filter,
        page: &pg::page::PageSpec,
    ) -> Result<pg::page::Page<ApiKey>> {
        Ok(api_keys::list(self.pg.pool(), filter, page).await?)
    }

    /// The `validateApiKey` checks in the spec's order; `Err(reason)` names the first failure.
    pub async fn validate_key(&self, presented: &str) -> Result<Result<ApiKey, (&'static str, String)>> {
        if presented.is_empty() || presented.len() > secret::KEY_SECRET_LEN_MAX {
            return Ok(Err(("INVALID_KEY", String::new())));
        }
        let digest = self.hasher.digest(presented);
        let Some(found) = api_keys::find_by_digest(self.pg.pool(), &digest).await? else {
            return Ok(Err(("KEY_NOT_FOUND", String::new())));
        };
        let tenant = found.key.tenant_id.to_string();
        let reason = match (found.key.status_at(now()), found.tenant_status) {
            (KeyStatus::Revoked, _) => ErrorCode::KeyRevoked.as_str(),
            (KeyStatus::Expired, _) => ErrorCode::KeyExpired.as_str(),
            (_, TenantStatus::Suspended) => ErrorCode::TenantSuspended.as_str(),
            (_, TenantStatus::Closed) => ErrorCode::TenantClosed.as_str(),
            (KeyStatus::Active, TenantStatus::Active) => return Ok(Ok(found.key)),
        };
        Ok(Err((reason, tenant)))
    }
}
