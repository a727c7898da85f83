//! Who is calling: the admin key (`X-Admin-API-Key`, compared in constant time) or a
//! tenant API key (`X-Cycles-API-Key`, looked up by keyed digest through the cache).
//! Produces a [`Caller`]; permission checks are per route via [`TenantCaller::require`].

pub mod cache;
pub mod secret;
pub mod server_secret;
pub mod throttle;
pub mod tokens;
pub mod usage;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use time::OffsetDateTime;

use crate::domain::Permission;
use crate::domain::access::{AdminIdentity, PrincipalStatus};
use crate::domain::api_key::KeyStatus;
use crate::domain::permission::grants;
use crate::domain::tenant::TenantStatus;
use crate::error::{ApiError, ApiResult, ErrorCode};
use cache::{KeyCache, KeyInfo, Lookup};
use secret::{AdminKey, KeyHasher};

pub const ADMIN_KEY_HEADER: &str = "x-admin-api-key";
/// `Authorization: Bearer <personal access token>` on the admin plane.
pub const BEARER_PREFIX: &str = "Bearer ";
pub const TENANT_KEY_HEADER: &str = "x-cycles-api-key";

pub struct Authenticator {
    /// `None` on a runtime-only instance started without an admin key.
    admin_key: Option<AdminKey>,
    /// The bearer token `/metrics` accepts besides the admin key (`--metrics-token`).
    metrics_token: Option<AdminKey>,
    hasher: KeyHasher,
    cache: Arc<KeyCache>,
    /// Keys used since the last `last_used_at` flush.
    usage: usage::KeyUsage,
    /// Admin principals' personal access tokens.
    tokens: Arc<tokens::TokenCache>,
    /// Per-source limits of the admin plane (failed authentications, refusal audits).
    throttle: throttle::AdminThrottle,
}

/// A request made with a tenant API key that is valid now.
#[derive(Debug, Clone)]
pub struct TenantCaller {
    pub key: Arc<KeyInfo>,
}

impl TenantCaller {
    /// 403 unless the key holds `perm` (or a wildcard that satisfies it).
    pub fn require(&self, perm: Permission, code: ErrorCode) -> ApiResult<()> {
        if grants(&self.key.permissions, perm) {
            Ok(())
        } else {
            Err(ApiError::new(code, format!("API key lacks required permission: {perm}")))
        }
    }

    pub fn tenant_suspended(&self) -> bool {
        self.key.tenant_status == TenantStatus::Suspended
    }

