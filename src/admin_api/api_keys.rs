//! `/v1/admin/api-keys`: wire types and thin handlers over `catalogue::api_keys`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::tenants::check_name;
use crate::auth::AdminAuth;
use crate::catalogue::api_keys::{KeyPatch, NewKey};
use crate::catalogue::audit::Actor;
use crate::domain::Permission;
use crate::domain::api_key::{self as k, ApiKey, KeyStatus};
use crate::domain::clock::now;
use crate::domain::permission::DEFAULT_PERMISSIONS;
use crate::domain::tenant::TenantId;
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, PathParam, QueryParams};
use crate::http::page::{self, ListParams, enum_param, search_param};
use crate::state::AppState;
use crate::store::pg::api_keys::Filter;
use crate::store::pg::page::SortColumn;

/// Serialized size of `metadata` at most, so a key row stays small.
const METADATA_BYTES_MAX: usize = 8 * 1024;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyBody {
    key_id: String,
    tenant_id: TenantId,
    key_prefix: String,
    name: String,
    permissions: Vec<Permission>,
    scope_filter: Vec<String>,
    status: KeyStatus,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    revoked_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
}

impl From<ApiKey> for ApiKeyBody {
    fn from(key: ApiKey) -> Self {
        Self {
            status: key.status_at(now()),
            key_id: key.key_id,
            tenant_id: key.tenant_id,
            key_prefix: key.key_prefix,
            name: key.name,
            permissions: key.permissions,
            scope_filter: key.scope_filter,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            revoked_reason: key.revoked_reason,
            metadata: key.metadata,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiKeyCreateResponse)]
pub struct CreatedKeyBody {
    key_id: String,
    key_secret: String,
    key_prefix: String,
    tenant_id: TenantId,
    permissions: Vec<Permission>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ApiKeyCreateRequest)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    tenant_id: TenantId,
    name: String,
    permissions: Option<Vec<Permission>>,
    scope_filter: Option<Vec<String>>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ApiKeyUpdateRequest)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    name: Option<String>,
    permissions: Option<Vec<Permission>>,
    scope_filter: Option<Vec<String>>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    metadata: Option<Map<String, Value>>,
}

