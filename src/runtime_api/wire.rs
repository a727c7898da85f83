//! Runtime wire types shared by several endpoints (the spec's `Amount`, `SignedAmount`,
//! `Subject`, `Action`, `Balance`) and their validation. Field names follow the spec.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::amount::{Unit, Units};
use crate::domain::scope::{self, LEVELS, Scopes};
use crate::error::{ApiError, ApiResult};
use crate::ledger::Balance;

/// Limits of the spec's `Subject` and `Action`, and one for free-form metadata. The spec
/// bounds dimension values, not keys; the key bound only keeps a stored subject small.
pub const DIMENSIONS_MAX: usize = 16;
pub const DIMENSION_VALUE_LEN_MAX: usize = 256;
pub const DIMENSION_KEY_LEN_MAX: usize = 256;
pub const ACTION_KIND_LEN_MAX: usize = 64;
pub const ACTION_NAME_LEN_MAX: usize = 256;
pub const ACTION_TAGS_MAX: usize = 10;
pub const ACTION_TAG_LEN_MAX: usize = 64;
/// Serialized size of a `metadata` object at most; it is stored with the reservation.
pub const METADATA_BYTES_MAX: usize = 16 * 1024;
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 256;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    pub unit: Unit,
    pub amount: Units,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct SignedAmount {
    pub unit: Unit,
    pub amount: i64,
}

pub fn amount(unit: Unit, v: i64) -> Amount {
    Amount { unit, amount: Units::new(v).unwrap_or(Units::ZERO) }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toolset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<BTreeMap<String, String>>,
}

impl Subject {
    pub fn levels(&self) -> [Option<&str>; 6] {
        [
            self.tenant.as_deref(),
            self.workspace.as_deref(),
            self.app.as_deref(),
            self.workflow.as_deref(),
            self.agent.as_deref(),
            self.toolset.as_deref(),
        ]
    }

    /// Validates the subject and checks it against the caller's tenant (403 on mismatch);
    /// returns its scopes.
    pub fn scopes_for(&self, tenant: &str) -> ApiResult<Scopes> {
        let levels = self.levels();
        if levels.iter().all(Option::is_none) {
            return Err(ApiError::invalid_field(
                "subject",
                "must name at least one of tenant, workspace, app, workflow, agent, toolset",
            ));
        }
        for (name, value) in LEVELS.iter().zip(levels) {
            if let Some(v) = value {
                scope::check_value(v).map_err(|e| ApiError::invalid_field(&format!("subject.{name}"), e))?;
            }
        }
        if let Some(dims) = &self.dimensions {
            if dims.len() > DIMENSIONS_MAX {
                return Err(ApiError::invalid_field(
                    "subject.dimensions",
                    format!("must have at most {DIMENSIONS_MAX} entries"),
                ));
            }
            for (k, v) in dims {
                if k.chars().count() > DIMENSION_KEY_LEN_MAX || v.chars().count() > DIMENSION_VALUE_LEN_MAX {
                    return Err(ApiError::invalid_field(
                        "subject.dimensions",
                        format!(
                            "keys must be at most {DIMENSION_KEY_LEN_MAX} characters and values at most {DIMENSION_VALUE_LEN_MAX}"
                        ),
                    ));
                }
            }
        }
        if let Some(t) = &self.tenant
            && !t.eq_ignore_ascii_case(tenant)
        {
            return Err(ApiError::forbidden("subject.tenant does not match the API key's tenant"));
        }
        Ok(Scopes::derive(&levels))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// v0.1.26 `ActionPolicyKeys`: the dimensions quota allowlists filter on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_keys: Option<PolicyKeysBody>,
}

/// The spec's `ActionPolicyKeys` (cycles-action-kinds v0.1.26).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ActionPolicyKeys)]
#[serde(deny_unknown_fields)]
pub struct PolicyKeysBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<BTreeMap<String, String>>,
}

/// The spec's `maxLength`s of `ActionPolicyKeys` and its `custom` entries.
const POLICY_KEY_LIMITS: [(&str, usize); 4] =
    [("host", 253), ("recipient_domain", 253), ("resource_type", 128), ("path_prefix", 512)];
pub const POLICY_KEYS_CUSTOM_MAX: usize = 8;
const POLICY_KEY_CUSTOM_LEN_MAX: usize = 256;

impl PolicyKeysBody {
    fn check(&self) -> ApiResult<()> {
        let values = [&self.host, &self.recipient_domain, &self.resource_type, &self.path_prefix];
        for ((name, max), v) in POLICY_KEY_LIMITS.iter().zip(values) {
            if v.as_ref().is_some_and(|v| v.chars().count() > *max) {
                let field = format!("action.policy_keys.{name}");
                return Err(ApiError::invalid_field(&field, format!("must be at most {max} characters")));
            }
        }
        if let Some(custom) = &self.custom
            && (custom.len() > POLICY_KEYS_CUSTOM_MAX
                || custom.iter().any(|(k, v)| {
                    k.chars().count() > POLICY_KEY_CUSTOM_LEN_MAX || v.chars().count() > POLICY_KEY_CUSTOM_LEN_MAX
                }))
        {
            return Err(ApiError::invalid_field(
                "action.policy_keys.custom",
                format!(
                    "must have at most {POLICY_KEYS_CUSTOM_MAX} entries of at most {POLICY_KEY_CUSTOM_LEN_MAX} characters"
                ),
            ));
        }
        Ok(())
    }
}

