//! SQL for `config_import_journal`: the undo plans of configuration imports in flight, and the
//! advisory lock that runs one import (or one recovery pass) at a time across instances.

use super::PgTx;
use crate::store::StoreResult;

/// The advisory lock key of configuration imports (an arbitrary constant, "tgimport").
const IMPORT_LOCK_KEY: i64 = 0x7467_696d_706f_7274;

/// Waits for the import lock; held until `tx` ends.
pub async fn lock(tx: &mut PgTx) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(IMPORT_LOCK_KEY).execute(&mut **tx).await?;
    Ok(())
}

/// Takes the import lock if no import holds it; held until `tx` ends.
pub async fn try_lock(tx: &mut PgTx) -> StoreResult<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(IMPORT_LOCK_KEY).fetch_one(&mut **tx).await?)
}

/// Records an undo plan in its own transaction, so it survives the import's rollback.
pub async fn insert(pool: &sqlx::PgPool, import_id: &str, undo: &serde_json::Value) -> StoreResult<()> {
    sqlx::query("INSERT INTO config_import_journal (import_id, undo) VALUES ($1, $2)")
        .bind(import_id)
        .bind(sqlx::types::Json(undo))
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes a plan inside `tx` (the import's: its commit and the deletion are one); whether it
/// was there.
pub async fn remove(tx: &mut PgTx, import_id: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM config_import_journal WHERE import_id = $1")
        .bind(import_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a plan once it has been applied.
pub async fn delete(pool: &sqlx::PgPool, import_id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM config_import_journal WHERE import_id = $1").bind(import_id).execute(pool).await?;
    Ok(())
}

/// Up to `limit` plans left by imports that did not commit, oldest first.
pub async fn pending(tx: &mut PgTx, limit: i64) -> StoreResult<Vec<(String, serde_json::Value)>> {
    let rows: Vec<(String, sqlx::types::Json<serde_json::Value>)> =
        sqlx::query_as("SELECT import_id, undo FROM config_import_journal ORDER BY created_at LIMIT $1")
            .bind(limit)
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().map(|(id, undo)| (id, undo.0)).collect())
}
