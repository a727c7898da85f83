//! The ledger: the only writer of ledger keys. Each operation builds its script's KEYS and
//! ARGV from validated domain values, runs it in one round trip, and decodes the reply in
//! one place ([`decode`]). Scripts answer JSON objects whose numbers are decimal strings,
//! so amounts cross the boundary exactly.

pub mod budgets;
pub mod cascade;
pub mod import;
pub mod ops;
pub mod policies;
pub mod quotas;
pub mod reads;
pub mod reserve;
pub mod scan;
pub mod signals;
pub mod sweep;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::domain::amount::Unit;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::store::redis::RedisStore;
use crate::store::redis::scripts::{Script, Scripts};

/// How long a finalized reservation, and the idempotency records of its commit and release,
/// are kept (then Redis expires them).
pub const FINALIZED_RETENTION_MS: i64 = 30 * 24 * 3_600_000;
/// How long reserve, decide and fund idempotency records are kept at least.
pub const IDEM_RETENTION_MS: i64 = 24 * 3_600_000;
/// How long usage-event idempotency records are kept.
pub const EVENT_IDEM_RETENTION_MS: i64 = 7 * 24 * 3_600_000;

/// The ledger over one Redis (or cluster). Its fields are private: every change goes through
/// an operation here, and so through a script.
#[derive(Clone)]
pub struct Ledger {
    redis: RedisStore,
    scripts: Arc<Scripts>,
    /// This instance's copy of each tenant's policies (`policies`), shared by every clone.
    policies: Arc<policies::PolicyCache>,
}

/// Correlation ids carried into the outbox events a script appends.
pub use crate::domain::Correlation;

/// One scope's budget as a script reported it. `remaining` is derived, so the invariant
/// `remaining = allocated − spent − reserved − debt` holds by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub scope: String,
    pub unit: Unit,
    pub allocated: i64,
    pub spent: i64,
    pub reserved: i64,
    pub debt: i64,
    pub overdraft_limit: i64,
    pub is_over_limit: bool,
}

impl Balance {
    /// Cannot overflow: every field is in 0..=i64::MAX and the scripts keep
    /// spent + reserved + debt ≤ i64::MAX, so the difference fits in i64.
    pub fn remaining(&self) -> i64 {
        let r = i128::from(self.allocated) - i128::from(self.spent) - i128::from(self.reserved) - i128::from(self.debt);
        i64::try_from(r).unwrap_or(if r < 0 { i64::MIN } else { i64::MAX })
    }
}

/// A decoded script reply.
#[derive(Debug)]
pub struct Reply {
    pub replay: bool,
    pub now_ms: i64,
    pub body: Map<String, Value>,
}

fn bad_reply(what: &str) -> Error {
    Error::internal(format!("ledger script reply: {what}"))
}

impl Reply {
    pub fn str(&self, field: &str) -> Result<&str> {
        self.body.get(field).and_then(Value::as_str).ok_or_else(|| bad_reply(field))
    }

    pub fn opt_str(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    pub fn int(&self, field: &str) -> Result<i64> {
        self.str(field)?.parse().map_err(|_| bad_reply(field))
    }

    pub fn balances(&self, unit: Unit) -> Result<Vec<Balance>> {
        balances_of(self.body.get("balances"), unit)
    }
}

fn int_field(v: &Value, field: &str) -> Result<i64> {
    v.get(field).and_then(Value::as_str).and_then(|s| s.parse().ok()).ok_or_else(|| bad_reply(field))
}

/// Balances as scripts encode them (`{scope, a, s, r, d, o, x}`); an empty Lua table
/// arrives as `{}`.
pub fn balances_of(v: Option<&Value>, unit: Unit) -> Result<Vec<Balance>> {
    let Some(Value::Array(items)) = v else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|b| {
            Ok(Balance {
                scope: b.get("scope").and_then(Value::as_str).ok_or_else(|| bad_reply("scope"))?.to_string(),
                unit,
                allocated: int_field(b, "a")?,
                spent: int_field(b, "s")?,
                reserved: int_field(b, "r")?,
                debt: int_field(b, "d")?,
                overdraft_limit: int_field(b, "o")?,
                is_over_limit: b.get("x").and_then(Value::as_str) == Some("1"),
            })
        })
        .collect()
}

/// The code of a script error: the protocol's wire strings, plus `ALREADY` for a state change
/// to the state a budget is already in. Unknown codes are internal errors.
fn script_code(code: &str) -> Option<ErrorCode> {
    match code {
        "ALREADY" => Some(ErrorCode::AlreadyInState),
        other => ErrorCode::parse(other),
    }
}

/// Detail fields that carry amounts travel as strings; clients get integers.
const AMOUNT_DETAILS: &[&str] = &[
    "remaining",
    "requested",
    "debt",
    "overdraft_limit",
    "deficit",
    "reserved",
    "actual",
    "max_extensions",
    "retry_after_ms",
];

