//! Every Redis key Tollgate uses is built here. Each tenant key carries the tenant hash tag
//! `{t:<tenant>}`, so all keys of one tenant live in one Redis Cluster slot and any script
//! over them runs unchanged on a single Redis or a cluster. The work signals (which tenants
//! have undrained events, and when each next has a reservation to expire) live in keys that
//! share the tenant's slot: one pair on a single Redis, one pair per slot on a cluster.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use redis::cluster_routing::Slot;

/// Builds keys under one namespace prefix (several deployments or test runs can share a Redis).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    /// On a cluster the work signals are per slot; on a single Redis there is one pair.
    clustered: bool,
}

/// Slots in a Redis Cluster.
const SLOTS: usize = 16_384;

/// For each cluster slot, a short hash tag that maps to it (`w<n>`), found once by search.
fn slot_tags() -> &'static HashMap<Slot, String> {
    static TAGS: OnceLock<HashMap<Slot, String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = HashMap::with_capacity(SLOTS);
        let mut n = 0u64;
        while tags.len() < SLOTS {
            let tag = format!("w{n}");
            tags.entry(Slot::for_key(format!("{{{tag}}}"))).or_insert(tag);
            n += 1;
        }
        tags
    })
}

impl Keys {
    /// `prefix` must not contain braces: the first `{…}` of a key is its hash tag.
    pub fn new(prefix: &str) -> Result<Self, String> {
        if prefix.is_empty() || prefix.contains(['{', '}']) || prefix.len() > 64 {
            return Err("the Redis key prefix must be 1..64 characters without braces".into());
        }
        Ok(Self { prefix: prefix.to_string(), clustered: false })
    }

    /// The same keys for a Redis Cluster: work signals per slot.
    pub fn clustered(mut self) -> Self {
        self.clustered = true;
        self
    }

    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// STRING set once every tenant's work signals were built from its keys (`backfill`).
    pub fn signals_marker(&self) -> String {
        format!("{}:signals-v1", self.prefix)
    }

    /// The hash tag of the work signals that cover `tenant`: `{w}` on a single Redis, else a
    /// tag in the tenant's own slot, so a script may write them beside the tenant's keys.
    fn work_tag(&self, tenant: &str) -> String {
        if !self.clustered {
            return format!("{}:{{w}}", self.prefix);
        }
        let slot = Slot::for_key(self.tenant_tag(tenant));
        let tag = slot_tags().get(&slot).map_or("w", String::as_str);
        format!("{}:{{{tag}}}", self.prefix)
    }

    /// SET of the outbox keys of tenants whose stream may hold undrained events, written by
    /// the scripts that append and cleared by the drain once the stream is empty.
    pub fn dirty(&self, tenant: &str) -> String {
        format!("{}:dirty", self.work_tag(tenant))
    }

    /// ZSET of tenants' active-reservation index keys, scored no later than the earliest
    /// deadline in that index: the sweeper visits only what is due.
    pub fn due(&self, tenant: &str) -> String {
        format!("{}:due", self.work_tag(tenant))
    }

