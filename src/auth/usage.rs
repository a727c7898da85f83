//! Which API keys were used since the last flush: noted in memory on every authenticated
//! request (one set lookup, no IO) and written to `api_keys.last_used_at` in one statement per
//! flush by `workers::key_usage`, so the runtime path never waits on Postgres for it.

use dashmap::DashSet;

/// Distinct keys remembered between two flushes at most; past it, a key is noted at the next
/// interval instead (its `last_used_at` is then one interval later than it could be).
pub const NOTED_KEYS_MAX: usize = 100_000;

#[derive(Default)]
pub struct KeyUsage {
    used: DashSet<String>,
}

impl KeyUsage {
    /// Remembers that `key_id` authenticated a request.
    pub fn note(&self, key_id: &str) {
        if !self.used.contains(key_id) && self.used.len() < NOTED_KEYS_MAX {
            self.used.insert(key_id.to_string());
        }
    }

    /// The keys used since the last call, forgetting them.
    pub fn take(&self) -> Vec<String> {
        let ids: Vec<String> = self.used.iter().map(|k| k.key().clone()).collect();
        for id in &ids {
            self.used.remove(id);
        }
        ids
    }

    /// Puts back keys whose flush failed, so the next one writes them.
    pub fn restore(&self, ids: Vec<String>) {
        for id in ids {
            if self.used.len() >= NOTED_KEYS_MAX {
                break;
            }
            self.used.insert(id);
        }
    }
}
