//! Listing webhook subscriptions: the admin listing across owners and the tenant's own.

use super::*;

const fn text(expr: &'static str) -> SortColumn {
    SortColumn { expr, cast: "text", id_expr: "subscription_id", id_cast: "text" }
}

const SORTS: &[(&str, SortColumn)] = &[
    (
        "consecutive_failures",
        SortColumn { expr: "consecutive_failures", cast: "integer", id_expr: "subscription_id", id_cast: "text" },
    ),
    ("url", text("url")),
    ("tenant_id", text("tenant_id")),
    ("status", text("status")),
];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    tenant_id: Option<String>,
    /// The tenant flavour's filter under the admin key.
    tenant: Option<String>,
    status: Option<String>,
    event_type: Option<String>,
    search: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WebhookListResponse)]
pub struct ListBody {
    subscriptions: Vec<SubscriptionBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

fn status_param(raw: Option<&str>) -> ApiResult<Option<WebhookStatus>> {
    let statuses: Vec<&str> = WebhookStatus::ALL.iter().map(|s| s.as_str()).collect();
    enum_param("status", raw, WebhookStatus::parse, &statuses)
}

fn event_type_param(name: &str, raw: Option<&str>) -> ApiResult<Option<EventType>> {
    let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    enum_param(name, raw, EventType::parse, &types)
}

async fn list_with(state: &AppState, filter: Filter, page: &ListParams) -> ApiResult<Json<ListBody>> {
    let (spec, paging) = page::sql(page, SORTS, "consecutive_failures", &filter)?;
    let page = paging.finish(state.catalogue.list_webhooks(&filter, &spec).await?);
    Ok(Json(ListBody {
        has_more: page.has_more,
        next_cursor: page.next_cursor,
        subscriptions: page.items.into_iter().map(|s| SubscriptionBody::new(s, None)).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/admin/webhooks", operation_id = "listWebhookSubscriptions", tag = "Webhooks",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of subscriptions", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    no_nul("tenant_id", q.tenant_id.as_deref())?;
    let filter = Filter {
        tenant_id: q.tenant_id.filter(|t| !t.is_empty()),
        status: status_param(q.status.as_deref())?,
        event_type: event_type_param("event_type", q.event_type.as_deref())?,
        search: search_param(no_nul("search", q.search.as_deref())?)?,
    };
    list_with(&state, filter, &q.page).await
}

/// `GET /v1/webhooks`: the tenant's subscriptions (under the admin key, `tenant` names it).
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "listTenantWebhooks", tag = "Webhooks",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of the tenant's subscriptions", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list_for_tenant(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    no_nul("tenant", q.tenant.as_deref())?;
    let tenant = match caller {
        Caller::Admin => q.tenant.clone().filter(|t| !t.is_empty()).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                "tenant query parameter is required when using admin key authentication",
            )
            .with_details(json!({ "field": "tenant" }))
        })?,
        Caller::Tenant(t) => {
            t.require(Permission::WebhooksRead, ErrorCode::InsufficientPermissions)?;
            let own = t.key.tenant_id.to_string();
            if q.tenant.as_deref().is_some_and(|given| !given.is_empty() && given != own) {
                return Err(ApiError::invalid_field("tenant", "must be the API key's own tenant"));
            }
            own
        }
    };
    let filter = Filter { tenant_id: Some(tenant), status: status_param(q.status.as_deref())?, ..Filter::default() };
    list_with(&state, filter, &q.page).await
}
