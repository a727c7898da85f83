//! The engine's copy of each tenant's policies, and their publication into Redis.
//!
//! The catalogue publishes a tenant's whole policy set (with its generation) to Redis after
//! every change commits, before it answers (`lua/policy_publish.lua`). Each instance keeps
//! `(generation, policies)` per tenant in memory and evaluates requests against it; every
//! reserve passes that generation to its script, which compares it with the tenant mirror's
//! `policy_gen` in the same call and answers "stale" on a difference. The engine then reads the
//! set from Redis (one GET) and runs the request again, once. So a change acknowledged to the
//! admin governs every request that starts after it, on every instance, with no Postgres on the
//! runtime path; a tenant that never had a policy costs nothing (generation 0 on both sides).

use std::sync::{Arc, LazyLock};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Ledger, Reply};
use crate::domain::error::{Error, Result};
use crate::domain::policy::pattern::ScopePattern;
use crate::domain::policy::{Policy, Rules, eval};

/// Tenants whose sets one instance keeps at most; past it the cache starts again empty (each
/// tenant then costs one reload), so memory stays bounded whatever the number of tenants.
pub const CACHED_TENANTS_MAX: usize = 100_000;

/// A tenant's policies at one generation (0: never had a policy).
#[derive(Debug, Default)]
pub struct PolicySet {
    pub generation: i64,
    pub policies: Vec<Policy>,
    /// Each policy's pattern, parsed once for every request the set decides.
    pub patterns: Vec<Option<ScopePattern>>,
}

impl PolicySet {
    pub fn new(generation: i64, policies: Vec<Policy>) -> Self {
        let patterns = eval::patterns(&policies);
        Self { generation, policies, patterns }
    }
}

static EMPTY: LazyLock<Arc<PolicySet>> = LazyLock::new(Arc::default);

/// One policy as the published set stores it: what evaluation needs.
#[derive(Serialize, Deserialize)]
struct Stored {
    id: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    version: i32,
    rules: Rules,
}

fn encode(policies: &[Policy]) -> Result<String> {
    let stored: Vec<Stored> = policies
        .iter()
        .map(|p| Stored {
            id: p.policy_id.clone(),
            created_at: p.created_at,
            version: p.version,
            rules: p.rules.clone(),
        })
        .collect();
    serde_json::to_string(&stored).map_err(|e| Error::internal(format!("policy set: {e}")))
}

fn decode(tenant: &str, raw: &str) -> Result<PolicySet> {
    let bad = |what: &str| Error::internal(format!("published policy set of {tenant}: {what}"));
    let (generation, json) = raw.split_once('\n').ok_or_else(|| bad("no generation"))?;
    let generation = generation.parse().map_err(|_| bad("generation"))?;
    let stored: Vec<Stored> = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let policies = stored
        .into_iter()
        .map(|s| Policy {
            policy_id: s.id,
            tenant_id: tenant.to_string(),
            rules: s.rules,
            version: s.version,
            created_at: s.created_at,
            updated_at: s.created_at,
        })
        .collect();
    Ok(PolicySet::new(generation, policies))
}

/// Per tenant, the newest set this instance has seen.
#[derive(Default)]
pub struct PolicyCache {
    sets: DashMap<String, Arc<PolicySet>>,
}

impl PolicyCache {
    pub fn get(&self, tenant: &str) -> Arc<PolicySet> {
        self.sets.get(tenant).map(|e| e.value().clone()).unwrap_or_else(|| EMPTY.clone())
    }

    /// Keeps `set` unless a newer one is already held.
    fn put(&self, tenant: &str, set: Arc<PolicySet>) {
        if self.sets.len() >= CACHED_TENANTS_MAX && !self.sets.contains_key(tenant) {
            self.sets.clear();
        }
        self.sets
            .entry(tenant.to_string())
            .and_modify(|held| {
                if held.generation < set.generation {
                    *held = set.clone();
                }
            })
            .or_insert(set);
    }
}

impl Ledger {
    /// Stores generation `generation` of the tenant's set in Redis unless Redis holds it or a
    /// newer one already; returns whether it stored it.
    pub async fn publish_policies(&self, tenant: &str, generation: i64, policies: &[Policy]) -> Result<bool> {
        let k = self.keys();
        let keys = vec![k.tenant(tenant), k.policies(tenant)];
        let args = vec![generation.to_string(), encode(policies)?];
        let raw: String = self.eval(&self.scripts.policy_publish, keys, &args).await?;
        let reply: Reply = super::decode(&raw)?;
        Ok(reply.opt_str("published") == Some("1"))
    }

    /// This instance's copy of the tenant's set (generation 0 and no policies until it learns
    /// otherwise).
    pub fn cached_policies(&self, tenant: &str) -> Arc<PolicySet> {
        self.policies.get(tenant)
    }

    /// Reads the tenant's published set from Redis into the cache (one GET).
    pub async fn reload_policies(&self, tenant: &str) -> Result<Arc<PolicySet>> {
        let set = match self.redis.policy_set(tenant).await? {
            Some(raw) => Arc::new(decode(tenant, &raw)?),
            None => EMPTY.clone(),
        };
        self.policies.put(tenant, set.clone());
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_set_reads_back_with_its_generation() {
        let rules: Rules = serde_json::from_value(serde_json::json!({
            "name": "p", "scope_pattern": "tenant:a", "priority": 3, "status": "ACTIVE",
            "caps": {"max_tokens": 10}
        }))
        .unwrap();
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let p = Policy {
            policy_id: "pol_1".into(),
            tenant_id: "a".into(),
            rules,
            version: 2,
            created_at: at,
            updated_at: at,
        };
        let raw = format!("7\n{}", encode(std::slice::from_ref(&p)).unwrap());
        let set = decode("a", &raw).unwrap();
        assert_eq!(set.generation, 7);
        assert_eq!(set.policies[0].rules, p.rules);
        assert_eq!(set.policies[0].created_at, at);
    }

    #[test]
    fn the_cache_never_goes_back_to_an_older_generation() {
        let cache = PolicyCache::default();
        cache.put("a", Arc::new(PolicySet::new(3, vec![])));
        cache.put("a", Arc::new(PolicySet::new(2, vec![])));
        assert_eq!(cache.get("a").generation, 3);
        assert_eq!(cache.get("b").generation, 0);
    }
}
