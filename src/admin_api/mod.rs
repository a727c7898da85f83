//! The admin plane (port 7979): tenants, API keys, budgets, auth validation and introspection,
//! the audit log, events and webhooks, health and metrics. Handlers are thin: extract, validate the wire
//! values, call `catalogue`, map the reply.

pub mod access;
pub mod alerts;
pub mod api_keys;
pub mod audit;
mod audit_export;
pub mod auth;
pub mod balances;
pub mod budget_fund;
pub mod budget_list;
pub mod budget_usage;
pub mod budgets;
pub mod bulk;
pub mod config;
pub mod dead_letters;
pub mod events;
pub mod health;
pub mod openapi;
pub mod overview;
pub mod policies;
pub mod principals;
pub mod provision;
pub mod quota_counters;
mod refusals;
pub mod roles;
pub mod tenants;
pub mod tiers;
pub mod token_usage;
pub mod usage;
pub mod webhooks;

use axum::Router;
use axum::routing::{delete, get, patch, post, put};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::telemetry::render))
        .route("/openapi.json", get(openapi::serve))
        .route("/v1/admin/tenants", post(tenants::create).get(tenants::list))
        // Literal before the parameter: matchit prefers it, so the tenant id `bulk-action` is reserved.
        .route("/v1/admin/tenants/bulk-action", post(bulk::tenants))
        .route("/v1/admin/tenants/{tenant_id}", get(tenants::get).patch(tenants::update))
        .route("/v1/admin/tiers", get(tiers::list).post(tiers::create))
        .route("/v1/admin/tiers/{tier}", get(tiers::get).patch(tiers::update))
        .route("/v1/admin/provision", post(provision::provision))
        .route("/v1/admin/api-keys", post(api_keys::create).get(api_keys::list))
        .route("/v1/admin/api-keys/{key_id}", patch(api_keys::update).delete(api_keys::revoke))
        .route("/v1/admin/api-keys/{key_id}/rotate", post(api_keys::rotate))
        .route("/v1/admin/budgets", post(budgets::create).get(budget_list::list).patch(budgets::update))
        .route("/v1/admin/budgets/lookup", get(budgets::lookup))
        .route("/v1/admin/budgets/fund", post(budget_fund::fund))
        .route("/v1/admin/budgets/bulk-action", post(bulk::budgets))
        .route("/v1/admin/budgets/freeze", post(budgets::freeze))
        .route("/v1/admin/budgets/unfreeze", post(budgets::unfreeze))
        .route("/v1/admin/policies", post(policies::create).get(policies::list))
        .route("/v1/admin/policies/dry-run", post(policies::dry_run))
        .route("/v1/admin/policies/{policy_id}", get(policies::get).patch(policies::update))
        .route("/v1/admin/policies/{policy_id}/versions", get(policies::versions))
        .route("/v1/admin/policies/{policy_id}/rollback", post(policies::rollback))
        .route("/v1/auth/validate", post(auth::validate))
        .route("/v1/auth/introspect", get(auth::introspect))
        .route("/v1/admin/audit/logs", get(audit::list))
        .route("/v1/admin/audit/logs/export", get(audit_export::export))
        .route("/v1/x-tollgate/audit/verify", get(audit::verify))
        .route("/v1/admin/priority/stats", get(priority_stats))
        .route("/v1/admin/events", get(events::list))
        .route("/v1/admin/events/dead-letters", get(dead_letters::list))
        .route("/v1/admin/events/{event_id}", get(events::get))
        .route("/v1/events", get(events::list_for_tenant))
        .route("/v1/admin/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v1/admin/webhooks/bulk-action", post(webhooks::bulk_action))
        .route(
            "/v1/admin/webhooks/{subscription_id}",
            get(webhooks::get).patch(webhooks::update).delete(webhooks::delete),
        )
        .route("/v1/admin/webhooks/{subscription_id}/test", post(webhooks::test))
        .route("/v1/admin/webhooks/{subscription_id}/deliveries", get(webhooks::deliveries))
        .route("/v1/admin/webhooks/{subscription_id}/replay", post(webhooks::replay))
        .route(
            "/v1/admin/config/webhook-security",
            get(webhooks::get_security_config).merge(put(webhooks::put_security_config)),
        )
        .route("/v1/admin/config/export", get(config::export))
        .route(
            "/v1/admin/config/import",
            post(config::import).layer(axum::extract::DefaultBodyLimit::max(config::IMPORT_BYTES_MAX)),
        )
        .route("/v1/webhooks", post(webhooks::create_for_tenant).get(webhooks::list_for_tenant))
        .route(
            "/v1/webhooks/{subscription_id}",
            get(webhooks::get_for_tenant).patch(webhooks::update_for_tenant).delete(webhooks::delete_for_tenant),
        )
        .route("/v1/webhooks/{subscription_id}/test", post(webhooks::test_for_tenant))
        .route("/v1/webhooks/{subscription_id}/deliveries", get(webhooks::deliveries_for_tenant))
        .merge(access_routes())
        .merge(spend_routes())
        // Inner to the metrics layer, so refusals are counted like any other response.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), access::guard))
        .route_layer(axum::middleware::from_fn(|r, n| crate::telemetry::track_http("admin", r, n)));
    crate::http::finish(routes).with_state(state)
}

