//! `GET /v1/admin/config/export` and `POST /v1/admin/config/import` (Tollgate extensions, after
//! DVARA's config snapshot): the whole configuration as one versioned JSON document, and its
//! import (`mode=merge|replace`, `dry_run=true|false`). The catalogue owns the rules
//! (`catalogue::config`); these handlers parse the query and the body and map the reply.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;

use crate::auth::AdminAuth;
use crate::catalogue::audit::Actor;
use crate::catalogue::config::{Mode, Report, Snapshot};
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::{QueryParams, parse_json};
use crate::state::AppState;

/// Largest import body: a snapshot of the most objects one may hold (10 000), each well under
/// 2 KiB.
pub const IMPORT_BYTES_MAX: usize = 16 * 1024 * 1024;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `balances` adds each budget's balances to the snapshot.
    include: Option<String>,
}

#[utoipa::path(get, path = "/v1/admin/config/export", operation_id = "exportConfig", tag = "Configuration",
    params(ExportQuery),
    responses((status = 200, description = "The configuration snapshot (versioned, one section per kind)", body = Object), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn export(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ExportQuery>,
) -> ApiResult<Json<Snapshot>> {
    let balances = match q.include.as_deref().filter(|s| !s.is_empty()) {
        None => false,
        Some("balances") => true,
        Some(_) => return Err(ApiError::invalid_field("include", "must be balances")),
    };
    Ok(Json(state.catalogue.export_config(balances).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `merge` (the default) or `replace`.
    mode: Option<String>,
    /// `true` reports what the import would change and changes nothing.
    #[param(value_type = Option<bool>)]
    dry_run: Option<String>,
}

fn flag(field: &str, raw: Option<&str>) -> ApiResult<bool> {
    match raw.filter(|s| !s.is_empty()) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid_field(field, "must be true or false")),
    }
}

#[utoipa::path(post, path = "/v1/admin/config/import", operation_id = "importConfig", tag = "Configuration",
    params(ImportQuery),
    request_body(content = Object, description = "A snapshot as `GET /v1/admin/config/export` answers it", content_type = "application/json"),
    responses((status = 200, description = "What the import changed (or, on a dry run, would change), section by section", body = Object), crate::http::openapi::E400_401_403_409_500_503)
)]
pub async fn import(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<ImportQuery>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Report>> {
    let mode = match q.mode.as_deref().filter(|s| !s.is_empty()) {
        None | Some("merge") => Mode::Merge,
        Some("replace") => Mode::Replace,
        Some(_) => return Err(ApiError::invalid_field("mode", "must be merge or replace")),
    };
    let dry_run = flag("dry_run", q.dry_run.as_deref())?;
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(ApiError::invalid("Content-Type must be application/json"));
    }
    let snapshot: Snapshot = parse_json(&body)?;
    Ok(Json(state.catalogue.import_config(&Actor::admin(ctx), snapshot, mode, dry_run).await?))
}
