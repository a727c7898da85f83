//! `POST /v1/reservations/{id}/commit`, `/release`, `/extend`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{check_idempotency_header, owned_by, owner_for_admin, require, tenant_header};
use super::wire::{Amount, BalanceBody, amount, balances, check_idempotency_key, metadata_json, request_hash};
use crate::auth::{AnyAuth, Caller, TenantAuth};
use crate::catalogue::audit::Actor;
use crate::domain::Permission;
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, PathParam};
use crate::state::AppState;

pub const EXTEND_BY_MS_MAX: i64 = 86_400_000;
pub const RELEASE_REASON_LEN_MAX: usize = 256;
pub const MODEL_VERSION_LEN_MAX: usize = 128;

/// A non-negative integer of any size (the spec's metric counters have no int64 bound, and
/// Tollgate only records them).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Count(f64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Number::deserialize(d)?;
        let non_negative_integer = v.is_u64() || v.as_f64().is_some_and(|f| f >= 0.0 && f.fract() == 0.0);
        if !non_negative_integer {
            return Err(serde::de::Error::custom(format!("{v} is not a non-negative integer")));
        }
        Ok(Count(v.as_f64().unwrap_or_default()))
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StandardMetrics)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_input: Option<Count>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_output: Option<Count>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<Count>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<Map<String, Value>>,
}

impl Metrics {
    /// The usage the ledger carries into the outbox with a commit or an event (the drain turns
    /// it into a token usage record): the caller's key id and these metrics, `model` first when
    /// known (the script looks for that prefix before it falls back to the action's name).
    pub fn usage_json(metrics: Option<&Metrics>, key_id: &str, model: Option<&str>) -> ApiResult<String> {
        let model = metrics.and_then(|m| m.model_version.as_deref()).or(model).filter(|m| !m.is_empty());
        let key = serde_json::to_string(key_id).map_err(ApiError::internal)?;
        let m = serde_json::to_string(&metrics).map_err(ApiError::internal)?;
        Ok(match model {
            Some(model) => {
                let model = serde_json::to_string(model).map_err(ApiError::internal)?;
                format!("{{\"model\":{model},\"k\":{key},\"m\":{m}}}")
            }
            None => format!("{{\"k\":{key},\"m\":{m}}}"),
        })
    }

    pub fn check(&self, field: &str) -> ApiResult<()> {
        if self.model_version.as_ref().is_some_and(|m| m.chars().count() > MODEL_VERSION_LEN_MAX) {
            return Err(ApiError::invalid_field(
                &format!("{field}.model_version"),
                format!("must be at most {MODEL_VERSION_LEN_MAX} characters"),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    idempotency_key: String,
    actual: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<Metrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Map<String, Value>>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CommitResponse)]
pub struct CommitBody {
    status: &'static str,
    charged: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    released: Option<Amount>,
    balances: Vec<BalanceBody>,
}

#[utoipa::path(post, path = "/v1/reservations/{reservation_id}/commit", operation_id = "commitReservation", tag = "Reservations",
    params(("reservation_id" = String, Path, description = "The reservation's id"), super::openapi::IdempotencyHeader), request_body = CommitRequest,
    responses((status = 200, description = "Committed", body = CommitBody), crate::http::openapi::E400_401_403_404_409_410_429_500_503),
    security(("ApiKeyAuth" = []))
)]
pub async fn commit(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    headers: HeaderMap,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<CommitRequest>,
) -> ApiResult<impl IntoResponse> {
    require(&caller, Permission::ReservationsCommit)?;
    check_idempotency_key("idempotency_key", &req.idempotency_key)?;
    check_idempotency_header(&headers, &req.idempotency_key)?;
    if let Some(m) = &req.metrics {
        m.check("metrics")?;
    }
    let tenant = caller.key.tenant_id.as_str();
    owned_by(&state.ledger, tenant, &id).await?;
    let outcome = state
        .ledger
        .commit(
            tenant,
            &id,
            &req.idempotency_key,
            &request_hash(&req)?,
            req.actual.unit,
            req.actual.amount,
            &metadata_json("metadata", &req.metadata)?,
            &Metrics::usage_json(req.metrics.as_ref(), &caller.key.key_id, None)?,
            &ctx,
        )
        .await?;
    let body = CommitBody {
        status: "COMMITTED",
        charged: amount(outcome.unit, outcome.charged),
        released: (outcome.released > 0).then(|| amount(outcome.unit, outcome.released)),
        balances: balances(&outcome.balances),
    };
    Ok((tenant_header(tenant), Json(body)))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    idempotency_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReleaseResponse)]
