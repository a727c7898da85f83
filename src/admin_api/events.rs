//! The event log: `GET /v1/admin/events` and `/v1/admin/events/{event_id}` (admin key), and
//! the tenant's own view `GET /v1/events` (tenant key with `events:read`), which holds only
//! the tenant-accessible categories (budget, reservation, tenant).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::audit::time_param;
use crate::auth::{AdminAuth, TenantAuth};
use crate::domain::Permission;
use crate::domain::event::{Event, EventCategory, EventType};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::extract::{PathParam, QueryParams};
use crate::http::page::{self, ListParams, enum_param, no_nul, search_param};
use crate::state::AppState;
use crate::store::pg::events::Filter;
use crate::store::pg::page::SortColumn;

const fn text(expr: &'static str) -> SortColumn {
    SortColumn { expr, cast: "text", id_expr: "event_id", id_cast: "text" }
}

const SORTS: &[(&str, SortColumn)] = &[
    ("timestamp", SortColumn { expr: "occurred_at", cast: "timestamptz", id_expr: "event_id", id_cast: "text" }),
    ("event_type", text("event_type")),
    ("category", text("category")),
    ("scope", text("coalesce(scope, '')")),
    ("tenant_id", text("tenant_id")),
];

/// Longest id, scope or correlation filter accepted.
const FILTER_LEN_MAX: usize = 1024;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    tenant_id: Option<String>,
    event_type: Option<String>,
    category: Option<String>,
    scope: Option<String>,
    correlation_id: Option<String>,
    trace_id: Option<String>,
    request_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    search: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = EventListResponse)]
pub struct ListBody {
    events: Vec<Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

fn text_param(name: &str, raw: Option<String>) -> ApiResult<Option<String>> {
    match raw.filter(|s| !s.is_empty()) {
        Some(s) if s.len() > FILTER_LEN_MAX => {
            Err(ApiError::invalid_field(name, format!("must be at most {FILTER_LEN_MAX} characters")))
        }
        other => {
            no_nul(name, other.as_deref())?;
            Ok(other)
        }
    }
}

fn type_and_category(q: &ListQuery) -> ApiResult<(Option<EventType>, Option<EventCategory>)> {
    let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let categories: Vec<&str> = EventCategory::ALL.iter().map(|c| c.as_str()).collect();
    Ok((
        enum_param("event_type", q.event_type.as_deref(), EventType::parse, &types)?,
        enum_param("category", q.category.as_deref(), EventCategory::parse, &categories)?,
    ))
}

async fn serve(state: &AppState, filter: Filter, page: &ListParams) -> ApiResult<Json<ListBody>> {
    let (spec, paging) = page::sql(page, SORTS, "timestamp", &filter)?;
    let page = paging.finish(state.catalogue.list_events(&filter, &spec).await?);
    Ok(Json(ListBody { has_more: page.has_more, next_cursor: page.next_cursor, events: page.items }))
}

#[utoipa::path(get, path = "/v1/admin/events", operation_id = "listEvents", tag = "Events",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of events", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let (event_type, category) = type_and_category(&q)?;
    if let Some(t) = &q.trace_id
        && !t.is_empty()
        && !(t.len() == 32 && t.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(ApiError::invalid_field("trace_id", "must be 32 lowercase hex characters"));
    }
    let filter = Filter {
        tenants: text_param("tenant_id", q.tenant_id)?.into_iter().collect(),
        event_type,
        category,
        categories_in: Vec::new(),
        scope: text_param("scope", q.scope)?,
        correlation_id: text_param("correlation_id", q.correlation_id)?,
        trace_id: text_param("trace_id", q.trace_id)?,
        request_id: text_param("request_id", q.request_id)?,
        from: time_param("from", q.from)?,
        to: time_param("to", q.to)?,
        search: search_param(no_nul("search", q.search.as_deref())?)?,
    };
    serve(&state, filter, &q.page).await
}

#[utoipa::path(get, path = "/v1/admin/events/{event_id}", operation_id = "getEvent", tag = "Events",
    params(("event_id" = String, Path, description = "The event's id")),
    responses((status = 200, description = "The event", body = crate::domain::event::Event), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn get(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<Event>> {
    // An id longer than any filter, or with a NUL, names no stored event.
    let findable = id.len() <= FILTER_LEN_MAX && !id.contains('\0');
    let event = if findable { state.catalogue.get_event(&id).await? } else { None };
    event.map(Json).ok_or_else(|| ApiError::new(ErrorCode::EventNotFound, format!("event {id} not found")))
}

/// `GET /v1/events`: the authenticated tenant's budget, reservation and tenant events.
#[utoipa::path(get, path = "/v1/events", operation_id = "listTenantEvents", tag = "Events",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of the tenant's events", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list_for_tenant(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    caller.require(Permission::EventsRead, ErrorCode::InsufficientPermissions)?;
    for (name, given) in
        [("tenant_id", &q.tenant_id), ("trace_id", &q.trace_id), ("request_id", &q.request_id), ("search", &q.search)]
    {
        if given.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::invalid_field(name, "is not a filter of the tenant event list"));
        }
    }
    let (event_type, category) = type_and_category(&q)?;
    if let Some(t) = event_type.filter(|t| !t.category().tenant_accessible()) {
        return Err(ApiError::invalid_field("event_type", format!("{t} is an admin-only event type")));
    }
    if let Some(c) = category.filter(|c| !c.tenant_accessible()) {
        return Err(ApiError::invalid_field("category", format!("{c} is an admin-only category")));
    }
    let filter = Filter {
        tenants: vec![caller.key.tenant_id.to_string()],
        event_type,
        category,
        categories_in: EventCategory::ALL.iter().copied().filter(|c| c.tenant_accessible()).collect(),
        scope: text_param("scope", q.scope)?,
        correlation_id: text_param("correlation_id", q.correlation_id)?,
        from: time_param("from", q.from)?,
        to: time_param("to", q.to)?,
        ..Filter::default()
    };
    serve(&state, filter, &q.page).await
}
