//! `GET /v1/admin/token-usage` and `/v1/admin/token-usage/summary` (extensions): one record per
//! commit and per usage event, with the tokens, model and latency its `metrics` reported, the
//! API key that made it and what it charged; the summary totals them by model and unit, from
//! the hourly token rollup plus the records of the window's partial edge hours.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::audit::time_param;
use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::QueryParams;
use crate::http::page::{self, ListParams, no_nul};
use crate::state::AppState;
use crate::store::pg::page::SortColumn;
use crate::store::pg::token_usage::{StoredRecord, TokenFilter};

/// Longest id or model filter accepted.
const FILTER_LEN_MAX: usize = 256;

const SORTS: &[(&str, SortColumn)] =
    &[("timestamp", SortColumn { expr: "occurred_at", cast: "timestamptz", id_expr: "record_id", id_cast: "text" })];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    tenant_id: Option<String>,
    api_key_id: Option<String>,
    model: Option<String>,
    /// RFC 3339 date-time, or a date (its start, UTC).
    from: Option<String>,
    /// RFC 3339 date-time, or a date (its end, UTC).
    to: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

/// One token usage record (extension).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TokenUsageRecord)]
pub struct RecordBody {
    record_id: String,
    tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key_id: Option<String>,
    /// `commit` or `event`.
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<String>,
    scope: String,
    unit: String,
    /// `metrics.model_version`, else the action's name.
    model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_input: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_output: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<i64>,
    charged: i64,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    metrics: Option<serde_json::Value>,
}

impl From<StoredRecord> for RecordBody {
    fn from(r: StoredRecord) -> Self {
        Self {
            record_id: r.record_id,
            tenant_id: r.tenant_id,
            api_key_id: r.api_key_id,
            source: r.source,
            reservation_id: r.reservation_id,
            scope: r.scope,
            unit: r.unit,
            model: r.model,
            tokens_input: r.tokens_input,
            tokens_output: r.tokens_output,
            latency_ms: r.latency_ms,
            charged: r.charged,
            timestamp: r.occurred_at,
            request_id: r.request_id,
            trace_id: r.trace_id,
            metrics: r.metrics,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TokenUsageListResponse)]
pub struct ListBody {
    records: Vec<RecordBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

/// Totals of one model in one unit.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TokenUsageModelTotals)]
pub struct ModelBody {
    model: String,
    unit: String,
    tokens_input: i64,
    tokens_output: i64,
    calls: i64,
    charged: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TokenUsageSummaryResponse)]
pub struct SummaryBody {
    models: Vec<ModelBody>,
}

/// A sum as an int64 (saturating; sums of int64 amounts may exceed it).
pub fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn text(name: &str, raw: Option<String>) -> ApiResult<Option<String>> {
    match raw.filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > FILTER_LEN_MAX => {
            Err(ApiError::invalid_field(name, format!("must be at most {FILTER_LEN_MAX} characters")))
        }
        other => {
            no_nul(name, other.as_deref())?;
            Ok(other)
        }
    }
}

/// A date-time, or a date: its first instant (`end`: its last) in UTC.
pub fn instant_param(name: &str, raw: Option<String>, end: bool) -> ApiResult<Option<OffsetDateTime>> {
    let Some(raw) = raw.filter(|s| !s.trim().is_empty()) else { return Ok(None) };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(day) = time::Date::parse(raw.trim(), &format) {
        let start = day.midnight().assume_utc();
        return Ok(Some(if end { start + Duration::days(1) - Duration::microseconds(1) } else { start }));
    }
    time_param(name, Some(raw)).map_err(|_| ApiError::invalid_field(name, "must be an RFC 3339 date-time or a date"))
}

/// `from` and `to`, `from` not after `to` (else a 400 naming `from`).
pub fn window(from: Option<String>, to: Option<String>) -> ApiResult<(Option<OffsetDateTime>, Option<OffsetDateTime>)> {
    let (from, to) = (instant_param("from", from, false)?, instant_param("to", to, true)?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::invalid_field("from", "must not be after to"));
    }
    Ok((from, to))
}

/// An instant cut to the microsecond Postgres stores, so the summary's split into whole hours
/// and edges sees the same bounds the records are compared with.
fn micros(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
}

fn filter_of(q: TokenQuery) -> ApiResult<(TokenFilter, ListParams)> {
    let (from, to) = window(q.from, q.to)?;
    let (from, to) = (from.map(micros), to.map(micros));
    let filter = TokenFilter {
        tenant: text("tenant_id", q.tenant_id)?,
        api_key_id: text("api_key_id", q.api_key_id)?,
        model: text("model", q.model)?,
        from,
        to,
    };
    Ok((filter, q.page))
}

#[utoipa::path(get, path = "/v1/admin/token-usage", operation_id = "listTokenUsage", tag = "Usage",
    params(TokenQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of token usage records (extension)", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<TokenQuery>,
) -> ApiResult<Json<ListBody>> {
    let (filter, params) = filter_of(q)?;
    let (spec, paging) = page::sql(&params, SORTS, "timestamp", &filter)?;
    let page = paging.finish(state.catalogue.list_token_usage(&filter, &spec).await?);
    Ok(Json(ListBody {
        records: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        has_more: page.has_more,
    }))
}

#[utoipa::path(get, path = "/v1/admin/token-usage/summary", operation_id = "getTokenUsageSummary", tag = "Usage",
    params(TokenQuery),
    responses((status = 200, description = "Token usage totals by model and unit (extension)", body = SummaryBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn summary(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<TokenQuery>,
) -> ApiResult<Json<SummaryBody>> {
    let (filter, params) = filter_of(q)?;
    if params.cursor.is_some() || params.limit.is_some() || params.sort_by.is_some() || params.sort_dir.is_some() {
        return Err(ApiError::invalid_field("cursor", "the summary is not paged"));
    }
    let rows = state.catalogue.token_usage_summary(&filter).await?;
    let models = rows
        .into_iter()
        .map(|m| ModelBody {
            model: m.model,
            unit: m.unit,
            tokens_input: clamp(m.totals.tokens_input),
            tokens_output: clamp(m.totals.tokens_output),
            calls: m.totals.calls,
            charged: clamp(m.totals.charged),
        })
        .collect();
    Ok(Json(SummaryBody { models }))
}
