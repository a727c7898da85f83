//! `GET /v1/admin/audit/logs/export?format=ndjson|csv` (Tollgate extension): the audit log with
//! the list's filters, in chain order, streamed in batches so memory stays constant however
//! long the log; each line carries its chain link, so `tollgate audit verify --file` can check
//! an NDJSON export offline.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt as _};
use serde::Deserialize;

use super::audit::{ListQuery, filter_of};
use crate::auth::AdminAuth;
use crate::catalogue::Catalogue;
use crate::domain::audit_export::{CSV_COLUMNS, ChainedEntry};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::QueryParams;
use crate::state::AppState;
use crate::store::pg::audit::Filter;

/// Entries read per round trip: bounds the memory of an export and the time one query holds
/// a connection.
const EXPORT_BATCH: i64 = 1_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Csv,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    format: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    list: ListQuery,
}

fn render(batch: &[ChainedEntry], format: Format) -> Bytes {
    let text: String = batch.iter().map(|e| if format == Format::Csv { e.to_csv() } else { e.to_ndjson() }).collect();
    Bytes::from(text)
}

/// The batches after `after_seq`, one chunk each; a store failure mid-stream ends the body
/// early (the client sees a truncated transfer, never a wrong line).
fn batches(
    catalogue: Catalogue,
    filter: Filter,
    format: Format,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    stream::unfold(Some(0_i64), move |after| {
        let (catalogue, filter) = (catalogue.clone(), filter.clone());
        async move {
            let after = after?;
            match catalogue.export_audit(&filter, after, EXPORT_BATCH).await {
                Ok(batch) if batch.is_empty() => None,
                Ok(batch) => {
                    let next = (batch.len() as i64 == EXPORT_BATCH).then(|| batch.last().map_or(after, |e| e.seq));
                    Some((Ok(render(&batch, format)), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.message)), None)),
            }
        }
    })
}

#[utoipa::path(get, path = "/v1/admin/audit/logs/export", operation_id = "exportAuditLogs", tag = "Audit",
    params(ExportQuery, super::audit::ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "The matching entries in chain order, as NDJSON or CSV", body = String, content_type = "application/x-ndjson"), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn export(
    State(state): State<AppState>,
    _: AdminAuth,
    QueryParams(q): QueryParams<ExportQuery>,
) -> ApiResult<Response> {
    let format = match q.format.as_deref().filter(|f| !f.is_empty()) {
        None | Some("ndjson") => Format::Ndjson,
        Some("csv") => Format::Csv,
        Some(_) => return Err(ApiError::invalid_field("format", "must be ndjson or csv")),
    };
    let (filter, _) = filter_of(q.list)?;
    let head = match format {
        Format::Csv => Bytes::from(format!("{}\r\n", CSV_COLUMNS.join(","))),
        Format::Ndjson => Bytes::new(),
    };
    let body = stream::once(async move { Ok(head) }).chain(batches(state.catalogue.clone(), filter, format));
    let (content_type, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "attachment; filename=\"audit.csv\""),
        Format::Ndjson => ("application/x-ndjson", "attachment; filename=\"audit.ndjson\""),
    };
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CONTENT_DISPOSITION, HeaderValue::from_static(name));
    Ok(response)
}
