//! `/v1/admin/tenants`: wire types and thin handlers over `catalogue::tenants`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::AdminAuth;
use crate::catalogue::audit::Actor;
use crate::catalogue::tenants::TenantPatch;
use crate::domain::clock::now;
use crate::domain::tenant::{
    self as t, CommitOveragePolicy, ExpiryPolicy, ObserveMode, RateLimit, Tenant, TenantId, TenantStatus, Tier,
};
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, PathParam, QueryParams};
use crate::http::page::{self, ListParams, enum_param, search_param};
use crate::state::AppState;
use crate::store::pg::page::SortColumn;
use crate::store::pg::tenants::Filter;

pub const NAME_LEN_MAX: usize = 256;
/// Metadata bounds: the spec's 32 entries, and lengths that keep a tenant row small.
pub const METADATA_ENTRIES_MAX: usize = 32;
pub const METADATA_KEY_LEN_MAX: usize = 128;
pub const METADATA_VALUE_LEN_MAX: usize = 1024;
/// The literal route `/v1/admin/tenants/bulk-action` wins over `/v1/admin/tenants/{tenant_id}`,
/// so a tenant with this id could never be read or patched.
const RESERVED_TENANT_ID: &str = "bulk-action";
/// More extensions than this per reservation serves no purpose and is refused.
pub const MAX_EXTENSIONS_MAX: i64 = 10_000;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Tenant)]
pub struct TenantBody {
    tenant_id: TenantId,
    name: String,
    status: TenantStatus,
    tier: Tier,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_tenant_id: Option<String>,
    default_commit_overage_policy: CommitOveragePolicy,
    default_reservation_ttl_ms: i64,
    max_reservation_ttl_ms: i64,
    max_reservation_extensions: i64,
    reservation_expiry_policy: ExpiryPolicy,
    /// v0.1.26 governance extension: always present, ENFORCE unless set.
    observe_mode: ObserveMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    suspended_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    closed_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_burst: Option<u32>,
}

impl From<Tenant> for TenantBody {
    fn from(t: Tenant) -> Self {
        Self {
            tenant_id: t.tenant_id,
            name: t.name,
            status: t.status,
            tier: t.tier,
            parent_tenant_id: t.parent_tenant_id,
            default_commit_overage_policy: t.default_commit_overage_policy,
            default_reservation_ttl_ms: t.default_reservation_ttl_ms,
            max_reservation_ttl_ms: t.max_reservation_ttl_ms,
            max_reservation_extensions: t.max_reservation_extensions,
            reservation_expiry_policy: t.reservation_expiry_policy,
            observe_mode: t.observe_mode,
            metadata: t.metadata,
            created_at: t.created_at,
            updated_at: t.updated_at,
            suspended_at: t.suspended_at,
            closed_at: t.closed_at,
            rate_limit_per_second: t.rate_limit.map(|r| r.per_second),
            rate_limit_burst: t.rate_limit.map(|r| r.burst),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TenantCreateRequest)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    tenant_id: TenantId,
    name: String,
    tier: Option<Tier>,
    parent_tenant_id: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    default_commit_overage_policy: Option<CommitOveragePolicy>,
    default_reservation_ttl_ms: Option<i64>,
    max_reservation_ttl_ms: Option<i64>,
    max_reservation_extensions: Option<i64>,
    reservation_expiry_policy: Option<ExpiryPolicy>,
    /// v0.1.26: the tenant's default observe mode (absent: ENFORCE).
    observe_mode: Option<ObserveMode>,
    rate_limit_per_second: Option<u32>,
    rate_limit_burst: Option<u32>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TenantUpdateRequest)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    name: Option<String>,
    status: Option<TenantStatus>,
    tier: Option<Tier>,
    metadata: Option<BTreeMap<String, String>>,
    default_commit_overage_policy: Option<CommitOveragePolicy>,
    default_reservation_ttl_ms: Option<i64>,
    max_reservation_ttl_ms: Option<i64>,
    max_reservation_extensions: Option<i64>,
    reservation_expiry_policy: Option<ExpiryPolicy>,
    /// v0.1.26: the tenant's default observe mode; absent leaves it as it is.
    observe_mode: Option<ObserveMode>,
    rate_limit_per_second: Option<u32>,
    rate_limit_burst: Option<u32>,
}

/// Bounds of a per-tenant rate limit override (per instance).
pub const RATE_LIMIT_MAX: u32 = 1_000_000;

