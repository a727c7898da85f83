//! `GET /v1/admin/action-quota-counters` and `POST /v1/admin/action-quota-counters/reset`
//! (action-kinds spec v0.1.26 `listActionQuotaCounters`, `resetActionQuotaCounter`): the live
//! action quota counters of one tenant, and resetting one of them to 0 (admin key only; audited,
//! and the ledger appends `quota.counter_reset`). A tenant key reads its own tenant's counters
//! with `action_quotas:read`, or with the deprecated `balances:read` (then the answer carries
//! `X-Cycles-Permission-Deprecated: balances:read`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::budgets::rfc3339_ms;
use crate::auth::{AnyAuth, Caller};
use crate::catalogue::audit::Actor;
use crate::domain::Permission;
use crate::domain::policy::{QuotaWindow, RiskClass};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, QueryParams};
use crate::http::page::{self, ListParams, Position};
use crate::ledger::quotas::{Counter, CounterKey, RISK};
use crate::state::AppState;

/// The spec's bounds on `run_id` and `reason`.
const RUN_ID_LEN_MAX: usize = 256;
const ACTION_KIND_LEN_MAX: usize = 64;
const REASON_LEN_MAX: usize = 512;
/// Scope strings longer than this name no counter (scopes are bounded where they are made).
const SCOPE_LEN_MAX: usize = 1024;
const DEPRECATED: HeaderName = HeaderName::from_static("x-cycles-permission-deprecated");

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CounterQuery {
    /// Required with the admin key; a tenant key reads its own tenant.
    tenant_id: Option<String>,
    /// Prefix match on the counter's scope.
    scope: Option<String>,
    action_kind: Option<String>,
    /// per_run, per_minute_tumbling, per_hour_tumbling, per_day_tumbling or per_tenant_per_day.
    window: Option<String>,
    /// Only per_run counters of this run.
    run_id: Option<String>,
    /// Include counters at 0 (default false).
    include_zero: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ActionQuotaState)]
pub struct CounterBody {
    action_kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    risk_class: Option<String>,
    scope: String,
    scope_path: String,
    window: String,
    window_key: String,
    used: i64,
    /// The counting rule's max_calls (0 when no policy in force has a rule for this counter).
    limit: i64,
    remaining: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

impl From<Counter> for CounterBody {
    fn from(c: Counter) -> Self {
        let (limit, policy_id) = c.limit.map_or((0, None), |(l, p)| (l, Some(p)));
        Self {
            action_kind: c.key.action_kind,
            risk_class: c.key.risk_class.map(|r| r.as_str().to_string()),
            scope_path: c.key.scope.clone(),
            scope: c.key.scope,
            window: c.key.window.as_str().to_string(),
            window_key: c.key.window_key,
            used: c.used,
            remaining: (limit - c.used).max(0),
            limit,
            policy_id,
            expires_at: c.expires_at_ms.map(rfc3339_ms),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ActionQuotaCounterListResponse)]
pub struct CounterListBody {
    counters: Vec<CounterBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

fn text(field: &str, v: &Option<String>, max: usize) -> ApiResult<()> {
    match v {
        Some(s) if s.is_empty() || s.len() > max => {
            Err(ApiError::invalid_field(field, format!("must be 1 to {max} characters")))
        }
        _ => Ok(()),
    }
}

fn window_of(v: Option<&str>) -> ApiResult<Option<QuotaWindow>> {
    v.map(|w| {
        QuotaWindow::parse(w).ok_or_else(|| {
            ApiError::invalid_field(
                "window",
                "must be per_run, per_minute_tumbling, per_hour_tumbling, per_day_tumbling or per_tenant_per_day",
            )
        })
    })
    .transpose()
}

/// The tenant read, and whether the deprecated `balances:read` let the caller in.
fn tenant_of(caller: &Caller, tenant_id: &Option<String>) -> ApiResult<(String, bool)> {
    match caller {
        Caller::Admin => match tenant_id.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => Ok((t.to_string(), false)),
            None => Err(ApiError::invalid_field("tenant_id", "is required when using admin key authentication")),
        },
        Caller::Tenant(t) => {
            let deprecated = t.require(Permission::ActionQuotasRead, ErrorCode::InsufficientPermissions).is_err();
            if deprecated {
                t.require(Permission::BalancesRead, ErrorCode::InsufficientPermissions).map_err(|_| {
                    ApiError::new(
                        ErrorCode::InsufficientPermissions,
                        "API key lacks required permission: action_quotas:read",
                    )
                })?;
            }
            let own = t.key.tenant_id.to_string();
            if let Some(other) = tenant_id.as_deref().filter(|v| !v.is_empty() && *v != own) {
                return Err(ApiError::new(ErrorCode::Forbidden, format!("tenant_id {other} is not this key's tenant")));
            }
            Ok((own, deprecated))
        }
    }
}

#[utoipa::path(get, path = "/v1/admin/action-quota-counters", operation_id = "listActionQuotaCounters", tag = "ActionQuotas",
    params(CounterQuery, crate::http::page::ListParams),
    responses((status = 200, description = "Action quota counter states", body = CounterListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    QueryParams(q): QueryParams<CounterQuery>,
) -> ApiResult<Response> {
    let (tenant, deprecated) = tenant_of(&caller, &q.tenant_id)?;
    text("scope", &q.scope, SCOPE_LEN_MAX)?;
    text("action_kind", &q.action_kind, ACTION_KIND_LEN_MAX)?;
    text("run_id", &q.run_id, RUN_ID_LEN_MAX)?;
    let window = window_of(q.window.as_deref())?;
    let include_zero = match q.include_zero.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid_field("include_zero", "must be true or false")),
    };
    let filters = (&tenant, &q.scope, &q.action_kind, window.map(QuotaWindow::as_str), &q.run_id, include_zero);
    let paging = page::parse(&q.page, &["scope"], "scope", page::RUNTIME, &filters)?;
    let (counters, _truncated) = state.ledger.quota_counters(&tenant).await?;
    let kept: Vec<Counter> = counters
        .into_iter()
        .filter(|c| include_zero || c.used > 0)
        .filter(|c| q.scope.as_deref().is_none_or(|p| c.key.scope.starts_with(p)))
        .filter(|c| q.action_kind.as_deref().is_none_or(|k| c.key.action_kind == k))
        .filter(|c| window.is_none_or(|w| c.key.window == w))
        .filter(|c| q.run_id.as_deref().is_none_or(|r| c.key.window == QuotaWindow::Run && c.key.window_key == r))
        .collect();
    let page = paging.page(kept, |c| Position {
        key: c.key.scope.clone(),
        id: format!(
            "{}|{}|{}|{}",
            c.key.action_kind,
            c.key.risk_class.map_or("", RiskClass::as_str),
            c.key.window.as_str(),
            c.key.window_key
        ),
    });
    let body = CounterListBody {
        counters: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        has_more: page.has_more,
    };
    let mut resp = Json(body).into_response();
    if deprecated {
        resp.headers_mut().insert(DEPRECATED, HeaderValue::from_static("balances:read"));
    }
    Ok(resp)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ActionQuotaCounterResetRequest)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    tenant_id: Option<String>,
    scope: String,
    action_kind: String,
    risk_class: Option<String>,
    window: String,
    window_key: String,
    reason: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ActionQuotaCounterResetResponse)]