/// What spend an operator can see: token usage, usage rollups, the overview, alerts, and the
/// admin plane's balance query.
fn spend_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/token-usage", get(token_usage::list))
        .route("/v1/admin/token-usage/summary", get(token_usage::summary))
        .route("/v1/admin/tenants/{tenant_id}/usage", get(usage::tenant))
        .route("/v1/admin/tenants/{tenant_id}/usage/daily", get(usage::daily))
        .route("/v1/admin/budgets/usage", get(budget_usage::budget))
        .route("/v1/admin/overview", get(overview::overview))
        .route("/v1/admin/alerts", get(alerts::list))
        .route("/v1/admin/alerts/{alert_id}/resolve", post(alerts::resolve))
        .route("/v1/balances", get(balances::balances))
        .route("/v1/admin/action-quota-counters", get(quota_counters::list))
        .route("/v1/admin/action-quota-counters/reset", post(quota_counters::reset))
}

/// The access-control routes: principals, their roles and tokens, roles and permissions.
fn access_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/principals", post(principals::create).get(principals::list))
        .route("/v1/admin/principals/{principal_id}", get(principals::get).patch(principals::update))
        .route("/v1/admin/principals/{principal_id}/roles", post(principals::assign_role))
        .route("/v1/admin/principals/{principal_id}/roles/{role_id}", delete(principals::unassign_role))
        .route("/v1/admin/principals/{principal_id}/api-keys", post(principals::create_key))
        .route("/v1/admin/principals/{principal_id}/api-keys/{key_id}/revoke", post(principals::revoke_key))
        .route("/v1/admin/permissions", get(roles::permissions))
        .route("/v1/admin/roles", post(roles::create).get(roles::list))
        .route("/v1/admin/roles/{role_id}", delete(roles::delete))
        .route("/v1/admin/roles/{role_id}/permissions", post(roles::add_permissions))
        .route("/v1/admin/roles/{role_id}/permissions/{permission}", delete(roles::remove_permission))
}

/// `GET /v1/admin/priority/stats`: the priority gate's in-flight counts and shares.
#[utoipa::path(get, path = "/v1/admin/priority/stats", operation_id = "getPriorityStats", tag = "System",
    responses((status = 200, description = "The priority gate's in-flight counts and shares", body = Object), crate::http::openapi::E401_403_503)
)]
async fn priority_stats(
    axum::extract::State(state): axum::extract::State<AppState>,
    _: crate::auth::AdminAuth,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "object": "priority_stats", "data": state.admission.gate.stats() }))
}
