//! The runtime plane's OpenAPI 3.1 document, served at `GET /openapi.json` (no credential).
//! It is assembled from the handlers' `#[utoipa::path]` annotations and the wire types'
//! `ToSchema` derives: a new route adds its annotation there and one line to `paths` here.
//! `tests/it/openapi.rs` checks that every served route is in the document and that the
//! document agrees with the Cycles protocol spec.

use std::sync::LazyLock;

use axum::response::Response;
use utoipa::OpenApi;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, schema::Type};

use crate::http::openapi as shared;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate runtime API",
        description = "The Cycles protocol runtime API (revision 0.1.25.16) as Tollgate serves it.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        serve,
        super::reservations::decide,
        super::reservations::create,
        super::reads::list,
        super::reads::get,
        super::settle::commit,
        super::settle::release,
        super::settle::extend,
        super::balances::list,
        super::events::create,
        super::action_kinds::list,
        super::action_kinds::get,
    ),
    components(schemas(shared::ErrorResponse)),
    modifiers(&Security),
    security(("ApiKeyAuth" = [])),
)]
struct RuntimeDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        shared::security_schemes(openapi, false);
    }
}

/// The spec's `IdempotencyKeyHeader`: optional, and equal to the body's key when both are sent.
pub struct IdempotencyHeader;

impl utoipa::IntoParams for IdempotencyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<utoipa::openapi::path::Parameter> {
        let schema = ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(256));
        vec![
            ParameterBuilder::new()
                .name("X-Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some("Optional; when the body's `idempotency_key` is sent too, they must be equal."))
                .schema(Some(schema))
                .build(),
        ]
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    RuntimeDoc::openapi()
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| shared::render(&document()));

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getRuntimeOpenApi", tag = "Documentation",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)), security(()))]
pub async fn serve() -> Response {
    shared::serve(DOCUMENT.as_str())
}
