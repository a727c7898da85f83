//! Postgres: the pool, embedded migrations, and one module per catalogue table.
//! Never on the runtime hot path: the runtime reads keys through `auth::cache`.

pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod bulk;
pub mod config_journal;
pub mod dead_letters;
mod deliveries;
pub mod events;
pub mod listen;
pub mod overview;
pub mod page;
pub mod policies;
pub mod policy_publication;
pub mod principals;
pub mod provisions;
pub mod retention;
pub mod secrets;
pub mod tenants;
pub mod tiers;
pub mod token_usage;
pub mod usage;
pub mod webhooks;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use super::StoreResult;

pub type PgTx = Transaction<'static, Postgres>;

/// Fail fast rather than queue: an admin request waits at most this long for a connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Channel on which key revocations and tenant status changes are announced to every
/// instance's auth cache (payload: `key:<digest hex>` or `tenant:<id>`).
pub const AUTH_CHANNEL: &str = "tollgate_auth";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, connections_max: u32) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(connections_max)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Applies pending migrations; sqlx holds an advisory lock, so instances starting
    /// together apply each migration once.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn begin(&self) -> StoreResult<PgTx> {
        Ok(self.pool.begin().await?)
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Announces an auth-relevant change; delivered to listeners when the transaction commits.
pub async fn notify_auth(tx: &mut PgTx, payload: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(AUTH_CHANNEL).bind(payload).execute(&mut **tx).await?;
    Ok(())
}

/// Escapes `%`, `_` and `\` for a case-insensitive substring match with ILIKE.
pub fn like_pattern(search: &str) -> String {
    let mut out = String::with_capacity(search.len() + 2);
    out.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub async fn commit(tx: PgTx) -> StoreResult<()> {
    Ok(tx.commit().await?)
}
