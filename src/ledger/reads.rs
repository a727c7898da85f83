//! Reads of the ledger (no scripts): one reservation, a tenant's reservations, its budgets.
//! Multi-key reads are pipelined per tenant (one slot, one round trip).

use std::collections::HashMap;

use serde_json::Value;

use crate::domain::CommitOveragePolicy;
use crate::domain::amount::Unit;
use crate::domain::error::{Error, Result};

use super::{Balance, Ledger};

/// Reservations read per pipelined round trip when listing.
pub(super) const READ_BATCH: usize = 200;
/// Most reservations a listing sorted by anything but creation time considers (the newest);
/// a limit on one request's work. Listings in creation order page the index instead.
pub const LIST_SCAN_MAX: usize = 10_000;
/// Most budgets one tenant's listing reads.
pub const BUDGETS_SCAN_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    Active,
    Committed,
    Released,
    Expired,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Committed => "COMMITTED",
            Self::Released => "RELEASED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ACTIVE" => Self::Active,
            "COMMITTED" => Self::Committed,
            "RELEASED" => Self::Released,
            "EXPIRED" => Self::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ReservationRecord {
    pub reservation_id: String,
    pub status: ReservationStatus,
    pub unit: Unit,
    pub estimate: i64,
    pub scope_path: String,
    pub affected_scopes: Vec<String>,
    pub subject: Value,
    pub action: Value,
    pub metadata: Option<Value>,
    pub idempotency_key: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub committed: Option<i64>,
    pub committed_metadata: Option<Value>,
    pub finalized_at_ms: Option<i64>,
}

/// A reservation's affected scopes are the cumulative prefixes of its scope path (only the
/// path is stored).
fn cumulative_prefixes(path: &str) -> Vec<String> {
    path.char_indices()
        .filter(|(_, c)| *c == '/')
        .map(|(i, _)| path[..i].to_string())
        .chain((!path.is_empty()).then(|| path.to_string()))
        .collect()
}

fn corrupt(what: &str) -> Error {
    Error::internal(format!("reservation record has a bad {what}"))
}

fn json_field(f: &HashMap<String, String>, k: &str) -> Option<Value> {
    f.get(k).filter(|s| !s.is_empty()).and_then(|s| serde_json::from_str(s).ok())
}

impl ReservationRecord {
    fn from_fields(id: &str, f: &HashMap<String, String>) -> Result<Self> {
        let int = |k: &str| f.get(k).and_then(|s| s.parse::<i64>().ok());
        let doc = json_field(f, "d").unwrap_or(Value::Null);
        Ok(Self {
            reservation_id: id.to_string(),
            status: f.get("st").and_then(|s| ReservationStatus::parse(s)).ok_or_else(|| corrupt("status"))?,
            unit: f.get("u").and_then(|s| Unit::parse(s)).ok_or_else(|| corrupt("unit"))?,
            estimate: int("e").ok_or_else(|| corrupt("estimate"))?,
            scope_path: f.get("sp").cloned().unwrap_or_default(),
            affected_scopes: cumulative_prefixes(f.get("sp").map(String::as_str).unwrap_or_default()),
            subject: doc.get("subject").cloned().unwrap_or(Value::Object(Default::default())),
            action: doc.get("action").cloned().unwrap_or(Value::Object(Default::default())),
            metadata: doc.get("metadata").cloned().filter(|m| !m.is_null()),
            idempotency_key: doc.get("idempotency_key").and_then(Value::as_str).unwrap_or_default().to_string(),
            created_at_ms: int("c").ok_or_else(|| corrupt("created_at"))?,
            expires_at_ms: int("x").ok_or_else(|| corrupt("expires_at"))?,
            committed: int("cm"),
            committed_metadata: json_field(f, "cmj"),
            finalized_at_ms: int("f"),
        })
    }
}

