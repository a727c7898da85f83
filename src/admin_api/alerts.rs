//! Alerts (extension): `GET /v1/admin/alerts?severity=&resolved=&tenant_id=&limit=` (cursor-paged,
//! newest first) and `POST /v1/admin/alerts/{alert_id}/resolve` (audited). Alerts are raised and
//! resolved by the outbox drain and the burn-rate check (`events::alerts`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::AdminAuth;
use crate::catalogue::audit::Actor;
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::{PathParam, QueryParams};
use crate::http::page::{self, ListParams, no_nul};
use crate::state::AppState;
use crate::store::pg::alerts::{Alert, Filter};
use crate::store::pg::page::SortColumn;

const SORTS: &[(&str, SortColumn)] =
    &[("created_at", SortColumn { expr: "created_at", cast: "timestamptz", id_expr: "alert_id", id_cast: "text" })];

/// Longest tenant id or alert id accepted.
const ID_LEN_MAX: usize = 256;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// info, warning or critical.
    severity: Option<String>,
    /// true or false.
    resolved: Option<String>,
    tenant_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

/// One alert (extension; the ARES alert's `id`, `severity`, `message`, `tenant_id`,
/// `created_at`, `resolved`, plus the budget it is about and why).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Alert)]
pub struct AlertBody {
    id: String,
    /// info, warning or critical.
    severity: String,
    message: String,
    tenant_id: String,
    scope: String,
    unit: String,
    /// threshold, exhausted, over_limit, debt or burn_rate.
    kind: String,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    resolved: bool,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    resolved_at: Option<OffsetDateTime>,
    /// `system` when the condition cleared, else the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_by: Option<String>,
}

impl From<Alert> for AlertBody {
    fn from(a: Alert) -> Self {
        Self {
            id: a.alert_id,
            severity: a.severity,
            message: a.message,
            tenant_id: a.tenant_id,
            scope: a.scope,
            unit: a.unit,
            kind: a.kind,
            details: a.details,
            created_at: a.created_at,
            resolved: a.resolved,
            resolved_at: a.resolved_at,
            resolved_by: a.resolved_by,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AlertListResponse)]
pub struct ListBody {
    alerts: Vec<AlertBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

fn filter_of(q: &ListQuery) -> ApiResult<Filter> {
    let severity = q.severity.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if severity.is_some_and(|s| !matches!(s, "info" | "warning" | "critical")) {
        return Err(ApiError::invalid_field("severity", "must be info, warning or critical"));
    }
    let resolved = match q.resolved.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::invalid_field("resolved", "must be true or false")),
    };
    let tenant = q.tenant_id.as_deref().filter(|s| !s.is_empty());
    no_nul("tenant_id", tenant)?;
    if tenant.is_some_and(|t| t.len() > ID_LEN_MAX) {
        return Err(ApiError::invalid_field("tenant_id", format!("must be at most {ID_LEN_MAX} characters")));
    }
    Ok(Filter { tenant: tenant.map(String::from), severity: severity.map(String::from), resolved })
}

#[utoipa::path(get, path = "/v1/admin/alerts", operation_id = "listAlerts", tag = "Alerts",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of alerts, newest first (extension)", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let filter = filter_of(&q)?;
    let (spec, paging) = page::sql(&q.page, SORTS, "created_at", &filter)?;
    let page = paging.finish(state.catalogue.list_alerts(&filter, &spec).await?);
    Ok(Json(ListBody {
        alerts: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        has_more: page.has_more,
    }))
}

#[utoipa::path(post, path = "/v1/admin/alerts/{alert_id}/resolve", operation_id = "resolveAlert", tag = "Alerts",
    params(("alert_id" = String, Path, description = "The alert's id")),
    responses((status = 200, description = "The resolved alert (extension)", body = AlertBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn resolve(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<AlertBody>> {
    if id.len() > ID_LEN_MAX {
        return Err(ApiError::not_found(format!("alert {id} not found")));
    }
    let alert = state.catalogue.resolve_alert(&Actor::admin(ctx), &id).await?;
    Ok(Json(alert.into()))
}
