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
        Ok(Self {
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The tag every key of `tenant` starts with.
    pub fn tenant_tag(&self, tenant: &str) -> String {
        format!("{}:{{t:{tenant}}}", self.prefix)
    }

    /// HASH mirroring the tenant's status and runtime settings from Postgres, read by the
    /// ledger scripts so that `TENANT_CLOSED` is enforced atomically with each mutation.
    pub fn tenant(&self, tenant: &str) -> String {
        format!("{}:tenant", self.tenant_tag(tenant))
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
        assert_eq!(hash_tag(&keys.tenant("acme")), "t:acme");
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(Keys::new("a{b").is_err());
        assert!(Keys::new("").is_err());
    }
}