/// Decodes a script's JSON reply; an `e` field becomes the matching [`Error`] with the
/// remaining fields as `details`.
pub fn decode(raw: &str) -> Result<Reply> {
    let Ok(Value::Object(mut body)) = serde_json::from_str::<Value>(raw) else {
        return Err(bad_reply("not a JSON object"));
    };
    if let Some(Value::String(code)) = body.remove("e") {
        let message = body.remove("m").and_then(|m| m.as_str().map(String::from)).unwrap_or_default();
        if code == ErrorCode::InternalError.as_str() {
            return Err(Error::internal(format!("ledger: {message}")));
        }
        let Some(code) = script_code(&code) else {
            return Err(Error::internal(format!("ledger script error {code}: {message}")));
        };
        for key in AMOUNT_DETAILS {
            if let Some(n) = body.get(*key).and_then(Value::as_str).and_then(|s| s.parse::<i64>().ok()) {
                body.insert((*key).to_string(), Value::from(n));
            }
        }
        let mut error = Error::new(code, message);
        if !body.is_empty() {
            error = error.with_details(Value::Object(body));
        }
        return Err(error);
    }
    let replay = body.get("replay").and_then(Value::as_str) == Some("1");
    let now_ms = body.get("now").and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or_default();
    Ok(Reply { replay, now_ms, body })
}

impl Ledger {
    pub fn new(redis: RedisStore, scripts: Arc<Scripts>) -> Self {
        Self { redis, scripts, policies: Arc::default() }
    }

    pub fn keys(&self) -> &crate::store::redis::Keys {
        self.redis.keys()
    }

    /// Calls `script` with `keys` (all of one tenant) followed by the work signals covering
    /// that tenant, which every script takes as its last two keys (`lua/lib.lua`).
    async fn eval<T: crate::store::redis::FromReply>(
        &self,
        script: &Script,
        mut keys: Vec<String>,
        args: &[String],
    ) -> Result<T> {
        self.with_signals(&mut keys);
        Ok(self.redis.eval(script, &keys, args).await?)
    }

    /// Appends the work signals covering the tenant of `keys` (all of one tenant); returns it.
    fn with_signals(&self, keys: &mut Vec<String>) -> String {
        let k = self.keys();
        let tenant = keys.first().and_then(|key| k.tenant_in(key)).unwrap_or_default().to_string();
        keys.push(k.dirty(&tenant));
        keys.push(k.due(&tenant));
        tenant
    }

    /// As [`Ledger::eval`] for a runtime operation: grouped with the tenant's concurrent ones
    /// when group commit is on (`store::redis::group`).
    async fn eval_grouped(&self, script: &Script, mut keys: Vec<String>, args: Vec<String>) -> Result<String> {
        let tenant = self.with_signals(&mut keys);
        Ok(self.redis.eval_grouped(&tenant, script, keys, args).await?)
    }

    async fn run(&self, name: &'static str, script: &Script, keys: Vec<String>, args: Vec<String>) -> Result<Reply> {
        let started = std::time::Instant::now();
        let raw: Result<String> = self.eval_grouped(script, keys, args).await;
        crate::telemetry::script_latency(name, started.elapsed());
        let reply = decode(&raw?);
        match &reply {
            Ok(r) if r.replay => crate::telemetry::ledger_outcome(name, "REPLAY", ""),
            Ok(r) => match r.opt_str("decision") {
                Some(decision) => {
                    crate::telemetry::ledger_outcome(name, decision, r.opt_str("reason_code").unwrap_or(""))
                }
                None => crate::telemetry::ledger_outcome(name, "OK", ""),
            },
            Err(e) => crate::telemetry::ledger_outcome(name, e.code.as_str(), ""),
        }
        reply
    }
}

/// `rsv_<tenant>_<32 hex>`: the owner is readable from the id, so a request for another
/// tenant's reservation is answered without touching that tenant's keys.
pub fn new_reservation_id(tenant: &str) -> String {
    format!("rsv_{tenant}_{}", uuid::Uuid::new_v4().simple())
}

/// The tenant that owns a reservation id, if the id is one of ours.
pub fn reservation_owner(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("rsv_")?;
    let (tenant, hex) = rest.rsplit_once('_')?;
    let well_formed = hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    (well_formed && crate::domain::TenantId::parse(tenant).is_ok()).then_some(tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_ids_name_their_owner() {
        let id = new_reservation_id("acme-1");
        assert_eq!(reservation_owner(&id), Some("acme-1"));
        assert_eq!(reservation_owner("rsv_acme_xyz"), None);
        assert_eq!(reservation_owner("other"), None);
    }

    #[test]
    fn script_errors_become_the_protocol_error_with_integer_details() {
        let err =
            decode(r#"{"e":"BUDGET_EXCEEDED","m":"insufficient","scope":"tenant:a","remaining":"5"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::BudgetExceeded);
        assert_eq!(err.details.unwrap()["remaining"], 5);
    }

    #[test]
    fn remaining_is_exact_near_the_int64_limits() {
        let b = Balance {
            scope: "tenant:a".into(),
            unit: Unit::Tokens,
            allocated: 0,
            spent: i64::MAX,
            reserved: 0,
            debt: 0,
            overdraft_limit: 0,
            is_over_limit: false,
        };
        assert_eq!(b.remaining(), -i64::MAX);
    }
}
