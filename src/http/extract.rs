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

/// Parses JSON so that the error names the field that was wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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