pub struct ResetBody {
    counter: CounterBody,
    previous_used: i64,
}

fn counter_key(req: &ResetRequest) -> ApiResult<CounterKey> {
    text("scope", &Some(req.scope.clone()), SCOPE_LEN_MAX)?;
    text("action_kind", &Some(req.action_kind.clone()), ACTION_KIND_LEN_MAX)?;
    text("window_key", &Some(req.window_key.clone()), RUN_ID_LEN_MAX)?;
    let window = window_of(Some(&req.window))?.unwrap_or(QuotaWindow::Run);
    let risk_class = match (req.action_kind.as_str(), req.risk_class.as_deref()) {
        (RISK, Some(r)) => Some(RiskClass::parse(r).ok_or_else(|| {
            ApiError::invalid_field(
                "risk_class",
                "must be read_only, local_mutation, side_effect, external_side_effect or high_risk",
            )
        })?),
        (RISK, None) => return Err(ApiError::invalid_field("risk_class", "is required when action_kind is __risk__")),
        (_, Some(_)) => {
            return Err(ApiError::invalid_field("risk_class", "is only accepted when action_kind is __risk__"));
        }
        (_, None) => None,
    };
    Ok(CounterKey {
        scope: req.scope.clone(),
        action_kind: req.action_kind.clone(),
        risk_class,
        window,
        window_key: req.window_key.clone(),
    })
}

#[utoipa::path(post, path = "/v1/admin/action-quota-counters/reset", operation_id = "resetActionQuotaCounter", tag = "ActionQuotas",
    request_body = ResetRequest,
    responses((status = 200, description = "Counter reset successfully", body = ResetBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn reset(
    State(state): State<AppState>,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(req): JsonBody<ResetRequest>,
) -> ApiResult<Json<ResetBody>> {
    let tenant = match req.tenant_id.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => t.to_string(),
        None => return Err(ApiError::invalid_field("tenant_id", "missing_required_field: tenant_id")),
    };
    let key = counter_key(&req)?;
    text("reason", &req.reason, REASON_LEN_MAX)?;
    let actor = Actor::admin(ctx);
    let reset = state.catalogue.reset_quota_counter(&actor, &tenant, &key, req.reason.as_deref()).await?;
    let reset = reset.ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no quota counter matches the key fields"))?;
    Ok(Json(ResetBody { counter: reset.counter.into(), previous_used: reset.previous_used }))
}