/// Resolves the rate-limit fields of a request: `None` = unchanged, `Some(None)` = back to
/// the tier default (both 0), `Some(Some(_))` = an override (burst defaults to 2 × rate).
fn rate_limit(per_second: Option<u32>, burst: Option<u32>) -> ApiResult<Option<Option<RateLimit>>> {
    match (per_second, burst) {
        (None, None) => Ok(None),
        (Some(0), None | Some(0)) => Ok(Some(None)),
        (None, Some(_)) => Err(ApiError::invalid_field("rate_limit_per_second", "is required with rate_limit_burst")),
        (Some(p), b) => {
            let b = b.unwrap_or(p.saturating_mul(2));
            if !(1..=RATE_LIMIT_MAX).contains(&p) {
                return Err(ApiError::invalid_field(
                    "rate_limit_per_second",
                    format!("must be between 1 and {RATE_LIMIT_MAX}, or 0 for the tier default"),
                ));
            }
            if !(1..=RATE_LIMIT_MAX.saturating_mul(2)).contains(&b) {
                return Err(ApiError::invalid_field(
                    "rate_limit_burst",
                    format!("must be between 1 and {}", RATE_LIMIT_MAX * 2),
                ));
            }
            Ok(Some(Some(RateLimit { per_second: p, burst: b })))
        }
    }
}

pub fn check_name(field: &str, name: &str, len_max: usize) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid_field(field, "must not be empty"));
    }
    if name.chars().count() > len_max {
        return Err(ApiError::invalid_field(field, format!("must be at most {len_max} characters")));
    }
    Ok(())
}

pub fn check_metadata(m: &BTreeMap<String, String>) -> ApiResult<()> {
    if m.len() > METADATA_ENTRIES_MAX {
        return Err(ApiError::invalid_field("metadata", format!("must have at most {METADATA_ENTRIES_MAX} entries")));
    }
    for (k, v) in m {
        if k.is_empty() || k.len() > METADATA_KEY_LEN_MAX || v.len() > METADATA_VALUE_LEN_MAX {
            return Err(ApiError::invalid_field(
                &format!("metadata.{k}"),
                format!("keys must be 1..{METADATA_KEY_LEN_MAX} bytes and values at most {METADATA_VALUE_LEN_MAX}"),
            ));
        }
    }
    Ok(())
}

fn check_range(field: &str, value: Option<i64>, min: i64, max: i64) -> ApiResult<()> {
    match value {
        Some(v) if !(min..=max).contains(&v) => {
            Err(ApiError::invalid_field(field, format!("must be between {min} and {max}")))
        }
        _ => Ok(()),
    }
}

fn check_settings(default_ttl: Option<i64>, max_ttl: Option<i64>, extensions: Option<i64>) -> ApiResult<()> {
    check_range("default_reservation_ttl_ms", default_ttl, t::RESERVATION_TTL_MS_MIN, t::RESERVATION_TTL_MS_MAX)?;
    check_range("max_reservation_ttl_ms", max_ttl, t::RESERVATION_TTL_MS_MIN, t::RESERVATION_TTL_MS_MAX)?;
    check_range("max_reservation_extensions", extensions, 0, MAX_EXTENSIONS_MAX)
}

#[utoipa::path(post, path = "/v1/admin/tenants", operation_id = "createTenant", tag = "Tenants",
    request_body = CreateTenantRequest,
    responses(
        (status = 201, description = "Created", body = TenantBody),
        (status = 200, description = "The same tenant already exists (an idempotent replay)", body = TenantBody),
        crate::http::openapi::E400_401_403_409_500_503
    )
)]
pub async fn create(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(req): JsonBody<CreateTenantRequest>,
) -> ApiResult<(StatusCode, Json<TenantBody>)> {
    check_name("name", &req.name, NAME_LEN_MAX)?;
    if req.tenant_id.as_str() == RESERVED_TENANT_ID {
        return Err(ApiError::invalid_field("tenant_id", "is reserved: /v1/admin/tenants/bulk-action is a route"));
    }
    if let Some(parent) = &req.parent_tenant_id {
        TenantId::parse(parent).map_err(|e| ApiError::invalid_field("parent_tenant_id", e))?;
    }
    if let Some(m) = &req.metadata {
        check_metadata(m)?;
    }
    check_settings(req.default_reservation_ttl_ms, req.max_reservation_ttl_ms, req.max_reservation_extensions)?;
    let at = now();
    // Unset settings come from the tier (an unknown tier is 400 naming `tier`).
    let tier = req.tier.unwrap_or_else(Tier::default_tier);
    let d = state.catalogue.tier_for_tenant(&tier).await?.tenant_defaults;
    let max_ttl_ms = req.max_reservation_ttl_ms.unwrap_or(d.max_reservation_ttl_ms);
    let tenant = Tenant {
        tenant_id: req.tenant_id,
        name: req.name,
        status: TenantStatus::Active,
        tier,
        parent_tenant_id: req.parent_tenant_id,
        default_commit_overage_policy: req.default_commit_overage_policy.unwrap_or(d.default_commit_overage_policy),
        // An unset default follows a maximum set below it (the spec allows any maximum ≥ 1 s).
        default_reservation_ttl_ms: req
            .default_reservation_ttl_ms
            .unwrap_or(d.default_reservation_ttl_ms.min(max_ttl_ms)),
        max_reservation_ttl_ms: max_ttl_ms,
        max_reservation_extensions: req.max_reservation_extensions.unwrap_or(d.max_reservation_extensions),
        reservation_expiry_policy: req.reservation_expiry_policy.unwrap_or(ExpiryPolicy::AutoRelease),
        observe_mode: req.observe_mode.unwrap_or(ObserveMode::Enforce),
        metadata: req.metadata,
        created_at: at,
        updated_at: at,
        suspended_at: None,
        closed_at: None,
        rate_limit: rate_limit(req.rate_limit_per_second, req.rate_limit_burst)?.flatten(),
    };
    let (stored, created) = state.catalogue.create_tenant(&Actor::admin(ctx), tenant).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored.into())))
}

