//! Webhook subscriptions, admin flavour (`/v1/admin/webhooks…`, admin key) and tenant flavour
//! (`/v1/webhooks…`, tenant key, or the admin key acting for the owning tenant), the
//! deliveries listing, replay, bulk actions and the webhook security config. Handlers parse
//! and bound the wire values; `catalogue::webhooks` holds the rules.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::audit::time_param;
use crate::auth::{AdminAuth, AnyAuth, Caller, TenantAuth};
use crate::catalogue::audit::Actor;
use crate::catalogue::webhooks::{SubscriptionInput, Viewer, delivery_status};
use crate::domain::Permission;
use crate::domain::amount::de_opt_int;
use crate::domain::event::{EventCategory, EventType, SYSTEM_TENANT};
use crate::domain::tenant::TenantId;
use crate::domain::webhook::{DeliveryStatus, RetryPolicy, Subscription, ThresholdConfig, WebhookStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events::guard::SecurityConfig;
use crate::http::context::RequestCtx;
use crate::http::extract::{JsonBody, PathParam, QueryParams};
use crate::http::page::{self, ListParams, enum_param, no_nul, search_param};
use crate::state::AppState;
use crate::store::pg::page::SortColumn;
use crate::store::pg::webhooks::{Delivery, DeliveryFilter, Filter};

/// Header values are never shown after create.
const MASK: &str = "********";

/// A request object that must be a JSON object: serde would otherwise also read a struct
/// from an array of its field values (`[]` would be a config of all defaults).
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);

        impl<'de, T: DeserializeOwned> Visitor<'de> for Fields<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        d.deserialize_map(Fields(std::marker::PhantomData)).map(Object)
    }
}

impl<T: Serialize> Serialize for Object<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WebhookSubscription)]
pub struct SubscriptionBody {
    subscription_id: String,
    tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    url: String,
    event_types: Vec<EventType>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    event_categories: Vec<EventCategory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope_filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thresholds: Option<ThresholdConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<BTreeMap<String, String>>,
    status: WebhookStatus,
    retry_policy: RetryPolicy,
    disable_after_failures: i32,
    consecutive_failures: i32,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    updated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    last_triggered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    last_success_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    last_failure_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
}

impl SubscriptionBody {
    /// The wire form; custom header values (when the names are known) are masked.
    fn new(s: Subscription, header_names: Option<Vec<String>>) -> Self {
        Self {
            headers: header_names
                .filter(|n| !n.is_empty())
                .map(|names| names.into_iter().map(|n| (n, MASK.to_string())).collect()),
            subscription_id: s.subscription_id,
            tenant_id: s.tenant_id,
            name: s.name,
            description: s.description,
            url: s.url,
            event_types: s.event_types,
            event_categories: s.event_categories,
            scope_filter: s.scope_filter,
            thresholds: s.thresholds,
            status: s.status,
            retry_policy: s.retry_policy,
            disable_after_failures: s.disable_after_failures,
            consecutive_failures: s.consecutive_failures,
            created_at: s.created_at,
            updated_at: s.updated_at,
            last_triggered_at: s.last_triggered_at,
            last_success_at: s.last_success_at,
            last_failure_at: s.last_failure_at,
            metadata: s.metadata,
        }
    }
}

/// `WebhookCreateRequest` and `WebhookUpdateRequest` in one shape: the update's fields, all
/// optional. A create must not set `status`; `url` and a non-empty `event_types` are checked
/// as required by `catalogue::create_webhook`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookUpdateRequest)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    name: Option<String>,
    description: Option<String>,
    url: Option<String>,
    event_types: Option<Vec<EventType>>,
    event_categories: Option<Vec<EventCategory>>,
    scope_filter: Option<String>,
    #[schema(value_type = Option<ThresholdConfig>)]
    thresholds: Option<Object<ThresholdConfig>>,
    signing_secret: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<RetryPolicy>)]
    retry_policy: Option<Object<RetryPolicy>>,
    #[serde(default, deserialize_with = "de_opt_int")]
    disable_after_failures: Option<i64>,
    status: Option<WebhookStatus>,
    metadata: Option<Value>,
}

/// `WebhookCreateRequest` in the documents: the same fields, of which a create needs `url` and
/// `event_types` (the catalogue refuses a create without them).
pub struct CreateRequestDoc;

