//! `/v1/admin/tiers` (a Tollgate extension): list, create, get and patch the tenant templates.
//! Handlers validate the wire values (default budgets' relative scopes with the scope rules,
//! policies as objects with `name`, `scope_pattern` and `priority`) and call `catalogue::tiers`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::auth::AdminAuth;
use crate::catalogue::audit::Actor;
use crate::catalogue::tiers::TierPatch;
use crate::domain::amount::{Unit, Units};
use crate::domain::clock::now;
use crate::domain::scope::parse_budget_scope;
use crate::domain::tenant::{self as t, CommitOveragePolicy, RateLimit};
use crate::domain::tier::{BudgetTemplate, Class, TenantDefaults, Tier, TierDef};
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, PathParam};
use crate::runtime_api::wire::{Amount, amount};
use crate::state::AppState;

pub const DESCRIPTION_LEN_MAX: usize = 1024;
/// Budgets one tier (or one provisioning call) may carry.
pub const BUDGETS_MAX: usize = 50;
/// Policies one tier may carry, and the size of each as JSON.
pub const POLICIES_MAX: usize = 50;
pub const POLICY_BYTES_MAX: usize = 8 * 1024;
pub const SCOPE_LEN_MAX: usize = 512;
/// Bounds of a tier's rate limit (per instance), as for a tenant's override.
pub const RATE_LIMIT_MAX: u32 = 1_000_000;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TierBudgetTemplate)]
#[serde(deny_unknown_fields)]
pub struct BudgetTemplateWire {
    pub scope: String,
    pub unit: Unit,
    pub allocated: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overdraft_limit: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_overage_policy: Option<CommitOveragePolicy>,
}

impl From<&BudgetTemplate> for BudgetTemplateWire {
    fn from(b: &BudgetTemplate) -> Self {
        Self {
            scope: b.scope.clone(),
            unit: b.unit,
            allocated: amount(b.unit, b.allocated.get()),
            overdraft_limit: Some(amount(b.unit, b.overdraft_limit.get())),
            commit_overage_policy: b.commit_overage_policy,
        }
    }
}

/// A scope relative to the tenant: `""`, or scope segments below the tenant (validated with
/// the budget scope rules, lowercased as they are).
fn relative_scope(field: &str, raw: &str) -> ApiResult<String> {
    if raw.is_empty() {
        return Ok(String::new());
    }
    if raw.len() > SCOPE_LEN_MAX {
        return Err(ApiError::invalid_field(field, format!("must be at most {SCOPE_LEN_MAX} characters")));
    }
    if raw.starts_with("tenant:") {
        return Err(ApiError::invalid_field(field, "is relative to the tenant: omit the tenant segment"));
    }
    let full =
        parse_budget_scope(&format!("tenant:placeholder/{raw}")).map_err(|e| ApiError::invalid_field(field, e))?;
    Ok(full.trim_start_matches("tenant:placeholder/").to_string())
}

/// Validates budget templates; `field` names the array (`default_budgets`, `budgets`).
pub fn budget_templates(field: &str, wire: Vec<BudgetTemplateWire>) -> ApiResult<Vec<BudgetTemplate>> {
    if wire.len() > BUDGETS_MAX {
        return Err(ApiError::invalid_field(field, format!("must hold at most {BUDGETS_MAX} budgets")));
    }
    let mut out: Vec<BudgetTemplate> = Vec::with_capacity(wire.len());
    for (i, b) in wire.into_iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        let scope = relative_scope(&at("scope"), &b.scope)?;
        if b.allocated.unit != b.unit {
            return Err(ApiError::invalid_field(&at("allocated.unit"), "must equal unit"));
        }
        let overdraft_limit = match b.overdraft_limit {
            Some(o) if o.unit != b.unit => {
                return Err(ApiError::invalid_field(&at("overdraft_limit.unit"), "must equal unit"));
            }
            Some(o) => o.amount,
            None => Units::ZERO,
        };
        if out.iter().any(|o| o.scope == scope && o.unit == b.unit) {
            return Err(ApiError::invalid_field(&at("scope"), "names the same scope and unit as an earlier budget"));
        }
        out.push(BudgetTemplate {
            scope,
            unit: b.unit,
            allocated: b.allocated.amount,
            overdraft_limit,
            commit_overage_policy: b.commit_overage_policy,
        });
    }
    Ok(out)
}

