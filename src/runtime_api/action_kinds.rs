//! `GET /v1/action-kinds` and `GET /v1/action-kinds/{kind}` (cycles-action-kinds v0.1.26): the
//! built-in action kind registry, public (no key), served from `domain::policy::registry`. The
//! registry is compiled in, so one `ETag` names every answer of the list and `If-None-Match`
//! with it is a 304 that the per-address limit does not count; every other request counts.

use std::sync::LazyLock;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::policy::RiskClass;
use crate::domain::policy::kinds::REGISTRY_VERSION;
use crate::domain::policy::registry::{self, KindEntry};
use crate::error::{ApiError, ApiResult};
use crate::http::context::RequestCtx;
use crate::http::extract::{PathParam, QueryParams};
use crate::http::page::{self, Paging, Position, Sort};
use crate::state::AppState;

/// How long clients may cache an answer (the spec: "safe to cache aggressively (TTL: 1 hour)").
const CACHE_CONTROL: &str = "public, max-age=3600";

/// The spec's `ActionPolicyKeySpec`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ActionPolicyKeySpec)]
pub struct KeySpecBody {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    host: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    recipient_domain: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_type: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    path_prefix: bool,
}

/// The spec's `ActionKind`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ActionKind)]
pub struct KindBody {
    kind: &'static str,
    risk_class: RiskClass,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_key_spec: Option<KeySpecBody>,
    description: &'static str,
    mcp_tool_prefixes: &'static [&'static str],
    deprecated: bool,
}

impl From<&'static KindEntry> for KindBody {
    fn from(e: &'static KindEntry) -> Self {
        Self {
            kind: e.kind,
            risk_class: e.risk_class,
            policy_key_spec: e.policy_key_spec.map(|k| KeySpecBody {
                host: k.host,
                recipient_domain: k.recipient_domain,
                resource_type: k.resource_type,
                path_prefix: k.path_prefix,
            }),
            description: e.description,
            mcp_tool_prefixes: e.mcp_tool_prefixes,
            deprecated: false,
        }
    }
}

/// The spec's `ActionKindRegistry`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ActionKindRegistry)]
pub struct RegistryBody {
    version: &'static str,
    kinds: Vec<KindBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<RiskClass>)]
    risk_class: Option<String>,
    /// Include deprecated kinds (default false; no built-in kind is deprecated in 0.1.26).
    #[param(value_type = Option<bool>)]
    deprecated: Option<String>,
    cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// A strong validator of the whole registry: its version and every entry.
static ETAG: LazyLock<String> = LazyLock::new(|| {
    let all: Vec<KindBody> = registry::REGISTRY.iter().map(KindBody::from).collect();
    let text = serde_json::to_string(&(REGISTRY_VERSION, all)).unwrap_or_default();
    format!("\"{}\"", hex::encode(&Sha256::digest(text.as_bytes())[..16]))
});

/// Whether `If-None-Match` names the current registry (or is `*`).
fn fresh(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == ETAG.as_str())
}

fn cache_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ETAG) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
    response
}

/// The filters are typed (an enum, a boolean), so an empty value is no value of the type: 400.
fn flag(name: &str, raw: Option<&str>) -> ApiResult<bool> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid_field(name, "must be true or false")),
    }
}

fn risk_class_param(raw: Option<&str>) -> ApiResult<Option<RiskClass>> {
    let allowed = risk_classes();
    match raw {
        Some("") => Err(ApiError::invalid_field("risk_class", format!("must be one of {}", allowed.join(", ")))),
        raw => page::enum_param("risk_class", raw, RiskClass::parse, &allowed),
    }
}

#[utoipa::path(get, path = "/v1/action-kinds", operation_id = "listActionKinds", tag = "ActionKinds",
    params(ListQuery),
    responses(
        (status = 200, description = "The action kind registry (paginated, in the registry's order; `ETag`)", body = RegistryBody),
        (status = 304, description = "`If-None-Match` names the current registry (not counted by the per-address limit)"),
        crate::http::openapi::E400_429_500
    ),
    security(())
)]
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Response> {
    let risk_class = risk_class_param(q.risk_class.as_deref())?;
    let with_deprecated = flag("deprecated", q.deprecated.as_deref())?;
    let limit = page::limit(q.limit.as_deref(), page::ADMIN)?;
    let paging = Paging::new(Sort::ascending("registry"), limit, q.cursor.as_deref(), &(risk_class, with_deprecated))?;
    if fresh(&headers) {
        return Ok(cache_headers(StatusCode::NOT_MODIFIED.into_response()));
    }
    state.admission.public.check(ctx.source_ip.as_deref())?;
    // No built-in kind is deprecated, so `deprecated` filters nothing out today.
    let rows: Vec<(Position, &'static KindEntry)> = registry::REGISTRY
        .iter()
        .enumerate()
        .filter(|(_, e)| risk_class.is_none_or(|r| e.risk_class == r))
        .map(|(i, e)| (Position { key: format!("{i:04}"), id: e.kind.to_string() }, e))
        .filter(|(p, _)| paging.is_after_cursor(p))
        .collect();
    let page = paging.page_ordered(rows, None);
    let body = RegistryBody {
        version: REGISTRY_VERSION,
        kinds: page.items.into_iter().map(KindBody::from).collect(),
        next_cursor: page.next_cursor,
        has_more: page.has_more,
    };
    Ok(cache_headers(Json(body).into_response()))
}

fn risk_classes() -> Vec<&'static str> {
    RiskClass::ALL.iter().map(|r| r.as_str()).collect()
}

#[utoipa::path(get, path = "/v1/action-kinds/{kind}", operation_id = "getActionKind", tag = "ActionKinds",
    params(("kind" = String, Path, max_length = 64, description = "The kind, matched exactly (no prefix or fuzzy matching)")),
    responses((status = 200, description = "The action kind", body = KindBody), crate::http::openapi::E400_404_429_500),
    security(())
)]
pub async fn get(
    State(state): State<AppState>,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(kind): PathParam<String>,
) -> ApiResult<Response> {
    state.admission.public.check(ctx.source_ip.as_deref())?;
    let entry = registry::entry_of(&kind).ok_or_else(|| {
        ApiError::not_found(format!("{kind:?} is not in the action kind registry {REGISTRY_VERSION}"))
    })?;
    Ok(cache_headers(Json(KindBody::from(entry)).into_response()))
}
