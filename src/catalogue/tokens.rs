//! Personal access tokens of admin principals: mint (the secret leaves once, in the create
//! response; Postgres keeps its keyed digest), revoke, and the lookup the admin authenticator
//! caches. Also where the access check learns which tenant owns a resource named by id.

use serde_json::json;
use time::OffsetDateTime;

use super::Catalogue;
use super::audit::Actor;
use crate::auth::secret;
use crate::domain::access::{Pat, PrincipalStatus};
use crate::domain::audit::ADMIN_TENANT;
use crate::domain::clock::now;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::tenant::TenantId;
use crate::store::pg::principals::{self as store, Owned};

impl Catalogue {
    /// Mints a token for an active principal; returns it and the secret, stored nowhere.
    pub async fn create_pat(
        &self,
        actor: &Actor,
        principal_id: &str,
        name: String,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(Pat, String)> {
        let created_at = now();
        if expires_at.is_some_and(|e| e <= created_at) {
            return Err(Error::invalid_field("expires_at", "must be in the future"));
        }
        let mut tx = self.pg.begin().await?;
        let p = store::get_principal_for_update(&mut tx, principal_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("principal {principal_id} not found")))?;
        if p.status != PrincipalStatus::Active {
            return Err(Error::new(ErrorCode::AlreadyInState, format!("principal {principal_id} is deactivated")));
        }
        let minted = secret::mint_pat().map_err(Error::internal)?;
        let pat = Pat {
            key_id: format!("pat_{}", uuid::Uuid::now_v7().simple()),
            principal_id: principal_id.to_string(),
            name,
            key_prefix: minted.prefix,
            created_at,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        store::insert_token(&mut tx, &pat, &self.hasher.digest(&minted.secret)).await?;
        let tenant = p.tenant_id.as_ref().map_or(ADMIN_TENANT, TenantId::as_str);
        let extra = json!({ "principal_id": principal_id, "name": pat.name });
        let entry = actor.entry("createPrincipalApiKey", tenant, ("principal_api_key", &pat.key_id), 201, extra);
        crate::store::pg::audit::append(&mut tx, &entry).await?;
        crate::store::pg::commit(tx).await?;
        Ok((pat, minted.secret))
    }

    pub async fn revoke_pat(&self, actor: &Actor, principal_id: &str, key_id: &str) -> Result<Pat> {
        let mut tx = self.pg.begin().await?;
        let p = store::get_principal_for_update(&mut tx, principal_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("principal {principal_id} not found")))?;
        let (mut pat, digest) = store::get_token_for_update(&mut tx, principal_id, key_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("principal {principal_id} has no key {key_id}")))?;
        if pat.revoked_at.is_some() {
            return Err(Error::new(ErrorCode::KeyRevoked, format!("key {key_id} is already revoked")));
        }
        pat.revoked_at = Some(now());
        store::revoke_token(&mut tx, key_id, now()).await?;
        let tenant = p.tenant_id.as_ref().map_or(ADMIN_TENANT, TenantId::as_str);
        let extra = json!({ "principal_id": principal_id });
        let entry = actor.entry("revokePrincipalApiKey", tenant, ("principal_api_key", key_id), 200, extra);
        crate::store::pg::audit::append(&mut tx, &entry).await?;
        self.commit_announcing(tx, &[format!("pat:{}", hex::encode(&digest))]).await?;
        Ok(pat)
    }

    /// The tenant owning a resource: `Ok(None)` if there is no such resource,
    /// `Ok(Some(None))` for a platform-wide one.
    pub async fn owner_tenant(&self, kind: Owned, id: &str) -> Result<Option<Option<String>>> {
        Ok(store::owner_tenant(self.pg.pool(), kind, id).await?)
    }
}
