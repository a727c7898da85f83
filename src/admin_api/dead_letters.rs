//! `GET /v1/admin/events/dead-letters` (admin key; a Tollgate extension): the outbox entries
//! the drain could not store as events and set aside, newest first by default. Each carries
//! its raw content twice: `raw` (base64, byte for byte) and `raw_text` (the same netstrings
//! as text, bytes that are not UTF-8 replaced), for reading by eye.

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::QueryParams;
use crate::http::page::{self, ListParams, no_nul};
use crate::state::AppState;
use crate::store::pg::dead_letters::DeadLetter;
use crate::store::pg::page::SortColumn;

const SORTS: &[(&str, SortColumn)] =
    &[("created_at", SortColumn { expr: "created_at", cast: "timestamptz", id_expr: "id", id_cast: "bigint" })];

/// Longest tenant id accepted as a filter (tenant ids are far shorter).
const TENANT_LEN_MAX: usize = 1024;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    tenant_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DeadLetter)]
pub struct DeadLetterBody {
    id: i64,
    tenant_id: String,
    stream_id: String,
    reason: String,
    error: String,
    raw: String,
    raw_text: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<DeadLetter> for DeadLetterBody {
    fn from(d: DeadLetter) -> Self {
        Self {
            raw: STANDARD.encode(&d.raw),
            raw_text: String::from_utf8_lossy(&d.raw).into_owned(),
            id: d.id,
            tenant_id: d.tenant_id,
            stream_id: d.stream_id,
            reason: d.reason,
            error: d.error,
            created_at: d.created_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DeadLetterListResponse)]
pub struct ListBody {
    dead_letters: Vec<DeadLetterBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

#[utoipa::path(get, path = "/v1/admin/events/dead-letters", operation_id = "listDeadLetters", tag = "Events",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of dead letters", body = ListBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn list(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListBody>> {
    let tenant = no_nul("tenant_id", q.tenant_id.as_deref().filter(|t| !t.is_empty()))?;
    if tenant.is_some_and(|t| t.len() > TENANT_LEN_MAX) {
        return Err(ApiError::invalid_field("tenant_id", format!("must be at most {TENANT_LEN_MAX} characters")));
    }
    let (spec, paging) = page::sql(&q.page, SORTS, "created_at", &tenant)?;
    let page = paging.finish(state.catalogue.list_dead_letters(tenant, &spec).await?);
    Ok(Json(ListBody {
        has_more: page.has_more,
        next_cursor: page.next_cursor,
        dead_letters: page.items.into_iter().map(DeadLetterBody::from).collect(),
    }))
}
