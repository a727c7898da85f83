//! SQL for `tenants`.

use std::collections::BTreeMap;

use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::page::{After, Page, PageSpec, after_of, finish};
use super::{PgTx, like_pattern};
use crate::domain::tenant::{
    CommitOveragePolicy, ExpiryPolicy, ObserveMode, RateLimit, Tenant, TenantId, TenantStatus, Tier,
};
use crate::store::{StoreError, StoreResult};

const COLUMNS: &str = "tenant_id, name, status, tier, parent_tenant_id, default_commit_overage_policy, \
    default_reservation_ttl_ms, max_reservation_ttl_ms, max_reservation_extensions, \
    reservation_expiry_policy, metadata, created_at, updated_at, suspended_at, closed_at, rate_limit_per_second, \
    rate_limit_burst, observe_mode";

#[derive(FromRow)]
struct Row {
    tenant_id: String,
    name: String,
    status: String,
    tier: String,
    parent_tenant_id: Option<String>,
    default_commit_overage_policy: String,
    default_reservation_ttl_ms: i64,
    max_reservation_ttl_ms: i64,
    max_reservation_extensions: i64,
    reservation_expiry_policy: String,
    metadata: Option<sqlx::types::Json<BTreeMap<String, String>>>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    suspended_at: Option<OffsetDateTime>,
    closed_at: Option<OffsetDateTime>,
    rate_limit_per_second: Option<i32>,
    rate_limit_burst: Option<i32>,
    observe_mode: String,
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Internal(format!("tenants row has an unknown {what} {value:?}"))
}

impl TryFrom<Row> for Tenant {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(Tenant {
            tenant_id: TenantId::parse(&r.tenant_id).map_err(|_| corrupt("tenant_id", &r.tenant_id))?,
            name: r.name,
            status: TenantStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?,
            tier: Tier::parse(&r.tier).map_err(|_| corrupt("tier", &r.tier))?,
            parent_tenant_id: r.parent_tenant_id,
            default_commit_overage_policy: CommitOveragePolicy::parse(&r.default_commit_overage_policy)
                .ok_or_else(|| corrupt("overage policy", &r.default_commit_overage_policy))?,
            default_reservation_ttl_ms: r.default_reservation_ttl_ms,
            max_reservation_ttl_ms: r.max_reservation_ttl_ms,
            max_reservation_extensions: r.max_reservation_extensions,
            reservation_expiry_policy: ExpiryPolicy::parse(&r.reservation_expiry_policy)
                .ok_or_else(|| corrupt("expiry policy", &r.reservation_expiry_policy))?,
            observe_mode: ObserveMode::parse(&r.observe_mode)
                .ok_or_else(|| corrupt("observe mode", &r.observe_mode))?,
            metadata: r.metadata.map(|m| m.0),
            created_at: r.created_at,
            updated_at: r.updated_at,
            suspended_at: r.suspended_at,
            closed_at: r.closed_at,
            rate_limit: rate_limit_of(r.rate_limit_per_second, r.rate_limit_burst),
        })
    }
}

/// Inserts a new tenant; `Ok(false)` when the id exists already (nothing written).
pub async fn insert(tx: &mut PgTx, t: &Tenant) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO tenants (tenant_id, name, status, tier, parent_tenant_id, \
         default_commit_overage_policy, default_reservation_ttl_ms, max_reservation_ttl_ms, \
         max_reservation_extensions, reservation_expiry_policy, metadata, created_at, updated_at, \
         rate_limit_per_second, rate_limit_burst, observe_mode) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16) ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(t.tenant_id.as_str())
    .bind(&t.name)
    .bind(t.status.as_str())
    .bind(t.tier.as_str())
    .bind(&t.parent_tenant_id)
    .bind(t.default_commit_overage_policy.as_str())
    .bind(t.default_reservation_ttl_ms)
    .bind(t.max_reservation_ttl_ms)
    .bind(t.max_reservation_extensions)
    .bind(t.reservation_expiry_policy.as_str())
    .bind(t.metadata.as_ref().map(sqlx::types::Json))
    .bind(t.created_at)
    .bind(t.updated_at)
    .bind(t.rate_limit.map(|r| r.per_second as i32))
    .bind(t.rate_limit.map(|r| r.burst as i32))
    .bind(t.observe_mode.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Reads a tenant and locks its row until the transaction ends.
pub async fn get_for_update(tx: &mut PgTx, id: &str) -> StoreResult<Option<Tenant>> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE tenant_id = $1 FOR UPDATE");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    row.map(Tenant::try_from).transpose()
}

pub async fn get(pool: &sqlx::PgPool, id: &str) -> StoreResult<Option<Tenant>> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE tenant_id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    row.map(Tenant::try_from).transpose()
}