/// Policies in the shape of `PolicyCreateRequest` without `tenant_id`: objects with a `name`,
/// a `scope_pattern` and a non-negative integer `priority`.
fn policies(wire: Vec<Value>) -> ApiResult<Vec<Value>> {
    if wire.len() > POLICIES_MAX {
        return Err(ApiError::invalid_field("default_policies", format!("must hold at most {POLICIES_MAX} policies")));
    }
    for (i, p) in wire.iter().enumerate() {
        let at = |f: &str| format!("default_policies[{i}]{f}");
        let Some(obj) = p.as_object() else { return Err(ApiError::invalid_field(&at(""), "must be an object")) };
        if serde_json::to_vec(p).map_or(true, |b| b.len() > POLICY_BYTES_MAX) {
            return Err(ApiError::invalid_field(&at(""), format!("must be at most {POLICY_BYTES_MAX} bytes")));
        }
        if obj.contains_key("tenant_id") {
            return Err(ApiError::invalid_field(
                &at(".tenant_id"),
                "must not be set: the tenant is the one provisioned",
            ));
        }
        for f in ["name", "scope_pattern"] {
            if obj.get(f).and_then(Value::as_str).is_none_or(|s| s.trim().is_empty() || s.len() > SCOPE_LEN_MAX) {
                return Err(ApiError::invalid_field(&at(&format!(".{f}")), "is required: a non-empty string"));
            }
        }
        if obj.get("priority").and_then(Value::as_i64).is_none_or(|n| n < 0) {
            return Err(ApiError::invalid_field(&at(".priority"), "is required: an integer ≥ 0"));
        }
        // Every policy rule, as a policy of whichever tenant the tier is given to.
        crate::catalogue::tiers::template_rules(i, p)?;
    }
    Ok(wire)
}

