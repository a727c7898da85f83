//! `/v1/admin/budgets`: create, list, lookup, patch, freeze/unfreeze, fund. The ledger lives
//! in Redis; each mutation runs its script inside `Catalogue::audited`, so its audit entry
//! commits only when the ledger change happened.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::pagination::{LIMIT_DEFAULT, LIMIT_MAX};
use crate::auth::{AdminAuth, AnyAuth, Caller, TenantCaller};
use crate::catalogue::audit::Actor;
use crate::domain::amount::{Unit, Units};
use crate::domain::scope::{filter_allows, parse_budget_scope, scope_tenant};
use crate::domain::{CommitOveragePolicy, Permission, TenantStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, QueryParams};
use crate::ledger::Correlation;
use crate::ledger::budgets::{FundOp, NewBudget};
use crate::ledger::reads::BudgetDoc;
use crate::runtime_api::wire::{Amount, SignedAmount, amount, request_hash};
use crate::state::AppState;

pub const REASON_LEN_MAX: usize = 512;
pub const FUND_IDEMPOTENCY_KEY_LEN_MAX: usize = 256;

fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Serialize)]
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
            created_at: rfc3339_ms(d.created_at_ms),
            updated_at: rfc3339_ms(d.updated_at_ms),
        }
    }
}

/// Who acts on which tenant: the admin key names the tenant, a tenant key is its tenant.
struct Routed {
    tenant: String,
    actor: Actor,
    key: Option<TenantCaller>,
}

fn route(caller: Caller, ctx: RequestCtx, admin_tenant: Option<String>, perm: Permission) -> ApiResult<Routed> {
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

fn check_scope_filter(key: &Option<TenantCaller>, scope: &str) -> ApiResult<()> {
    match key {
        Some(k) if !filter_allows(&k.key.scope_filter, scope) => Err(ApiError::forbidden("scope_filter denies access")),
        _ => Ok(()),
    }
}

fn scope_param(raw: Option<&str>) -> ApiResult<String> {
    let raw = raw.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::invalid_field("scope", "is required"))?;
    parse_budget_scope(raw).map_err(|e| ApiError::invalid_field("scope", e))
}

fn unit_param(raw: Option<&str>) -> ApiResult<Unit> {
    let raw = raw.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::invalid_field("unit", "is required"))?;
    Unit::parse(raw)
        .ok_or_else(|| ApiError::invalid_field("unit", "must be USD_MICROCENTS, TOKENS, CREDITS or RISK_POINTS"))
}

fn amount_in(field: &str, a: &Amount, unit: Unit) -> ApiResult<Units> {
    if a.unit != unit {
        return Err(ApiError::new(ErrorCode::UnitMismatch, format!("{field}.unit must be {unit}"))
            .with_details(json!({ "field": field, "expected_units": [unit] })));
    }
    Ok(a.amount)
}

