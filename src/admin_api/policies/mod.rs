//! `/v1/admin/policies`: create, list, get and patch (governance admin v0.1.25 with the v0.1.26
//! policy fields), versions and rollback (`versions`), and the dry run (`dry_run`). Both the
//! admin plane's principals and tenant API keys (`policies:read` / `policies:write`) may call
//! them; a tenant key acts on its own tenant only. Handlers resolve the caller and tenant, make
//! one catalogue call and map the reply.

pub mod dry_run;
pub mod versions;
pub mod wire;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::auth::{AnyAuth, Caller};
use crate::catalogue::audit::Actor;
use crate::catalogue::policies::Viewer;
use crate::domain::Permission;
use crate::domain::policy::{NewRules, Policy, PolicyStatus, Rules, RulesPatch, kinds};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, PathParam, QueryParams, parse_json};
use crate::http::page::{self, ListParams, enum_param, no_nul};
use crate::state::AppState;
use crate::store::pg::page::SortColumn;
use crate::store::pg::policies::Filter;

pub use dry_run::dry_run;
pub use versions::{rollback, versions};

/// The spec's `Policy`, with the v0.1.26 fields (lists always present).
#[derive(Serialize)]
pub struct PolicyBody {
    policy_id: String,
    #[serde(flatten)]
    rules: Rules,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<Policy> for PolicyBody {
    fn from(p: Policy) -> Self {
        Self { policy_id: p.policy_id, rules: p.rules, created_at: p.created_at, updated_at: p.updated_at }
    }
}

/// Who acts, on which tenant, and what they may see.
struct Routed {
    tenant: Option<String>,
    actor: Actor,
    own: Option<String>,
}

impl Routed {
    fn viewer(&self) -> Viewer<'_> {
        self.own.as_deref().map_or(Viewer::Admin, Viewer::Tenant)
    }

    /// The tenant acted on: a tenant key's own, or the one an admin caller named.
    fn tenant(&self, field: &str) -> ApiResult<String> {
        self.tenant
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::invalid_field(field, "is required when using admin authentication"))
    }
}

/// Resolves the caller: an admin principal acts on behalf of the tenant it names (the access
/// layer has confined a tenant-bound one); a tenant key needs `perm` and acts on its tenant,
/// read-only while the tenant is suspended.
fn route(caller: Caller, ctx: RequestCtx, named: Option<String>, perm: Permission) -> ApiResult<Routed> {
    match caller {
        Caller::Admin => {
            let mut actor = Actor::admin(ctx);
            actor.actor_type = "admin_on_behalf_of";
            Ok(Routed { tenant: named, actor, own: None })
        }
        Caller::Tenant(t) => {
            t.require(perm, ErrorCode::InsufficientPermissions)?;
            if perm == Permission::PoliciesWrite {
                t.require_writable()?;
            }
            let own = t.key.tenant_id.to_string();
            let actor = Actor { actor_type: "api_key", key_id: Some(t.key.key_id.clone()), ctx };
            Ok(Routed { tenant: Some(own.clone()), actor, own: Some(own) })
        }
    }
}

