//! SQL for `events`: idempotent insert by id, lookup, filtered keyset lists.

use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::page::{Page, PageSpec, after_of, finish};
use super::{PgTx, like_pattern};
use crate::domain::event::{Event, EventCategory, EventType};
use crate::store::{StoreError, StoreResult};

/// Stores `event` unless its id is stored already; returns whether this call stored it.
pub async fn insert(tx: &mut PgTx, event: &Event) -> StoreResult<bool> {
    let body = serde_json::to_value(event).map_err(|e| StoreError::Refused(format!("encoding an event: {e}")))?;
    let done = sqlx::query(
        "INSERT INTO events (event_id, event_type, category, tenant_id, scope, occurred_at, correlation_id, \
         request_id, trace_id, body) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event.event_id)
    .bind(event.event_type.as_str())
    .bind(event.category.as_str())
    .bind(&event.tenant_id)
    .bind(&event.scope)
    .bind(event.timestamp)
    .bind(&event.correlation_id)
    .bind(&event.request_id)
    .bind(&event.trace_id)
    .bind(body)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn decode(body: serde_json::Value) -> StoreResult<Event> {
    serde_json::from_value(body).map_err(|e| StoreError::Internal(format!("events row does not decode: {e}")))
}

pub async fn get(pool: &sqlx::PgPool, id: &str) -> StoreResult<Option<Event>> {
    let body: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT body FROM events WHERE event_id = $1").bind(id).fetch_optional(pool).await?;
    body.map(decode).transpose()
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Events of any of these tenants (empty: all tenants).
    pub tenants: Vec<String>,
    pub event_type: Option<EventType>,
    pub category: Option<EventCategory>,
    /// Only these categories (the tenant view's boundary); empty means all.
    pub categories_in: Vec<EventCategory>,
    /// Scope prefix.
    pub scope: Option<String>,
    pub correlation_id: Option<String>,
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Substring of `correlation_id` or `scope`.
    pub search: Option<String>,
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, f: &Filter) {
    if !f.tenants.is_empty() {
        qb.push(" AND tenant_id = ANY(").push_bind(f.tenants.clone()).push(")");
    }
    if let Some(t) = f.event_type {
        qb.push(" AND event_type = ").push_bind(t.as_str());
    }
    if let Some(c) = f.category {
        qb.push(" AND category = ").push_bind(c.as_str());
    }
    if !f.categories_in.is_empty() {
        let cats: Vec<String> = f.categories_in.iter().map(|c| c.as_str().to_string()).collect();
        qb.push(" AND category = ANY(").push_bind(cats).push(")");
    }
    if let Some(scope) = &f.scope {
        let mut pattern = String::with_capacity(scope.len() + 1);
        for c in scope.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        qb.push(" AND scope LIKE ").push_bind(pattern);
    }
    for (column, value) in
        [("correlation_id", &f.correlation_id), ("trace_id", &f.trace_id), ("request_id", &f.request_id)]
    {
        if let Some(v) = value {
            qb.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    if let Some(from) = f.from {
        qb.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        qb.push(" AND occurred_at <= ").push_bind(to);
    }
    if let Some(search) = &f.search {
        let pattern = like_pattern(search);
        qb.push(" AND (correlation_id ILIKE ").push_bind(pattern.clone());
        qb.push(" OR scope ILIKE ").push_bind(pattern).push(")");
    }
}

pub async fn list(pool: &sqlx::PgPool, filter: &Filter, page: &PageSpec) -> StoreResult<Page<Event>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT body, {} FROM events WHERE TRUE", page.cursor_columns()));
    push_filter(&mut qb, filter);
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows = qb.build().fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        use sqlx::Row as _;
        let body: serde_json::Value = row.try_get("body")?;
        out.push((decode(body)?, after_of(&row)?));
    }
    Ok(finish(out, page.limit))
}

/// Events in `filter`'s window in time order, at most `limit` (a replay's candidates).
pub async fn in_order(pool: &sqlx::PgPool, filter: &Filter, limit: i64) -> StoreResult<Vec<Event>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT body FROM events WHERE TRUE");
    push_filter(&mut qb, filter);
    qb.push(" ORDER BY occurred_at, event_id LIMIT ").push_bind(limit);
    let bodies: Vec<serde_json::Value> = qb.build_query_scalar().fetch_all(pool).await?;
    bodies.into_iter().map(decode).collect()
}