impl utoipa::PartialSchema for CreateRequestDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut schema = <SubscriptionRequest as utoipa::PartialSchema>::schema();
        if let utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(object)) = &mut schema {
            object.required = vec!["url".into(), "event_types".into()];
        }
        schema
    }
}
impl utoipa::ToSchema for CreateRequestDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "WebhookCreateRequest".into()
    }
}

impl From<SubscriptionRequest> for SubscriptionInput {
    fn from(r: SubscriptionRequest) -> Self {
        SubscriptionInput {
            name: r.name,
            description: r.description,
            url: r.url,
            event_types: r.event_types,
            event_categories: r.event_categories,
            scope_filter: r.scope_filter,
            thresholds: r.thresholds.map(|t| t.0),
            signing_secret: r.signing_secret,
            headers: r.headers,
            retry_policy: r.retry_policy.map(|p| p.0),
            disable_after_failures: r.disable_after_failures.map(saturate),
            status: r.status,
            metadata: r.metadata,
        }
    }
}

/// An `int64` as `i32`, saturating; the range check then names the field.
fn saturate(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WebhookCreateResponse)]
pub struct CreatedBody {
    subscription: SubscriptionBody,
    signing_secret: String,
}

fn header_names(input: &SubscriptionInput) -> Option<Vec<String>> {
    input.headers.as_ref().map(|h| h.keys().cloned().collect())
}

