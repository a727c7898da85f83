//! SQL that bounds the event tables: finished deliveries, events, and bulk-action records
//! older than their retention are deleted in batches.

use crate::store::StoreResult;

/// Rows deleted per statement, so one pass never holds long locks.
const BATCH: i64 = 10_000;

/// Deletes up to one batch of deliveries finished more than `days` ago.
pub async fn prune_deliveries(pool: &sqlx::PgPool, days: u32) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries \
         WHERE status IN ('SUCCESS', 'FAILED') AND completed_at < now() - make_interval(days => $1) LIMIT $2)",
    )
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .bind(BATCH)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes up to one batch of events older than `days` that no delivery refers to.
pub async fn prune_events(pool: &sqlx::PgPool, days: u32) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM events WHERE event_id IN (SELECT e.event_id FROM events e \
         WHERE e.occurred_at < now() - make_interval(days => $1) \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.event_id) LIMIT $2)",
    )
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .bind(BATCH)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Bulk-action records: replayable for 15 minutes, kept a week for inspection.
/// Applied usage entries older than a week: an outbox entry is redelivered within minutes of
/// its first delivery, if ever, so the redelivery guard needs no longer memory.
pub async fn prune_usage_entries(pool: &sqlx::PgPool) -> StoreResult<u64> {
    let done =
        sqlx::query("DELETE FROM usage_entries WHERE recorded_at < now() - interval '7 days'").execute(pool).await?;
    Ok(done.rows_affected())
}

pub async fn prune_bulk_actions(pool: &sqlx::PgPool) -> StoreResult<u64> {
    let done =
        sqlx::query("DELETE FROM bulk_actions WHERE created_at < now() - interval '7 days'").execute(pool).await?;
    Ok(done.rows_affected())
}
