//! The runtime's view of API keys: key digest → tenant, permissions, status, filled from
//! Postgres on a miss so a warm runtime path never queries Postgres.
//!
//! Freshness: every entry expires after [`POSITIVE_TTL`]; revocations, key edits and tenant
//! status changes are announced with Postgres NOTIFY and evicted by `workers::auth_listener`
//! on every instance within about a second; expiry is checked against `expires_at` on every
//! use, so it needs no announcement.
//!
//! Postgres outages: while the listener is disconnected the cache is *offline*. Keys it has
//! seen keep being served from memory, however old their entry (the runtime plane must not
//! depend on Postgres); a key it has never seen is refused at once as unavailable, without
//! waiting on the pool. When the listener is back, every entry is marked stale and re-read on
//! its next use, so a change made meanwhile (a revocation) applies within about a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use time::OffsetDateTime;

use super::secret::KeyDigest;
use crate::domain::Permission;
use crate::domain::api_key::KeyStatus;
use crate::domain::tenant::{RateLimit, TenantId, TenantStatus, Tier};
use crate::domain::tier::Class;
use crate::store::pg::PgStore;
use crate::store::pg::api_keys;
use crate::store::{StoreError, StoreResult};

/// How long a found key is trusted without re-reading it (a backstop for lost notifications).
pub const POSITIVE_TTL: Duration = Duration::from_secs(30);
/// How long an unknown digest is remembered, so a flood of bad keys does not reach Postgres.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; beyond it stale entries are dropped, then everything.
pub const ENTRIES_MAX: usize = 100_000;

/// What the runtime needs to know about the key that made a request.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub key_id: String,
    pub tenant_id: TenantId,
    pub permissions: Vec<Permission>,
    pub scope_filter: Vec<String>,
    pub stored_status: KeyStatus,
    pub expires_at: OffsetDateTime,
    pub tenant_status: TenantStatus,
    pub tenant_tier: Tier,
    /// The tenant's override of its tier's rate limit.
    pub tenant_rate_limit: Option<RateLimit>,
    /// The admission class of the tenant's tier.
    pub tier_class: Class,
    /// The rate limit of the tenant's tier (`None`: unlimited).
    pub tier_rate_limit: Option<RateLimit>,
}

impl KeyInfo {
    /// The rate limit admission applies: the tenant's override, else its tier's.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.tenant_rate_limit.or(self.tier_rate_limit)
    }
}

impl KeyInfo {
    pub fn status_at(&self, now: OffsetDateTime) -> KeyStatus {
        match self.stored_status {
            KeyStatus::Active if now >= self.expires_at => KeyStatus::Expired,
            s => s,
        }
    }
}

struct Entry {
    info: Option<Arc<KeyInfo>>,
    fetched: Instant,
    /// The revalidation epoch the entry was read in; an older one is stale.
    epoch: u64,
}

impl Entry {
    fn fresh(&self) -> bool {
        let ttl = if self.info.is_some() { POSITIVE_TTL } else { NEGATIVE_TTL };
        self.fetched.elapsed() < ttl
    }
}

pub struct KeyCache {
    entries: DashMap<KeyDigest, Entry>,
    /// Bumped by every eviction. A lookup that raced an eviction (read Postgres before the
    /// change committed, finished after the notification) must not cache what it read.
    generation: AtomicU64,
    /// Bumped when notifications may have been lost (the listener reconnected): every entry
    /// read before is re-read on its next use.
    epoch: AtomicU64,
    /// Set while the auth listener is disconnected (Postgres presumed unreachable).
    offline: AtomicBool,
    pg: PgStore,
}

/// Whether a lookup was served from memory (for the hit/miss metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
}

impl KeyCache {
    pub fn new(pg: PgStore) -> Self {
        Self {
            entries: DashMap::new(),
            generation: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            offline: AtomicBool::new(false),
            pg,
        }
    }

