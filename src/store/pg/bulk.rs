//! SQL for `bulk_actions`: the idempotency records of the bulk actions, and the lock that
//! serialises two requests carrying the same key.

use time::OffsetDateTime;

use super::PgTx;
use crate::store::StoreResult;

/// Which bulk request a record belongs to: operation, confining tenant ('' for none), key.
#[derive(Debug, Clone, Copy)]
pub struct BulkKey<'a> {
    pub operation: &'a str,
    pub scope: &'a str,
    pub idempotency_key: &'a str,
}

/// Holds, until `tx` ends, a lock that every request with the same key takes first: a
/// duplicate sent while the first is running waits for it, then finds its response.
pub async fn lock(tx: &mut PgTx, key: BulkKey<'_>) -> StoreResult<()> {
    let name = format!("{}\n{}\n{}", key.operation, key.scope, key.idempotency_key);
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(name).execute(&mut **tx).await?;
    Ok(())
}

/// The request hash and response stored under `key` since `since`.
pub async fn recorded(
    tx: &mut PgTx,
    key: BulkKey<'_>,
    since: OffsetDateTime,
) -> StoreResult<Option<(String, serde_json::Value)>> {
    Ok(sqlx::query_as(
        "SELECT request_hash, response FROM bulk_actions \
         WHERE operation = $1 AND scope = $2 AND idempotency_key = $3 AND created_at >= $4",
    )
    .bind(key.operation)
    .bind(key.scope)
    .bind(key.idempotency_key)
    .bind(since)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Stores a response under `key`, replacing a record older than the replay window.
pub async fn remember(
    tx: &mut PgTx,
    key: BulkKey<'_>,
    request_hash: &str,
    response: &serde_json::Value,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO bulk_actions (operation, scope, idempotency_key, request_hash, response, created_at) \
         VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (operation, scope, idempotency_key) DO UPDATE \
         SET request_hash = EXCLUDED.request_hash, response = EXCLUDED.response, created_at = EXCLUDED.created_at",
    )
    .bind(key.operation)
    .bind(key.scope)
    .bind(key.idempotency_key)
    .bind(request_hash)
    .bind(response)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
