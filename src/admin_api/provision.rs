//! `POST /v1/admin/provision` (a Tollgate extension): a tenant from a tier, its first API key,
//! its budgets and policies in one call, all or nothing (`catalogue::provision` says how).
//! The idempotency key comes in the body or the `Idempotency-Key` header (both: they must
//! agree); a repeat answers 200 with what the first call created.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::budgets::BudgetBody;
use super::tenants::{NAME_LEN_MAX, TenantBody, check_metadata, check_name};
use super::tiers::{BudgetTemplateWire, budget_templates};
use crate::auth::AdminAuth;
use crate::catalogue::api_keys::NewKey;
use crate::catalogue::audit::Actor;
use crate::catalogue::provision::ProvisionRequest;
use crate::domain::Permission;
use crate::domain::api_key as k;
use crate::domain::clock::now;
use crate::domain::permission::DEFAULT_PERMISSIONS;
use crate::domain::tenant::{ExpiryPolicy, ObserveMode, Tenant, TenantId, TenantStatus};
use crate::domain::tier::Tier;
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::JsonBody;
use crate::runtime_api::wire::request_hash;
use crate::state::AppState;

pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 256;
pub const PERMISSIONS_MAX: usize = 64;
static IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ProvisionRequest)]
#[serde(deny_unknown_fields)]
pub struct ProvisionWire {
    tenant_id: TenantId,
    name: String,
    tier: Tier,
    api_key_name: String,
    idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Vec<Permission>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    budgets: Option<Vec<BudgetTemplateWire>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ProvisionedApiKey)]
pub struct ProvisionedKeyBody {
    key_id: String,
    /// Present in the first response that finds the customer complete, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_secret: Option<String>,
    key_prefix: String,
    tenant_id: TenantId,
    name: String,
    permissions: Vec<Permission>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ProvisionResponse)]
pub struct ProvisionBody {
    idempotency_key: String,
    tenant: TenantBody,
    api_key: ProvisionedKeyBody,
    budgets: Vec<BudgetBody>,
    policies: Vec<Value>,
    replayed: bool,
}

/// The idempotency key of the call: body and header must agree; one of them is required.
fn idempotency_key(body: Option<&str>, headers: &HeaderMap) -> ApiResult<String> {
    let header = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::invalid_field("idempotency_key", "header is not text"))?),
        None => None,
    };
    let key = match (body, header) {
        (Some(b), Some(h)) if b != h => {
            return Err(ApiError::invalid_field("idempotency_key", "differs from the Idempotency-Key header"));
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => {
            return Err(ApiError::invalid_field("idempotency_key", "is required (body or Idempotency-Key header)"));
        }
    };
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_LEN_MAX || key.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "idempotency_key",
            format!("must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} printable characters"),
        ));
    }
    Ok(key.to_string())
}

#[utoipa::path(post, path = "/v1/admin/provision", operation_id = "provisionTenant", tag = "Provisioning",
    params(("Idempotency-Key" = Option<String>, Header, description = "The call's idempotency key (or `idempotency_key` in the body; both must agree)")),
    request_body = ProvisionWire,
    responses(
        (status = 201, description = "Created: the tenant, its API key (with the secret, shown only here), budgets and policies", body = ProvisionBody),
        (status = 200, description = "A repeat of a completed call: what it created, without the secret", body = ProvisionBody),
        crate::http::openapi::E400_401_403_404_409_500_503
    )
)]
pub async fn provision(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    headers: HeaderMap,
    JsonBody(mut req): JsonBody<ProvisionWire>,
) -> ApiResult<(StatusCode, Json<ProvisionBody>)> {
    let key = idempotency_key(req.idempotency_key.as_deref(), &headers)?;
    req.idempotency_key = Some(key.clone());
    check_name("name", &req.name, NAME_LEN_MAX)?;
    check_name("api_key_name", &req.api_key_name, k::NAME_LEN_MAX)?;
    if let Some(m) = &req.metadata {
        check_metadata(m)?;
    }
    if req.permissions.as_ref().is_some_and(|p| p.is_empty() || p.len() > PERMISSIONS_MAX) {
        return Err(ApiError::invalid_field("permissions", format!("must hold 1 to {PERMISSIONS_MAX} permissions")));
    }
    let hash = request_hash(&req)?;
    let budgets = budget_templates("budgets", req.budgets.take().unwrap_or_default())?;
    let tier = state.catalogue.tier_for_tenant(&req.tier).await?;
    let at = now();
    let d = tier.tenant_defaults;
    let tenant = Tenant {
        tenant_id: req.tenant_id.clone(),
        name: req.name,
        status: TenantStatus::Active,
        tier: req.tier,
        parent_tenant_id: None,
        default_commit_overage_policy: d.default_commit_overage_policy,
        default_reservation_ttl_ms: d.default_reservation_ttl_ms,
        max_reservation_ttl_ms: d.max_reservation_ttl_ms,
        max_reservation_extensions: d.max_reservation_extensions,
        reservation_expiry_policy: ExpiryPolicy::AutoRelease,
        observe_mode: ObserveMode::Enforce,
        metadata: req.metadata,
        created_at: at,
        updated_at: at,
        suspended_at: None,
        closed_at: None,
        rate_limit: None,
    };
    let mut permissions = req.permissions.unwrap_or_else(|| DEFAULT_PERMISSIONS.to_vec());
    permissions.dedup();
    let new_key = NewKey {
        tenant_id: req.tenant_id,
        name: req.api_key_name,
        description: None,
        permissions,
        scope_filter: Vec::new(),
        expires_at: at + k::DEFAULT_LIFETIME,
        metadata: None,
    };
    let call = ProvisionRequest { idempotency_key: key.clone(), request_hash: hash, tenant, key: new_key, budgets };
    let done = state.catalogue.provision(&Actor::admin(ctx), call, &tier).await?;
    let status = if done.replayed { StatusCode::OK } else { StatusCode::CREATED };
    let api_key = ProvisionedKeyBody {
        key_id: done.key.key_id,
        key_secret: done.secret,
        key_prefix: done.key.key_prefix,
        tenant_id: done.key.tenant_id,
        name: done.key.name,
        permissions: done.key.permissions,
        created_at: done.key.created_at,
        expires_at: done.key.expires_at,
    };
    let body = ProvisionBody {
        idempotency_key: key,
        tenant: done.tenant.into(),
        api_key,
        budgets: done.budgets.into_iter().map(Into::into).collect(),
        policies: done.policies,
        replayed: done.replayed,
    };
    Ok((status, Json(body)))
}
