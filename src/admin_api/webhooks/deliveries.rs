//! The test probe, the deliveries listing and replay of one subscription.

use super::*;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WebhookTestResponse)]
pub struct TestBody {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<u16>,
    response_time_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    event_id: String,
}

async fn test_as(state: &AppState, actor: &Actor, viewer: Viewer<'_>, id: &str) -> ApiResult<Json<TestBody>> {
    let (o, event_id) = state.catalogue.test_webhook(actor, viewer, id).await?;
    Ok(Json(TestBody {
        success: o.success,
        response_status: o.response_status,
        response_time_ms: o.response_time_ms,
        error_message: o.error_message,
        event_id,
    }))
}

#[utoipa::path(post, path = "/v1/admin/webhooks/{subscription_id}/test", operation_id = "testWebhookSubscription", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id")),
    responses((status = 200, description = "The test delivery's outcome", body = TestBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn test(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<TestBody>> {
    test_as(&state, &Actor::admin(ctx), Viewer::Admin, &id).await
}

#[utoipa::path(post, path = "/v1/webhooks/{subscription_id}/test", operation_id = "testTenantWebhook", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id")),
    responses((status = 200, description = "The test delivery's outcome", body = TestBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn test_for_tenant(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<TestBody>> {
    let (actor, viewer) = tenant_route(&caller, ctx, Permission::WebhooksWrite)?;
    test_as(&state, &actor, viewer, &id).await
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryBody {
    delivery_id: String,
    subscription_id: String,
    event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_type: Option<EventType>,
    status: DeliveryStatus,
    #[serde(with = "time::serde::rfc3339")]
    attempted_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    completed_at: Option<OffsetDateTime>,
    attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_time_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    next_retry_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_flags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent_inbound_valid: Option<bool>,
}

impl From<Delivery> for DeliveryBody {
    fn from(d: Delivery) -> Self {
        let status = delivery_status(&d.status);
        Self {
            event_type: EventType::parse(&d.event_type),
            next_retry_at: if status == DeliveryStatus::Retrying { d.next_attempt_at } else { None },
            status,
            delivery_id: d.delivery_id,
            subscription_id: d.subscription_id,
            event_id: d.event_id,
            attempted_at: d.attempted_at,
            completed_at: d.completed_at,
            attempts: d.attempts,
            response_status: d.response_status,
            response_time_ms: d.response_time_ms,
            error_message: d.error_message,
            trace_id: d.trace_id,
            trace_flags: d.trace_flags,
            traceparent_inbound_valid: d.traceparent_inbound_valid,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    /// Page size (the list's bounds apply; a value outside them is a 400).
    #[param(value_type = Option<u32>, minimum = 1)]
    limit: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WebhookDeliveryListResponse)]
pub struct DeliveryListBody {
    deliveries: Vec<DeliveryBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

/// Newest attempts first.
const DELIVERY_SORTS: &[(&str, SortColumn)] = &[(
    "attempted_at",
    SortColumn { expr: "attempted_at", cast: "timestamptz", id_expr: "delivery_id", id_cast: "text" },
)];

async fn deliveries_as(
    state: &AppState,
    viewer: Viewer<'_>,
    id: &str,
    q: DeliveryQuery,
) -> ApiResult<Json<DeliveryListBody>> {
    let statuses: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
    let filter = DeliveryFilter {
        status: enum_param("status", q.status.as_deref(), DeliveryStatus::parse, &statuses)?,
        from: time_param("from", q.from)?,
        to: time_param("to", q.to)?,
    };
    let params = ListParams { sort_by: None, sort_dir: None, cursor: q.cursor, limit: q.limit };
    // A cursor belongs to one subscription's deliveries as much as to the filters.
    let (spec, paging) = page::sql(&params, DELIVERY_SORTS, "attempted_at", &(id, &filter))?;
    let page = paging.finish(state.catalogue.list_deliveries(viewer, id, &filter, &spec).await?);
    Ok(Json(DeliveryListBody {
        has_more: page.has_more,
        next_cursor: page.next_cursor,
        deliveries: page.items.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/admin/webhooks/{subscription_id}/deliveries", operation_id = "listWebhookDeliveries", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id"), DeliveryQuery),
    responses((status = 200, description = "A page of deliveries", body = DeliveryListBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn deliveries(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<DeliveryListBody>> {
    deliveries_as(&state, Viewer::Admin, &id, q).await
}

#[utoipa::path(get, path = "/v1/webhooks/{subscription_id}/deliveries", operation_id = "listTenantWebhookDeliveries", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id"), DeliveryQuery),
    responses((status = 200, description = "A page of deliveries", body = DeliveryListBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn deliveries_for_tenant(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<DeliveryListBody>> {
    let (_, viewer) = tenant_route(&caller, ctx, Permission::WebhooksRead)?;
    deliveries_as(&state, viewer, &id, q).await
}

/// The replay body's schema does not forbid other members (unlike the other webhook bodies),
/// so members Tollgate does not know are ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ReplayRequest {
    #[serde(default, with = "time::serde::rfc3339::option")]
    from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    to: Option<OffsetDateTime>,
    event_types: Option<Vec<EventType>>,
    #[serde(default, deserialize_with = "de_opt_int")]
    max_events: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReplayResponse)]
pub struct ReplayBody {
    replay_id: String,
    events_queued: usize,
    estimated_completion_seconds: u64,
}

#[utoipa::path(post, path = "/v1/admin/webhooks/{subscription_id}/replay", operation_id = "replayEvents", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id")), request_body = ReplayRequest,
    responses((status = 202, description = "Replay queued", body = ReplayBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn replay(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    JsonBody(Object(req)): JsonBody<Object<ReplayRequest>>,
) -> ApiResult<(StatusCode, Json<ReplayBody>)> {
    // An unknown subscription is 404 whatever the body says; then the window, whose bounds are
    // optional (the spec's): from the first event, to now.
    state.catalogue.get_webhook(Viewer::Admin, &id).await?;
    let from = req.from.unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let to = req.to.unwrap_or_else(OffsetDateTime::now_utc);
    if to < from {
        return Err(ApiError::invalid_field("to", "must not be before from"));
    }
    let max_events = req.max_events.unwrap_or(100);
    if !(1..=1000).contains(&max_events) {
        return Err(ApiError::invalid_field("max_events", "must be from 1 to 1000"));
    }
    let (replay_id, queued) =
        state.catalogue.replay(&Actor::admin(ctx), &id, (from, to), req.event_types, max_events as usize).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ReplayBody {
            replay_id,
            events_queued: queued,
            estimated_completion_seconds: (queued as u64).div_ceil(10),
        }),
    ))
}
