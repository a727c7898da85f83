//! The offline commands of the binary: apply migrations, verify the audit chain. Each opens a
//! small pool of its own and closes it when done.

use crate::domain::audit::{AuditEntry, ChainReport};
use crate::domain::audit_export::{FileBreak, verify_lines};
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

/// Verifies an NDJSON audit export offline (no database): every line hashes to its link and
/// consecutive entries chain. Returns the entries verified and the first break.
pub fn verify_audit_file(path: &std::path::Path) -> anyhow::Result<(u64, Option<FileBreak>)> {
    use std::io::BufRead as _;
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let lines: Vec<String> = file.lines().collect::<Result<_, _>>()?;
    Ok(verify_lines(lines.iter().map(String::as_str)))
}

/// Appends `entries` to the audit chain of the database at `database_url` in one transaction
/// (importing history; the load harness and tests seed large logs with it).
pub async fn append_audit_history(database_url: &str, entries: &[AuditEntry]) -> anyhow::Result<()> {
    let pg = PgStore::connect(database_url, COMMAND_POOL_SIZE).await?;
    let mut tx = pg.begin().await?;
    crate::store::pg::audit::append_many(&mut tx, entries).await?;
    crate::store::pg::commit(tx).await?;
    pg.close().await;
    Ok(())
}