fn check_len(field: &str, v: &Option<String>, max: usize) -> ApiResult<()> {
    if v.as_ref().is_some_and(|s| s.chars().count() > max) {
        return Err(ApiError::invalid_field(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

#[derive(Deserialize)]
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
    metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloverPolicy {
    None,
    CarryForward,
    CapAtAllocated,
}

fn fmt_time(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()).unwrap_or_default()
}

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
    if scope_tenant(&scope) != r.tenant {
        return Err(ApiError::invalid_field("scope", format!("must start with tenant:{}", r.tenant)));
    }
    check_scope_filter(&r.key, &scope)?;
    let allocated = amount_in("allocated", &req.allocated, req.unit)?;
    let overdraft_limit = match &req.overdraft_limit {
        Some(a) => amount_in("overdraft_limit", a, req.unit)?,
        None => Units::ZERO,
    };
    if let (Some(a), Some(b)) = (req.period_start, req.period_end)
        && a > b
    {
        return Err(ApiError::invalid_field("period_start", "must not be after period_end"));
    }
    crate::runtime_api::wire::metadata_json("metadata", &req.metadata)?;
    let tenant = state.catalogue.get_tenant(&r.tenant).await.map_err(|e| {
        if e.code == ErrorCode::TenantNotFound { ApiError::invalid_field("tenant_id", "tenant not found") } else { e }
    })?;
    if tenant.status == TenantStatus::Closed {
        return Err(ApiError::new(ErrorCode::TenantClosed, format!("tenant {} is closed", r.tenant)));
    }
    let new = NewBudget {
        tenant: r.tenant.clone(),
        scope: scope.clone(),
        unit: req.unit,
        allocated,
        overdraft_limit,
        commit_overage_policy: req.commit_overage_policy,
        rollover_policy: serde_json::to_value(req.rollover_policy.unwrap_or(RolloverPolicy::None))
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        period_start: fmt_time(req.period_start),
        period_end: fmt_time(req.period_end),
    };
    let ledger_id = uuid::Uuid::now_v7().to_string();
    let corr = Correlation::from(&r.actor.ctx);
    let entry = r.actor.entry(
        "createBudget",
        &r.tenant,
        ("budget", &ledger_id),
        201,
        json!({ "scope": scope, "unit": req.unit }),
    );
    let ledger = state.ledger.clone();
    let id = ledger_id.clone();
    let doc =
        state.catalogue.audited(entry, async move { ledger.create_budget(&new, &id, &corr).await }, |_| true).await?;
    Ok((StatusCode::CREATED, Json(doc.into())))
}

#[derive(Deserialize)]
pub struct LocateQuery {
    scope: Option<String>,
    unit: Option<String>,
    tenant_id: Option<String>,
}

/// `(tenant, scope, unit)` of the budget a query names; the tenant is the scope's.
fn locate(q: &LocateQuery) -> ApiResult<(String, String, Unit)> {
    let scope = scope_param(q.scope.as_deref())?;
    let unit = unit_param(q.unit.as_deref())?;
    Ok((scope_tenant(&scope).to_string(), scope, unit))
}

fn not_found(scope: &str, unit: Unit) -> ApiError {
    ApiError::new(ErrorCode::BudgetNotFound, format!("no budget exists for {scope} in {unit}"))
}

pub async fn lookup(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    QueryParams(q): QueryParams<LocateQuery>,
) -> ApiResult<Json<BudgetBody>> {
    let (tenant, scope, unit) = locate(&q)?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    overdraft_limit: Option<Amount>,
    commit_overage_policy: Option<CommitOveragePolicy>,
    metadata: Option<Map<String, Value>>,
}

pub async fn update(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<LocateQuery>,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> ApiResult<Json<BudgetBody>> {
    let (tenant, scope, unit) = locate(&q)?;
    let limit = req.overdraft_limit.as_ref().map(|a| amount_in("overdraft_limit", a, unit)).transpose()?;
    crate::runtime_api::wire::metadata_json("metadata", &req.metadata)?;
    let mut changed = Vec::new();
    if limit.is_some() {
        changed.push("overdraft_limit");
    }
    if req.commit_overage_policy.is_some() {
        changed.push("commit_overage_policy");
    }
    let actor = Actor::admin(ctx);
    let corr = Correlation::from(&actor.ctx);
    let entry = actor.entry(
        "updateBudget",
        &tenant,
        ("budget", &format!("{scope}|{unit}")),
        200,
        json!({ "changed_fields": changed }),
    );
    let ledger = state.ledger.clone();
    let (t, s) = (tenant.clone(), scope.clone());
    let policy = req.commit_overage_policy;
    let doc = state
        .catalogue
        .audited(entry, async move { ledger.update_budget(&t, &s, unit, limit, policy, &corr).await }, |_| true)
        .await?;
    Ok(Json(doc.into()))
}

#[derive(Deserialize, Default)]
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
    let (tenant, scope, unit) = locate(&q)?;
    let req: StatusRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StatusRequest::default()
    } else {
        crate::http::extract::parse_json(&body)?
    };
    check_len("reason", &req.reason, REASON_LEN_MAX)?;
    crate::runtime_api::wire::metadata_json("metadata", &req.metadata)?;
    let reason = req.reason.unwrap_or_default();
    let actor = Actor::admin(ctx);
    let corr = Correlation::from(&actor.ctx);
    let op = if freeze { "freezeBudget" } else { "unfreezeBudget" };
    let entry = actor.entry(op, &tenant, ("budget", &format!("{scope}|{unit}")), 200, json!({ "reason": reason }));
    let ledger = state.ledger.clone();
    let (t, s) = (tenant.clone(), scope.clone());
    let doc = state
        .catalogue
        .audited(entry, async move { ledger.set_budget_status(&t, &s, unit, freeze, &reason, &corr).await }, |_| true)
        .await?;
    Ok(Json(doc.into()))
}

pub async fn freeze(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<LocateQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Json<BudgetBody>> {
    set_status(state, ctx, q, body, true).await
}

pub async fn unfreeze(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<LocateQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Json<BudgetBody>> {
    set_status(state, ctx, q, body, false).await
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundRequest {
    operation: FundOperation,
    amount: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    spent: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FundOperation {
    Credit,
    Debit,
    Reset,
    ResetSpent,
    RepayDebt,
}

impl From<FundOperation> for FundOp {
    fn from(op: FundOperation) -> Self {
        match op {
            FundOperation::Credit => FundOp::Credit,
            FundOperation::Debit => FundOp::Debit,
            FundOperation::Reset => FundOp::Reset,
            FundOperation::ResetSpent => FundOp::ResetSpent,
            FundOperation::RepayDebt => FundOp::RepayDebt,
        }
    }
}

#[derive(Serialize)]
pub struct FundBody {
    operation: String,
    previous_allocated: Amount,
    new_allocated: Amount,
    previous_remaining: SignedAmount,
    new_remaining: SignedAmount,
    previous_debt: Amount,
    new_debt: Amount,
    previous_spent: Amount,
    new_spent: Amount,
    timestamp: String,
}

pub async fn fund(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<LocateQuery>,
    JsonBody(req): JsonBody<FundRequest>,
) -> ApiResult<Json<FundBody>> {
    let admin_tenant = q.tenant_id.clone().filter(|s| !s.is_empty());
    let r = route(caller, ctx, admin_tenant, Permission::BudgetsWrite)?;
    let scope = scope_param(q.scope.as_deref())?;
    let unit = unit_param(q.unit.as_deref())?;
    if scope_tenant(&scope) != r.tenant {
        return Err(ApiError::forbidden("the budget belongs to another tenant"));
    }
    check_scope_filter(&r.key, &scope)?;
    let amt = amount_in("amount", &req.amount, unit)?;
    let op: FundOp = req.operation.into();
    let spent = match (&req.spent, op) {
        (None, _) => None,
        (Some(s), FundOp::ResetSpent) => Some(amount_in("spent", s, unit)?),
        (Some(_), _) => {
            return Err(ApiError::invalid_field("spent", "is only accepted with RESET_SPENT"));
        }
    };
    check_len("reason", &req.reason, REASON_LEN_MAX)?;
    if let Some(k) = &req.idempotency_key
        && (k.is_empty() || k.len() > FUND_IDEMPOTENCY_KEY_LEN_MAX)
    {
        return Err(ApiError::invalid_field(
            "idempotency_key",
            format!("must be 1 to {FUND_IDEMPOTENCY_KEY_LEN_MAX} characters"),
        ));
    }
    crate::runtime_api::wire::metadata_json("metadata", &req.metadata)?;
    let hash = request_hash(&req)?;
    let reason = req.reason.clone().unwrap_or_default();
    let corr = Correlation::from(&r.actor.ctx);
    let entry = r.actor.entry(
        "fundBudget",
        &r.tenant,
        ("budget", &format!("{scope}|{unit}")),
        200,
        json!({ "operation": op.as_str(), "amount": amt.get().to_string(), "idempotency_key": req.idempotency_key }),
    );
    let ledger = state.ledger.clone();
    let (t, s, key, by_key) = (r.tenant.clone(), scope.clone(), req.idempotency_key.clone(), r.key.is_some());
    let outcome = state
        .catalogue
        .audited(
            entry,
            async move {
                let idem = key.as_deref().map(|k| (k, hash.as_str()));
                ledger.fund_budget(&t, &s, unit, op, amt, spent, &reason, idem, &corr, by_key).await
            },
            |o| !o.replay,
        )
        .await?;
    let a = |v: i64| amount(unit, v);
    let signed = |v: i64| SignedAmount { unit, amount: v };
    Ok(Json(FundBody {
        operation: outcome.operation,
        previous_allocated: a(outcome.previous.allocated),
        new_allocated: a(outcome.new.allocated),
        previous_remaining: signed(outcome.previous.remaining),
        new_remaining: signed(outcome.new.remaining),
        previous_debt: a(outcome.previous.debt),
        new_debt: a(outcome.new.debt),
        previous_spent: a(outcome.previous.spent),
        new_spent: a(outcome.new.spent),
        timestamp: rfc3339_ms(outcome.applied_at_ms),
    }))
}

#[derive(Deserialize)]
pub struct ListQuery {
    tenant_id: Option<String>,
    scope_prefix: Option<String>,
    unit: Option<String>,
    status: Option<String>,
    over_limit: Option<String>,
    has_debt: Option<String>,
    utilization_min: Option<String>,
    utilization_max: Option<String>,
    search: Option<String>,
    sort_by: Option<String>,
    sort_dir: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
pub struct ListBody {
    ledgers: Vec<BudgetBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn bool_param(field: &str, v: &Option<String>) -> ApiResult<Option<bool>> {
    match non_empty(v) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid_field(field, "must be true or false")),
    }
}

fn ratio_param(field: &str, v: &Option<String>) -> ApiResult<Option<f64>> {
    non_empty(v)
        .map(|s| {
            s.parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| ApiError::invalid_field(field, "must be a number from 0 to 1"))
        })
        .transpose()
}

/// `spent / allocated` (0 when nothing is allocated), the admin list's utilization.
fn utilization(d: &BudgetDoc) -> f64 {
    let b = &d.balance;
    if b.allocated == 0 { 0.0 } else { b.spent as f64 / b.allocated as f64 }
}

const SORTS: &[&str] = &["tenant_id", "scope", "unit", "status", "commit_overage_policy", "utilization", "debt"];

fn sort_key(d: &BudgetDoc, by: &str) -> String {
    match by {
        "tenant_id" => d.tenant.clone(),
        "scope" => d.balance.scope.clone(),
        "unit" => d.balance.unit.as_str().to_string(),
        "status" => d.status.clone(),
        "commit_overage_policy" => d.commit_overage_policy.map(|p| p.as_str().to_string()).unwrap_or_default(),
        "debt" => format!("{:020}", d.balance.debt),
        _ => format!("{:020.6}", utilization(d)),
    }
}

pub async fn list(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let (tenants, key) = match &caller {
        Caller::Admin => match non_empty(&q.tenant_id) {
            Some(t) => (vec![t.to_string()], None),
            None => (crate::store::pg::tenants::ids(state.catalogue.pg.pool()).await?, None),
        },
        Caller::Tenant(t) => {
            t.require(Permission::BudgetsRead, ErrorCode::InsufficientPermissions)?;
            (vec![t.key.tenant_id.to_string()], Some(t.clone()))
        }
    };
    let unit = non_empty(&q.unit).map(|u| unit_param(Some(u))).transpose()?;
    let prefix = non_empty(&q.scope_prefix)
        .map(|p| parse_budget_scope(p).map_err(|e| ApiError::invalid_field("scope_prefix", e)))
        .transpose()?;
    let status = non_empty(&q.status).map(String::from);
    if status.as_deref().is_some_and(|s| !matches!(s, "ACTIVE" | "FROZEN" | "CLOSED")) {
        return Err(ApiError::invalid_field("status", "must be ACTIVE, FROZEN or CLOSED"));
    }
    let over_limit = bool_param("over_limit", &q.over_limit)?;
    let has_debt = bool_param("has_debt", &q.has_debt)?;
    let (umin, umax) =
        (ratio_param("utilization_min", &q.utilization_min)?, ratio_param("utilization_max", &q.utilization_max)?);
    if let (Some(a), Some(b)) = (umin, umax)
        && a > b
    {
        return Err(ApiError::invalid_field("utilization_min", "must not exceed utilization_max"));
    }
    let search = super::pagination::search_param(q.search.as_deref())?.map(|s| s.to_ascii_lowercase());
    let sort = non_empty(&q.sort_by).unwrap_or("utilization");
    if !SORTS.contains(&sort) {
        return Err(ApiError::invalid_field("sort_by", format!("must be one of {}", SORTS.join(", "))));
    }
    let descending = match non_empty(&q.sort_dir) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(ApiError::invalid_field("sort_dir", "must be asc or desc")),
    };
    let limit = match non_empty(&q.limit) {
        None => LIMIT_DEFAULT as usize,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=LIMIT_MAX as usize).contains(n))
            .ok_or_else(|| ApiError::invalid_field("limit", format!("must be an integer from 1 to {LIMIT_MAX}")))?,
    };
    let mut docs = Vec::new();
    for tenant in &tenants {
        let members: Vec<_> = state
            .ledger
            .budget_members(tenant)
            .await?
            .into_iter()
            .filter(|(s, u)| {
                unit.is_none_or(|w| w == *u)
                    && prefix.as_ref().is_none_or(|p| s == p || s.starts_with(&format!("{p}/")))
                    && key.as_ref().is_none_or(|k| filter_allows(&k.key.scope_filter, s))
            })
            .collect();
        docs.extend(state.ledger.budgets(tenant, &members).await?);
    }
    docs.retain(|d| {
        let u = utilization(d);
        status.as_deref().is_none_or(|s| d.status == s)
            && over_limit.is_none_or(|o| d.balance.is_over_limit == o)
            && has_debt.is_none_or(|h| (d.balance.debt > 0) == h)
            && umin.is_none_or(|m| u >= m)
            && umax.is_none_or(|m| u <= m)
            && search.as_ref().is_none_or(|s| d.tenant.contains(s.as_str()) || d.balance.scope.contains(s.as_str()))
    });
    let id = |d: &BudgetDoc| format!("{}|{}|{}", d.tenant, d.balance.scope, d.balance.unit);
    let mut keyed: Vec<(String, String, BudgetDoc)> =
        docs.into_iter().map(|d| (sort_key(&d, sort), id(&d), d)).collect();
    keyed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    if descending {
        keyed.reverse();
    }
    let tuple = format!("{sort}|{descending}");
    if let Some(c) = non_empty(&q.cursor) {
        let decoded = hex::decode(c).ok().and_then(|b| String::from_utf8(b).ok());
        let parts: Option<(String, String, String)> = decoded.and_then(|s| {
            let mut it = s.splitn(3, '\n');
            Some((it.next()?.to_string(), it.next()?.to_string(), it.next()?.to_string()))
        });
        let Some((_, k, i)) = parts.filter(|(t, _, _)| *t == tuple) else {
            return Err(ApiError::invalid_field(
                "cursor",
                "is not valid for this result set; restart without a cursor",
            ));
        };
        keyed.retain(|(sk, si, _)| {
            let pos = (sk.as_str(), si.as_str()).cmp(&(k.as_str(), i.as_str()));
            if descending { pos.is_lt() } else { pos.is_gt() }
        });
    }
    let has_more = keyed.len() > limit;
    keyed.truncate(limit);
    let next_cursor =
        if has_more { keyed.last().map(|(k, i, _)| hex::encode(format!("{tuple}\n{k}\n{i}"))) } else { None };
    Ok(Json(ListBody { ledgers: keyed.into_iter().map(|(_, _, d)| d.into()).collect(), next_cursor, has_more }))
}
