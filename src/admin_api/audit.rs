//! `GET /v1/admin/audit/logs` (the spec's filters) and `GET /v1/x-tollgate/audit/verify`
//! (walks the hash chain; the same check as `tollgate audit verify`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::auth::AdminAuth;
use crate::domain::audit::{AuditEntry, ChainReport};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::QueryParams;
use crate::http::page::{self, ListParams, search_param};
use crate::state::AppState;
use crate::store::pg::audit::Filter;
use crate::store::pg::page::SortColumn;

/// IN-list filters take at most this many comma-separated values (the spec's maxItems).
const LIST_FILTER_ITEMS_MAX: usize = 25;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AuditLogEntry)]
pub struct EntryBody {
    log_id: String,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip: Option<String>,
    operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    status: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
}

impl From<AuditEntry> for EntryBody {
    fn from(e: AuditEntry) -> Self {
        Self {
            log_id: e.log_id.to_string(),
            timestamp: e.timestamp,
            tenant_id: e.tenant_id,
            key_id: e.key_id,
            user_agent: e.user_agent,
            source_ip: e.source_ip,
            operation: e.operation,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            request_id: e.request_id,
            trace_id: e.trace_id,
            status: e.status,
            error_code: e.error_code,
            metadata: e.metadata,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    tenant_id: Option<String>,
    key_id: Option<String>,
    operation: Option<String>,
    status: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    error_code: Option<String>,
    error_code_exclude: Option<String>,
    status_min: Option<String>,
    status_max: Option<String>,
    from: Option<String>,
    to: Option<String>,
    search: Option<String>,
    trace_id: Option<String>,
    request_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AuditLogListResponse)]
pub struct ListBody {
    logs: Vec<EntryBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn csv(name: &str, raw: Option<String>) -> ApiResult<Vec<String>> {
    let items: Vec<String> =
        raw.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if items.len() > LIST_FILTER_ITEMS_MAX {
        return Err(ApiError::invalid_field(name, format!("takes at most {LIST_FILTER_ITEMS_MAX} values")));
    }
    Ok(items)
}

fn status_param(name: &str, raw: Option<String>, range: std::ops::RangeInclusive<i32>) -> ApiResult<Option<i32>> {
    match non_empty(raw) {
        None => Ok(None),
        Some(s) => match s.parse::<i32>() {
            Ok(v) if range.contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::invalid_field(
                name,
                format!("must be an integer from {} to {}", range.start(), range.end()),
            )),
        },
    }
}

pub fn time_param(name: &str, raw: Option<String>) -> ApiResult<Option<OffsetDateTime>> {
    non_empty(raw)
        .map(|s| {
            OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiError::invalid_field(name, "must be an RFC 3339 date-time"))
        })
        .transpose()
}

pub(super) fn filter_of(q: ListQuery) -> ApiResult<(Filter, ListParams)> {
    let status = status_param("status", q.status, 100..=599)?;
    let status_min = status_param("status_min", q.status_min, 100..=599)?;
    let status_max = status_param("status_max", q.status_max, 100..=599)?;
    if status.is_some() && (status_min.is_some() || status_max.is_some()) {
        return Err(ApiError::invalid_field("status", "cannot be combined with status_min or status_max"));
    }
    if let (Some(lo), Some(hi)) = (status_min, status_max)
        && lo > hi
    {
        return Err(ApiError::invalid_field("status_min", "must not exceed status_max"));
    }
    let trace_id = non_empty(q.trace_id);
    if let Some(t) = &trace_id
        && !(t.len() == 32 && t.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(ApiError::invalid_field("trace_id", "must be 32 lowercase hex characters"));
    }
    let filter = Filter {
        tenant_id: non_empty(q.tenant_id),
        key_id: non_empty(q.key_id),
        operation: csv("operation", q.operation)?,
        resource_type: csv("resource_type", q.resource_type)?,
        resource_id: non_empty(q.resource_id),
        error_code: csv("error_code", q.error_code)?,
        error_code_exclude: csv("error_code_exclude", q.error_code_exclude)?,
        status,
        status_min,
        status_max,
        from: time_param("from", q.from)?,
        to: time_param("to", q.to)?,
        search: search_param(q.search.as_deref())?,
        trace_id,
        request_id: non_empty(q.request_id),
    };
    Ok((filter, q.page))
}

const fn col(expr: &'static str, cast: &'static str) -> SortColumn {
    SortColumn { expr, cast, id_expr: "seq", id_cast: "bigint" }
}

const SORTS: &[(&str, SortColumn)] = &[
    ("timestamp", col("\"timestamp\"", "timestamptz")),
    ("operation", col("operation", "text")),
    ("resource_type", col("COALESCE(resource_type, '')", "text")),
    ("tenant_id", col("tenant_id", "text")),
    ("key_id", col("COALESCE(key_id, '')", "text")),
    ("status", col("status", "integer")),
];

#[utoipa::path(get, path = "/v1/admin/audit/logs", operation_id = "listAuditLogs", tag = "Audit",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of audit entries", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let (filter, params) = filter_of(q)?;
    let (spec, paging) = page::sql(&params, SORTS, "timestamp", &filter)?;
    let page = paging.finish(state.catalogue.list_audit(&filter, &spec).await?);
    Ok(Json(ListBody {
        has_more: page.has_more,
        next_cursor: page.next_cursor,
        logs: page.items.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AuditVerifyReport)]
pub struct VerifyBody {
    valid: bool,
    entries_checked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_broken: Option<Value>,
}

impl From<ChainReport> for VerifyBody {
    fn from(r: ChainReport) -> Self {
        Self {
            valid: r.broken.is_none(),
            entries_checked: r.entries,
            first_broken: r.broken.map(|b| {
                serde_json::json!({
                    "seq": b.seq,
                    "log_id": b.log_id.map(|id| id.to_string()),
                    "reason": b.reason,
                })
            }),
        }
    }
}

#[utoipa::path(get, path = "/v1/x-tollgate/audit/verify", operation_id = "verifyAuditChain", tag = "Audit",
    responses((status = 200, description = "The chain check's report", body = VerifyBody), crate::http::openapi::E401_403_500_503)
)]
pub async fn verify(State(state): State<AppState>, _: AdminAuth) -> ApiResult<Json<VerifyBody>> {
    Ok(Json(state.catalogue.verify_audit().await?.into()))
}