    /// 403 `FORBIDDEN` when the key's tenant is SUSPENDED: its keys stay valid but read-only
    /// (settling existing reservations, which the ledger scripts allow, is the exception).
    pub fn require_writable(&self) -> ApiResult<()> {
        if self.tenant_suspended() {
            return Err(ApiError::forbidden("tenant is suspended: its API keys are read-only"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    Tenant(TenantCaller),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or_default())
}

impl Authenticator {
    pub fn new(
        admin_key: Option<AdminKey>,
        hasher: KeyHasher,
        cache: Arc<KeyCache>,
        tokens: Arc<tokens::TokenCache>,
    ) -> Self {
        Self {
            admin_key,
            metrics_token: None,
            hasher,
            cache,
            usage: usage::KeyUsage::default(),
            tokens,
            throttle: throttle::AdminThrottle::default(),
        }
    }

    pub fn usage(&self) -> &usage::KeyUsage {
        &self.usage
    }

    pub fn with_metrics_token(mut self, token: Option<AdminKey>) -> Self {
        self.metrics_token = token;
        self
    }

    /// `/metrics` lists tenant ids and traffic: it needs `Authorization: Bearer <metrics token>`
    /// or the admin key (in `X-Admin-API-Key` or as the bearer token). 401 otherwise.
    pub fn require_metrics(&self, headers: &HeaderMap) -> ApiResult<()> {
        if self.admin(headers)?.is_some() {
            return Ok(());
        }
        let bearer = header(headers, "authorization").and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        let Some(presented) = bearer.filter(|v| !v.is_empty()) else {
            return Err(ApiError::unauthorized("/metrics needs Authorization: Bearer <metrics token or admin key>"));
        };
        let known = [&self.metrics_token, &self.admin_key];
        if known.iter().any(|k| k.as_ref().is_some_and(|k| k.matches(presented))) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("invalid bearer token for /metrics"))
        }
    }

    pub fn throttle(&self) -> &throttle::AdminThrottle {
        &self.throttle
    }

    pub fn tokens(&self) -> &tokens::TokenCache {
        &self.tokens
    }

    /// Whether the request carries an admin-plane credential at all (bootstrap key or token).
    pub fn has_admin_credential(headers: &HeaderMap) -> bool {
        header(headers, ADMIN_KEY_HEADER).is_some_and(|v| !v.is_empty())
            || headers.contains_key(axum::http::header::AUTHORIZATION)
    }

    /// The admin caller: `Authorization: Bearer <token>`, else `X-Admin-API-Key` holding the
    /// bootstrap key (which acts as `owner`) or a token. `Ok(None)` when neither is sent; 401
    /// for anything presented that is not valid now.
    pub async fn admin_identity(&self, headers: &HeaderMap) -> ApiResult<Option<AdminIdentity>> {
        if let Some(auth) = header(headers, axum::http::header::AUTHORIZATION.as_str()) {
            let token = auth
                .strip_prefix(BEARER_PREFIX)
                .ok_or_else(|| ApiError::unauthorized("Authorization must be Bearer <token>"))?;
            return self.token_identity(token).await.map(Some);
        }
        let Some(presented) = header(headers, ADMIN_KEY_HEADER).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if presented.starts_with(secret::PAT_PREFIX) {
            return self.token_identity(presented).await.map(Some);
        }
        match &self.admin_key {
            Some(key) if key.matches(presented) => Ok(Some(AdminIdentity::bootstrap())),
            _ => Err(ApiError::unauthorized("invalid X-Admin-API-Key")),
        }
    }

    async fn token_identity(&self, presented: &str) -> ApiResult<AdminIdentity> {
        if !presented.starts_with(secret::PAT_PREFIX) || presented.len() > secret::KEY_SECRET_LEN_MAX {
            return Err(ApiError::unauthorized("invalid access token"));
        }
        let info = self
            .tokens
            .get(&self.hasher.digest(presented))
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid access token"))?;
        if info.revoked {
            return Err(ApiError::unauthorized("access token is revoked"));
        }
        if info.expires_at.is_some_and(|e| e <= OffsetDateTime::now_utc()) {
            return Err(ApiError::unauthorized("access token is expired"));
        }
        if info.principal_status != PrincipalStatus::Active {
            return Err(ApiError::unauthorized("the token's principal is deactivated"));
        }
        Ok(AdminIdentity {
            principal_id: Some(info.principal_id.clone()),
            key_id: Some(info.key_id.clone()),
            tenant_id: info.tenant_id.clone(),
            permissions: info.permissions.clone(),
        })
    }

    pub fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    pub fn cache(&self) -> &KeyCache {
        &self.cache
    }

    /// Whether the headers carry the admin key; 401 if they carry a wrong one. An empty
    /// header counts as absent.
    pub fn admin(&self, headers: &HeaderMap) -> ApiResult<Option<()>> {
        let Some(presented) = header(headers, ADMIN_KEY_HEADER).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        match &self.admin_key {
            Some(key) if key.matches(presented) => Ok(Some(())),
            _ => Err(ApiError::unauthorized("invalid X-Admin-API-Key")),
        }
    }

    pub fn require_admin(&self, headers: &HeaderMap) -> ApiResult<()> {
        self.admin(headers)?.ok_or_else(|| ApiError::unauthorized("missing X-Admin-API-Key header"))
    }

    /// Authenticates a tenant key: 401 when missing, unknown, revoked, expired, or its tenant
    /// is closed. A suspended tenant's keys stay valid (routes decide what they may do).
    pub async fn tenant(&self, headers: &HeaderMap) -> ApiResult<Option<TenantCaller>> {
        let Some(presented) = header(headers, TENANT_KEY_HEADER) else {
            return Ok(None);
        };
        if presented.is_empty() || presented.len() > secret::KEY_SECRET_LEN_MAX {
            return Err(ApiError::unauthorized("invalid API key"));
        }
        let digest = self.hasher.digest(presented);
        let (info, lookup) = self.cache.get(&digest).await?;
        crate::telemetry::auth_cache_lookup(lookup == Lookup::Hit);
        let info = info.ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
        match info.status_at(OffsetDateTime::now_utc()) {
            KeyStatus::Active => {}
            KeyStatus::Revoked => return Err(ApiError::unauthorized("API key is revoked")),
            KeyStatus::Expired => return Err(ApiError::unauthorized("API key is expired")),
        }
        if info.tenant_status == TenantStatus::Closed {
            return Err(ApiError::unauthorized("API key belongs to a closed tenant"));
        }
        self.usage.note(&info.key_id);
        Ok(Some(TenantCaller { key: info }))
    }

    pub async fn require_tenant(&self, headers: &HeaderMap) -> ApiResult<TenantCaller> {
        self.tenant(headers).await?.ok_or_else(|| ApiError::unauthorized("missing X-Cycles-API-Key header"))
    }

    /// Either key; the admin key wins when both are sent.
    pub async fn any(&self, headers: &HeaderMap) -> ApiResult<Caller> {
        if self.admin(headers)?.is_some() {
            return Ok(Caller::Admin);
        }
        match self.tenant(headers).await? {
            Some(t) => Ok(Caller::Tenant(t)),
            None => Err(ApiError::unauthorized("missing X-Cycles-API-Key or X-Admin-API-Key header")),
        }
    }
}

/// Extractor: the request carries the valid admin key.
pub struct AdminAuth;

impl<S: Send + Sync> FromRequestParts<S> for AdminAuth
where
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(Caller::Admin) = parts.extensions.get::<Caller>() {
            return Ok(AdminAuth);
        }
        Arc::<Authenticator>::from_ref(state).require_admin(&parts.headers).map(|()| AdminAuth)
    }
}

/// Extractor: the admin key or a valid tenant key.
pub struct AnyAuth(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for AnyAuth
where
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(AnyAuth(caller.clone()));
        }
        Arc::<Authenticator>::from_ref(state).any(&parts.headers).await.map(AnyAuth)
    }
}

/// Extractor: a valid tenant key.
pub struct TenantAuth(pub TenantCaller);

impl<S: Send + Sync> FromRequestParts<S> for TenantAuth
where
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::Tenant(t)) => Ok(TenantAuth(t.clone())),
            Some(Caller::Admin) => Err(ApiError::unauthorized("this route needs an X-Cycles-API-Key")),
            None => Arc::<Authenticator>::from_ref(state).require_tenant(&parts.headers).await.map(TenantAuth),
        }
    }
}
