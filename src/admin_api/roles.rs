//! `/v1/admin/permissions` and `/v1/admin/roles` (Tollgate extension): the closed list of
//! admin-plane permissions, and roles that bundle them. Thin handlers over
//! `catalogue::principals`; who may call them is decided in `access`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::tenants::check_name;
use crate::auth::AdminAuth;
use crate::catalogue::audit::Actor;
use crate::domain::access::{AdminPermission, NAME_LEN_MAX, Role, RoleScope};
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, PathParam, QueryParams};
use crate::http::page::{self, ListParams};
use crate::state::AppState;
use crate::store::pg::page::SortColumn;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AdminPermissionInfo)]
pub struct PermissionBody {
    permission: AdminPermission,
    /// Whether a tenant role may hold it.
    tenant_scopable: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AdminPermissionListResponse)]
pub struct PermissionsBody {
    permissions: Vec<PermissionBody>,
}

#[utoipa::path(get, path = "/v1/admin/permissions", operation_id = "listPermissions", tag = "Access control",
    responses((status = 200, description = "Every admin permission", body = PermissionsBody), crate::http::openapi::E401_403_500_503)
)]
pub async fn permissions(_: AdminAuth) -> Json<PermissionsBody> {
    let permissions = AdminPermission::ALL
        .iter()
        .map(|p| PermissionBody { permission: *p, tenant_scopable: p.tenant_scopable() })
        .collect();
    Json(PermissionsBody { permissions })
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Role)]
pub struct RoleBody {
    role_id: String,
    name: String,
    scope: RoleScope,
    permissions: Vec<AdminPermission>,
    built_in: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<Role> for RoleBody {
    fn from(r: Role) -> Self {
        Self {
            role_id: r.role_id,
            name: r.name,
            scope: r.scope,
            permissions: r.permissions,
            built_in: r.built_in,
            created_at: r.created_at,
        }
    }
}

/// Parses permission names, naming the first unknown one (`permissions[i]`) and dropping
/// duplicates.
fn parse_permissions(raw: &[String]) -> ApiResult<Vec<AdminPermission>> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, name) in raw.iter().enumerate() {
        let p = AdminPermission::parse(name).ok_or_else(|| {
            ApiError::invalid_field(&format!("permissions[{i}]"), format!("unknown permission {name:?}"))
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = RoleCreateRequest)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    name: String,
    scope: RoleScope,
    permissions: Vec<String>,
}

#[utoipa::path(post, path = "/v1/admin/roles", operation_id = "createRole", tag = "Access control",
    request_body = CreateRequest,
    responses((status = 201, description = "Created", body = RoleBody), crate::http::openapi::E400_401_403_409_500_503)
)]
pub async fn create(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(req): JsonBody<CreateRequest>,
) -> ApiResult<(StatusCode, Json<RoleBody>)> {
    check_name("name", &req.name, NAME_LEN_MAX)?;
    let perms = parse_permissions(&req.permissions)?;
    let role = state.catalogue.create_role(&Actor::admin(ctx), req.name, req.scope, perms).await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = RoleListResponse)]
pub struct ListBody {
    roles: Vec<RoleBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

const fn col(expr: &'static str, cast: &'static str) -> SortColumn {
    SortColumn { expr, cast, id_expr: "role_id", id_cast: "text" }
}

const SORTS: &[(&str, SortColumn)] = &[
    ("role_id", col("role_id", "text")),
    ("name", col("name", "text")),
    ("created_at", col("created_at", "timestamptz")),
];

#[utoipa::path(get, path = "/v1/admin/roles", operation_id = "listRoles", tag = "Access control",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of roles", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let (spec, paging) = page::sql(&q.page, SORTS, "created_at", &())?;
    let page = paging.finish(state.catalogue.list_roles(&spec).await?);
    Ok(Json(ListBody {
        has_more: page.has_more,
        next_cursor: page.next_cursor,
        roles: page.items.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = RolePermissionsRequest)]
#[serde(deny_unknown_fields)]
pub struct PermissionsRequest {
    permissions: Vec<String>,
}

#[utoipa::path(post, path = "/v1/admin/roles/{role_id}/permissions", operation_id = "addRolePermissions", tag = "Access control",
    params(("role_id" = String, Path, description = "The role's id")), request_body = PermissionsRequest,
    responses((status = 200, description = "The role with the permissions", body = RoleBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn add_permissions(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<PermissionsRequest>,
) -> ApiResult<Json<RoleBody>> {
    let perms = parse_permissions(&req.permissions)?;
    if perms.is_empty() {
        return Err(ApiError::invalid_field("permissions", "must name at least one permission"));
    }
    Ok(Json(state.catalogue.change_role(&Actor::admin(ctx), &id, true, perms).await?.into()))
}

#[utoipa::path(delete, path = "/v1/admin/roles/{role_id}/permissions/{permission}", operation_id = "removeRolePermission", tag = "Access control",
    params(("role_id" = String, Path, description = "The role's id"), ("permission" = String, Path, description = "The permission to remove")),
    responses((status = 200, description = "The role without the permission", body = RoleBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn remove_permission(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam((id, permission)): PathParam<(String, String)>,
) -> ApiResult<Json<RoleBody>> {
    let p = AdminPermission::parse(&permission)
        .ok_or_else(|| ApiError::invalid_field("permission", format!("unknown permission {permission:?}")))?;
    Ok(Json(state.catalogue.change_role(&Actor::admin(ctx), &id, false, vec![p]).await?.into()))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = RoleDeleteResponse)]
pub struct DeletedBody {
    role_id: String,
    deleted: bool,
}

#[utoipa::path(delete, path = "/v1/admin/roles/{role_id}", operation_id = "deleteRole", tag = "Access control",
    params(("role_id" = String, Path, description = "The role's id")),
    responses((status = 200, description = "Deleted", body = DeletedBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn delete(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<DeletedBody>> {
    state.catalogue.delete_role(&Actor::admin(ctx), &id).await?;
    Ok(Json(DeletedBody { role_id: id, deleted: true }))
}
