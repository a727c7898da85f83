//! `GET /v1/admin/policies/{policy_id}/versions` and `POST …/rollback {"version": n}` (Tollgate
//! extensions, after DVARA's): the last 10 versions of a policy's rules, and a rollback that
//! stores a new version equal to an earlier one.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{PolicyBody, route};
use crate::auth::AnyAuth;
use crate::domain::Permission;
use crate::domain::policy::Rules;
use crate::error::ApiResult;
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, PathParam};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PolicyVersion)]
pub struct VersionBody {
    version: i32,
    /// `create`, `update` or `rollback`.
    change: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    restored_from: Option<i32>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// The policy's rules as this version stored them (the fields of a `Policy` without its id and times).
    #[schema(value_type = Object)]
    rules: Rules,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PolicyVersionList)]
pub struct VersionsBody {
    policy_id: String,
    current_version: i32,
    versions_kept: i32,
    /// Newest first.
    versions: Vec<VersionBody>,
}

#[utoipa::path(get, path = "/v1/admin/policies/{policy_id}/versions", operation_id = "listPolicyVersions", tag = "Policies",
    params(("policy_id" = String, Path, description = "The policy's id")),
    responses((status = 200, description = "The versions kept, newest first", body = VersionsBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn versions(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<VersionsBody>> {
    let r = route(caller, ctx, None, Permission::PoliciesRead)?;
    let (policy, versions) = state.catalogue.policy_versions(r.viewer(), &id).await?;
    Ok(Json(VersionsBody {
        policy_id: policy.policy_id,
        current_version: policy.version,
        versions_kept: crate::catalogue::policies::VERSIONS_KEPT,
        versions: versions
            .into_iter()
            .map(|v| VersionBody {
                version: v.version,
                change: v.change,
                restored_from: v.restored_from,
                created_at: v.created_at,
                rules: v.rules,
            })
            .collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PolicyRollbackRequest)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// A version still kept (see `GET …/versions`).
    version: i64,
}

#[utoipa::path(post, path = "/v1/admin/policies/{policy_id}/rollback", operation_id = "rollbackPolicy", tag = "Policies",
    params(("policy_id" = String, Path, description = "The policy's id")), request_body = RollbackRequest,
    responses((status = 200, description = "The policy, its rules now those of the version named (stored as a new version)", body = super::wire::PolicyDoc), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn rollback(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<RollbackRequest>,
) -> ApiResult<Json<PolicyBody>> {
    let r = route(caller, ctx, None, Permission::PoliciesWrite)?;
    Ok(Json(state.catalogue.rollback_policy(&r.actor, r.viewer(), &id, req.version).await?.into()))
}
