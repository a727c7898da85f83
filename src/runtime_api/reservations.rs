//! `POST /v1/reservations` (live and dry run), `POST /v1/decide`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{check_idempotency_header, require, tenant_header};
use super::wire::{
    Action, Amount, BalanceBody, CapsBody, Subject, amount, balances, check_idempotency_key, metadata_json,
    request_hash,
};
use crate::auth::TenantAuth;
use crate::domain::{CommitOveragePolicy, Permission};
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::JsonBody;
use crate::ledger::new_reservation_id;
use crate::ledger::ops::{Decision, Mode, ReserveInput, ReserveOutcome};
use crate::state::AppState;

pub const TTL_MS_MIN: i64 = 1_000;
pub const TTL_MS_MAX: i64 = 86_400_000;
pub const GRACE_MS_MAX: i64 = 60_000;
pub const GRACE_MS_DEFAULT: i64 = 5_000;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ReservationCreateRequest)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    idempotency_key: String,
    subject: Subject,
    action: Action,
    estimate: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::domain::amount::de_opt_int")]
    ttl_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::domain::amount::de_opt_int")]
    grace_period_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overage_policy: Option<CommitOveragePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<bool>,
    /// v0.1.26: OBSERVE evaluates everything, holds nothing and reports the decision as a
    /// `reservation.observed_*` event; ENFORCE and DISABLED enforce. Absent, the tenant's
    /// `observe_mode` applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    observe_mode: Option<ObserveMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Map<String, Value>>,
}

/// The spec's `ObserveModeEnum` (v0.1.26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ObserveModeEnum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ObserveMode {
    Disabled,
    Observe,
    Enforce,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = DecisionRequest)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    idempotency_key: String,
    subject: Subject,
    action: Action,
    estimate: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Map<String, Value>>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReservationCreateResponse)]
pub struct ReserveBody {
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reserved: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_ttl_ms: Option<i64>,
    scope_path: String,
    affected_scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caps: Option<CapsBody>,
    /// v0.1.26 `DenyDetail`, on a DENY.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    deny_detail: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    balances: Vec<BalanceBody>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DecisionResponse)]
pub struct DecideBody {
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caps: Option<CapsBody>,
    /// v0.1.26 `DenyDetail`, on a DENY.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    deny_detail: Option<Value>,
    affected_scopes: Vec<String>,
}

/// What a reservation stores about itself besides amounts: returned by GET and listings.
fn document(
    subject: &super::wire::Subject,
    action: &super::wire::Action,
    metadata: &Option<Map<String, Value>>,
    idempotency_key: &str,
) -> ApiResult<String> {
    metadata_json("metadata", metadata)?;
    serde_json::to_string(&serde_json::json!({
        "subject": subject,
        "action": action,
        "metadata": metadata,
        "idempotency_key": idempotency_key,
    }))
    .map_err(ApiError::internal)
}

fn check_range(field: &str, v: Option<i64>, min: i64, max: i64) -> ApiResult<()> {
    match v {
        Some(v) if !(min..=max).contains(&v) => {
            Err(ApiError::invalid_field(field, format!("must be between {min} and {max}")))
        }
        _ => Ok(()),
    }
}

fn decision_str(o: &ReserveOutcome) -> &'static str {
    match (&o.decision, &o.caps) {
        (Decision::Allow, None) => "ALLOW",
        (Decision::Allow, Some(_)) => "ALLOW_WITH_CAPS",
        (Decision::Deny(_), _) => "DENY",
    }
}

/// The reason, the caps and the `DenyDetail` of an outcome. The detail comes with the v0.1.26
/// denials (access lists, quotas); a v0.1.25 denial answers exactly as v0.1.25 did, because the
/// `runcycles` clients refuse fields their version does not know.
fn verdict(o: &ReserveOutcome) -> (Option<String>, Option<CapsBody>, Option<Value>) {
    match &o.decision {
        Decision::Deny(r) => (Some(r.clone()), None, o.deny_detail.clone()),
        Decision::Allow => (None, o.caps.clone().map(CapsBody::from), None),
    }
}

