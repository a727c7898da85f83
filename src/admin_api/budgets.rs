//! `/v1/admin/budgets`: create, lookup, patch, freeze/unfreeze, fund (the list is in
//! `budget_list`). Each handler extracts and validates the request, makes one catalogue call
//! (which owns the budget rules and the audit entry) and maps the reply to the wire.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::auth::{AdminAuth, AnyAuth, Caller, TenantCaller};
use crate::catalogue::audit::Actor;
use crate::catalogue::budgets::BudgetRef;
use crate::domain::amount::{Unit, Units};
use crate::domain::period::{self, PeriodLength};
use crate::domain::scope::{filter_allows, parse_budget_scope};
use crate::domain::{CommitOveragePolicy, Permission};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, QueryParams};
use crate::ledger::budgets::NewBudget;
use crate::ledger::reads::BudgetDoc;
use crate::runtime_api::wire::{Amount, SignedAmount, amount};
use crate::state::AppState;

pub const REASON_LEN_MAX: usize = 512;
pub const FUND_IDEMPOTENCY_KEY_LEN_MAX: usize = 256;

pub(super) fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BudgetLedger)]
pub struct BudgetBody {
    ledger_id: String,
    tenant_id: String,
    scope: String,
    scope_path: String,
    unit: Unit,
    allocated: Amount,
    remaining: SignedAmount,
    reserved: Amount,
    spent: Amount,
    debt: Amount,
    overdraft_limit: Amount,
    is_over_limit: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit_overage_policy: Option<CommitOveragePolicy>,
    status: String,
    rollover_policy: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    period_start: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    period_end: String,
    /// Extension: the calendar period length the budget was created with (P1D, P1W or P1M).
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<&'static str>,
    created_at: String,
    updated_at: String,
}

impl From<BudgetDoc> for BudgetBody {
    fn from(d: BudgetDoc) -> Self {
        let b = &d.balance;
        let u = b.unit;
        Self {
            ledger_id: d.ledger_id.clone(),
            tenant_id: d.tenant.clone(),
            scope: b.scope.clone(),
            scope_path: b.scope.clone(),
            unit: u,
            allocated: amount(u, b.allocated),
            remaining: SignedAmount { unit: u, amount: b.remaining() },
            reserved: amount(u, b.reserved),
            spent: amount(u, b.spent),
            debt: amount(u, b.debt),
            overdraft_limit: amount(u, b.overdraft_limit),
            is_over_limit: b.is_over_limit,
            commit_overage_policy: d.commit_overage_policy,
            status: d.status.clone(),
            rollover_policy: if d.rollover_policy.is_empty() { "NONE".into() } else { d.rollover_policy.clone() },
            period_start: d.period_start.clone(),
            period_end: d.period_end.clone(),
            period: PeriodLength::designator(&d.period),
            created_at: rfc3339_ms(d.created_at_ms),
            updated_at: rfc3339_ms(d.updated_at_ms),
        }
    }
}

/// Who acts on which tenant: the admin key names the tenant, a tenant key is its tenant.
pub(super) struct Routed {
    pub(super) tenant: String,
    pub(super) actor: Actor,
    pub(super) key: Option<TenantCaller>,
}

pub(super) fn route(
    caller: Caller,
    ctx: RequestCtx,
    admin_tenant: Option<String>,
    perm: Permission,
) -> ApiResult<Routed> {
    match caller {
        Caller::Admin => {
            let tenant = admin_tenant.ok_or_else(|| {
                ApiError::invalid_field("tenant_id", "is required when using admin key authentication")
            })?;
            Ok(Routed { tenant, actor: Actor { actor_type: "admin_on_behalf_of", key_id: None, ctx }, key: None })
        }
        Caller::Tenant(t) => {
            t.require(perm, ErrorCode::InsufficientPermissions)?;
            t.require_writable()?;
            let tenant = t.key.tenant_id.to_string();
            let actor = Actor { actor_type: "api_key", key_id: Some(t.key.key_id.clone()), ctx };
            Ok(Routed { tenant, actor, key: Some(t) })
        }
    }
}

