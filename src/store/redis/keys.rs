//! Every Redis key Tollgate uses is built here. Each carries the tenant hash tag
//! `{t:<tenant>}`, so all keys of one tenant live in one Redis Cluster slot and any script
//! over them runs unchanged on a single Redis or a cluster.

/// Builds keys under one namespace prefix (several deployments or test runs can share a Redis).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` must not contain braces: the first `{…}` of a key is its hash tag.
    pub fn new(prefix: &str) -> Result<Self, String> {
        if prefix.is_empty() || prefix.contains(['{', '}']) || prefix.len() > 64 {
            return Err("the Redis key prefix must be 1..64 characters without braces".into());
        }
        Ok(Self { prefix: prefix.to_string() })
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
        ] {
            assert_eq!(hash_tag(&key), "t:acme", "{key}");
        }
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(Keys::new("a{b").is_err());
        assert!(Keys::new("").is_err());
    }
}
