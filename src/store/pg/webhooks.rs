//! SQL for `webhook_subscriptions`, `webhook_deliveries` and `webhook_security_config`.
//! Secrets arrive and leave sealed; only `events::seal` opens them.

use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::page::{Page, PageSpec, after_of, finish};
use super::{PgTx, like_pattern};
use crate::domain::event::{EventCategory, EventType};
use crate::domain::webhook::{RetryPolicy, Subscription, ThresholdConfig, WebhookStatus};
use crate::store::{StoreError, StoreResult};

pub use super::deliveries::*;

const COLUMNS: &str = "subscription_id, tenant_id, name, description, url, event_types, event_categories, \
    scope_filter, thresholds, signing_secret_sealed, headers_sealed, status, retry_policy, disable_after_failures, \
    consecutive_failures, metadata, created_at, updated_at, last_triggered_at, last_success_at, last_failure_at";

#[derive(FromRow)]
struct Row {
    subscription_id: String,
    tenant_id: String,
    name: Option<String>,
    description: Option<String>,
    url: String,
    event_types: Vec<String>,
    event_categories: Vec<String>,
    scope_filter: Option<String>,
    thresholds: Option<sqlx::types::Json<ThresholdConfig>>,
    signing_secret_sealed: Vec<u8>,
    headers_sealed: Option<Vec<u8>>,
    status: String,
    retry_policy: sqlx::types::Json<RetryPolicy>,
    disable_after_failures: i32,
    consecutive_failures: i32,
    metadata: Option<serde_json::Value>,
    created_at: OffsetDateTime,
    updated_at: Option<OffsetDateTime>,
    last_triggered_at: Option<OffsetDateTime>,
    last_success_at: Option<OffsetDateTime>,
    last_failure_at: Option<OffsetDateTime>,
}

/// A subscription row: the subscription (headers still sealed) and its sealed secrets.
#[derive(Debug, Clone)]
pub struct Stored {
    pub sub: Subscription,
    pub secret_sealed: Vec<u8>,
    pub headers_sealed: Option<Vec<u8>>,
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Internal(format!("webhook_subscriptions row has an unknown {what} {value:?}"))
}

impl TryFrom<Row> for Stored {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        let event_types = r
            .event_types
            .iter()
            .map(|t| EventType::parse(t).ok_or_else(|| corrupt("event type", t)))
            .collect::<StoreResult<_>>()?;
        let event_categories = r
            .event_categories
            .iter()
            .map(|c| EventCategory::parse(c).ok_or_else(|| corrupt("category", c)))
            .collect::<StoreResult<_>>()?;
        let sub = Subscription {
            subscription_id: r.subscription_id,
            tenant_id: r.tenant_id,
            name: r.name,
            description: r.description,
            url: r.url,
            event_types,
            event_categories,
            scope_filter: r.scope_filter,
            thresholds: r.thresholds.map(|t| t.0),
            status: WebhookStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?,
            retry_policy: r.retry_policy.0,
            disable_after_failures: r.disable_after_failures,
            consecutive_failures: r.consecutive_failures,
            metadata: r.metadata,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_triggered_at: r.last_triggered_at,
            last_success_at: r.last_success_at,
            last_failure_at: r.last_failure_at,
        };
        Ok(Stored { sub, secret_sealed: r.signing_secret_sealed, headers_sealed: r.headers_sealed })
    }
}

fn names<T: Copy>(items: &[T], name: impl Fn(T) -> &'static str) -> Vec<String> {
    items.iter().map(|i| name(*i).to_string()).collect()
}

