//! The offline commands of the binary: apply migrations, verify the audit chain. Each opens a
//! small pool of its own and closes it when done.

use crate::domain::audit::ChainReport;
use crate::store::pg::PgStore;

/// Connections an offline command needs at most.
const COMMAND_POOL_SIZE: u32 = 2;

/// Applies the pending Postgres migrations.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let pg = PgStore::connect(database_url, COMMAND_POOL_SIZE).await?;
    pg.migrate().await?;
    pg.close().await;
    Ok(())
}

/// Walks the audit chain and reports the first break, if any.
pub async fn verify_audit(database_url: &str) -> anyhow::Result<ChainReport> {
    let pg = PgStore::connect(database_url, COMMAND_POOL_SIZE).await?;
    let report = crate::store::pg::audit::verify(pg.pool()).await?;
    pg.close().await;
    Ok(report)
}
