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

/// SHA-256 (hex) of the canonical JSON of a request: the idempotency fingerprint.
pub fn request_hash<T: Serialize>(req: &T) -> ApiResult<String> {
    use sha2::Digest;
    let value = serde_json::to_value(req).map_err(ApiError::internal)?;
    Ok(hex::encode(sha2::Sha256::digest(crate::canonical::to_string(&value).as_bytes())))
}
