//! The admin catalogue's rules: tenant lifecycle and close cascade, API-key minting and
//! revocation, and the audit entry each mutation writes in its own transaction. Handlers
//! call in here with validated domain values; this module calls `store` and knows no HTTP.

pub mod api_keys;
pub mod audit;
pub mod tenants;
pub mod webhooks;

use std::sync::Arc;

use crate::auth::cache::KeyCache;
use crate::auth::secret::KeyHasher;
use crate::ledger::Ledger;
use crate::store::pg::PgStore;
use crate::store::redis::RedisStore;

#[derive(Clone)]
pub struct Catalogue {
    pub pg: PgStore,
    pub redis: RedisStore,
    pub hasher: KeyHasher,
    /// The tenant close cascade releases reservations and closes budgets in the ledger.
    pub ledger: Ledger,
    /// This instance's key cache: auth changes evict here at commit, before the response,
    /// and on every other instance through the Postgres NOTIFY they send.
    pub key_cache: Arc<KeyCache>,
    /// Webhook delivery: seals subscription secrets, holds the security config, sends tests.
    pub dispatcher: crate::events::dispatch::Dispatcher,
}

impl Catalogue {
    /// Commits `tx` with auth-change announcements (`key:<digest hex>`, `tenant:<id>`): sent
    /// with NOTIFY inside the transaction (delivered to every instance at commit) and
    /// applied to this instance's cache right after the commit.
    pub async fn commit_announcing(
        &self,
        mut tx: crate::store::pg::PgTx,
        payloads: &[String],
    ) -> crate::error::ApiResult<()> {
        for p in payloads {
            crate::store::pg::notify_auth(&mut tx, p).await?;
        }
        crate::store::pg::commit(tx).await?;
        for p in payloads {
            self.key_cache.apply(p);
        }
        Ok(())
    }
}

/// Now, truncated to the microsecond precision Postgres stores, so what a response shows
/// equals what a later read returns (and what the audit hash covers).
pub fn now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    let micros = now.nanosecond() / 1_000 * 1_000;
    now.replace_nanosecond(micros).unwrap_or(now)
}