async fn create_for(
    state: &AppState,
    actor: &Actor,
    owner: &str,
    req: SubscriptionRequest,
) -> ApiResult<(StatusCode, Json<CreatedBody>)> {
    if req.status.is_some() {
        return Err(ApiError::invalid_field(
            "status",
            "is not a field of a create request; new subscriptions are ACTIVE",
        ));
    }
    let input: SubscriptionInput = req.into();
    let names = header_names(&input);
    let (sub, secret) = state.catalogue.create_webhook(actor, owner, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedBody { subscription: SubscriptionBody::new(sub, names), signing_secret: secret }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OwnerQuery {
    tenant_id: Option<String>,
}

/// `POST /v1/admin/webhooks[?tenant_id=]`: without a tenant the subscription is system-wide.
#[utoipa::path(post, path = "/v1/admin/webhooks", operation_id = "createWebhookSubscription", tag = "Webhooks",
    params(OwnerQuery), request_body = CreateRequestDoc,
    responses((status = 201, description = "Created; the signing secret is shown only here", body = CreatedBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn create(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    QueryParams(q): QueryParams<OwnerQuery>,
    JsonBody(Object(req)): JsonBody<Object<SubscriptionRequest>>,
) -> ApiResult<(StatusCode, Json<CreatedBody>)> {
    let owner = match q.tenant_id.filter(|t| !t.is_empty()) {
        None => SYSTEM_TENANT.to_string(),
        Some(t) if t == SYSTEM_TENANT => t,
        Some(t) => TenantId::parse(&t).map_err(|e| ApiError::invalid_field("tenant_id", e))?.to_string(),
    };
    create_for(&state, &Actor::admin(ctx), &owner, req).await
}

/// `POST /v1/webhooks`: a subscription owned by the calling tenant.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "createTenantWebhook", tag = "Webhooks",
    request_body = CreateRequestDoc,
    responses((status = 201, description = "Created; the signing secret is shown only here", body = CreatedBody), crate::http::openapi::E400_401_403_409_500_503)
)]
pub async fn create_for_tenant(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    JsonBody(Object(req)): JsonBody<Object<SubscriptionRequest>>,
) -> ApiResult<(StatusCode, Json<CreatedBody>)> {
    caller.require(Permission::WebhooksWrite, ErrorCode::InsufficientPermissions)?;
    caller.require_writable()?;
    let actor = Actor { actor_type: "api_key", key_id: Some(caller.key.key_id.clone()), ctx };
    create_for(&state, &actor, caller.key.tenant_id.as_str(), req).await
}

/// Who acts on a tenant-flavour path: a tenant key (with `perm`) sees only its tenant's
/// subscriptions; the admin key acts on behalf of the owner.
fn tenant_route<'a>(caller: &'a Caller, ctx: RequestCtx, perm: Permission) -> ApiResult<(Actor, Viewer<'a>)> {
    match caller {
        Caller::Admin => Ok((Actor { actor_type: "admin_on_behalf_of", key_id: None, ctx }, Viewer::Admin)),
        Caller::Tenant(t) => {
            t.require(perm, ErrorCode::InsufficientPermissions)?;
            if matches!(perm, Permission::WebhooksWrite) {
                t.require_writable()?;
            }
            let actor = Actor { actor_type: "api_key", key_id: Some(t.key.key_id.clone()), ctx };
            Ok((actor, Viewer::Tenant(t.key.tenant_id.as_str())))
        }
    }
}

async fn get_as(state: &AppState, viewer: Viewer<'_>, id: &str) -> ApiResult<Json<SubscriptionBody>> {
    let stored = state.catalogue.get_webhook(viewer, id).await?;
    let names = state.catalogue.header_names(&stored);
    Ok(Json(SubscriptionBody::new(stored.sub, names)))
}

#[utoipa::path(get, path = "/v1/admin/webhooks/{subscription_id}", operation_id = "getWebhookSubscription", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id")),
    responses((status = 200, description = "The subscription", body = SubscriptionBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn get(
    State(state): State<AppState>,
    _: AdminAuth,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<SubscriptionBody>> {
    get_as(&state, Viewer::Admin, &id).await
}

#[utoipa::path(get, path = "/v1/webhooks/{subscription_id}", operation_id = "getTenantWebhook", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id")),
    responses((status = 200, description = "The subscription", body = SubscriptionBody), crate::http::openapi::E400_401_403_404_500_503)
)]
pub async fn get_for_tenant(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
) -> ApiResult<Json<SubscriptionBody>> {
    let (_, viewer) = tenant_route(&caller, ctx, Permission::WebhooksRead)?;
    get_as(&state, viewer, &id).await
}

async fn update_as(
    state: &AppState,
    actor: &Actor,
    viewer: Viewer<'_>,
    id: &str,
    req: SubscriptionRequest,
) -> ApiResult<Json<SubscriptionBody>> {
    let sub = state.catalogue.update_webhook(actor, viewer, id, req.into()).await?;
    get_as(state, viewer, &sub.subscription_id).await
}

#[utoipa::path(patch, path = "/v1/admin/webhooks/{subscription_id}", operation_id = "updateWebhookSubscription", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id")), request_body = SubscriptionRequest,
    responses((status = 200, description = "The updated subscription", body = SubscriptionBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn update(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    JsonBody(Object(req)): JsonBody<Object<SubscriptionRequest>>,
) -> ApiResult<Json<SubscriptionBody>> {
    update_as(&state, &Actor::admin(ctx), Viewer::Admin, &id, req).await
}

#[utoipa::path(patch, path = "/v1/webhooks/{subscription_id}", operation_id = "updateTenantWebhook", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id")), request_body = SubscriptionRequest,
    responses((status = 200, description = "The updated subscription", body = SubscriptionBody), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn update_for_tenant(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
    JsonBody(Object(req)): JsonBody<Object<SubscriptionRequest>>,
) -> ApiResult<Json<SubscriptionBody>> {
    let (actor, viewer) = tenant_route(&caller, ctx, Permission::WebhooksWrite)?;
    update_as(&state, &actor, viewer, &id, req).await
}

#[utoipa::path(delete, path = "/v1/admin/webhooks/{subscription_id}", operation_id = "deleteWebhookSubscription", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id")),
    responses((status = 204, description = "Deleted"), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn delete(
    State(state): State<AppState>,
    _: AdminAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
) -> ApiResult<StatusCode> {
    state.catalogue.delete_webhook(&Actor::admin(ctx), Viewer::Admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/webhooks/{subscription_id}", operation_id = "deleteTenantWebhook", tag = "Webhooks",
    params(("subscription_id" = String, Path, description = "The webhook subscription's id")),
    responses((status = 204, description = "Deleted"), crate::http::openapi::E400_401_403_404_409_500_503)
)]
pub async fn delete_for_tenant(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    axum::Extension(ctx): axum::Extension<RequestCtx>,
    PathParam(id): PathParam<String>,
) -> ApiResult<StatusCode> {
    let (actor, viewer) = tenant_route(&caller, ctx, Permission::WebhooksWrite)?;
    state.catalogue.delete_webhook(&actor, viewer, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) mod bulk;
pub(super) mod deliveries;
pub(super) mod list;

pub use bulk::{bulk_action, get_security_config, put_security_config};
pub use deliveries::{deliveries, deliveries_for_tenant, replay, test, test_for_tenant};
pub use list::{list, list_for_tenant};