    pub async fn get(&self, digest: &KeyDigest) -> StoreResult<(Option<Arc<KeyInfo>>, Lookup)> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let offline = self.offline.load(Ordering::Acquire);
        let known = self.entries.get(digest).map(|e| (e.info.clone(), e.fresh() && e.epoch == epoch));
        match &known {
            Some((info, true)) => return Ok((info.clone(), Lookup::Hit)),
            Some((Some(info), false)) if offline => return Ok((Some(info.clone()), Lookup::Hit)),
            _ if offline => {
                return Err(StoreError::Unavailable {
                    store: "postgres",
                    cause: "the auth channel is disconnected and this key is not cached".into(),
                });
            }
            _ => {}
        }
        let stale = known.and_then(|(info, _)| info);
        let generation = self.generation.load(Ordering::Acquire);
        let found = match api_keys::find_by_digest(self.pg.pool(), digest).await {
            Ok(found) => found,
            // Postgres went away before the listener noticed: a key seen before stays valid.
            Err(StoreError::Unavailable { .. }) if stale.is_some() => return Ok((stale, Lookup::Hit)),
            Err(e) => return Err(e),
        };
        let info = found.map(|k| {
            Arc::new(KeyInfo {
                key_id: k.key.key_id,
                tenant_id: k.key.tenant_id,
                permissions: k.key.permissions,
                scope_filter: k.key.scope_filter,
                stored_status: k.key.stored_status,
                expires_at: k.key.expires_at,
                tenant_status: k.tenant_status,
                tenant_tier: k.tenant_tier,
                tenant_rate_limit: k.tenant_rate_limit,
                tier_class: k.tier_class,
                tier_rate_limit: k.tier_rate_limit,
            })
        });
        if self.generation.load(Ordering::Acquire) == generation {
            self.make_room();
            self.entries.insert(*digest, Entry { info: info.clone(), fetched: Instant::now(), epoch });
        }
        Ok((info, Lookup::Miss))
    }

    fn make_room(&self) {
        if self.entries.len() < ENTRIES_MAX {
            return;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        self.entries.retain(|_, e| e.fresh() && e.epoch == epoch);
        if self.entries.len() >= ENTRIES_MAX {
            self.entries.clear();
        }
    }

    pub fn evict_key(&self, digest: &KeyDigest) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.remove(digest);
    }

    /// Drops every key of a tenant in `tier` (its class or rate limit changed).
    pub fn evict_tier(&self, tier: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.retain(|_, e| e.info.as_ref().is_none_or(|i| i.tenant_tier.as_str() != tier));
    }

    pub fn evict_tenant(&self, tenant: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.retain(|_, e| e.info.as_ref().is_none_or(|i| i.tenant_id.as_str() != tenant));
    }

    /// Applies an auth-channel announcement (`key:<digest hex>`, `tenant:<id>` or `tier:<name>`); anything
    /// unrecognised clears everything, the safe choice.
    pub fn apply(&self, payload: &str) {
        match payload.split_once(':') {
            Some(("key", digest_hex)) => {
                let mut digest = [0_u8; 32];
                match hex::decode_to_slice(digest_hex, &mut digest) {
                    Ok(()) => self.evict_key(&digest),
                    Err(_) => self.clear(),
                }
            }
            Some(("tenant", tenant)) => self.evict_tenant(tenant),
            Some(("tier", tier)) => self.evict_tier(tier),
            // Admin-token announcements are for `auth::tokens`.
            Some(("pat" | "principal", _)) => {}
            None if payload == "roles" => {}
            _ => self.clear(),
        }
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }

    /// The auth channel is down: serve what is cached, refuse unknown keys at once.
    pub fn go_offline(&self) {
        if !self.offline.swap(true, Ordering::AcqRel) {
            tracing::warn!(entries = self.len(), "auth channel down: serving cached keys only");
        }
    }

    /// The auth channel is up again: announcements may have been missed, so every entry is
    /// re-read on its next use (and kept if that read fails).
    pub fn back_online(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if self.offline.swap(false, Ordering::AcqRel) {
            tracing::info!(entries = self.len(), "auth channel back: cached keys will be revalidated");
        }
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
