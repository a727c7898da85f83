//! Extractors that turn every malformed input into the spec's 400 `INVALID_REQUEST`, with a
//! message that names the field (`serde_path_to_error` supplies the path).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body any endpoint accepts; every spec request is far smaller.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// A JSON request body: `application/json`, at most [`BODY_BYTES_MAX`], parsed strictly.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::invalid("Content-Type must be application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::invalid(format!("request body is unreadable or larger than {BODY_BYTES_MAX} bytes"))
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON so that the error names the field that was wrong. A string holding U+0000 is
/// refused anywhere in the body (Postgres text and jsonb cannot store it, and an event carrying
/// one could never be stored): 400 naming its JSON path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // In valid JSON a NUL can only be the escape `\u0000`; look deeper only when it appears.
    if bytes.windows(6).any(|w| w == b"\\u0000")
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(path) = nul_path(&value, String::new())
    {
        let field = if path.is_empty() { "body".to_string() } else { path };
        return Err(ApiError::invalid_field(&field, "must not contain NUL characters"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(format!("malformed JSON body: {inner}"))
        } else if path == "." {
            ApiError::invalid(format!("body: {inner}"))
        } else {
            ApiError::invalid_field(&path, inner)
        }
    })
}

/// The JSON path (`a.b[2].c`) of the first string or object key holding U+0000, if any.
fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(at),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_path(v, format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            if k.contains('\0') { Some(here.replace('\0', "\\u0000")) } else { nul_path(v, here) }
        }),
        _ => None,
    }
}

/// Middleware: 400 `INVALID_REQUEST` for a NUL (`%00`) in the path or in a query parameter,
/// naming the parameter, before any route sees it.
pub async fn refuse_nul_in_uri(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri();
    if uri.path().contains("%00") {
        // Name the route's parameter (`{tenant_id}`) when the path matched a route.
        let template = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_string());
        let name = template
            .and_then(|t| {
                t.split('/')
                    .zip(uri.path().split('/'))
                    .find(|(_, seg)| seg.contains("%00"))
                    .and_then(|(tpl, _)| tpl.strip_prefix('{').and_then(|n| n.strip_suffix('}')).map(str::to_string))
            })
            .unwrap_or_else(|| "path".to_string());
        return ApiError::invalid_field(&name, "must not contain NUL characters").into_response();
    }
    if let Some(query) = uri.query().filter(|q| q.contains("%00"))
        && let Some((name, _)) =
            form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        let name = name.replace('\0', "\\u0000");
        return ApiError::invalid_field(&name, "must not contain NUL characters").into_response();
    }
    next.run(req).await
}

/// Query parameters; unknown parameters are ignored (the spec's additive-parameter rule).
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(QueryParams).map_err(|err| {
            let path = err.path().to_string();
            ApiError::invalid_field(&path, err.into_inner())
        })
    }
}

/// A path parameter; a bad one is 400, never axum's plain-text rejection.
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathParam(v))
            .map_err(|rejection| ApiError::invalid(format!("path: {}", rejection.body_text())))
    }
}
