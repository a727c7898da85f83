//! The admin catalogue's rules: tenant lifecycle and close cascade, API-key minting and
//! revocation, and the audit entry each mutation writes in its own transaction. Handlers
//! call in here with validated domain values; this module calls `store` and knows no HTTP.

pub mod api_keys;
pub mod audit;
pub mod budgets;
pub mod bulk;
pub mod config;
pub mod key_rotation;
pub mod policies;
pub mod principals;
pub mod provision;
pub mod quotas;
mod reads;
pub mod tenants;
pub mod tiers;
pub mod tokens;
mod usage;
pub mod webhooks;

use std::sync::Arc;

use crate::auth::cache::KeyCache;
use crate::auth::secret::KeyHasher;
use crate::ledger::Ledger;
use crate::store::pg::PgStore;
use crate::store::redis::RedisStore;

/// The admin rules over the stores. Its fields are private: handlers reach Postgres and Redis
/// only through its methods.
#[derive(Clone)]
pub struct Catalogue {
    pg: PgStore,
    redis: RedisStore,
    hasher: KeyHasher,
    /// The tenant close cascade releases reservations and closes budgets in the ledger.
    ledger: Ledger,
    /// This instance's key cache: auth changes evict here at commit, before the response,
    /// and on every other instance through the Postgres NOTIFY they send.
    key_cache: Arc<KeyCache>,
    /// Webhook delivery: seals subscription secrets, holds the security config, sends tests.
    dispatcher: crate::events::dispatch::Dispatcher,
    /// Test-only fault (`TOLLGATE_TEST_FAULT=abort-after-provision-commit`): the crash tests
    /// kill the engine at the one point where Postgres holds a customer Redis does not yet.
    abort_after_provision_commit: bool,
    /// An import of this instance failed and could not undo its Redis writes yet: the recovery
    /// pass runs every second until it has (otherwise every 10 s, for other instances' imports).
    imports_pending: Arc<std::sync::atomic::AtomicBool>,
}

impl Catalogue {
    pub fn new(
        pg: PgStore,
        redis: RedisStore,
        hasher: KeyHasher,
        ledger: Ledger,
        key_cache: Arc<KeyCache>,
        dispatcher: crate::events::dispatch::Dispatcher,
    ) -> Self {
        let imports_pending = Arc::default();
        Self { pg, redis, hasher, ledger, key_cache, dispatcher, abort_after_provision_commit: false, imports_pending }
    }

    /// Commits `tx` with auth-change announcements (`key:<digest hex>`, `tenant:<id>`): sent
    /// with NOTIFY inside the transaction (delivered to every instance at commit) and
    /// applied to this instance's cache right after the commit.
    pub async fn commit_announcing(
        &self,
        mut tx: crate::store::pg::PgTx,
        payloads: &[String],
    ) -> crate::domain::error::Result<()> {
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
