//! The policy routes' schemas in the OpenAPI document. The handlers read and write the domain's
//! `Rules` (flattened into the body), so these types only describe the wire shapes under the
//! spec's names (`Policy`, `PolicyCreateRequest`, `PolicyUpdateRequest`); the nested rule
//! objects (caps, quotas, overrides) are described as objects, as the spec defines them.

#![allow(dead_code)]

use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::tenant::CommitOveragePolicy;

/// A policy's status.
#[derive(utoipa::ToSchema)]
#[schema(as = PolicyStatus)]
#[allow(clippy::upper_case_acronyms)]
pub enum Status {
    ACTIVE,
    DISABLED,
}

/// The spec's `Policy` with the v0.1.26 fields (the lists are always present).
#[derive(utoipa::ToSchema)]
#[schema(as = Policy)]
pub struct PolicyDoc {
    policy_id: String,
    name: String,
    description: Option<String>,
    scope_pattern: String,
    priority: i64,
    #[schema(value_type = Option<Object>)]
    caps: Option<Value>,
    commit_overage_policy: Option<CommitOveragePolicy>,
    #[schema(value_type = Option<Object>)]
    reservation_ttl_override: Option<Value>,
    #[schema(value_type = Option<Object>)]
    rate_limits: Option<Value>,
    status: Status,
    effective_from: Option<OffsetDateTime>,
    effective_until: Option<OffsetDateTime>,
    #[schema(value_type = Vec<Object>)]
    action_quotas: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    risk_class_quotas: Vec<Value>,
    allowed_action_kinds: Vec<String>,
    denied_action_kinds: Vec<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

/// The spec's `PolicyCreateRequest` with the v0.1.26 fields.
#[derive(utoipa::ToSchema)]
#[schema(as = PolicyCreateRequest)]
pub struct CreateDoc {
    /// Required with admin authentication; refused with an API key (its own tenant is used).
    tenant_id: Option<String>,
    name: String,
    description: Option<String>,
    scope_pattern: String,
    priority: Option<i64>,
    #[schema(value_type = Option<Object>)]
    caps: Option<Value>,
    commit_overage_policy: Option<CommitOveragePolicy>,
    #[schema(value_type = Option<Object>)]
    reservation_ttl_override: Option<Value>,
    #[schema(value_type = Option<Object>)]
    rate_limits: Option<Value>,
    effective_from: Option<OffsetDateTime>,
    effective_until: Option<OffsetDateTime>,
    #[schema(value_type = Option<Vec<Object>>)]
    action_quotas: Option<Vec<Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    risk_class_quotas: Option<Vec<Value>>,
    allowed_action_kinds: Option<Vec<String>>,
    denied_action_kinds: Option<Vec<String>>,
}

/// The spec's `updatePolicy` body with the v0.1.26 fields: only the fields given change.
#[derive(utoipa::ToSchema)]
#[schema(as = PolicyUpdateRequest)]
pub struct UpdateDoc {
    name: Option<String>,
    description: Option<String>,
    priority: Option<i64>,
    #[schema(value_type = Option<Object>)]
    caps: Option<Value>,
    commit_overage_policy: Option<CommitOveragePolicy>,
    #[schema(value_type = Option<Object>)]
    reservation_ttl_override: Option<Value>,
    #[schema(value_type = Option<Object>)]
    rate_limits: Option<Value>,
    effective_from: Option<OffsetDateTime>,
    effective_until: Option<OffsetDateTime>,
    status: Option<Status>,
    #[schema(value_type = Option<Vec<Object>>)]
    action_quotas: Option<Vec<Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    risk_class_quotas: Option<Vec<Value>>,
    allowed_action_kinds: Option<Vec<String>>,
    denied_action_kinds: Option<Vec<String>>,
}

/// The dry run's body: a candidate (`policy`, or `policy_id` with an optional `patch`) and the
/// sample requests to evaluate against the tenant's policies with and without it.
#[derive(utoipa::ToSchema)]
#[schema(as = PolicyDryRunRequest)]
pub struct DryRunDoc {
    /// Required with admin authentication; refused with an API key.
    tenant_id: Option<String>,
    /// A new candidate (the create body, without `tenant_id`).
    #[schema(value_type = Option<CreateDoc>)]
    policy: Option<Value>,
    /// A stored policy, with `patch` applied.
    policy_id: Option<String>,
    #[schema(value_type = Option<UpdateDoc>)]
    patch: Option<Value>,
    /// `{scope, action_kind, risk_class?, policy_keys?, run_id?, ttl_ms?, estimate?}` per sample
    /// (1 to 1 000; may be left out when `replay` is given).
    #[schema(value_type = Option<Vec<Object>>)]
    samples: Option<Vec<Value>>,
    /// `{days}` (1 to 30): also replay the tenant's reservations of the last `days` days.
    #[schema(value_type = Option<Object>)]
    replay: Option<Value>,
}
