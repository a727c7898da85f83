//! SQL for `webhook_deliveries`: the queue of attempts, their leases, and the listing.

use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::PgTx;
use super::page::{After, Page, PageSpec, after_of, finish};
use crate::domain::event::EventType;
use crate::domain::webhook::DeliveryStatus;
use crate::store::StoreResult;

/// A delivery row as the API lists it.
#[derive(Debug, Clone, FromRow)]
pub struct Delivery {
    pub delivery_id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempted_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub response_time_ms: Option<i64>,
    pub error_message: Option<String>,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub trace_id: Option<String>,
    pub trace_flags: Option<String>,
    pub traceparent_inbound_valid: Option<bool>,
}

const DELIVERY_COLUMNS: &str = "delivery_id, subscription_id, event_id, event_type, status, attempted_at, \
    completed_at, attempts, response_status, response_time_ms, error_message, next_attempt_at, trace_id, trace_flags, \
    traceparent_inbound_valid";

/// A new PENDING delivery of an event to a subscription, due at once.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub subscription_id: &'a str,
    pub event_id: &'a str,
    pub event_type: EventType,
    pub trace_id: Option<&'a str>,
    pub replay_id: Option<&'a str>,
    pub at: OffsetDateTime,
}

pub fn new_delivery_id() -> String {
    format!("whdel_{}", uuid::Uuid::now_v7().simple())
}

/// Queues a delivery; a live (non-replay) delivery of the same event to the same
/// subscription is queued once. Returns whether a row was written.
pub async fn insert_delivery(tx: &mut PgTx, d: &NewDelivery<'_>) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (delivery_id, subscription_id, event_id, event_type, status, created_at, \
         attempted_at, next_attempt_at, replay_id, trace_id, trace_flags, traceparent_inbound_valid) \
         VALUES ($1,$2,$3,$4,'PENDING',$5,$5,$5,$6,$7,'01',false) ON CONFLICT DO NOTHING",
    )
    .bind(new_delivery_id())
    .bind(d.subscription_id)
    .bind(d.event_id)
    .bind(d.event_type.as_str())
    .bind(d.at)
    .bind(d.replay_id)
    .bind(d.trace_id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims up to `limit` due deliveries for `lease` (skipping rows another instance holds and
/// subscriptions in `busy`), oldest due first.
pub async fn claim_due(
    pool: &sqlx::PgPool,
    limit: i64,
    lease: std::time::Duration,
    busy: &[String],
) -> StoreResult<Vec<Delivery>> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_until = now() + ($2 * interval '1 millisecond') \
         WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries \
           WHERE status IN ('PENDING', 'RETRYING') AND next_attempt_at <= now() \
             AND (lease_until IS NULL OR lease_until < now()) AND subscription_id <> ALL($3) \
           ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING {DELIVERY_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit).bind(lease_ms).bind(busy).fetch_all(pool).await?)
}

/// Deliveries queued (PENDING or RETRYING) and how many seconds the most overdue has been due.
pub async fn backlog(pool: &sqlx::PgPool) -> StoreResult<(i64, f64)> {
    Ok(sqlx::query_as(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(next_attempt_at))::float8, 0) \
         FROM webhook_deliveries WHERE status IN ('PENDING', 'RETRYING')",
    )
    .fetch_one(pool)
    .await?)
}

/// Hands claimed deliveries back unattempted (their subscription had no free slot).
pub async fn release_claims(pool: &sqlx::PgPool, ids: &[String]) -> StoreResult<()> {
    sqlx::query("UPDATE webhook_deliveries SET lease_until = NULL WHERE delivery_id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(())
}

/// The outcome of one attempt, written back to its delivery row.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub attempted_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
    pub response_status: Option<i32>,
    pub response_time_ms: Option<i64>,
    pub error_message: Option<String>,
    pub next_attempt_at: Option<OffsetDateTime>,
}

pub async fn record_attempt(tx: &mut PgTx, delivery_id: &str, a: &Attempt) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status=$2, attempts=$3, attempted_at=$4, completed_at=$5, response_status=$6, \
         response_time_ms=$7, error_message=$8, next_attempt_at=$9, lease_until=NULL WHERE delivery_id=$1",
    )
    .bind(delivery_id)
    .bind(a.status.as_str())
    .bind(a.attempts)
    .bind(a.attempted_at)
    .bind(a.completed_at)
    .bind(a.response_status)
    .bind(a.response_time_ms)
    .bind(&a.error_message)
    .bind(a.next_attempt_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Fails every queued delivery of a subscription (deleted, paused or disabled).
pub async fn cancel_pending(tx: &mut PgTx, subscription_id: &str, reason: &str) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status='FAILED', completed_at=now(), error_message=$2, next_attempt_at=NULL, \
         lease_until=NULL WHERE subscription_id=$1 AND status IN ('PENDING', 'RETRYING')",
    )
    .bind(subscription_id)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Whether a replay to the subscription still has deliveries queued.
pub async fn replay_in_progress(tx: &mut PgTx, subscription_id: &str) -> StoreResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE subscription_id=$1 AND replay_id IS NOT NULL \
         AND status IN ('PENDING', 'RETRYING'))",
    )
    .bind(subscription_id)
    .fetch_one(&mut **tx)
    .await?)
}

#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

pub async fn list_deliveries(
    pool: &sqlx::PgPool,
    subscription_id: &str,
    filter: &DeliveryFilter,
    page: &PageSpec,
) -> StoreResult<Page<Delivery>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {DELIVERY_COLUMNS}, {} FROM webhook_deliveries WHERE subscription_id = ",
        page.cursor_columns()
    ));
    qb.push_bind(subscription_id.to_string());
    if let Some(s) = filter.status {
        qb.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(from) = filter.from {
        qb.push(" AND attempted_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        qb.push(" AND attempted_at <= ").push_bind(to);
    }
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows: Vec<(Delivery, After)> = qb
        .build()
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| Ok((Delivery::from_row(&r)?, after_of(&r)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(finish(rows, page.limit))
}
