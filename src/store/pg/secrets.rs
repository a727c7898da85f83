//! Server-wide secret bookkeeping. The generated server secret itself lives in the data
//! directory (`auth::server_secret`); Postgres keeps only its fingerprint, plus, until it is
//! moved out once, the secret an older version stored here.

use crate::store::StoreResult;

/// The value of the named row, if any.
pub async fn get(pool: &sqlx::PgPool, name: &str) -> StoreResult<Option<Vec<u8>>> {
    let row: Option<(Vec<u8>,)> =
        sqlx::query_as("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_optional(pool).await?;
    Ok(row.map(|(v,)| v))
}

/// Records `fingerprint` under `name` unless one is there, deletes the `legacy` row (the secret
/// now lives in a file), and returns the fingerprint in force, all in one transaction.
pub async fn settle_fingerprint(
    pool: &sqlx::PgPool,
    name: &str,
    fingerprint: &[u8],
    legacy: &str,
) -> StoreResult<Vec<u8>> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(fingerprint)
        .execute(&mut *tx)
        .await?;
    let (stored,): (Vec<u8>,) =
        sqlx::query_as("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(&mut *tx).await?;
    if stored == fingerprint {
        sqlx::query("DELETE FROM server_secrets WHERE name = $1").bind(legacy).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(stored)
}