/// A budget with every stored field (the admin plane's `BudgetLedger`).
#[derive(Debug, Clone)]
pub struct BudgetDoc {
    pub tenant: String,
    pub balance: Balance,
    pub status: String,
    pub commit_overage_policy: Option<CommitOveragePolicy>,
    pub ledger_id: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub rollover_policy: String,
    pub period_start: String,
    pub period_end: String,
    /// The period length as stored (`domain::period::PeriodLength::stored`); empty without one.
    pub period: String,
    /// One period's allocation (what a roll starts the next period from); `None` without a period.
    pub period_allocation: Option<i64>,
}

/// The budget fields in the order `budget_doc` and the reads use.
pub const DOC_FIELDS: [&str; 18] =
    ["st", "a", "s", "r", "d", "o", "x", "p", "id", "c", "u", "rp", "ps", "pe", "pl", "pa", "psm", "pem"];

impl BudgetDoc {
    /// From the fields in [`DOC_FIELDS`] order; `None` when the budget does not exist.
    pub fn from_values(tenant: &str, scope: &str, unit: Unit, v: &[Option<String>]) -> Result<Option<Self>> {
        let get = |i: usize| v.get(i).cloned().flatten().unwrap_or_default();
        if v.first().cloned().flatten().is_none() {
            return Ok(None);
        }
        let int =
            |i: usize| get(i).parse::<i64>().map_err(|_| Error::internal(format!("budget field {}", DOC_FIELDS[i])));
        Ok(Some(Self {
            tenant: tenant.to_string(),
            balance: Balance {
                scope: scope.to_string(),
                unit,
                allocated: int(1)?,
                spent: int(2)?,
                reserved: int(3)?,
                debt: int(4)?,
                overdraft_limit: int(5)?,
                is_over_limit: get(6) == "1",
            },
            status: get(0),
            commit_overage_policy: CommitOveragePolicy::parse(&get(7)),
            ledger_id: get(8),
            created_at_ms: int(9).unwrap_or_default(),
            updated_at_ms: int(10).unwrap_or_default(),
            rollover_policy: get(11),
            period_start: get(12),
            period_end: get(13),
            period: get(14),
            period_allocation: if get(14).is_empty() { None } else { get(15).parse().ok() },
        }))
    }

    /// From a script's `budget_doc` JSON.
    pub fn from_json(tenant: &str, body: &serde_json::Map<String, Value>) -> Result<Self> {
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
        let scope = s("scope").ok_or_else(|| Error::internal("budget doc scope"))?;
        let unit = s("unit").and_then(|u| Unit::parse(&u)).ok_or_else(|| Error::internal("budget doc unit"))?;
        let values: Vec<Option<String>> = DOC_FIELDS.iter().map(|f| s(f)).collect();
        Self::from_values(tenant, &scope, unit, &values)?.ok_or_else(|| Error::internal("budget doc status"))
    }
}

impl Ledger {
    pub async fn reservation(&self, tenant: &str, id: &str) -> Result<Option<ReservationRecord>> {
        let fields = self.redis.reservation_fields(tenant, id).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        ReservationRecord::from_fields(id, &fields).map(Some)
    }

    pub async fn reservation_exists(&self, tenant: &str, id: &str) -> Result<bool> {
        Ok(self.redis.reservation_exists(tenant, id).await?)
    }

    /// The reservation a reserve idempotency key created, if its record is still kept.
    pub async fn reservation_by_idempotency_key(&self, tenant: &str, key: &str) -> Result<Option<String>> {
        let record = self.redis.idempotency_record(tenant, "reserve", key).await?;
        Ok(record
            .and_then(|r| r.split_once('\n').map(|(_, json)| json.to_string()))
            .and_then(|json| serde_json::from_str::<Value>(&json).ok())
            .and_then(|v| v.get("reservation_id").and_then(Value::as_str).map(String::from)))
    }