pub(super) fn check_scope_filter(key: &Option<TenantCaller>, scope: &str) -> ApiResult<()> {
    match key {
        Some(k) if !filter_allows(&k.key.scope_filter, scope) => Err(ApiError::forbidden("scope_filter denies access")),
        _ => Ok(()),
    }
}

pub(super) fn scope_param(raw: Option<&str>) -> ApiResult<String> {
    let raw = raw.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::invalid_field("scope", "is required"))?;
    parse_budget_scope(raw).map_err(|e| ApiError::invalid_field("scope", e))
}

pub(super) fn unit_param(raw: Option<&str>) -> ApiResult<Unit> {
    let raw = raw.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::invalid_field("unit", "is required"))?;
    Unit::parse(raw)
        .ok_or_else(|| ApiError::invalid_field("unit", "must be USD_MICROCENTS, TOKENS, CREDITS or RISK_POINTS"))
}

pub(super) fn amount_in(field: &str, a: &Amount, unit: Unit) -> ApiResult<Units> {
    if a.unit != unit {
        return Err(ApiError::new(ErrorCode::UnitMismatch, format!("{field}.unit must be {unit}"))
            .with_details(json!({ "field": field, "expected_units": [unit] })));
    }
    Ok(a.amount)
}

pub(super) fn check_len(field: &str, v: &Option<String>, max: usize) -> ApiResult<()> {
    if v.as_ref().is_some_and(|s| s.chars().count() > max) {
        return Err(ApiError::invalid_field(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = BudgetCreateRequest)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    tenant_id: Option<String>,
    scope: String,
    unit: Unit,
    allocated: Amount,
    overdraft_limit: Option<Amount>,
    commit_overage_policy: Option<CommitOveragePolicy>,
    rollover_policy: Option<RolloverPolicy>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    period_start: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    period_end: Option<OffsetDateTime>,
    /// Extension: each period's length as a calendar period in UTC (P1D, P1W or P1M); without
    /// it a period lasts as long as `[period_start, period_end)`.
    period: Option<String>,
    metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloverPolicy {
    None,
    CarryForward,
    CapAtAllocated,
}

#[utoipa::path(post, path = "/v1/admin/budgets", operation_id = "createBudget", tag = "Budgets",
    request_body = CreateRequest,
    responses((status = 201, description = "Created", body = BudgetBody), crate::http::openapi::E400_401_403_409_500_503)
)]
pub async fn create(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(req): JsonBody<CreateRequest>,
) -> ApiResult<(StatusCode, Json<BudgetBody>)> {
    if matches!(caller, Caller::Tenant(_)) && req.tenant_id.is_some() {
        return Err(ApiError::invalid_field("tenant_id", "must not be set when using an API key"));
    }
    let r = route(caller, ctx, req.tenant_id.clone(), Permission::BudgetsWrite)?;
    let scope = parse_budget_scope(&req.scope).map_err(|e| ApiError::invalid_field("scope", e))?;
    check_scope_filter(&r.key, &scope)?;
    let allocated = amount_in("allocated", &req.allocated, req.unit)?;
    let overdraft_limit = match &req.overdraft_limit {
        Some(a) => amount_in("overdraft_limit", a, req.unit)?,
        None => Units::ZERO,
    };
    let rollover_policy = serde_json::to_value(req.rollover_policy.unwrap_or(RolloverPolicy::None))
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let period = period::validate(req.period_start, req.period_end, req.period.as_deref(), &rollover_policy)
        .map_err(|e| ApiError::invalid_field(e.field, e.message))?;
    crate::runtime_api::wire::metadata_json("metadata", &req.metadata)?;
    let new = NewBudget {
        tenant: r.tenant,
        scope,
        unit: req.unit,
        allocated,
        overdraft_limit,
        commit_overage_policy: req.commit_overage_policy,
        rollover_policy,
        period,
    };
    let doc = state.catalogue.create_budget(&r.actor, new).await?;
    Ok((StatusCode::CREATED, Json(doc.into())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LocateQuery {
    #[param(required = true)]
    scope: Option<String>,
    #[param(required = true)]
    unit: Option<String>,
    pub(super) tenant_id: Option<String>,
}

/// The budget a query names; its tenant is the scope's.
pub(super) fn locate(q: &LocateQuery) -> ApiResult<BudgetRef> {
    Ok(BudgetRef::of_scope(scope_param(q.scope.as_deref())?, unit_param(q.unit.as_deref())?))
}

pub(super) fn not_found(scope: &str, unit: Unit) -> ApiError {
    ApiError::new(ErrorCode::BudgetNotFound, format!("no budget exists for {scope} in {unit}"))
}

#[utoipa::path(get, path = "/v1/admin/budgets/lookup", operation_id = "lookupBudget", tag = "Budgets",
    params(LocateQuery),
    responses((status = 200, description = "The budget", body = BudgetBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn lookup(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    QueryParams(q): QueryParams<LocateQuery>,
) -> ApiResult<Json<BudgetBody>> {
    let BudgetRef { tenant, scope, unit } = locate(&q)?;
    if let Caller::Tenant(t) = &caller {
        t.require(Permission::BudgetsRead, ErrorCode::InsufficientPermissions)?;
        if t.key.tenant_id.as_str() != tenant {
            return Err(not_found(&scope, unit));
        }
        check_scope_filter(&Some(t.clone()), &scope)?;
    }
    let doc = state.ledger.budget(&tenant, &scope, unit).await?.ok_or_else(|| not_found(&scope, unit))?;
    Ok(Json(doc.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = BudgetUpdateRequest)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    overdraft_limit: Option<Amount>,
    commit_overage_policy: Option<CommitOveragePolicy>,
    metadata: Option<Map<String, Value>>,
}

#[utoipa::path(patch, path = "/v1/admin/budgets", operation_id = "updateBudget", tag = "Budgets",
    params(LocateQuery), request_body = UpdateRequest,
    responses((status = 200, description = "The updated budget", body = BudgetBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn update(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<LocateQuery>,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> ApiResult<Json<BudgetBody>> {
    let budget = locate(&q)?;
    let limit = req.overdraft_limit.as_ref().map(|a| amount_in("overdraft_limit", a, budget.unit)).transpose()?;
    crate::runtime_api::wire::metadata_json("metadata", &req.metadata)?;
    let actor = Actor::admin(ctx);
    let doc = state.catalogue.update_budget(&actor, budget, limit, req.commit_overage_policy).await?;
    Ok(Json(doc.into()))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = BudgetStatusTransitionRequest)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    reason: Option<String>,
    metadata: Option<Map<String, Value>>,
}

async fn set_status(
    state: AppState,
    ctx: RequestCtx,
    q: LocateQuery,
    body: axum::body::Bytes,
    freeze: bool,
) -> ApiResult<Json<BudgetBody>> {
    let budget = locate(&q)?;
    let req: StatusRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StatusRequest::default()
    } else {
        crate::http::extract::parse_json(&body)?
    };
    check_len("reason", &req.reason, REASON_LEN_MAX)?;
    crate::runtime_api::wire::metadata_json("metadata", &req.metadata)?;
    let reason = req.reason.unwrap_or_default();
    let doc = state.catalogue.set_budget_status(&Actor::admin(ctx), budget, freeze, reason).await?;
    Ok(Json(doc.into()))
}

#[utoipa::path(post, path = "/v1/admin/budgets/freeze", operation_id = "freezeBudget", tag = "Budgets",
    params(LocateQuery), request_body = StatusRequest,
    responses((status = 200, description = "The frozen budget", body = BudgetBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn freeze(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<LocateQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Json<BudgetBody>> {
    set_status(state, ctx, q, body, true).await
}

#[utoipa::path(post, path = "/v1/admin/budgets/unfreeze", operation_id = "unfreezeBudget", tag = "Budgets",
    params(LocateQuery), request_body = StatusRequest,
    responses((status = 200, description = "The unfrozen budget", body = BudgetBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn unfreeze(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<LocateQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Json<BudgetBody>> {
    set_status(state, ctx, q, body, false).await
}