#[utoipa::path(post, path = "/v1/reservations", operation_id = "createReservation", tag = "Reservations",
    params(super::openapi::IdempotencyHeader), request_body = ReserveRequest,
    responses((status = 200, description = "The reservation, or a dry run's or a DENY's decision", body = ReserveBody), crate::http::openapi::E400_401_403_404_409_429_500_503),
    security(("ApiKeyAuth" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ReserveRequest>,
) -> ApiResult<impl IntoResponse> {
    require(&caller, Permission::ReservationsCreate)?;
    check_idempotency_key("idempotency_key", &req.idempotency_key)?;
    check_idempotency_header(&headers, &req.idempotency_key)?;
    req.action.check()?;
    check_range("ttl_ms", req.ttl_ms, TTL_MS_MIN, TTL_MS_MAX)?;
    check_range("grace_period_ms", req.grace_period_ms, 0, GRACE_MS_MAX)?;
    let tenant = caller.key.tenant_id.as_str();
    let scopes = req.subject.scopes_for(tenant)?;
    // Observe mode is a dry run that reports itself (v0.1.26 OBSERVE MODE EVALUATION RULES).
    // Without a request value the tenant's default applies, which only the script knows (it
    // reads the tenant mirror), so it may still turn a live request into an observed one.
    let observe = req.observe_mode.map(|m| m == ObserveMode::Observe);
    let dry = req.dry_run.unwrap_or(false) || observe == Some(true);
    let mode = if dry { Mode::DryRun } else { Mode::Live };
    let input = ReserveInput {
        tenant: tenant.to_string(),
        mode,
        observe,
        action: req.action.facts(&req.subject),
        unit: req.estimate.unit,
        estimate: req.estimate.amount,
        ttl_ms: req.ttl_ms,
        grace_ms: req.grace_period_ms.unwrap_or(GRACE_MS_DEFAULT),
        overage_policy: req.overage_policy,
        idempotency_key: req.idempotency_key.clone(),
        request_hash: request_hash(&req)?,
        document: document(&req.subject, &req.action, &req.metadata, &req.idempotency_key)?,
        scopes: scopes.clone(),
    };
    let rid = new_reservation_id(tenant);
    let outcome = state.ledger.reserve(&input, &rid, &ctx).await?;
    let remaining_ttl_ms = remaining_ttl(&state, tenant, &outcome).await?;
    let (reason_code, caps, deny_detail) = verdict(&outcome);
    let body = ReserveBody {
        decision: decision_str(&outcome),
        reserved: outcome.reservation_id.as_ref().map(|_| amount(req.estimate.unit, req.estimate.amount.get())),
        reservation_id: outcome.reservation_id,
        expires_at_ms: outcome.expires_at_ms,
        remaining_ttl_ms,
        scope_path: scopes.path().to_string(),
        affected_scopes: scopes.affected,
        reason_code,
        caps,
        deny_detail,
        balances: balances(&outcome.balances),
    };
    Ok((tenant_header(tenant), Json(body)))
}

/// `max(0, expires_at − now)` on the ledger clock; on a replay, 0 once the reservation is
/// no longer ACTIVE (one extra read, on the replay path only).
async fn remaining_ttl(state: &AppState, tenant: &str, o: &ReserveOutcome) -> ApiResult<Option<i64>> {
    let (Some(rid), Some(expires)) = (&o.reservation_id, o.expires_at_ms) else {
        return Ok(None);
    };
    let ttl = (expires - o.now_ms).max(0);
    if !o.replay {
        return Ok(Some(ttl));
    }
    let active = state
        .ledger
        .reservation(tenant, rid)
        .await?
        .is_some_and(|r| r.status == crate::ledger::reads::ReservationStatus::Active);
    Ok(Some(if active { ttl } else { 0 }))
}

#[utoipa::path(post, path = "/v1/decide", operation_id = "decide", tag = "Reservations",
    params(super::openapi::IdempotencyHeader), request_body = DecideRequest,
    responses((status = 200, description = "The decision", body = DecideBody), crate::http::openapi::E400_401_403_409_429_500_503),
    security(("ApiKeyAuth" = []))
)]
pub async fn decide(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<DecideRequest>,
) -> ApiResult<impl IntoResponse> {
    require(&caller, Permission::ReservationsCreate)?;
    check_idempotency_key("idempotency_key", &req.idempotency_key)?;
    check_idempotency_header(&headers, &req.idempotency_key)?;
    req.action.check()?;
    let tenant = caller.key.tenant_id.as_str();
    let scopes = req.subject.scopes_for(tenant)?;
    let input = ReserveInput {
        tenant: tenant.to_string(),
        mode: Mode::Decide,
        observe: Some(false),
        action: req.action.facts(&req.subject),
        unit: req.estimate.unit,
        estimate: req.estimate.amount,
        ttl_ms: None,
        grace_ms: 0,
        overage_policy: None,
        idempotency_key: req.idempotency_key.clone(),
        request_hash: request_hash(&req)?,
        document: document(&req.subject, &req.action, &req.metadata, &req.idempotency_key)?,
        scopes: scopes.clone(),
    };
    let outcome = state.ledger.reserve(&input, "", &ctx).await?;
    let (reason_code, caps, deny_detail) = verdict(&outcome);
    let body = DecideBody {
        decision: decision_str(&outcome),
        reason_code,
        caps,
        deny_detail,
        affected_scopes: scopes.affected,
    };
    Ok((tenant_header(tenant), Json(body)))
}
