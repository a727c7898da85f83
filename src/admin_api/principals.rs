//! `/v1/admin/principals` (Tollgate extension): admin principals, their role assignments and
//! personal access tokens. Wire types and thin handlers over `catalogue::principals` and
//! `catalogue::tokens`; who may call them is decided in `access`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::tenants::check_name;
use crate::auth::AdminAuth;
use crate::catalogue::audit::Actor;
use crate::catalogue::principals::{NewPrincipal, PrincipalPatch};
use crate::domain::access::{NAME_LEN_MAX, Pat, Principal, PrincipalStatus, PrincipalType};
use crate::domain::tenant::TenantId;
use crate::error::ApiResult;
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, PathParam, QueryParams};
use crate::http::page::{self, ListParams, enum_param, search_param};
use crate::state::AppState;
use crate::store::pg::page::SortColumn;
use crate::store::pg::principals::PrincipalFilter;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Principal)]
pub struct PrincipalBody {
    principal_id: String,
    #[serde(rename = "type")]
    principal_type: PrincipalType,
    name: String,
    status: PrincipalStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<TenantId>,
    roles: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<Principal> for PrincipalBody {
    fn from(p: Principal) -> Self {
        Self {
            principal_id: p.principal_id,
            principal_type: p.principal_type,
            name: p.name,
            status: p.status,
            tenant_id: p.tenant_id,
            roles: p.role_ids,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PrincipalCreateRequest)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    #[serde(rename = "type")]
    principal_type: PrincipalType,
    name: String,
    tenant_id: Option<TenantId>,
}

#[utoipa::path(post, path = "/v1/admin/principals", operation_id = "createPrincipal", tag = "Access control",
    request_body = CreateRequest,
    responses((status = 201, description = "Created", body = PrincipalBody), crate::http::openapi::E400_401_403_409_500_503)
)]
pub async fn create(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(req): JsonBody<CreateRequest>,
) -> ApiResult<(StatusCode, Json<PrincipalBody>)> {
    check_name("name", &req.name, NAME_LEN_MAX)?;
    let new = NewPrincipal { principal_type: req.principal_type, name: req.name, tenant_id: req.tenant_id };
    let p = state.catalogue.create_principal(&Actor::admin(ctx), new).await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

#[utoipa::path(get, path = "/v1/admin/principals/{principal_id}", operation_id = "getPrincipal", tag = "Access control",
    params(("principal_id" = String, Path, description = "The principal's id")),
    responses((status = 200, description = "The principal", body = PrincipalBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn get(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<PrincipalBody>> {
    Ok(Json(state.catalogue.get_principal(&id).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PrincipalUpdateRequest)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    name: Option<String>,
    status: Option<PrincipalStatus>,
}

#[utoipa::path(patch, path = "/v1/admin/principals/{principal_id}", operation_id = "updatePrincipal", tag = "Access control",
    params(("principal_id" = String, Path, description = "The principal's id")), request_body = UpdateRequest,
    responses((status = 200, description = "The updated principal", body = PrincipalBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn update(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> ApiResult<Json<PrincipalBody>> {
    if let Some(name) = &req.name {
        check_name("name", name, NAME_LEN_MAX)?;
    }
    let patch = PrincipalPatch { name: req.name, status: req.status };
    Ok(Json(state.catalogue.update_principal(&Actor::admin(ctx), &id, patch).await?.into()))
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
#[schema(as = PrincipalListResponse)]
pub struct ListBody {
    principals: Vec<PrincipalBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

const fn col(expr: &'static str, cast: &'static str) -> SortColumn {
    SortColumn { expr, cast, id_expr: "p.principal_id", id_cast: "text" }
}

const SORTS: &[(&str, SortColumn)] = &[
    ("principal_id", col("p.principal_id", "text")),
    ("name", col("p.name", "text")),
    ("created_at", col("p.created_at", "timestamptz")),
];

#[utoipa::path(get, path = "/v1/admin/principals", operation_id = "listPrincipals", tag = "Access control",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of principals", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let statuses: Vec<&str> = PrincipalStatus::ALL.iter().map(|s| s.as_str()).collect();
    let filter = PrincipalFilter {
        tenant_id: page::no_nul("tenant_id", q.tenant_id.as_deref())?.filter(|s| !s.is_empty()).map(String::from),
        status: enum_param("status", q.status.as_deref(), PrincipalStatus::parse, &statuses)?,
        search: search_param(q.search.as_deref())?,
    };
    let (spec, paging) = page::sql(&q.page, SORTS, "created_at", &filter)?;
    let page = paging.finish(state.catalogue.list_principals(&filter, &spec).await?);
    Ok(Json(ListBody {
        has_more: page.has_more,
        next_cursor: page.next_cursor,
        principals: page.items.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = RoleAssignmentRequest)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    role_id: String,
}

#[utoipa::path(post, path = "/v1/admin/principals/{principal_id}/roles", operation_id = "assignPrincipalRole", tag = "Access control",
    params(("principal_id" = String, Path, description = "The principal's id")), request_body = AssignRequest,
    responses((status = 200, description = "The principal with the role", body = PrincipalBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn assign_role(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<AssignRequest>,
) -> ApiResult<Json<PrincipalBody>> {
    Ok(Json(state.catalogue.assign_role(&Actor::admin(ctx), &id, &req.role_id).await?.into()))
}

#[utoipa::path(delete, path = "/v1/admin/principals/{principal_id}/roles/{role_id}", operation_id = "unassignPrincipalRole", tag = "Access control",
    params(("principal_id" = String, Path, description = "The principal's id"), ("role_id" = String, Path, description = "The role's id")),
    responses((status = 200, description = "The principal without the role", body = PrincipalBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn unassign_role(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam((id, role_id)): PathParam<(String, String)>,
) -> ApiResult<Json<PrincipalBody>> {
    Ok(Json(state.catalogue.unassign_role(&Actor::admin(ctx), &id, &role_id).await?.into()))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PersonalAccessToken)]
pub struct PatBody {
    key_id: String,
    principal_id: String,
    name: String,
    key_prefix: String,
    /// Only in the create response; stored nowhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_secret: Option<String>,
    status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    last_used_at: Option<OffsetDateTime>,
}

impl PatBody {
    fn of(pat: Pat, key_secret: Option<String>) -> Self {
        let status = match (pat.revoked_at, pat.expires_at) {
            (Some(_), _) => "REVOKED",
            (None, Some(e)) if e <= OffsetDateTime::now_utc() => "EXPIRED",
            _ => "ACTIVE",
        };
        Self {
            key_id: pat.key_id,
            principal_id: pat.principal_id,
            name: pat.name,
            key_prefix: pat.key_prefix,
            key_secret,
            status,
            created_at: pat.created_at,
            expires_at: pat.expires_at,
            revoked_at: pat.revoked_at,
            last_used_at: pat.last_used_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PersonalAccessTokenCreateRequest)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    name: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

#[utoipa::path(post, path = "/v1/admin/principals/{principal_id}/api-keys", operation_id = "createPersonalAccessToken", tag = "Access control",
    params(("principal_id" = String, Path, description = "The principal's id")), request_body = CreateKeyRequest,
    responses((status = 201, description = "Created; the token is shown only here", body = PatBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn create_key(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<PatBody>)> {
    check_name("name", &req.name, NAME_LEN_MAX)?;
    let (pat, secret) = state.catalogue.create_pat(&Actor::admin(ctx), &id, req.name, req.expires_at).await?;
    Ok((StatusCode::CREATED, Json(PatBody::of(pat, Some(secret)))))
}

#[utoipa::path(post, path = "/v1/admin/principals/{principal_id}/api-keys/{key_id}/revoke", operation_id = "revokePersonalAccessToken", tag = "Access control",
    params(("principal_id" = String, Path, description = "The principal's id"), ("key_id" = String, Path, description = "The token's id")),
    responses((status = 200, description = "The revoked token", body = PatBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam((id, key_id)): PathParam<(String, String)>,
) -> ApiResult<Json<PatBody>> {
    Ok(Json(PatBody::of(state.catalogue.revoke_pat(&Actor::admin(ctx), &id, &key_id).await?, None)))
}