/// Removes duplicates, keeping the first occurrence's order.
fn dedup_permissions(perms: Vec<Permission>) -> Vec<Permission> {
    let mut out: Vec<Permission> = Vec::with_capacity(perms.len());
    for p in perms {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn check_scope_filter(entries: &[String]) -> ApiResult<()> {
    if entries.len() > k::SCOPE_FILTER_ENTRIES_MAX {
        return Err(ApiError::invalid_field(
            "scope_filter",
            format!("must have at most {} entries", k::SCOPE_FILTER_ENTRIES_MAX),
        ));
    }
    for (i, e) in entries.iter().enumerate() {
        let well_formed = e.split_once(':').is_some_and(|(kind, value)| !kind.is_empty() && !value.is_empty());
        if !well_formed || e.len() > k::SCOPE_FILTER_ENTRY_LEN_MAX {
            return Err(ApiError::invalid_field(
                &format!("scope_filter[{i}]"),
                format!("must look like kind:value (or kind:*), at most {} bytes", k::SCOPE_FILTER_ENTRY_LEN_MAX),
            ));
        }
    }
    Ok(())
}

fn check_metadata(m: &Map<String, Value>) -> ApiResult<()> {
    let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > METADATA_BYTES_MAX {
        return Err(ApiError::invalid_field(
            "metadata",
            format!("must serialize to at most {METADATA_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/admin/api-keys", operation_id = "createApiKey", tag = "API keys",
    request_body = CreateKeyRequest,
    responses((status = 201, description = "Created; the secret is shown only here", body = CreatedKeyBody), crate::http::openapi::E400_401_403_409_500_503)
)]
pub async fn create(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(req): JsonBody<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKeyBody>)> {
    check_name("name", &req.name, k::NAME_LEN_MAX)?;
    let scope_filter = req.scope_filter.unwrap_or_default();
    check_scope_filter(&scope_filter)?;
    if let Some(m) = &req.metadata {
        check_metadata(m)?;
    }
    let new = NewKey {
        tenant_id: req.tenant_id,
        name: req.name,
        description: None,
        permissions: dedup_permissions(req.permissions.unwrap_or_else(|| DEFAULT_PERMISSIONS.to_vec())),
        scope_filter,
        expires_at: req.expires_at.unwrap_or_else(|| now() + k::DEFAULT_LIFETIME),
        metadata: req.metadata.map(Value::Object),
    };
    let (key, secret) = state.catalogue.create_key(&Actor::admin(ctx), new).await?;
    let body = CreatedKeyBody {
        key_id: key.key_id,
        key_secret: secret,
        key_prefix: key.key_prefix,
        tenant_id: key.tenant_id,
        permissions: key.permissions,
        created_at: key.created_at,
        expires_at: key.expires_at,
    };
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(patch, path = "/v1/admin/api-keys/{key_id}", operation_id = "updateApiKey", tag = "API keys",
    params(("key_id" = String, Path, description = "The API key's id")), request_body = UpdateKeyRequest,
    responses((status = 200, description = "The updated key", body = ApiKeyBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn update(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(key_id): PathParam<String>,
    JsonBody(req): JsonBody<UpdateKeyRequest>,
) -> ApiResult<Json<ApiKeyBody>> {
    if let Some(name) = &req.name {
        check_name("name", name, k::NAME_LEN_MAX)?;
    }
    if let Some(sf) = &req.scope_filter {
        check_scope_filter(sf)?;
    }
    if let Some(m) = &req.metadata {
        check_metadata(m)?;
    }
    let patch = KeyPatch {
        name: req.name,
        description: None,
        permissions: req.permissions.map(dedup_permissions),
        scope_filter: req.scope_filter,
        expires_at: req.expires_at,
        metadata: req.metadata.map(Value::Object),
    };
    Ok(Json(state.catalogue.update_key(&Actor::admin(ctx), &key_id, patch).await?.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevokeQuery {
    reason: Option<String>,
}

#[utoipa::path(delete, path = "/v1/admin/api-keys/{key_id}", operation_id = "revokeApiKey", tag = "API keys",
    params(("key_id" = String, Path, description = "The API key's id"), RevokeQuery),
    responses((status = 200, description = "The revoked key", body = ApiKeyBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn revoke(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(key_id): PathParam<String>,
    QueryParams(q): QueryParams<RevokeQuery>,
) -> ApiResult<Json<ApiKeyBody>> {
    let reason = q.reason.filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > k::REVOKED_REASON_LEN_MAX) {
        return Err(ApiError::invalid_field(
            "reason",
            format!("must be at most {} characters", k::REVOKED_REASON_LEN_MAX),
        ));
    }
    Ok(Json(state.catalogue.revoke_key(&Actor::admin(ctx), &key_id, reason).await?.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    tenant_id: Option<String>,
    status: Option<String>,
    search: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiKeyListResponse)]
pub struct ListBody {
    keys: Vec<ApiKeyBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

const fn col(expr: &'static str, cast: &'static str) -> SortColumn {
    SortColumn { expr, cast, id_expr: "k.key_id", id_cast: "text" }
}

const SORTS: &[(&str, SortColumn)] = &[
    ("key_id", col("k.key_id", "text")),
    ("name", col("k.name", "text")),
    ("tenant_id", col("k.tenant_id", "text")),
    ("status", col("k.status", "text")),
    ("created_at", col("k.created_at", "timestamptz")),
    ("expires_at", col("k.expires_at", "timestamptz")),
];

#[utoipa::path(get, path = "/v1/admin/api-keys", operation_id = "listApiKeys", tag = "API keys",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of keys", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let statuses: Vec<&str> = KeyStatus::ALL.iter().map(|s| s.as_str()).collect();
    let filter = Filter {
        tenant_id: q.tenant_id.filter(|s| !s.is_empty()),
        status: enum_param("status", q.status.as_deref(), KeyStatus::parse, &statuses)?,
        search: search_param(q.search.as_deref())?,
    };
    let (spec, paging) = page::sql(&q.page, SORTS, "created_at", &filter)?;
    let page = paging.finish(state.catalogue.list_keys(&filter, &spec).await?);
    Ok(Json(ListBody {
        has_more: page.has_more,
        next_cursor: page.next_cursor,
        keys: page.items.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ApiKeyRotateRequest)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    #[serde(deserialize_with = "crate::domain::amount::de_int")]
    grace_seconds: i64,
}

/// The successor's create response, plus where it came from and until when the predecessor
/// stays valid (Tollgate extension fields).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiKeyRotateResponse)]
pub struct RotatedKeyBody {
    #[serde(flatten)]
    successor: CreatedKeyBody,
    rotated_from: String,
    #[serde(with = "time::serde::rfc3339")]
    predecessor_expires_at: OffsetDateTime,
}

/// `POST /v1/admin/api-keys/{key_id}/rotate` (extension): a successor now, the predecessor
/// valid for `grace_seconds` more.
#[utoipa::path(post, path = "/v1/admin/api-keys/{key_id}/rotate", operation_id = "rotateApiKey", tag = "API keys",
    params(("key_id" = String, Path, description = "The API key's id")), request_body = RotateRequest,
    responses((status = 201, description = "The successor; its secret is shown only here", body = RotatedKeyBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn rotate(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(key_id): PathParam<String>,
    JsonBody(req): JsonBody<RotateRequest>,
) -> ApiResult<(StatusCode, Json<RotatedKeyBody>)> {
    let r = state.catalogue.rotate_key(&Actor::admin(ctx), &key_id, req.grace_seconds).await?;
    let key = r.successor;
    let body = RotatedKeyBody {
        successor: CreatedKeyBody {
            key_id: key.key_id,
            key_secret: r.secret,
            key_prefix: key.key_prefix,
            tenant_id: key.tenant_id,
            permissions: key.permissions,
            created_at: key.created_at,
            expires_at: key.expires_at,
        },
        rotated_from: r.predecessor.key_id,
        predecessor_expires_at: r.predecessor.expires_at,
    };
    Ok((StatusCode::CREATED, Json(body)))
}
