//! What both planes' OpenAPI documents share: the spec's `ErrorResponse`, the sets of error
//! responses an operation can answer (`E400_401_403_500_503` and so on, named by their statuses),
//! the security schemes, and the handler that serves a document. Each plane assembles its own
//! document in its `openapi` module from the handlers' `#[utoipa::path]` annotations; this module
//! knows no route.

use std::collections::BTreeMap;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, RefOr, ResponseBuilder, schema::Schema, schema::Type};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ErrorCode;

/// The spec's `ErrorResponse` (rendered by `crate::error`; this type only describes it).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorResponse {
    error: ErrorCode,
    message: String,
    request_id: String,
    /// The W3C trace id of the request (also in `X-Cycles-Trace-Id`).
    trace_id: Option<String>,
    details: Option<BTreeMap<String, Value>>,
}

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        let mut wire: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        wire.dedup();
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(wire)).into()
    }
}
impl ToSchema for ErrorCode {}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorResponse"))).build();
    ResponseBuilder::new().description(description).content("application/json", content).build().into()
}

/// What each error status means on Tollgate's operations.
fn describe(status: u16) -> &'static str {
    match status {
        400 => "Invalid request (`INVALID_REQUEST` naming the field)",
        401 => "Missing or invalid credentials",
        403 => "Not permitted",
        404 => "Not found",
        409 => "Conflicts with the current state",
        410 => "The reservation has expired",
        429 => "Rate limited or shed by the priority gate (`Retry-After`)",
        503 => "A store is unavailable (`Retry-After`); retry with the same idempotency key",
        _ => "Internal error",
    }
}

/// One type per set of error statuses an operation answers, each an `ErrorResponse`.
macro_rules! error_sets {
    ($($name:ident = [$($status:literal),+];)+) => {$(
        pub struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                [$($status),+].into_iter().map(|s: u16| (s.to_string(), error_response(describe(s)))).collect()
            }
        }
    )+};
}

error_sets! {
    E400_401_403_404_409_410_429_500_503 = [400, 401, 403, 404, 409, 410, 429, 500, 503];
    E400_401_403_404_409_429_500_503 = [400, 401, 403, 404, 409, 429, 500, 503];
    E400_401_403_404_409_500_503 = [400, 401, 403, 404, 409, 500, 503];
    E400_401_403_404_410_429_500_503 = [400, 401, 403, 404, 410, 429, 500, 503];
    E400_401_403_404_500_503 = [400, 401, 403, 404, 500, 503];
    E400_401_403_409_429_500_503 = [400, 401, 403, 409, 429, 500, 503];
    E400_401_403_409_500_503 = [400, 401, 403, 409, 500, 503];
    E400_401_403_429_500_503 = [400, 401, 403, 429, 500, 503];
    E400_401_403_500_503 = [400, 401, 403, 500, 503];
    E401_403_500_503 = [401, 403, 500, 503];
    E400_404_429_500 = [400, 404, 429, 500];
    E400_429_500 = [400, 429, 500];
    E401_403_503 = [401, 403, 503];
    E401_503 = [401, 503];
    E503 = [503];
}

/// The security schemes, named as the Cycles specs name them (plus the admin plane's bearer
/// tokens and the metrics token, Tollgate's).
pub fn security_schemes(openapi: &mut utoipa::openapi::OpenApi, admin: bool) {
    let components = openapi.components.get_or_insert_with(Default::default);
    let key = |name: &str| SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(name)));
    components.add_security_scheme("ApiKeyAuth", key("X-Cycles-API-Key"));
    components.add_security_scheme("AdminKeyAuth", key("X-Admin-API-Key"));
    let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    if admin {
        components.add_security_scheme("BearerAuth", bearer());
    }
    components.add_security_scheme("MetricsBearer", bearer());
}

/// The document as served: built once, answered as JSON with no credential.
pub fn serve(document: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// Serializes a document once at first use (it never changes while the process runs).
pub fn render(openapi: &utoipa::openapi::OpenApi) -> String {
    serde_json::to_string(openapi).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document does not serialize");
        "{}".to_string()
    })
}
