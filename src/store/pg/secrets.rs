//! Server-wide secrets generated once and shared through Postgres by every instance.

use crate::store::StoreResult;

/// Returns the named secret, creating it from `fresh` if no instance has yet.
pub async fn get_or_create(pool: &sqlx::PgPool, name: &str, fresh: &[u8]) -> StoreResult<Vec<u8>> {
    sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(fresh)
        .execute(pool)
        .await?;
    let (value,): (Vec<u8>,) =
        sqlx::query_as("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(pool).await?;
    Ok(value)
}
