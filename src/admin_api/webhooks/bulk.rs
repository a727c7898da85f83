//! Bulk actions over subscriptions and the webhook security config (admin key only).

use super::*;
use crate::admin_api::bulk::{check_envelope, fingerprint};
use crate::catalogue::bulk::{BULK_ROWS_MAX, Begun, BulkRequest as BulkSpec, RowOutcome};

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookBulkFilter)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<WebhookStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_type: Option<EventType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    search: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookBulkActionRequest)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    #[schema(value_type = BulkFilter)]
    filter: Object<BulkFilter>,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_opt_int")]
    expected_count: Option<i64>,
    idempotency_key: String,
}

/// `POST /v1/admin/webhooks/bulk-action`: validate, count (at most 500), compare with
/// `expected_count`, then act row by row; a repeated idempotency key replays the response.
/// The spec's `WebhookBulkActionResponse`, as `bulk_action` builds it (and a replay returns it).
#[derive(utoipa::ToSchema)]
#[schema(as = WebhookBulkActionResponse)]
#[allow(dead_code)]
pub struct BulkResponse {
    action: String,
    total_matched: u32,
    /// `{id}` per subscription changed.
    succeeded: Vec<Value>,
    /// `{id, error_code, message}` per subscription that failed.
    failed: Vec<Value>,
    /// `{id, reason}` per subscription already in the requested state.
    skipped: Vec<Value>,
    idempotency_key: String,
}

#[utoipa::path(post, path = "/v1/admin/webhooks/bulk-action", operation_id = "bulkActionWebhooks", tag = "Webhooks",
    request_body = BulkRequest,
    responses((status = 200, description = "What the action did", body = BulkResponse), crate::http::openapi::E400_401_403_409_500_503)
)]
pub async fn bulk_action(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(Object(req)): JsonBody<Object<BulkRequest>>,
) -> ApiResult<Json<Value>> {
    if !matches!(req.action.as_str(), "PAUSE" | "RESUME" | "DELETE") {
        return Err(ApiError::invalid_field("action", "must be one of PAUSE, RESUME, DELETE"));
    }
    check_envelope(&req.idempotency_key, req.expected_count)?;
    no_nul("idempotency_key", Some(&req.idempotency_key))?;
    let f = &req.filter.0;
    no_nul("filter.tenant_id", f.tenant_id.as_deref())?;
    no_nul("filter.search", f.search.as_deref())?;
    if f.tenant_id.is_none() && f.status.is_none() && f.event_type.is_none() && f.search.is_none() {
        return Err(ApiError::invalid_field(
            "filter",
            "must set at least one of tenant_id, status, event_type, search",
        ));
    }
    let search = search_param(f.search.as_deref())?;
    let bulk = BulkSpec {
        operation: "bulkActionWebhooks",
        scope: f.tenant_id.clone().unwrap_or_default(),
        action: req.action.clone(),
        idempotency_key: req.idempotency_key.clone(),
        request_hash: fingerprint(&req)?,
        expected_count: req.expected_count,
        filter: serde_json::to_value(f).map_err(ApiError::internal)?,
        noun: "subscriptions",
    };
    let mut bulk = match state.catalogue.bulk_begin(bulk).await? {
        Begun::Replay(previous) => return Ok(Json(previous)),
        Begun::Fresh(bulk) => *bulk,
    };
    let filter = Filter { tenant_id: f.tenant_id.clone(), status: f.status, event_type: f.event_type, search };
    let ids = state.catalogue.matching_webhook_ids(&filter, BULK_ROWS_MAX as i64 + 1).await?;
    let matched = if ids.len() > BULK_ROWS_MAX { state.catalogue.count_webhooks(&filter).await? } else { ids.len() };
    bulk.admit(matched)?;
    let actor = Actor::admin(ctx);
    let correlation = bulk.correlation_id("webhook_bulk_action", &actor);
    for id in &ids {
        let outcome = match state.catalogue.bulk_webhook_row(&actor, id, &req.action, &correlation).await {
            Ok(None) => RowOutcome::Succeeded,
            Ok(Some(reason)) => RowOutcome::Skipped(reason),
            Err((code, message)) => RowOutcome::failed(code, message),
        };
        bulk.record(id, outcome);
    }
    let tenant = filter.tenant_id.as_deref();
    Ok(Json(state.catalogue.bulk_finish_webhooks(bulk, &actor, tenant, &correlation).await?))
}

#[utoipa::path(get, path = "/v1/admin/config/webhook-security", operation_id = "getWebhookSecurityConfig", tag = "Webhooks",
    responses((status = 200, description = "The webhook security config", body = SecurityConfig), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn get_security_config(State(state): State<AppState>, _: AdminAuth) -> Json<SecurityConfig> {
    Json(state.catalogue.security_config())
}

#[utoipa::path(put, path = "/v1/admin/config/webhook-security", operation_id = "updateWebhookSecurityConfig", tag = "Webhooks",
    request_body = SecurityConfig,
    responses((status = 200, description = "The stored config", body = SecurityConfig), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn put_security_config(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(Object(config)): JsonBody<Object<SecurityConfig>>,
) -> ApiResult<Json<SecurityConfig>> {
    Ok(Json(state.catalogue.put_security_config(&Actor::admin(ctx), config).await?))
}
