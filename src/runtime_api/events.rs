//! `POST /v1/events`: a usage debit without a reservation; 201 on success.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{check_idempotency_header, require, tenant_header};
use super::settle::Metrics;
use super::wire::{
    Action, Amount, BalanceBody, Subject, amount, balances, check_idempotency_key, metadata_json, request_hash,
};
use crate::auth::TenantAuth;
use crate::domain::{CommitOveragePolicy, Permission};
use crate::error::ApiResult;
use crate::http::context::RequestCtx;
use crate::http::extract::JsonBody;
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = EventCreateRequest)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    idempotency_key: String,
    subject: Subject,
    action: Action,
    actual: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    overage_policy: Option<CommitOveragePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<Metrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_time_ms: Option<crate::domain::amount::Units>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Map<String, Value>>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = EventCreateResponse)]
pub struct EventBody {
    status: &'static str,
    event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    charged: Option<Amount>,
    balances: Vec<BalanceBody>,
}

#[utoipa::path(post, path = "/v1/events", operation_id = "createEvent", tag = "Events",
    params(super::openapi::IdempotencyHeader), request_body = EventRequest,
    responses((status = 201, description = "Applied", body = EventBody), crate::http::openapi::E400_401_403_404_409_429_500_503),
    security(("ApiKeyAuth" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<EventRequest>,
) -> ApiResult<impl IntoResponse> {
    require(&caller, Permission::ReservationsCommit)?;
    check_idempotency_key("idempotency_key", &req.idempotency_key)?;
    check_idempotency_header(&headers, &req.idempotency_key)?;
    req.action.check()?;
    if let Some(m) = &req.metrics {
        m.check("metrics")?;
    }
    metadata_json("metadata", &req.metadata)?;
    let tenant = caller.key.tenant_id.as_str();
    let scopes = req.subject.scopes_for(tenant)?;
    let outcome = state
        .ledger
        .event(
            tenant,
            &req.idempotency_key,
            &request_hash(&req)?,
            req.actual.unit,
            req.actual.amount,
            req.overage_policy,
            &scopes,
            &Metrics::usage_json(req.metrics.as_ref(), &caller.key.key_id, Some(req.action.name.as_str()))?,
            &ctx,
        )
        .await?;
    let body = EventBody {
        status: "APPLIED",
        event_id: outcome.event_id,
        charged: outcome.capped.then(|| amount(outcome.unit, outcome.charged)),
        balances: balances(&outcome.balances),
    };
    Ok((StatusCode::CREATED, tenant_header(tenant), Json(body)))
}