#[utoipa::path(get, path = "/v1/admin/tenants/{tenant_id}", operation_id = "getTenant", tag = "Tenants",
    params(("tenant_id" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "The tenant", body = TenantBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn get(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<TenantBody>> {
    Ok(Json(state.catalogue.get_tenant(&id).await?.into()))
}

#[utoipa::path(patch, path = "/v1/admin/tenants/{tenant_id}", operation_id = "updateTenant", tag = "Tenants",
    params(("tenant_id" = String, Path, description = "The tenant's id")), request_body = UpdateTenantRequest,
    responses((status = 200, description = "The updated tenant", body = TenantBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn update(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<UpdateTenantRequest>,
) -> ApiResult<Json<TenantBody>> {
    if let Some(name) = &req.name {
        check_name("name", name, NAME_LEN_MAX)?;
    }
    if let Some(m) = &req.metadata {
        check_metadata(m)?;
    }
    check_settings(req.default_reservation_ttl_ms, req.max_reservation_ttl_ms, req.max_reservation_extensions)?;
    let patch = TenantPatch {
        name: req.name,
        status: req.status,
        tier: req.tier,
        metadata: req.metadata,
        default_commit_overage_policy: req.default_commit_overage_policy,
        default_reservation_ttl_ms: req.default_reservation_ttl_ms,
        max_reservation_ttl_ms: req.max_reservation_ttl_ms,
        max_reservation_extensions: req.max_reservation_extensions,
        reservation_expiry_policy: req.reservation_expiry_policy,
        observe_mode: req.observe_mode,
        rate_limit: rate_limit(req.rate_limit_per_second, req.rate_limit_burst)?,
    };
    Ok(Json(state.catalogue.update_tenant(&Actor::admin(ctx), &id, patch).await?.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Exactly this tenant (a Tollgate extension; how a tenant-bound principal's list is narrowed).
    tenant_id: Option<String>,
    status: Option<String>,
    parent_tenant_id: Option<String>,
    /// v0.1.26: tenants whose stored `observe_mode` is this value (DISABLED, OBSERVE or ENFORCE).
    observe_mode: Option<String>,
    search: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TenantListResponse)]
pub struct ListBody {
    tenants: Vec<TenantBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

const fn text(expr: &'static str) -> SortColumn {
    SortColumn { expr, cast: "text", id_expr: "tenant_id", id_cast: "text" }
}

const SORTS: &[(&str, SortColumn)] = &[
    ("tenant_id", text("tenant_id")),
    ("name", text("name")),
    ("status", text("status")),
    ("created_at", SortColumn { expr: "created_at", cast: "timestamptz", id_expr: "tenant_id", id_cast: "text" }),
];

#[utoipa::path(get, path = "/v1/admin/tenants", operation_id = "listTenants", tag = "Tenants",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of tenants", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let statuses: Vec<&str> = TenantStatus::ALL.iter().map(|s| s.as_str()).collect();
    let modes: Vec<&str> = ObserveMode::ALL.iter().map(|m| m.as_str()).collect();
    let filter = Filter {
        tenant_id: page::no_nul("tenant_id", q.tenant_id.as_deref())?.filter(|s| !s.is_empty()).map(String::from),
        status: enum_param("status", q.status.as_deref(), TenantStatus::parse, &statuses)?,
        parent_tenant_id: q.parent_tenant_id.filter(|s| !s.is_empty()),
        observe_mode: enum_param("observe_mode", q.observe_mode.as_deref(), ObserveMode::parse, &modes)?,
        search: search_param(q.search.as_deref())?,
    };
    let (spec, paging) = page::sql(&q.page, SORTS, "created_at", &filter)?;
    let page = paging.finish(state.catalogue.list_tenants(&filter, &spec).await?);
    Ok(Json(ListBody {
        has_more: page.has_more,
        next_cursor: page.next_cursor,
        tenants: page.items.into_iter().map(Into::into).collect(),
    }))
}