/// Writes a subscription: inserts a new one, or writes every mutable column of a stored one
/// back (`created_at` never changes).
pub async fn save(tx: &mut PgTx, s: &Stored) -> StoreResult<()> {
    let sub = &s.sub;
    sqlx::query(
        "INSERT INTO webhook_subscriptions (subscription_id, tenant_id, name, description, url, event_types, \
         event_categories, scope_filter, thresholds, signing_secret_sealed, headers_sealed, status, retry_policy, \
         disable_after_failures, consecutive_failures, metadata, created_at, updated_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) \
         ON CONFLICT (subscription_id) DO UPDATE SET name=EXCLUDED.name, description=EXCLUDED.description, \
           url=EXCLUDED.url, event_types=EXCLUDED.event_types, event_categories=EXCLUDED.event_categories, \
           scope_filter=EXCLUDED.scope_filter, thresholds=EXCLUDED.thresholds, \
           signing_secret_sealed=EXCLUDED.signing_secret_sealed, headers_sealed=EXCLUDED.headers_sealed, \
           status=EXCLUDED.status, retry_policy=EXCLUDED.retry_policy, \
           disable_after_failures=EXCLUDED.disable_after_failures, consecutive_failures=EXCLUDED.consecutive_failures, \
           metadata=EXCLUDED.metadata, updated_at=EXCLUDED.updated_at",
    )
    .bind(&sub.subscription_id)
    .bind(&sub.tenant_id)
    .bind(&sub.name)
    .bind(&sub.description)
    .bind(&sub.url)
    .bind(names(&sub.event_types, EventType::as_str))
    .bind(names(&sub.event_categories, EventCategory::as_str))
    .bind(&sub.scope_filter)
    .bind(sub.thresholds.as_ref().map(sqlx::types::Json))
    .bind(&s.secret_sealed)
    .bind(&s.headers_sealed)
    .bind(sub.status.as_str())
    .bind(sqlx::types::Json(sub.retry_policy))
    .bind(sub.disable_after_failures)
    .bind(sub.consecutive_failures)
    .bind(&sub.metadata)
    .bind(sub.created_at)
    .bind(sub.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get(pool: &sqlx::PgPool, id: &str) -> StoreResult<Option<Stored>> {
    let sql = format!("SELECT {COLUMNS} FROM webhook_subscriptions WHERE subscription_id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Stored::try_from).transpose()
}

pub async fn get_for_update(tx: &mut PgTx, id: &str) -> StoreResult<Option<Stored>> {
    let sql = format!("SELECT {COLUMNS} FROM webhook_subscriptions WHERE subscription_id = $1 FOR UPDATE");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    row.map(Stored::try_from).transpose()
}

pub async fn delete(tx: &mut PgTx, id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM webhook_subscriptions WHERE subscription_id = $1").bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// Locks a subscription's row until the transaction ends. Every transaction that changes both
/// a subscription and its deliveries takes this lock first, so none waits on the other in
/// the opposite order.
pub async fn lock(tx: &mut PgTx, id: &str) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM webhook_subscriptions WHERE subscription_id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How many subscriptions `owner` has.
pub async fn count_of_owner(tx: &mut PgTx, owner: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM webhook_subscriptions WHERE tenant_id = $1")
        .bind(owner)
        .fetch_one(&mut **tx)
        .await?)
}

/// The ACTIVE subscriptions that may receive an event of `tenant`: its own and `__system__`'s.
pub async fn active_for(tx: &mut PgTx, tenant: &str) -> StoreResult<Vec<Subscription>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM webhook_subscriptions WHERE status = 'ACTIVE' AND tenant_id IN ($1, '__system__')"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).fetch_all(&mut **tx).await?;
    rows.into_iter().map(|r| Stored::try_from(r).map(|s| s.sub)).collect()
}

/// Subscriptions of `tenant` that are not DISABLED, locked (the tenant close cascade).
pub async fn enabled_of_tenant_for_update(tx: &mut PgTx, tenant: &str) -> StoreResult<Vec<Stored>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM webhook_subscriptions WHERE tenant_id = $1 AND status <> 'DISABLED' \
         ORDER BY subscription_id FOR UPDATE"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).fetch_all(&mut **tx).await?;
    rows.into_iter().map(Stored::try_from).collect()
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub tenant_id: Option<String>,
    pub status: Option<WebhookStatus>,
    pub event_type: Option<EventType>,
    pub search: Option<String>,
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, f: &Filter) {
    if let Some(t) = &f.tenant_id {
        qb.push(" AND tenant_id = ").push_bind(t.clone());
    }
    if let Some(s) = f.status {
        qb.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(t) = f.event_type {
        qb.push(" AND ").push_bind(t.as_str()).push(" = ANY(event_types)");
    }
    if let Some(search) = &f.search {
        let pattern = like_pattern(search);
        qb.push(" AND (subscription_id ILIKE ").push_bind(pattern.clone());
        qb.push(" OR url ILIKE ").push_bind(pattern).push(")");
    }
}

pub async fn list(pool: &sqlx::PgPool, filter: &Filter, page: &PageSpec) -> StoreResult<Page<Subscription>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS}, {} FROM webhook_subscriptions WHERE TRUE", page.cursor_columns()));
    push_filter(&mut qb, filter);
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let mut out = Vec::new();
    for row in qb.build().fetch_all(pool).await? {
        let r = Row::from_row(&row)?;
        out.push((Stored::try_from(r)?.sub, after_of(&row)?));
    }
    Ok(finish(out, page.limit))
}