/// `POST /v1/admin/policies`.
#[utoipa::path(post, path = "/v1/admin/policies", operation_id = "createPolicy", tag = "Policies",
    request_body = wire::CreateDoc,
    responses((status = 201, description = "Created", body = wire::PolicyDoc), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn create(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(mut body): JsonBody<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<PolicyBody>)> {
    let named = match body.remove("tenant_id") {
        None => None,
        Some(_) if matches!(caller, Caller::Tenant(_)) => {
            return Err(ApiError::invalid_field("tenant_id", "must not be set when using an API key"));
        }
        Some(Value::String(t)) => Some(t),
        Some(_) => return Err(ApiError::invalid_field("tenant_id", "must be a string")),
    };
    let new: NewRules = parse_json(&serde_json::to_vec(&body).map_err(ApiError::internal)?)?;
    let r = route(caller, ctx, named, Permission::PoliciesWrite)?;
    let tenant = r.tenant("tenant_id")?;
    let policy = state.catalogue.create_policy(&r.actor, &tenant, new).await?;
    Ok((StatusCode::CREATED, Json(policy.into())))
}

/// `GET /v1/admin/policies/{policy_id}` (the v0.1.26 extension names it).
#[utoipa::path(get, path = "/v1/admin/policies/{policy_id}", operation_id = "getPolicy", tag = "Policies",
    params(("policy_id" = String, Path, description = "The policy's id")),
    responses((status = 200, description = "The policy", body = wire::PolicyDoc), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn get(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<PolicyBody>> {
    let r = route(caller, ctx, None, Permission::PoliciesRead)?;
    Ok(Json(state.catalogue.get_policy(r.viewer(), &id).await?.into()))
}

/// `PATCH /v1/admin/policies/{policy_id}`.
#[utoipa::path(patch, path = "/v1/admin/policies/{policy_id}", operation_id = "updatePolicy", tag = "Policies",
    params(("policy_id" = String, Path, description = "The policy's id")), request_body = wire::UpdateDoc,
    responses((status = 200, description = "The updated policy", body = wire::PolicyDoc), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn update(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    JsonBody(patch): JsonBody<RulesPatch>,
) -> ApiResult<Json<PolicyBody>> {
    let r = route(caller, ctx, None, Permission::PoliciesWrite)?;
    Ok(Json(state.catalogue.update_policy(&r.actor, r.viewer(), &id, &patch).await?.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Required with admin authentication; ignored with an API key (its own tenant is listed).
    tenant_id: Option<String>,
    scope_pattern: Option<String>,
    status: Option<String>,
    has_action_quotas: Option<String>,
    references_action_kind: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PolicyListResponse)]
pub struct ListBody {
    #[schema(value_type = Vec<wire::PolicyDoc>)]
    policies: Vec<PolicyBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

const fn col(expr: &'static str, cast: &'static str) -> SortColumn {
    SortColumn { expr, cast, id_expr: "policy_id", id_cast: "text" }
}

const SORTS: &[(&str, SortColumn)] = &[
    ("created_at", col("created_at", "timestamptz")),
    ("priority", col("priority", "integer")),
    ("name", col("name", "text")),
];

fn bool_param(name: &str, raw: Option<&str>) -> ApiResult<Option<bool>> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid_field(name, "must be true or false")),
    }
}

fn filter_of(tenant_id: String, q: &ListQuery) -> ApiResult<Filter> {
    let statuses: Vec<&str> = PolicyStatus::ALL.iter().map(|s| s.as_str()).collect();
    let kind = no_nul("references_action_kind", q.references_action_kind.as_deref())?.filter(|s| !s.is_empty());
    if kind.is_some_and(|k| k.chars().count() > kinds::KIND_LEN_MAX) {
        return Err(ApiError::invalid_field("references_action_kind", "must be at most 64 characters"));
    }
    let pattern = no_nul("scope_pattern", q.scope_pattern.as_deref())?.filter(|s| !s.is_empty());
    if pattern.is_some_and(|p| p.chars().count() > crate::domain::policy::pattern::PATTERN_LEN_MAX) {
        return Err(ApiError::invalid_field("scope_pattern", "is too long"));
    }
    Ok(Filter {
        tenant_id,
        scope_pattern: pattern.map(String::from),
        status: enum_param("status", q.status.as_deref(), PolicyStatus::parse, &statuses)?,
        has_action_quotas: bool_param("has_action_quotas", q.has_action_quotas.as_deref())?,
        references_action_kind: kind.map(String::from),
    })
}

/// `GET /v1/admin/policies`: one tenant's policies (an admin caller must name it; a tenant
/// key's own, whatever `tenant_id` says, as the spec has it).
#[utoipa::path(get, path = "/v1/admin/policies", operation_id = "listPolicies", tag = "Policies",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of the tenant's policies", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let named = no_nul("tenant_id", q.tenant_id.as_deref())?.map(String::from);
    let r = route(caller, ctx, named, Permission::PoliciesRead)?;
    let tenant = r.own.clone().map_or_else(|| r.tenant("tenant_id"), Ok)?;
    let filter = filter_of(tenant, &q)?;
    let (spec, paging) = page::sql(&q.page, SORTS, "created_at", &filter)?;
    let page = paging.finish(state.catalogue.list_policies(&filter, &spec).await?);
    Ok(Json(ListBody {
        has_more: page.has_more,
        next_cursor: page.next_cursor,
        policies: page.items.into_iter().map(Into::into).collect(),
    }))
}