pub struct ReleaseBody {
    status: &'static str,
    released: Amount,
    balances: Vec<BalanceBody>,
}

/// Release by the tenant's key, or by the admin key on the tenant's behalf (audited as
/// `admin_on_behalf_of` in the same Postgres transaction that commits after the ledger).
#[utoipa::path(post, path = "/v1/reservations/{reservation_id}/release", operation_id = "releaseReservation", tag = "Reservations",
    params(("reservation_id" = String, Path, description = "The reservation's id"), super::openapi::IdempotencyHeader), request_body = ReleaseRequest,
    responses((status = 200, description = "Released", body = ReleaseBody), crate::http::openapi::E400_401_403_404_409_410_429_500_503),
    security(("ApiKeyAuth" = []), ("AdminKeyAuth" = []))
)]
pub async fn release(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    headers: HeaderMap,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<ReleaseRequest>,
) -> ApiResult<impl IntoResponse> {
    check_idempotency_key("idempotency_key", &req.idempotency_key)?;
    check_idempotency_header(&headers, &req.idempotency_key)?;
    let reason = req.reason.clone().unwrap_or_default();
    if reason.chars().count() > RELEASE_REASON_LEN_MAX {
        return Err(ApiError::invalid_field("reason", format!("must be at most {RELEASE_REASON_LEN_MAX} characters")));
    }
    let hash = request_hash(&req)?;
    let (tenant, outcome) = match caller {
        Caller::Tenant(t) => {
            require(&t, Permission::ReservationsRelease)?;
            let tenant = t.key.tenant_id.to_string();
            owned_by(&state.ledger, &tenant, &id).await?;
            let outcome = state.ledger.release(&tenant, &id, &req.idempotency_key, &hash, &reason, &ctx).await?;
            (tenant, outcome)
        }
        Caller::Admin => {
            let tenant = owner_for_admin(&id)?;
            let actor = Actor { actor_type: "admin_on_behalf_of", key_id: None, ctx };
            let idem = (req.idempotency_key.as_str(), hash.as_str());
            let outcome = state.catalogue.release_on_behalf(&actor, &tenant, &id, idem, &reason).await?;
            (tenant, outcome)
        }
    };
    let body = ReleaseBody {
        status: "RELEASED",
        released: amount(outcome.unit, outcome.released),
        balances: balances(&outcome.balances),
    };
    Ok((tenant_header(&tenant), Json(body)))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ReservationExtendRequest)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    idempotency_key: String,
    #[serde(deserialize_with = "crate::domain::amount::de_int")]
    extend_by_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Map<String, Value>>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReservationExtendResponse)]
pub struct ExtendBody {
    status: &'static str,
    expires_at_ms: i64,
    remaining_ttl_ms: i64,
}

#[utoipa::path(post, path = "/v1/reservations/{reservation_id}/extend", operation_id = "extendReservation", tag = "Reservations",
    params(("reservation_id" = String, Path, description = "The reservation's id"), super::openapi::IdempotencyHeader), request_body = ExtendRequest,
    responses((status = 200, description = "Extended", body = ExtendBody), crate::http::openapi::E400_401_403_404_409_410_429_500_503),
    security(("ApiKeyAuth" = []))
)]
pub async fn extend(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    headers: HeaderMap,
    PathParam(id): PathParam<String>,
    JsonBody(req): JsonBody<ExtendRequest>,
) -> ApiResult<impl IntoResponse> {
    require(&caller, Permission::ReservationsExtend)?;
    check_idempotency_key("idempotency_key", &req.idempotency_key)?;
    check_idempotency_header(&headers, &req.idempotency_key)?;
    if !(1..=EXTEND_BY_MS_MAX).contains(&req.extend_by_ms) {
        return Err(ApiError::invalid_field("extend_by_ms", format!("must be between 1 and {EXTEND_BY_MS_MAX}")));
    }
    metadata_json("metadata", &req.metadata)?;
    let tenant = caller.key.tenant_id.as_str();
    owned_by(&state.ledger, tenant, &id).await?;
    let outcome =
        state.ledger.extend(tenant, &id, &req.idempotency_key, &request_hash(&req)?, req.extend_by_ms).await?;
    let body = ExtendBody {
        status: "ACTIVE",
        expires_at_ms: outcome.expires_at_ms,
        remaining_ttl_ms: outcome.remaining_ttl_ms,
    };
    Ok((tenant_header(tenant), Json(body)))
}