/// Writes every mutable column of `t` back.
pub async fn update(tx: &mut PgTx, t: &Tenant) -> StoreResult<()> {
    sqlx::query(
        "UPDATE tenants SET name=$2, status=$3, tier=$4, default_commit_overage_policy=$5, \
         default_reservation_ttl_ms=$6, max_reservation_ttl_ms=$7, max_reservation_extensions=$8, \
         metadata=$9, updated_at=$10, suspended_at=$11, closed_at=$12, rate_limit_per_second=$13, \
         rate_limit_burst=$14, reservation_expiry_policy=$15, observe_mode=$16 WHERE tenant_id=$1",
    )
    .bind(t.tenant_id.as_str())
    .bind(&t.name)
    .bind(t.status.as_str())
    .bind(t.tier.as_str())
    .bind(t.default_commit_overage_policy.as_str())
    .bind(t.default_reservation_ttl_ms)
    .bind(t.max_reservation_ttl_ms)
    .bind(t.max_reservation_extensions)
    .bind(t.metadata.as_ref().map(sqlx::types::Json))
    .bind(t.updated_at)
    .bind(t.suspended_at)
    .bind(t.closed_at)
    .bind(t.rate_limit.map(|r| r.per_second as i32))
    .bind(t.rate_limit.map(|r| r.burst as i32))
    .bind(t.reservation_expiry_policy.as_str())
    .bind(t.observe_mode.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub tenant_id: Option<String>,
    pub status: Option<TenantStatus>,
    pub parent_tenant_id: Option<String>,
    /// The stored value exactly (DISABLED and ENFORCE are told apart, as they are stored).
    pub observe_mode: Option<ObserveMode>,
    pub search: Option<String>,
}

/// The list's filters, shared by the bulk action so a preview list matches what it changes.
fn push_filter(qb: &mut QueryBuilder<Postgres>, filter: &Filter) {
    if let Some(tenant) = &filter.tenant_id {
        qb.push(" AND tenant_id = ").push_bind(tenant.clone());
    }
    if let Some(status) = filter.status {
        qb.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(parent) = &filter.parent_tenant_id {
        qb.push(" AND parent_tenant_id = ").push_bind(parent.clone());
    }
    if let Some(mode) = filter.observe_mode {
        qb.push(" AND observe_mode = ").push_bind(mode.as_str());
    }
    if let Some(search) = &filter.search {
        let pattern = like_pattern(search);
        qb.push(" AND (tenant_id ILIKE ").push_bind(pattern.clone());
        qb.push(" OR name ILIKE ").push_bind(pattern).push(")");
    }
}

/// Ids of the tenants `filter` matches, in id order, up to `limit` (bulk actions).
pub async fn matching_ids(pool: &sqlx::PgPool, filter: &Filter, limit: i64) -> StoreResult<Vec<String>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT tenant_id FROM tenants WHERE TRUE");
    push_filter(&mut qb, filter);
    qb.push(" ORDER BY tenant_id LIMIT ").push_bind(limit);
    Ok(qb.build_query_scalar().fetch_all(pool).await?)
}

/// How many tenants `filter` matches.
pub async fn count_matching(pool: &sqlx::PgPool, filter: &Filter) -> StoreResult<usize> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT count(*) FROM tenants WHERE TRUE");
    push_filter(&mut qb, filter);
    let n: i64 = qb.build_query_scalar().fetch_one(pool).await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

pub async fn list(pool: &sqlx::PgPool, filter: &Filter, page: &PageSpec) -> StoreResult<Page<Tenant>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS}, {} FROM tenants WHERE TRUE", page.cursor_columns()));
    push_filter(&mut qb, filter);
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows: Vec<(Row, After)> = qb
        .build()
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| Ok((Row::from_row(&r)?, after_of(&r)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let rows =
        rows.into_iter().map(|(row, after)| Ok((Tenant::try_from(row)?, after))).collect::<StoreResult<Vec<_>>>()?;
    Ok(finish(rows, page.limit))
}

/// Every tenant id, in id order (cross-tenant admin listings, the expiry sweeper).
pub async fn ids(pool: &sqlx::PgPool) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT tenant_id FROM tenants ORDER BY tenant_id").fetch_all(pool).await?)
}

/// A stored override, when both columns are set to positive values.
pub fn rate_limit_of(per_second: Option<i32>, burst: Option<i32>) -> Option<RateLimit> {
    match (per_second, burst) {
        (Some(p), Some(b)) if p > 0 && b > 0 => Some(RateLimit { per_second: p as u32, burst: b as u32 }),
        _ => None,
    }
}