    /// The tenant whose hash tag `key` carries.
    pub fn tenant_in<'a>(&self, key: &'a str) -> Option<&'a str> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix(":{t:")?;
        rest.split_once('}').map(|(tenant, _)| tenant)
    }

    /// Every distinct `(dirty, due)` pair covering `tenants` (one pair on a single Redis).
    pub fn signal_pairs<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
        if !self.clustered {
            return vec![(self.dirty(""), self.due(""))];
        }
        let tags: BTreeSet<String> = tenants.into_iter().map(|t| self.work_tag(t)).collect();
        tags.into_iter().map(|t| (format!("{t}:dirty"), format!("{t}:due"))).collect()
    }

    /// The tenant a key of `kind` (`outbox`, `active`) names, if it is one of ours.
    pub fn tenant_of<'a>(&self, key: &'a str, kind: &str) -> Option<&'a str> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix(":{t:")?;
        let tenant = rest.strip_suffix(kind)?.strip_suffix("}:")?;
        (!tenant.is_empty() && !tenant.contains(['{', '}'])).then_some(tenant)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The tag every key of `tenant` starts with.
    pub fn tenant_tag(&self, tenant: &str) -> String {
        format!("{}:{{t:{tenant}}}", self.prefix)
    }

    /// SET of the ids of every tenant that is not CLOSED: the expiry sweeper's list of tenants,
    /// so it runs from Redis alone. The one key without a tenant tag; no script touches it.
    pub fn roster(&self) -> String {
        format!("{}:tenants", self.prefix)
    }

    /// HASH mirroring the tenant's status and runtime settings from Postgres, read by the
    /// ledger scripts so that `TENANT_CLOSED` is enforced atomically with each mutation.
    pub fn tenant(&self, tenant: &str) -> String {
        format!("{}:tenant", self.tenant_tag(tenant))
    }

    /// HASH of every budget of the tenant, fields `<scope>|<unit>|<field>`; one key per
    /// tenant, so scripts can name it in KEYS without knowing which budgets they will touch.
    pub fn ledger(&self, tenant: &str) -> String {
        format!("{}:ledger", self.tenant_tag(tenant))
    }

    /// ZSET (all scores 0) of `<scope>|<unit>`: the tenant's budgets in lexical order.
    pub fn budget_index(&self, tenant: &str) -> String {
        format!("{}:budgets", self.tenant_tag(tenant))
    }

    /// HASH of one reservation.
    pub fn reservation(&self, tenant: &str, reservation_id: &str) -> String {
        format!("{}:r:{reservation_id}", self.tenant_tag(tenant))
    }

    /// ZSET of ACTIVE reservation ids scored by `expires_at_ms + grace_ms` (the sweeper's).
    pub fn active(&self, tenant: &str) -> String {
        format!("{}:active", self.tenant_tag(tenant))
    }

    /// ZSET of every reservation id scored by `created_at_ms` (listing).
    pub fn created(&self, tenant: &str) -> String {
        format!("{}:created", self.tenant_tag(tenant))
    }

    /// STREAM: the tenant's event outbox, appended by the scripts that make the changes.
    pub fn outbox(&self, tenant: &str) -> String {
        format!("{}:outbox", self.tenant_tag(tenant))
    }

    /// STRING `<generation>\n<JSON>`: the tenant's compiled policy set as the catalogue last
    /// published it; the generation also sits in the tenant mirror (`policy_gen`), where every
    /// reserve compares it with the engine's copy.
    pub fn policies(&self, tenant: &str) -> String {
        format!("{}:policies", self.tenant_tag(tenant))
    }

    /// STRING counter of one quota window instance (v0.1.26 action quotas): `what` is the
    /// action kind, or `__risk__:<risk class>`; `bucket` the run id or the UTC calendar bucket.
    pub fn quota(&self, tenant: &str, scope: &str, what: &str, window: &str, bucket: &str) -> String {
        format!("{}:q:{scope}:{what}:{window}:{bucket}", self.tenant_tag(tenant))
    }

    /// STRING marking that the counter [`Keys::quota`] names with the same fields has crossed
    /// its threshold in this window instance (`quota.threshold_approaching` was sent). Outside
    /// the `:q:` prefix, so listing the counters never sees it.
    pub fn quota_threshold(&self, tenant: &str, scope: &str, what: &str, window: &str, bucket: &str) -> String {
        format!("{}:qt:{scope}:{what}:{window}:{bucket}", self.tenant_tag(tenant))
    }

    /// The prefix every quota counter key of the tenant starts with ([`Keys::quota`]).
    pub fn quota_prefix(&self, tenant: &str) -> String {
        format!("{}:q:", self.tenant_tag(tenant))
    }

    /// The prefix of a policy rate-limit counter of `op` (`reserve`, `commit`) at `scope`; the
    /// scripts append `:<minute>` (minutes since the epoch on the ledger clock), so the key
    /// stays in the tenant's slot and each minute counts apart.
    pub fn rate(&self, tenant: &str, op: &str, scope: &str) -> String {
        format!("{}:rl:{op}:{scope}", self.tenant_tag(tenant))
    }

    /// Idempotency record of a tenant-wide operation (`reserve`, `decide`, `event`, `fund`).
    pub fn idem(&self, tenant: &str, op: &str, key: &str) -> String {
        format!("{}:idem:{op}:{key}", self.tenant_tag(tenant))
    }

    /// Idempotency record of an operation on one reservation (`commit`, `release`, `extend`).
    pub fn idem_on(&self, tenant: &str, op: &str, reservation_id: &str, key: &str) -> String {
        format!("{}:idem:{op}:{reservation_id}:{key}", self.tenant_tag(tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = key[open..].find('}').unwrap() + open;
        &key[open + 1..close]
    }

    #[test]
    fn every_tenant_key_carries_the_tenant_hash_tag() {
        let keys = Keys::new("tg").unwrap();
        for key in [
            keys.tenant("acme"),
            keys.ledger("acme"),
            keys.budget_index("acme"),
            keys.reservation("acme", "rsv_acme_1"),
            keys.active("acme"),
            keys.created("acme"),
            keys.outbox("acme"),
            keys.idem("acme", "reserve", "{t:other}"),
            keys.idem_on("acme", "commit", "rsv_acme_1", "k"),
            keys.policies("acme"),
            keys.rate("acme", "reserve", "tenant:acme"),
            keys.quota("acme", "tenant:acme/agent:{x}", "__risk__:high_risk", "per_run", "run-1"),
        ] {
            assert_eq!(hash_tag(&key), "t:acme", "{key}");
        }
    }

    #[test]
    fn work_signals_share_the_tenant_slot_on_a_cluster() {
        let keys = Keys::new("tg").unwrap().clustered();
        for tenant in ["acme", "b", "tenant-with-a-long-name-42"] {
            let slot = Slot::for_key(keys.ledger(tenant));
            assert_eq!(Slot::for_key(keys.dirty(tenant)), slot, "{tenant}");
            assert_eq!(Slot::for_key(keys.due(tenant)), slot, "{tenant}");
        }
        assert_eq!(Keys::new("tg").unwrap().dirty("a"), Keys::new("tg").unwrap().dirty("b"));
    }

    #[test]
    fn signal_members_name_their_tenant() {
        let keys = Keys::new("tg").unwrap();
        assert_eq!(keys.tenant_of(&keys.outbox("acme-1"), "outbox"), Some("acme-1"));
        assert_eq!(keys.tenant_of(&keys.active("acme-1"), "active"), Some("acme-1"));
        assert_eq!(keys.tenant_of(&keys.active("acme-1"), "outbox"), None);
        assert_eq!(keys.tenant_of("other:{t:x}:outbox", "outbox"), None);
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(Keys::new("a{b").is_err());
        assert!(Keys::new("").is_err());
    }
}