/// `None` = unchanged; `Some(None)` = no limit (rate 0); burst defaults to 2 × rate.
fn rate_limit(per_second: Option<u32>, burst: Option<u32>) -> ApiResult<Option<Option<RateLimit>>> {
    match (per_second, burst) {
        (None, None) => Ok(None),
        (Some(0), None | Some(0)) => Ok(Some(None)),
        (None, Some(_)) => Err(ApiError::invalid_field("rate_limit_per_second", "is required with rate_limit_burst")),
        (Some(p), b) => {
            let b = b.unwrap_or(p.saturating_mul(2));
            if p > RATE_LIMIT_MAX {
                return Err(ApiError::invalid_field(
                    "rate_limit_per_second",
                    format!("must be between 1 and {RATE_LIMIT_MAX}, or 0 for no limit"),
                ));
            }
            if !(1..=RATE_LIMIT_MAX * 2).contains(&b) {
                return Err(ApiError::invalid_field(
                    "rate_limit_burst",
                    format!("must be between 1 and {}", RATE_LIMIT_MAX * 2),
                ));
            }
            Ok(Some(Some(RateLimit { per_second: p, burst: b })))
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TierDefinition)]
pub struct TierBody {
    tier: Tier,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    built_in: bool,
    operator_modified: bool,
    admission_class: Class,
    rate_limit_per_second: Option<u32>,
    rate_limit_burst: Option<u32>,
    default_commit_overage_policy: CommitOveragePolicy,
    default_reservation_ttl_ms: i64,
    max_reservation_ttl_ms: i64,
    max_reservation_extensions: i64,
    default_budgets: Vec<BudgetTemplateWire>,
    default_policies: Vec<Value>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<TierDef> for TierBody {
    fn from(t: TierDef) -> Self {
        let d = t.tenant_defaults;
        Self {
            default_budgets: t.default_budgets.iter().map(Into::into).collect(),
            tier: t.tier,
            description: t.description,
            built_in: t.built_in,
            operator_modified: t.operator_modified,
            admission_class: t.class,
            rate_limit_per_second: t.rate_limit.map(|r| r.per_second),
            rate_limit_burst: t.rate_limit.map(|r| r.burst),
            default_commit_overage_policy: d.default_commit_overage_policy,
            default_reservation_ttl_ms: d.default_reservation_ttl_ms,
            max_reservation_ttl_ms: d.max_reservation_ttl_ms,
            max_reservation_extensions: d.max_reservation_extensions,
            default_policies: t.default_policies,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// The fields of a create and of a patch (on a patch, all optional and `tier` refused).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TierRequest)]
#[serde(deny_unknown_fields)]
pub struct TierRequest {
    tier: Option<Tier>,
    description: Option<String>,
    admission_class: Option<Class>,
    rate_limit_per_second: Option<u32>,
    rate_limit_burst: Option<u32>,
    default_commit_overage_policy: Option<CommitOveragePolicy>,
    default_reservation_ttl_ms: Option<i64>,
    max_reservation_ttl_ms: Option<i64>,
    max_reservation_extensions: Option<i64>,
    default_budgets: Option<Vec<BudgetTemplateWire>>,
    default_policies: Option<Vec<Value>>,
}

fn check_range(field: &str, value: Option<i64>, min: i64, max: i64) -> ApiResult<()> {
    match value {
        Some(v) if !(min..=max).contains(&v) => {
            Err(ApiError::invalid_field(field, format!("must be between {min} and {max}")))
        }
        _ => Ok(()),
    }
}

/// Validates a request into a patch (every field it sets), over `base` tenant defaults.
fn to_patch(req: TierRequest, base: TenantDefaults) -> ApiResult<TierPatch> {
    if let Some(d) = &req.description {
        super::tenants::check_name("description", d, DESCRIPTION_LEN_MAX)?;
    }
    let (ttl_min, ttl_max) = (t::RESERVATION_TTL_MS_MIN, t::RESERVATION_TTL_MS_MAX);
    check_range("default_reservation_ttl_ms", req.default_reservation_ttl_ms, ttl_min, ttl_max)?;
    check_range("max_reservation_ttl_ms", req.max_reservation_ttl_ms, ttl_min, ttl_max)?;
    check_range("max_reservation_extensions", req.max_reservation_extensions, 0, super::tenants::MAX_EXTENSIONS_MAX)?;
    let defaults_set = req.default_commit_overage_policy.is_some()
        || req.default_reservation_ttl_ms.is_some()
        || req.max_reservation_ttl_ms.is_some()
        || req.max_reservation_extensions.is_some();
    let tenant_defaults = defaults_set.then(|| TenantDefaults {
        default_commit_overage_policy: req.default_commit_overage_policy.unwrap_or(base.default_commit_overage_policy),
        default_reservation_ttl_ms: req.default_reservation_ttl_ms.unwrap_or(base.default_reservation_ttl_ms),
        max_reservation_ttl_ms: req.max_reservation_ttl_ms.unwrap_or(base.max_reservation_ttl_ms),
        max_reservation_extensions: req.max_reservation_extensions.unwrap_or(base.max_reservation_extensions),
    });
    Ok(TierPatch {
        description: req.description,
        class: req.admission_class,
        rate_limit: rate_limit(req.rate_limit_per_second, req.rate_limit_burst)?,
        tenant_defaults,
        default_budgets: req.default_budgets.map(|b| budget_templates("default_budgets", b)).transpose()?,
        default_policies: req.default_policies.map(policies).transpose()?,
    })
}

const COMPILED_DEFAULTS: TenantDefaults = TenantDefaults {
    default_commit_overage_policy: CommitOveragePolicy::AllowIfAvailable,
    default_reservation_ttl_ms: t::DEFAULT_RESERVATION_TTL_MS,
    max_reservation_ttl_ms: t::DEFAULT_MAX_RESERVATION_TTL_MS,
    max_reservation_extensions: t::DEFAULT_MAX_RESERVATION_EXTENSIONS,
};

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TierListResponse)]
pub struct ListBody {
    tiers: Vec<TierBody>,
}

#[utoipa::path(get, path = "/v1/admin/tiers", operation_id = "listTiers", tag = "Tiers",
    responses((status = 200, description = "Every tier, built-in and operator-defined", body = ListBody), crate::http::openapi::E401_403_500_503)
)]
pub async fn list(State(state): State<AppState>, _: AdminAuth) -> ApiResult<Json<ListBody>> {
    Ok(Json(ListBody { tiers: state.catalogue.list_tiers().await?.into_iter().map(Into::into).collect() }))
}

#[utoipa::path(get, path = "/v1/admin/tiers/{tier}", operation_id = "getTier", tag = "Tiers",
    params(("tier" = String, Path, description = "The tier's name")),
    responses((status = 200, description = "The tier", body = TierBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn get(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(tier): PathParam<String>,
) -> ApiResult<Json<TierBody>> {
    Ok(Json(state.catalogue.get_tier(&tier).await?.into()))
}

#[utoipa::path(post, path = "/v1/admin/tiers", operation_id = "createTier", tag = "Tiers",
    request_body = TierRequest,
    responses((status = 201, description = "Created", body = TierBody), crate::http::openapi::E400_401_403_409_500_503)
)]
pub async fn create(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(mut req): JsonBody<TierRequest>,
) -> ApiResult<(StatusCode, Json<TierBody>)> {
    let tier = req.tier.take().ok_or_else(|| ApiError::invalid_field("tier", "is required"))?;
    let p = to_patch(req, COMPILED_DEFAULTS)?;
    let tenant_defaults = p.tenant_defaults.unwrap_or(COMPILED_DEFAULTS);
    crate::catalogue::tenants::check_ttls(
        tenant_defaults.default_reservation_ttl_ms,
        tenant_defaults.max_reservation_ttl_ms,
    )?;
    let at = now();
    let new = TierDef {
        tier,
        description: p.description,
        built_in: false,
        operator_modified: false,
        class: p.class.unwrap_or(Class::Bulk),
        rate_limit: p.rate_limit.flatten(),
        tenant_defaults,
        default_budgets: p.default_budgets.unwrap_or_default(),
        default_policies: p.default_policies.unwrap_or_default(),
        created_at: at,
        updated_at: at,
    };
    let created = state.catalogue.create_tier(&Actor::admin(ctx), new).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[utoipa::path(patch, path = "/v1/admin/tiers/{tier}", operation_id = "updateTier", tag = "Tiers",
    params(("tier" = String, Path, description = "The tier's name")), request_body = TierRequest,
    responses((status = 200, description = "The updated tier", body = TierBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn update(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(tier): PathParam<String>,
    JsonBody(req): JsonBody<TierRequest>,
) -> ApiResult<Json<TierBody>> {
    if req.tier.is_some() {
        return Err(ApiError::invalid_field("tier", "cannot be changed; it is the tier's name"));
    }
    let current = state.catalogue.get_tier(&tier).await?;
    let patch = to_patch(req, current.tenant_defaults)?;
    Ok(Json(state.catalogue.update_tier(&Actor::admin(ctx), &tier, patch).await?.into()))
}
