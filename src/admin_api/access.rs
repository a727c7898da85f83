//! Who may call which admin route, decided in one place: [`ROUTES`] maps each route of the
//! admin plane to the permission it needs and to where it names a tenant, and [`guard`] (a
//! route layer over the whole plane) authenticates the caller, checks the permission, confines
//! a tenant-bound principal to its tenant, and audits every 401 and 403 (`refusals`).
//!
//! A tenant-bound principal naming another tenant (path, query, body, or a resource owned by
//! one) is refused with 403 `TENANT_SCOPE_VIOLATION`; an omitted `tenant_id` on a list or a
//! create is narrowed to its own tenant, so its lists never hold another tenant's rows, counts
//! or cursors (a cursor is bound to the narrowed filter).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, Uri, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::{Authenticator, Caller, TENANT_KEY_HEADER};
use crate::catalogue::audit::Who;
use crate::domain::access::AdminPermission as P;
use crate::domain::event::SYSTEM_TENANT;
use crate::domain::scope::scope_tenant;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::context::RequestCtx;
use crate::http::extract::BODY_BYTES_MAX;
use crate::state::AppState;
use crate::store::pg::principals::Owned;

/// Where a route names the tenant it acts on.
#[derive(Debug, Clone, Copy)]
pub enum Loc {
    /// A path parameter holding a tenant id.
    Path(&'static str),
    /// `?tenant_id=`: checked, and added when absent (lists, creates).
    Query,
    /// `?tenant_id=`: checked only.
    QueryCheck,
    /// `?scope=tenant:<t>/…`.
    QueryScope,
    /// A body field (`a.b` for a nested one): checked, and set when absent and its object exists.
    Body(&'static str),
    /// The body's `scope`.
    BodyScope,
    /// A resource named by a path parameter, owned by one tenant (or by none: platform-wide).
    Owned(Owned, &'static str),
}

#[derive(Debug, Clone, Copy)]
pub enum Tenancy {
    /// Holds no tenant's data (the permission list, roles): any principal with the permission.
    Global,
    /// Acts across tenants: platform principals only.
    Platform,
    At(&'static [Loc]),
}

#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Health, metrics and the OpenAPI document: no credential (`/metrics` checks its own token).
    Open,
    /// Tenant-key routes served on this plane: the handler authenticates.
    TenantKey,
    /// An admin route: the permission it needs (`None`: any admin caller), where it names a
    /// tenant, and whether a tenant key may call it too (the handler then decides).
    Admin { perm: Option<P>, tenancy: Tenancy, tenant_key_too: bool },
}

const fn admin(perm: P, at: &'static [Loc]) -> Rule {
    Rule::Admin { perm: Some(perm), tenancy: Tenancy::At(at), tenant_key_too: false }
}
const fn either(perm: P, at: &'static [Loc]) -> Rule {
    Rule::Admin { perm: Some(perm), tenancy: Tenancy::At(at), tenant_key_too: true }
}
const fn platform(perm: P) -> Rule {
    Rule::Admin { perm: Some(perm), tenancy: Tenancy::Platform, tenant_key_too: false }
}
const fn global(perm: P) -> Rule {
    Rule::Admin { perm: Some(perm), tenancy: Tenancy::Global, tenant_key_too: false }
}

const KEY: &[Loc] = &[Loc::Owned(Owned::ApiKey, "key_id")];
const HOOK: &[Loc] = &[Loc::Owned(Owned::Webhook, "subscription_id")];
const POLICY: &[Loc] = &[Loc::Owned(Owned::Policy, "policy_id")];
const PRINCIPAL: &[Loc] = &[Loc::Owned(Owned::Principal, "principal_id")];
const BUDGET: &[Loc] = &[Loc::QueryScope, Loc::QueryCheck];

/// Every route of the admin plane: method, route as declared, rule. A route missing here needs
/// `principals:admin` from a platform principal (fail closed); the test
/// `access::every_declared_admin_route_has_a_row_in_the_access_table` checks none is missing.
pub const ROUTES: &[(&str, &str, Rule)] = &[
    ("GET", "/livez", Rule::Open),
    ("GET", "/readyz", Rule::Open),
    ("GET", "/metrics", Rule::Open),
    ("GET", "/openapi.json", Rule::Open),
    ("POST", "/v1/admin/tenants", platform(P::TenantsWrite)),
    ("GET", "/v1/admin/tenants", admin(P::TenantsRead, &[Loc::Query])),
    ("POST", "/v1/admin/tenants/bulk-action", platform(P::TenantsWrite)),
    ("GET", "/v1/admin/tenants/{tenant_id}", admin(P::TenantsRead, &[Loc::Path("tenant_id")])),
    ("PATCH", "/v1/admin/tenants/{tenant_id}", admin(P::TenantsWrite, &[Loc::Path("tenant_id")])),
    ("GET", "/v1/admin/tiers", global(P::TenantsRead)),
    ("POST", "/v1/admin/tiers", platform(P::TenantsWrite)),
    ("GET", "/v1/admin/tiers/{tier}", global(P::TenantsRead)),
    ("PATCH", "/v1/admin/tiers/{tier}", platform(P::TenantsWrite)),
    ("POST", "/v1/admin/provision", platform(P::TenantsWrite)),
    ("POST", "/v1/admin/api-keys", admin(P::KeysWrite, &[Loc::Body("tenant_id")])),
    ("GET", "/v1/admin/api-keys", admin(P::KeysRead, &[Loc::Query])),
    ("PATCH", "/v1/admin/api-keys/{key_id}", admin(P::KeysWrite, KEY)),
    ("DELETE", "/v1/admin/api-keys/{key_id}", admin(P::KeysWrite, KEY)),
    ("POST", "/v1/admin/api-keys/{key_id}/rotate", admin(P::KeysWrite, KEY)),
    ("POST", "/v1/admin/budgets", either(P::BudgetsWrite, &[Loc::Body("tenant_id"), Loc::BodyScope])),
    ("GET", "/v1/admin/budgets", either(P::BudgetsRead, &[Loc::Query])),
    ("PATCH", "/v1/admin/budgets", admin(P::BudgetsWrite, BUDGET)),
    ("GET", "/v1/admin/budgets/lookup", either(P::BudgetsRead, BUDGET)),
    ("POST", "/v1/admin/budgets/fund", either(P::BudgetsFund, BUDGET)),
    ("POST", "/v1/admin/budgets/bulk-action", admin(P::BudgetsFund, &[Loc::Body("filter.tenant_id")])),
    ("POST", "/v1/admin/budgets/freeze", admin(P::BudgetsWrite, BUDGET)),
    ("POST", "/v1/admin/budgets/unfreeze", admin(P::BudgetsWrite, BUDGET)),
    ("POST", "/v1/admin/policies", either(P::PoliciesWrite, &[Loc::Body("tenant_id")])),
    ("GET", "/v1/admin/policies", either(P::PoliciesRead, &[Loc::Query])),
    ("POST", "/v1/admin/policies/dry-run", either(P::PoliciesRead, &[Loc::Body("tenant_id")])),
    ("GET", "/v1/admin/policies/{policy_id}", either(P::PoliciesRead, POLICY)),
    ("PATCH", "/v1/admin/policies/{policy_id}", either(P::PoliciesWrite, POLICY)),
    ("GET", "/v1/admin/policies/{policy_id}/versions", either(P::PoliciesRead, POLICY)),
    ("POST", "/v1/admin/policies/{policy_id}/rollback", either(P::PoliciesWrite, POLICY)),
    ("POST", "/v1/auth/validate", platform(P::KeysRead)),
    ("GET", "/v1/auth/introspect", Rule::Admin { perm: None, tenancy: Tenancy::Global, tenant_key_too: true }),
    ("GET", "/v1/admin/audit/logs", admin(P::AuditRead, &[Loc::Query])),
    ("GET", "/v1/admin/audit/logs/export", admin(P::AuditRead, &[Loc::Query])),
    ("GET", "/v1/x-tollgate/audit/verify", platform(P::AuditVerify)),
    ("GET", "/v1/admin/priority/stats", platform(P::SystemRead)),
    ("GET", "/v1/admin/events", admin(P::EventsRead, &[Loc::Query])),
    ("GET", "/v1/admin/events/dead-letters", admin(P::EventsRead, &[Loc::Query])),
    ("GET", "/v1/admin/events/{event_id}", admin(P::EventsRead, &[Loc::Owned(Owned::Event, "event_id")])),
    ("GET", "/v1/events", Rule::TenantKey),
    ("POST", "/v1/admin/webhooks", admin(P::WebhooksWrite, &[Loc::Query])),
    ("GET", "/v1/admin/webhooks", admin(P::WebhooksRead, &[Loc::Query])),
    ("POST", "/v1/admin/webhooks/bulk-action", admin(P::WebhooksWrite, &[Loc::Body("filter.tenant_id")])),
    ("GET", "/v1/admin/webhooks/{subscription_id}", admin(P::WebhooksRead, HOOK)),
    ("PATCH", "/v1/admin/webhooks/{subscription_id}", admin(P::WebhooksWrite, HOOK)),
    ("DELETE", "/v1/admin/webhooks/{subscription_id}", admin(P::WebhooksWrite, HOOK)),
    ("POST", "/v1/admin/webhooks/{subscription_id}/test", admin(P::WebhooksWrite, HOOK)),
    ("GET", "/v1/admin/webhooks/{subscription_id}/deliveries", admin(P::WebhooksRead, HOOK)),
    ("POST", "/v1/admin/webhooks/{subscription_id}/replay", admin(P::WebhooksWrite, HOOK)),
    ("GET", "/v1/admin/config/webhook-security", platform(P::ConfigRead)),
    ("PUT", "/v1/admin/config/webhook-security", platform(P::ConfigWrite)),
    ("GET", "/v1/admin/config/export", platform(P::ConfigExport)),
    ("POST", "/v1/admin/config/import", platform(P::ConfigImport)),
    ("POST", "/v1/webhooks", Rule::TenantKey),
    ("GET", "/v1/webhooks", Rule::TenantKey),
    ("GET", "/v1/webhooks/{subscription_id}", Rule::TenantKey),
    ("PATCH", "/v1/webhooks/{subscription_id}", Rule::TenantKey),
    ("DELETE", "/v1/webhooks/{subscription_id}", Rule::TenantKey),
    ("POST", "/v1/webhooks/{subscription_id}/test", Rule::TenantKey),
    ("GET", "/v1/webhooks/{subscription_id}/deliveries", Rule::TenantKey),
    ("GET", "/v1/admin/token-usage", admin(P::BudgetsRead, &[Loc::Query])),
    ("GET", "/v1/admin/token-usage/summary", admin(P::BudgetsRead, &[Loc::Query])),
    ("GET", "/v1/admin/tenants/{tenant_id}/usage", admin(P::BudgetsRead, &[Loc::Path("tenant_id")])),
    ("GET", "/v1/admin/tenants/{tenant_id}/usage/daily", admin(P::BudgetsRead, &[Loc::Path("tenant_id")])),
    ("GET", "/v1/admin/budgets/usage", admin(P::BudgetsRead, &[Loc::QueryScope])),
    ("GET", "/v1/admin/overview", platform(P::SystemRead)),
    ("GET", "/v1/admin/alerts", admin(P::BudgetsRead, &[Loc::Query])),
    ("POST", "/v1/admin/alerts/{alert_id}/resolve", platform(P::BudgetsWrite)),
    ("GET", "/v1/balances", either(P::BudgetsRead, &[Loc::Query])),
    // The handler checks a tenant key's action_quotas:read (or the deprecated balances:read).
    ("GET", "/v1/admin/action-quota-counters", either(P::BudgetsRead, &[Loc::Query])),
    ("POST", "/v1/admin/action-quota-counters/reset", admin(P::BudgetsFund, &[Loc::Body("tenant_id")])),
    ("POST", "/v1/admin/principals", platform(P::PrincipalsAdmin)),
    ("GET", "/v1/admin/principals", admin(P::PrincipalsRead, &[Loc::Query])),
    ("GET", "/v1/admin/principals/{principal_id}", admin(P::PrincipalsRead, PRINCIPAL)),
    ("PATCH", "/v1/admin/principals/{principal_id}", platform(P::PrincipalsAdmin)),
    ("POST", "/v1/admin/principals/{principal_id}/roles", platform(P::PrincipalsAdmin)),
    ("DELETE", "/v1/admin/principals/{principal_id}/roles/{role_id}", platform(P::PrincipalsAdmin)),
    ("POST", "/v1/admin/principals/{principal_id}/api-keys", platform(P::PrincipalsAdmin)),
    ("POST", "/v1/admin/principals/{principal_id}/api-keys/{key_id}/revoke", platform(P::PrincipalsAdmin)),
    ("GET", "/v1/admin/permissions", global(P::PrincipalsRead)),
    ("POST", "/v1/admin/roles", platform(P::PrincipalsAdmin)),
    ("GET", "/v1/admin/roles", global(P::PrincipalsRead)),
    ("DELETE", "/v1/admin/roles/{role_id}", platform(P::PrincipalsAdmin)),
    ("POST", "/v1/admin/roles/{role_id}/permissions", platform(P::PrincipalsAdmin)),
    ("DELETE", "/v1/admin/roles/{role_id}/permissions/{permission}", platform(P::PrincipalsAdmin)),
];

/// What a route missing from the table needs: the strongest permission, from a platform principal.
const UNLISTED: Rule =
    Rule::Admin { perm: Some(P::PrincipalsAdmin), tenancy: Tenancy::Platform, tenant_key_too: false };

pub fn rule_of(method: &Method, route: &str) -> Rule {
    ROUTES.iter().find(|(m, r, _)| *m == method.as_str() && *r == route).map_or(UNLISTED, |(_, _, rule)| *rule)
}

/// The route layer of the admin plane (see the module header).
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_default();
    let rule = rule_of(req.method(), &route);
    if matches!(rule, Rule::Open) {
        return next.run(req).await;
    }
    let operation = format!("{} {route}", req.method());
    let ctx = req.extensions().get::<RequestCtx>().cloned().unwrap_or_default();
    let (response, who) = match admit(&state, rule, &ctx, req).await {
        Ok((req, who)) => (next.run(req).await, who),
        Err((e, who)) => (e.into_response(), who),
    };
    let status = response.status().as_u16();
    if status == 401 || status == 403 {
        let code = response.extensions().get::<ErrorCode>().copied().unwrap_or(ErrorCode::Forbidden);
        super::refusals::record(&state, ctx, who, operation, code).await;
    }
    response
}

type Refused = (ApiError, Who);

/// A tenant key on a route that takes one: authenticated here (through the same cache the
/// handler's extractor would use, which then finds the caller in the request) so a refusal
/// names the key and its tenant.
async fn admit_tenant_key(state: &AppState, mut req: Request) -> Result<(Request, Who), Refused> {
    match state.auth.tenant(req.headers()).await {
        Ok(Some(t)) => {
            let who = Who::TenantKey { tenant_id: t.key.tenant_id.to_string(), key_id: t.key.key_id.clone() };
            req.extensions_mut().insert(Caller::Tenant(t));
            Ok((req, who))
        }
        Ok(None) => Ok((req, Who::Unauthenticated)),
        Err(e) => Err((e, Who::Unauthenticated)),
    }
}

async fn admit(state: &AppState, rule: Rule, ctx: &RequestCtx, req: Request) -> Result<(Request, Who), Refused> {
    let Rule::Admin { perm, tenancy, tenant_key_too } = rule else {
        return admit_tenant_key(state, req).await;
    };
    let headers = req.headers();
    if tenant_key_too && !Authenticator::has_admin_credential(headers) && headers.contains_key(TENANT_KEY_HEADER) {
        return admit_tenant_key(state, req).await;
    }
    let source = ctx.source_ip.clone().unwrap_or_default();
    let throttle = state.auth.throttle();
    if let Some(left) = throttle.auth_failures.blocked(&source) {
        let e = ApiError::new(ErrorCode::LimitExceeded, "too many failed authentications from this address")
            .with_header(header::RETRY_AFTER, HeaderValue::from(left.as_secs().max(1)));
        return Err((e, Who::Unauthenticated));
    }
    let identity = match state.auth.admin_identity(headers).await {
        Ok(Some(identity)) => identity,
        Ok(None) => {
            throttle.auth_failures.hit(&source);
            let e = ApiError::unauthorized("missing X-Admin-API-Key or Authorization: Bearer header");
            return Err((e, Who::Unauthenticated));
        }
        Err(e) => {
            if e.code == ErrorCode::Unauthorized {
                throttle.auth_failures.hit(&source);
            }
            return Err((e, Who::Unauthenticated));
        }
    };
    let refuse = |e: ApiError| (e, Who::Admin(identity.clone()));
    if let Some(p) = perm.filter(|p| !identity.holds(*p)) {
        let e = ApiError::new(ErrorCode::InsufficientPermissions, format!("this route requires the permission {p}"))
            .with_details(json!({ "permission": p }));
        return Err(refuse(e));
    }
    let req = match (&identity.tenant_id, tenancy) {
        (None, _) | (Some(_), Tenancy::Global) => req,
        (Some(_), Tenancy::Platform) => {
            let e = ApiError::new(
                ErrorCode::InsufficientPermissions,
                "this route acts across tenants; a tenant-bound principal cannot call it",
            );
            return Err(refuse(e));
        }
        (Some(own), Tenancy::At(locs)) => confine(state, own.as_str(), locs, req).await.map_err(refuse)?,
    };
    let mut req = req;
    if let Some(c) = req.extensions_mut().get_mut::<RequestCtx>() {
        c.admin = Some(identity.clone());
    }
    req.extensions_mut().insert(Caller::Admin);
    Ok((req, Who::Admin(identity)))
}

fn violation(field: &str, named: &str, own: &str) -> ApiError {
    let named = if named.is_empty() { "(none)" } else { named };
    ApiError::new(ErrorCode::TenantScopeViolation, format!("{field}: {named} is outside this principal's tenant {own}"))
        .with_details(json!({ "field": field, "tenant_id": named }))
}

/// Checks every place `locs` names a tenant against `own`, narrowing what is absent.
async fn confine(state: &AppState, own: &str, locs: &[Loc], req: Request) -> ApiResult<Request> {
    let (mut parts, body) = req.into_parts();
    let mut body: Result<Bytes, Body> = Err(body);
    for loc in locs {
        match *loc {
            Loc::Path(name) => {
                let v = path_param(&mut parts, name).await.unwrap_or_default();
                if v != own {
                    return Err(violation(name, &v, own));
                }
            }
            Loc::Query | Loc::QueryCheck => {
                let named = query_values(&parts.uri, "tenant_id");
                if let Some(other) = named.iter().find(|v| *v != own) {
                    return Err(violation("tenant_id", other, own));
                }
                if named.is_empty() && matches!(loc, Loc::Query) {
                    parts.uri = with_query_param(&parts.uri, "tenant_id", own)?;
                }
            }
            Loc::QueryScope => {
                if let Some(other) = query_values(&parts.uri, "scope").iter().find(|s| scope_tenant(s) != own) {
                    return Err(violation("scope", scope_tenant(other), own));
                }
            }
            Loc::Body(_) | Loc::BodyScope => {
                let bytes = match body {
                    Ok(b) => b,
                    Err(raw) => axum::body::to_bytes(raw, BODY_BYTES_MAX)
                        .await
                        .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large"))?,
                };
                let bytes = confine_body(bytes, *loc, own, &mut parts)?;
                body = Ok(bytes);
            }
            Loc::Owned(kind, name) => {
                let id = path_param(&mut parts, name).await.unwrap_or_default();
                match state.catalogue.owner_tenant(kind, &id).await? {
                    None => {}
                    Some(Some(t)) if t == own => {}
                    Some(t) => {
                        let t = t.filter(|t| t != SYSTEM_TENANT).unwrap_or_else(|| "the platform".to_string());
                        return Err(violation(name, &t, own));
                    }
                }
            }
        }
    }
    let body = body.map_or_else(|raw| raw, Body::from);
    Ok(Request::from_parts(parts, body))
}

/// Checks (and, for a tenant id, narrows) one field of a JSON body. A body that is not a JSON
/// object is left to the handler, which refuses it with 400.
fn confine_body(bytes: Bytes, loc: Loc, own: &str, parts: &mut Parts) -> ApiResult<Bytes> {
    let path = match loc {
        Loc::Body(path) => path,
        _ => "scope",
    };
    let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(bytes);
    };
    let (parent_path, field) = path.rsplit_once('.').map_or((None, path), |(p, f)| (Some(p), f));
    let parent = match parent_path {
        Some(p) => doc.get_mut(p),
        None => Some(&mut doc),
    };
    let Some(Value::Object(obj)) = parent else {
        return Ok(bytes);
    };
    match (obj.get(field), loc) {
        (Some(Value::String(s)), Loc::BodyScope) if scope_tenant(s) != own => {
            Err(violation(path, scope_tenant(s), own))
        }
        (Some(Value::String(s)), Loc::Body(_)) if s != own => Err(violation(path, s, own)),
        (None, Loc::Body(_)) => {
            obj.insert(field.to_string(), Value::String(own.to_string()));
            parts.headers.remove(header::CONTENT_LENGTH);
            Ok(Bytes::from(serde_json::to_vec(&doc).map_err(ApiError::internal)?))
        }
        _ => Ok(bytes),
    }
}

async fn path_param(parts: &mut Parts, name: &str) -> Option<String> {
    let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
    params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
}

fn query_values(uri: &Uri, name: &str) -> Vec<String> {
    let query = uri.query().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == name).map(|(_, v)| v.into_owned()).collect()
}

fn with_query_param(uri: &Uri, name: &str, value: &str) -> ApiResult<Uri> {
    let added: String = form_urlencoded::Serializer::new(String::new()).append_pair(name, value).finish();
    let path_and_query = match uri.query().filter(|q| !q.is_empty()) {
        Some(q) => format!("{}?{q}&{added}", uri.path()),
        None => format!("{}?{added}", uri.path()),
    };
    path_and_query.parse().map_err(ApiError::internal)
}