    /// Every reservation of a tenant created within `created` (inclusive ms, either end open),
    /// newest first, or `None` when there are more than [`LIST_SCAN_MAX`]: a listing sorted by
    /// anything but creation time must see them all, and refuses rather than cut silently.
    pub async fn reservations_created_within(
        &self,
        tenant: &str,
        created: (Option<i64>, Option<i64>),
    ) -> Result<Option<Vec<ReservationRecord>>> {
        let ids = self.redis.created_ids_between(tenant, created, LIST_SCAN_MAX + 1).await?;
        if ids.len() > LIST_SCAN_MAX {
            return Ok(None);
        }
        self.reservations(tenant, &ids).await.map(Some)
    }

    /// The given reservations that still exist, in order.
    pub async fn reservations(&self, tenant: &str, ids: &[String]) -> Result<Vec<ReservationRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(READ_BATCH) {
            let rows = self.redis.reservations_fields(tenant, chunk).await?;
            for (id, fields) in chunk.iter().zip(rows) {
                if !fields.is_empty() {
                    out.push(ReservationRecord::from_fields(id, &fields)?);
                }
            }
        }
        Ok(out)
    }

    /// The tenant's budgets as `(scope, unit)`, ordered by scope then unit.
    pub async fn budget_members(&self, tenant: &str) -> Result<Vec<(String, Unit)>> {
        let members = self.redis.budget_index_members(tenant, BUDGETS_SCAN_MAX).await?;
        let mut out: Vec<(String, Unit)> = members
            .iter()
            .filter_map(|m| m.split_once('|').and_then(|(s, u)| Unit::parse(u).map(|u| (s.to_string(), u))))
            .collect();
        // Parents before children: sort by scope, then unit (the index orders `scope|unit`).
        out.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        Ok(out)
    }

    /// The given budgets that exist, in order, as the reads show them: rolled into their
    /// current period (`lua/budget_read.lua`, the same roll every writing script makes).
    pub async fn budgets(&self, tenant: &str, members: &[(String, Unit)]) -> Result<Vec<BudgetDoc>> {
        let pairs: Vec<(&str, &str)> = members.iter().map(|(scope, unit)| (scope.as_str(), unit.as_str())).collect();
        let mut out = Vec::with_capacity(members.len());
        for doc in self.rolled_docs(tenant, &pairs).await? {
            if let Value::Object(body) = doc {
                out.push(BudgetDoc::from_json(tenant, &body)?);
            }
        }
        Ok(out)
    }

    /// `budget_read.lua`'s answer for each `(scope, unit)`, in order: the budget's stored
    /// fields rolled into the current period, or `false` when it does not exist.
    pub(super) async fn rolled_docs(&self, tenant: &str, members: &[(&str, &str)]) -> Result<Vec<Value>> {
        let mut out = Vec::with_capacity(members.len());
        for chunk in members.chunks(READ_BATCH) {
            let args: Vec<String> =
                chunk.iter().flat_map(|(scope, unit)| [scope.to_string(), unit.to_string()]).collect();
            let raw: String = self.eval(&self.scripts.budget_read, vec![self.keys().ledger(tenant)], &args).await?;
            let Ok(Value::Array(docs)) = serde_json::from_str::<Value>(&raw) else {
                return Err(Error::internal("budget_read reply is not an array"));
            };
            if docs.len() != chunk.len() {
                return Err(Error::internal("budget_read answered another number of budgets"));
            }
            out.extend(docs);
        }
        Ok(out)
    }

    pub async fn budget(&self, tenant: &str, scope: &str, unit: Unit) -> Result<Option<BudgetDoc>> {
        Ok(self.budgets(tenant, &[(scope.to_string(), unit)]).await?.pop())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn affected_scopes_are_the_cumulative_prefixes_of_the_path() {
        assert_eq!(super::cumulative_prefixes("tenant:a/agent:b"), vec!["tenant:a", "tenant:a/agent:b"]);
        assert_eq!(super::cumulative_prefixes("tenant:a"), vec!["tenant:a"]);
        assert!(super::cumulative_prefixes("").is_empty());
    }
}
