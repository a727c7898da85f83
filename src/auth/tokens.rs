//! The admin plane's view of personal access tokens: digest → principal, tenant binding and
//! permissions (the union of its roles), filled from Postgres on a miss.
//!
//! Freshness: an entry is trusted [`POSITIVE_TTL`] at most. Revoking a token (`pat:<digest>`),
//! changing a principal (`principal:<id>`: status, roles) or a role's permissions (`roles`) is
//! announced on the auth channel in the changing transaction and evicted here on every
//! instance at commit. While the auth listener is disconnected nothing is served from memory
//! (the admin plane needs Postgres anyway), so a missed announcement cannot keep a revoked
//! token alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use time::OffsetDateTime;

use super::secret::KeyDigest;
use crate::domain::access::{AdminPermission, PrincipalStatus};
use crate::domain::tenant::TenantId;
use crate::store::StoreResult;
use crate::store::pg::PgStore;
use crate::store::pg::principals;

/// How long a found token is trusted without re-reading it (a backstop for lost notifications).
pub const POSITIVE_TTL: Duration = Duration::from_secs(30);
/// How long an unknown digest is remembered, so a flood of bad tokens does not reach Postgres.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; beyond it everything is dropped (admin tokens are few).
pub const ENTRIES_MAX: usize = 10_000;

/// What the access check needs to know about the token that made a request.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub key_id: String,
    pub principal_id: String,
    pub principal_status: PrincipalStatus,
    pub tenant_id: Option<TenantId>,
    pub permissions: Vec<AdminPermission>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked: bool,
}

struct Entry {
    info: Option<Arc<TokenInfo>>,
    fetched: Instant,
}

impl Entry {
    fn fresh(&self) -> bool {
        let ttl = if self.info.is_some() { POSITIVE_TTL } else { NEGATIVE_TTL };
        self.fetched.elapsed() < ttl
    }
}

pub struct TokenCache {
    entries: DashMap<KeyDigest, Entry>,
    /// Bumped by every eviction: a lookup that raced one must not cache what it read.
    generation: AtomicU64,
    offline: AtomicBool,
    pg: PgStore,
}

impl TokenCache {
    pub fn new(pg: PgStore) -> Self {
        Self { entries: DashMap::new(), generation: AtomicU64::new(0), offline: AtomicBool::new(false), pg }
    }

    pub async fn get(&self, digest: &KeyDigest) -> StoreResult<Option<Arc<TokenInfo>>> {
        if !self.offline.load(Ordering::Acquire)
            && let Some(e) = self.entries.get(digest).filter(|e| e.fresh())
        {
            return Ok(e.info.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let found = principals::find_token(self.pg.pool(), digest).await?;
        let info = found.map(|g| {
            let mut permissions: Vec<AdminPermission> = Vec::new();
            for p in g.roles.iter().flat_map(|r| r.permissions.iter()) {
                if !permissions.contains(p) {
                    permissions.push(*p);
                }
            }
            Arc::new(TokenInfo {
                key_id: g.pat.key_id,
                principal_id: g.principal.principal_id,
                principal_status: g.principal.status,
                tenant_id: g.principal.tenant_id,
                permissions,
                expires_at: g.pat.expires_at,
                revoked: g.pat.revoked_at.is_some(),
            })
        });
        if let Some(i) = info.as_ref().filter(|i| !i.revoked) {
            // Recorded when the entry is filled, so `last_used_at` is exact to the cache's TTL.
            principals::touch_token(self.pg.pool(), &i.key_id, crate::domain::clock::now()).await?;
        }
        if self.generation.load(Ordering::Acquire) == generation && !self.offline.load(Ordering::Acquire) {
            if self.entries.len() >= ENTRIES_MAX {
                self.entries.clear();
            }
            self.entries.insert(*digest, Entry { info: info.clone(), fetched: Instant::now() });
        }
        Ok(info)
    }

    /// Applies an auth-channel announcement; tenant-key announcements are not for this cache.
    pub fn apply(&self, payload: &str) {
        match payload.split_once(':') {
            Some(("pat", digest_hex)) => {
                let mut digest = [0_u8; 32];
                self.generation.fetch_add(1, Ordering::AcqRel);
                match hex::decode_to_slice(digest_hex, &mut digest) {
                    Ok(()) => {
                        self.entries.remove(&digest);
                    }
                    Err(_) => self.entries.clear(),
                }
            }
            Some(("principal", id)) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.entries.retain(|_, e| e.info.as_ref().is_none_or(|i| i.principal_id != id));
            }
            None if payload == "roles" => self.clear(),
            _ => {}
        }
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }

    /// The auth channel is down or back: announcements may be lost, so nothing cached is trusted.
    pub fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::Release);
        self.clear();
    }
}