/// Ids of the subscriptions `filter` matches, up to `limit` (bulk actions count with it).
pub async fn matching_ids(pool: &sqlx::PgPool, filter: &Filter, limit: i64) -> StoreResult<Vec<String>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT subscription_id FROM webhook_subscriptions WHERE TRUE");
    push_filter(&mut qb, filter);
    qb.push(" ORDER BY subscription_id LIMIT ").push_bind(limit);
    Ok(qb.build_query_scalar().fetch_all(pool).await?)
}

/// How many subscriptions `filter` matches.
pub async fn count_matching(pool: &sqlx::PgPool, filter: &Filter) -> StoreResult<usize> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT count(*) FROM webhook_subscriptions WHERE TRUE");
    push_filter(&mut qb, filter);
    let n: i64 = qb.build_query_scalar().fetch_one(pool).await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

// --- security config --------------------------------------------------------------------

/// The stored security config and when it was written.
pub async fn security_config(pool: &sqlx::PgPool) -> StoreResult<Option<(serde_json::Value, OffsetDateTime)>> {
    Ok(sqlx::query_as("SELECT config, updated_at FROM webhook_security_config").fetch_optional(pool).await?)
}

/// Replaces the security config; returns when it was written.
pub async fn put_security_config(tx: &mut PgTx, config: &serde_json::Value) -> StoreResult<OffsetDateTime> {
    Ok(sqlx::query_scalar(
        "INSERT INTO webhook_security_config (id, config, updated_at) VALUES (TRUE, $1, clock_timestamp()) \
         ON CONFLICT (id) DO UPDATE SET config = EXCLUDED.config, updated_at = EXCLUDED.updated_at \
         RETURNING updated_at",
    )
    .bind(config)
    .fetch_one(&mut **tx)
    .await?)
}

/// Stamps the subscription's delivery bookkeeping after an attempt.
pub async fn record_outcome(
    tx: &mut PgTx,
    subscription_id: &str,
    success: bool,
    delivery_failed: bool,
    at: OffsetDateTime,
) -> StoreResult<Option<(WebhookStatus, i32, i32)>> {
    let row: Option<(String, i32, i32)> = sqlx::query_as(
        "UPDATE webhook_subscriptions SET last_triggered_at = $2, \
           last_success_at = CASE WHEN $3 THEN $2 ELSE last_success_at END, \
           last_failure_at = CASE WHEN $3 THEN last_failure_at ELSE $2 END, \
           consecutive_failures = CASE WHEN $3 THEN 0 WHEN $4 THEN consecutive_failures + 1 \
             ELSE consecutive_failures END \
         WHERE subscription_id = $1 RETURNING status, consecutive_failures, disable_after_failures",
    )
    .bind(subscription_id)
    .bind(at)
    .bind(success)
    .bind(delivery_failed)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|(s, c, d)| Ok((WebhookStatus::parse(&s).ok_or_else(|| corrupt("status", &s))?, c, d))).transpose()
}

/// Sets a subscription's status (the dispatcher's auto-disable).
pub async fn set_status(
    tx: &mut PgTx,
    subscription_id: &str,
    status: WebhookStatus,
    at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("UPDATE webhook_subscriptions SET status=$2, updated_at=$3 WHERE subscription_id=$1")
        .bind(subscription_id)
        .bind(status.as_str())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
