//! SQL for the catalogue's half of the admin overview: tenant and webhook counts, the failing
//! webhooks, and the recent events (counts by category, denials by reason, the latest denials
//! and expiries). Each is one bounded query.

use sqlx::Row as _;
use time::OffsetDateTime;

use crate::domain::event::Event;
use crate::store::{StoreError, StoreResult};

/// Rows of each "top" list (the spec's maxItems).
pub const TOP_MAX: i64 = 10;

#[derive(Debug, Default, Clone)]
pub struct Catalogue {
    /// `[total, active, suspended, closed, in_observe_mode]` (the last: `observe_mode` other
    /// than ENFORCE, whatever the status).
    pub tenants: [i64; 5],
    /// `[total, active, disabled, with_failures]`.
    pub webhooks: [i64; 4],
    /// `(subscription_id, url, consecutive_failures, last_failure_at)`.
    pub failing_webhooks: Vec<(String, String, i64, Option<OffsetDateTime>)>,
    pub events_total: i64,
    pub events_by_category: Vec<(String, i64)>,
    pub denials_by_reason: Vec<(String, i64)>,
    pub recent_denials: Vec<Event>,
    pub recent_expiries: Vec<Event>,
}

async fn recent(pool: &sqlx::PgPool, event_type: &str, since: OffsetDateTime) -> StoreResult<Vec<Event>> {
    let bodies: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT body FROM events WHERE event_type = $1 AND occurred_at >= $2 \
         ORDER BY occurred_at DESC, event_id DESC LIMIT $3",
    )
    .bind(event_type)
    .bind(since)
    .bind(TOP_MAX)
    .fetch_all(pool)
    .await?;
    bodies
        .into_iter()
        .map(|b| {
            serde_json::from_value(b).map_err(|e| StoreError::Internal(format!("events row does not decode: {e}")))
        })
        .collect()
}

pub async fn read(pool: &sqlx::PgPool, since: OffsetDateTime) -> StoreResult<Catalogue> {
    let mut out = Catalogue::default();
    let t = sqlx::query(
        "SELECT count(*), count(*) FILTER (WHERE status = 'ACTIVE'), count(*) FILTER (WHERE status = 'SUSPENDED'), \
         count(*) FILTER (WHERE status = 'CLOSED'), count(*) FILTER (WHERE observe_mode <> 'ENFORCE') FROM tenants",
    )
    .fetch_one(pool)
    .await?;
    out.tenants = [t.try_get(0)?, t.try_get(1)?, t.try_get(2)?, t.try_get(3)?, t.try_get(4)?];
    let w = sqlx::query(
        "SELECT count(*), count(*) FILTER (WHERE status = 'ACTIVE'), count(*) FILTER (WHERE status = 'DISABLED'), \
         count(*) FILTER (WHERE consecutive_failures > 0) FROM webhook_subscriptions",
    )
    .fetch_one(pool)
    .await?;
    out.webhooks = [w.try_get(0)?, w.try_get(1)?, w.try_get(2)?, w.try_get(3)?];
    let rows = sqlx::query(
        "SELECT subscription_id, url, consecutive_failures::bigint, last_failure_at FROM webhook_subscriptions \
         WHERE consecutive_failures > 0 ORDER BY consecutive_failures DESC, subscription_id LIMIT $1",
    )
    .bind(TOP_MAX)
    .fetch_all(pool)
    .await?;
    for r in rows {
        out.failing_webhooks.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
    }
    let rows = sqlx::query("SELECT category, count(*) FROM events WHERE occurred_at >= $1 GROUP BY category")
        .bind(since)
        .fetch_all(pool)
        .await?;
    for r in rows {
        let n: i64 = r.try_get(1)?;
        out.events_total += n;
        out.events_by_category.push((r.try_get(0)?, n));
    }
    let rows = sqlx::query(
        "SELECT coalesce(body->'data'->>'reason_code', ''), count(*) FROM events \
         WHERE event_type = 'reservation.denied' AND occurred_at >= $1 GROUP BY 1",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    for r in rows {
        out.denials_by_reason.push((r.try_get(0)?, r.try_get(1)?));
    }
    out.recent_denials = recent(pool, "reservation.denied", since).await?;
    out.recent_expiries = recent(pool, "reservation.expired", since).await?;
    Ok(out)
}
