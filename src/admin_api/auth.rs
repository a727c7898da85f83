//! `POST /v1/auth/validate` (admin only) and `GET /v1/auth/introspect` (either key).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::{AdminAuth, AnyAuth, Caller};
use crate::domain::Permission;
use crate::domain::access::{AdminIdentity, AdminPermission};
use crate::error::ApiResult;
use crate::http::context::RequestCtx;
use crate::http::extract::JsonBody;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ApiKeyValidationRequest)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    key_secret: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ApiKeyValidationResponse)]
pub struct ValidateBody {
    valid: bool,
    tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Vec<Permission>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope_filter: Option<Vec<String>>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    expires_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// Invalid keys are a 200 with `valid=false` and a reason, as the spec prescribes.
#[utoipa::path(post, path = "/v1/auth/validate", operation_id = "validateApiKey", tag = "Auth",
    request_body = ValidateRequest,
    responses((status = 200, description = "Whether the key is valid", body = ValidateBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn validate(
    State(state): State<AppState>,
    _: AdminAuth,
    JsonBody(req): JsonBody<ValidateRequest>,
) -> ApiResult<Json<ValidateBody>> {
    let body = match state.catalogue.validate_key(&req.key_secret).await? {
        Ok(key) => ValidateBody {
            valid: true,
            tenant_id: key.tenant_id.to_string(),
            key_id: Some(key.key_id),
            permissions: Some(key.permissions),
            scope_filter: Some(key.scope_filter),
            expires_at: Some(key.expires_at),
            reason: None,
        },
        Err((reason, tenant_id)) => ValidateBody {
            valid: false,
            tenant_id,
            key_id: None,
            permissions: None,
            scope_filter: None,
            expires_at: None,
            reason: Some(reason),
        },
    };
    Ok(Json(body))
}

#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct Capabilities {
    view_overview: bool,
    view_budgets: bool,
    view_events: bool,
    view_webhooks: bool,
    view_audit: bool,
    view_tenants: bool,
    view_api_keys: bool,
    view_policies: bool,
    view_reservations: bool,
    manage_budgets: bool,
    manage_policies: bool,
    manage_webhooks: bool,
    manage_tenants: bool,
    manage_api_keys: bool,
    manage_reservations: bool,
}

impl Capabilities {
    fn all() -> Self {
        Self {
            view_overview: true,
            view_budgets: true,
            view_events: true,
            view_webhooks: true,
            view_audit: true,
            view_tenants: true,
            view_api_keys: true,
            view_policies: true,
            view_reservations: true,
            manage_budgets: true,
            manage_policies: true,
            manage_webhooks: true,
            manage_tenants: true,
            manage_api_keys: true,
            manage_reservations: true,
        }
    }

    /// An admin principal's capabilities: what its permissions let it see and change.
    fn of_principal(admin: &AdminIdentity) -> Self {
        use AdminPermission as A;
        let has = |p: A| admin.holds(p);
        Self {
            view_overview: admin.tenant_id.is_none() && has(A::TenantsRead),
            view_budgets: has(A::BudgetsRead),
            view_events: has(A::EventsRead),
            view_webhooks: has(A::WebhooksRead),
            view_audit: has(A::AuditRead),
            view_tenants: has(A::TenantsRead),
            view_api_keys: has(A::KeysRead),
            view_policies: has(A::PoliciesRead),
            view_reservations: has(A::BudgetsRead),
            manage_budgets: has(A::BudgetsWrite),
            manage_policies: has(A::PoliciesWrite),
            manage_webhooks: has(A::WebhooksWrite),
            manage_tenants: has(A::TenantsWrite),
            manage_api_keys: has(A::KeysWrite),
            manage_reservations: has(A::BudgetsWrite),
        }
    }

    /// The spec's frozen table: a capability is true iff the key holds any listed
    /// permission; tenant keys never see tenants, keys, audit or the overview.
    fn of(perms: &[Permission]) -> Self {
        use Permission as P;
        let any = |list: &[Permission]| list.iter().any(|p| perms.contains(p));
        let reservations =
            [P::ReservationsCreate, P::ReservationsCommit, P::ReservationsRelease, P::ReservationsExtend];
        Self {
            view_budgets: any(&[P::BudgetsRead, P::AdminRead, P::AdminBudgetsRead]),
            view_policies: any(&[P::PoliciesRead, P::AdminRead, P::AdminPoliciesRead]),
            view_webhooks: any(&[P::WebhooksRead, P::AdminRead, P::AdminWebhooksRead]),
            view_events: any(&[P::EventsRead, P::AdminRead, P::AdminEventsRead]),
            view_reservations: any(&reservations) || any(&[P::ReservationsList, P::AdminRead]),
            manage_budgets: any(&[P::BudgetsWrite, P::AdminWrite, P::AdminBudgetsWrite]),
            manage_policies: any(&[P::PoliciesWrite, P::AdminWrite, P::AdminPoliciesWrite]),
            manage_webhooks: any(&[P::WebhooksWrite, P::AdminWrite, P::AdminWebhooksWrite]),
            manage_reservations: any(&reservations) || any(&[P::AdminWrite]),
            ..Self::default()
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AuthIntrospectResponse)]
pub struct IntrospectBody {
    authenticated: bool,
    auth_type: &'static str,
    permissions: Vec<String>,
    capabilities: Capabilities,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope_filter: Option<Vec<String>>,
}

/// An admin principal (a token) is described by its own permissions and tenant; the bootstrap
/// key is `admin` with every capability.
#[utoipa::path(get, path = "/v1/auth/introspect", operation_id = "introspectAuth", tag = "Auth",
    responses((status = 200, description = "The caller's identity and capabilities", body = IntrospectBody), crate::http::openapi::E400_401_403_500_503)
)]
pub async fn introspect(
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
) -> Json<IntrospectBody> {
    let principal = ctx.admin.filter(|a| a.principal_id.is_some());
    Json(match (caller, principal) {
        (Caller::Admin, Some(admin)) => IntrospectBody {
            authenticated: true,
            auth_type: "principal",
            permissions: admin.permissions.iter().map(|p| p.as_str().to_string()).collect(),
            capabilities: Capabilities::of_principal(&admin),
            tenant_id: admin.tenant_id.as_ref().map(ToString::to_string),
            scope_filter: None,
        },
        (Caller::Admin, None) => IntrospectBody {
            authenticated: true,
            auth_type: "admin",
            permissions: vec!["*".into()],
            capabilities: Capabilities::all(),
            tenant_id: None,
            scope_filter: None,
        },
        (Caller::Tenant(t), _) => IntrospectBody {
            authenticated: true,
            auth_type: "tenant",
            permissions: t.key.permissions.iter().map(|p| p.as_str().to_string()).collect(),
            capabilities: Capabilities::of(&t.key.permissions),
            tenant_id: Some(t.key.tenant_id.to_string()),
            scope_filter: (!t.key.scope_filter.is_empty()).then(|| t.key.scope_filter.clone()),
        },
    })
}
