//! The admin plane's OpenAPI 3.1 document, served at `GET /openapi.json` (no credential).
//! It is assembled from the handlers' `#[utoipa::path]` annotations and the wire types'
//! `ToSchema` derives: a new route adds its annotation there and one line to `paths` here.
//! Each operation's security comes from the access table (`access::ROUTES`), so the document
//! says what the guard enforces. `tests/it/openapi.rs` checks that every served route is in the
//! document and that the document agrees with the Cycles governance admin spec.

use std::sync::LazyLock;

use axum::http::Method;
use axum::response::Response;
use utoipa::OpenApi;
use utoipa::openapi::security::SecurityRequirement;

use super::access::{Rule, rule_of};
use crate::http::openapi as shared;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate admin API",
        description = "The Cycles governance admin API (revision 0.1.25.42) as Tollgate serves it, with Tollgate's \
                       extensions (key rotation, audit export and verification, dead letters, admin access control, tiers, \
                       provisioning, policy versions and dry runs, configuration export and import).",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        serve,
        super::health::livez,
        super::health::readyz,
        crate::telemetry::render,
        super::tenants::create,
        super::tenants::list,
        super::tenants::get,
        super::tenants::update,
        super::bulk::tenants,
        super::tiers::list,
        super::tiers::create,
        super::tiers::get,
        super::tiers::update,
        super::provision::provision,
        super::api_keys::create,
        super::api_keys::list,
        super::api_keys::update,
        super::api_keys::revoke,
        super::api_keys::rotate,
        super::budgets::create,
        super::budget_list::list,
        super::budgets::update,
        super::budgets::lookup,
        super::budget_fund::fund,
        super::budgets::freeze,
        super::budgets::unfreeze,
        super::bulk::budgets,
        super::policies::create,
        super::policies::list,
        super::policies::dry_run::dry_run,
        super::policies::get,
        super::policies::update,
        super::policies::versions::versions,
        super::policies::versions::rollback,
        super::auth::validate,
        super::auth::introspect,
        super::audit::list,
        super::audit_export::export,
        super::audit::verify,
        super::priority_stats,
        super::events::list,
        super::dead_letters::list,
        super::events::get,
        super::events::list_for_tenant,
        super::webhooks::create,
        super::webhooks::list::list,
        super::webhooks::bulk::bulk_action,
        super::webhooks::get,
        super::webhooks::update,
        super::webhooks::delete,
        super::webhooks::deliveries::test,
        super::webhooks::deliveries::deliveries,
        super::webhooks::deliveries::replay,
        super::webhooks::bulk::get_security_config,
        super::webhooks::bulk::put_security_config,
        super::config::export,
        super::config::import,
        super::webhooks::create_for_tenant,
        super::webhooks::list::list_for_tenant,
        super::webhooks::get_for_tenant,
        super::webhooks::update_for_tenant,
        super::webhooks::delete_for_tenant,
        super::webhooks::deliveries::test_for_tenant,
        super::webhooks::deliveries::deliveries_for_tenant,
        super::principals::create,
        super::principals::list,
        super::principals::get,
        super::principals::update,
        super::principals::assign_role,
        super::principals::unassign_role,
        super::principals::create_key,
        super::principals::revoke_key,
        super::roles::permissions,
        super::roles::create,
        super::roles::list,
        super::roles::delete,
        super::roles::add_permissions,
        super::roles::remove_permission,
        super::token_usage::list,
        super::token_usage::summary,
        super::usage::tenant,
        super::usage::daily,
        super::budget_usage::budget,
        super::overview::overview,
        super::alerts::list,
        super::alerts::resolve,
        super::balances::balances,
        super::quota_counters::list,
        super::quota_counters::reset,
    ),
    components(schemas(shared::ErrorResponse)),
    modifiers(&Security),
)]
struct AdminDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        shared::security_schemes(openapi, true);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::PATCH, &mut item.patch),
                (Method::DELETE, &mut item.delete),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    op.security = Some(requirements(&method, path));
                }
            }
        }
    }
}

/// Who may call a route, as the access table says.
fn requirements(method: &Method, path: &str) -> Vec<SecurityRequirement> {
    let one = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
    if path == "/metrics" {
        return vec![one("MetricsBearer"), one("AdminKeyAuth")];
    }
    match rule_of(method, path) {
        Rule::Open => Vec::new(),
        Rule::TenantKey => vec![one("ApiKeyAuth"), one("AdminKeyAuth")],
        Rule::Admin { tenant_key_too, .. } => {
            let mut out = vec![one("AdminKeyAuth"), one("BearerAuth")];
            if tenant_key_too {
                out.push(one("ApiKeyAuth"));
            }
            out
        }
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    AdminDoc::openapi()
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| shared::render(&document()));

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getAdminOpenApi", tag = "Documentation",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)))]
pub async fn serve() -> Response {
    shared::serve(DOCUMENT.as_str())
}
