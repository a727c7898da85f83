//! SQL for `outbox_dead_letters`: the outbox entries the drain set aside, inserted once per
//! (tenant, stream entry) and listed for operators.

use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::page::{Page, PageSpec, after_of, finish};
use crate::store::StoreResult;

/// One entry set aside.
#[derive(Debug, Clone, FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub tenant_id: String,
    pub stream_id: String,
    /// The entry's names and values alternating, each as a netstring (see the migration).
    pub raw: Vec<u8>,
    pub reason: String,
    pub error: String,
    pub created_at: OffsetDateTime,
}

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

/// One page of dead letters, of `tenant` when given.
pub async fn list(pool: &sqlx::PgPool, tenant: Option<&str>, page: &PageSpec) -> StoreResult<Page<DeadLetter>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT id, tenant_id, stream_id, raw, reason, error, created_at, {} FROM outbox_dead_letters WHERE TRUE",
        page.cursor_columns()
    ));
    if let Some(tenant) = tenant {
        qb.push(" AND tenant_id = ").push_bind(tenant.to_string());
    }
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows = qb.build().fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push((DeadLetter::from_row(&row)?, after_of(&row)?));
    }
    Ok(finish(out, page.limit))
}
