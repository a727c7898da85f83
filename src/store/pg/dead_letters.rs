//! SQL for `outbox_dead_letters`: the outbox entries the drain set aside, inserted once per
//! (tenant, stream entry).

use crate::store::StoreResult;

/// Sets an entry aside unless it is already; returns whether this call did.
pub async fn insert(
    pool: &sqlx::PgPool,
    tenant_id: &str,
    stream_id: &str,
    raw: &[u8],
    reason: &str,
    error: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO outbox_dead_letters (tenant_id, stream_id, raw, reason, error) VALUES ($1,$2,$3,$4,$5) \
         ON CONFLICT (tenant_id, stream_id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(stream_id)
    .bind(raw)
    .bind(reason)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