impl Action {
    /// What the policy evaluator needs of the action, with the subject's `run_id` dimension.
    pub fn facts(&self, subject: &Subject) -> crate::ledger::reserve::ActionFacts {
        let keys = self.policy_keys.clone().unwrap_or_default();
        crate::ledger::reserve::ActionFacts {
            kind: self.kind.clone(),
            policy_keys: crate::domain::policy::eval::PolicyKeys {
                host: keys.host,
                recipient_domain: keys.recipient_domain,
                resource_type: keys.resource_type,
            },
            run_id: subject.dimensions.as_ref().and_then(|d| d.get("run_id")).cloned(),
        }
    }
}

impl Action {
    pub fn check(&self) -> ApiResult<()> {
        if self.kind.chars().count() > ACTION_KIND_LEN_MAX {
            return Err(ApiError::invalid_field(
                "action.kind",
                format!("must be at most {ACTION_KIND_LEN_MAX} characters"),
            ));
        }
        if self.name.chars().count() > ACTION_NAME_LEN_MAX {
            return Err(ApiError::invalid_field(
                "action.name",
                format!("must be at most {ACTION_NAME_LEN_MAX} characters"),
            ));
        }
        if let Some(tags) = &self.tags {
            if tags.len() > ACTION_TAGS_MAX {
                return Err(ApiError::invalid_field(
                    "action.tags",
                    format!("must have at most {ACTION_TAGS_MAX} items"),
                ));
            }
            if tags.iter().any(|t| t.chars().count() > ACTION_TAG_LEN_MAX) {
                return Err(ApiError::invalid_field(
                    "action.tags",
                    format!("items must be at most {ACTION_TAG_LEN_MAX} characters"),
                ));
            }
        }
        if let Some(keys) = &self.policy_keys {
            keys.check()?;
        }
        Ok(())
    }
}

pub fn check_idempotency_key(field: &str, key: &str) -> ApiResult<()> {
    if key.is_empty() || key.chars().count() > IDEMPOTENCY_KEY_LEN_MAX {
        return Err(ApiError::invalid_field(field, format!("must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} characters")));
    }
    Ok(())
}

/// Serializes optional metadata for storage ('' when absent), refusing oversized objects.
pub fn metadata_json(field: &str, m: &Option<Map<String, Value>>) -> ApiResult<String> {
    let Some(m) = m else { return Ok(String::new()) };
    let json = serde_json::to_string(m).map_err(ApiError::internal)?;
    if json.len() > METADATA_BYTES_MAX {
        return Err(ApiError::invalid_field(field, format!("must serialize to at most {METADATA_BYTES_MAX} bytes")));
    }
    Ok(json)
}

/// The spec's `Balance`: every amount emitted, so the ledger invariant is visible.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Balance)]
pub struct BalanceBody {
    pub scope: String,
    pub scope_path: String,
    pub remaining: SignedAmount,
    pub reserved: Amount,
    pub spent: Amount,
    pub debt: Amount,
    pub allocated: Amount,
    pub overdraft_limit: Amount,
    pub is_over_limit: bool,
}

impl From<&Balance> for BalanceBody {
    fn from(b: &Balance) -> Self {
        Self {
            scope: b.scope.clone(),
            scope_path: b.scope.clone(),
            remaining: SignedAmount { unit: b.unit, amount: b.remaining() },
            reserved: amount(b.unit, b.reserved),
            spent: amount(b.unit, b.spent),
            debt: amount(b.unit, b.debt),
            allocated: amount(b.unit, b.allocated),
            overdraft_limit: amount(b.unit, b.overdraft_limit),
            is_over_limit: b.is_over_limit,
        }
    }
}

pub fn balances(list: &[Balance]) -> Vec<BalanceBody> {
    list.iter().map(BalanceBody::from).collect()
}

/// The protocol's `Caps` (ALLOW_WITH_CAPS).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Caps)]
pub struct CapsBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps_remaining: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_allowlist: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_denylist: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_ms: Option<i64>,
}

impl From<crate::domain::policy::Caps> for CapsBody {
    fn from(c: crate::domain::policy::Caps) -> Self {
        Self {
            max_tokens: c.max_tokens,
            max_steps_remaining: c.max_steps_remaining,
            tool_allowlist: c.tool_allowlist,
            tool_denylist: c.tool_denylist,
            cooldown_ms: c.cooldown_ms,
        }
    }
}

/// SHA-256 (hex) of the canonical JSON of a request: the idempotency fingerprint.
pub fn request_hash<T: Serialize>(req: &T) -> ApiResult<String> {
    use sha2::Digest;
    let value = serde_json::to_value(req).map_err(ApiError::internal)?;
    Ok(hex::encode(sha2::Sha256::digest(crate::canonical::to_string(&value).as_bytes())))
}
