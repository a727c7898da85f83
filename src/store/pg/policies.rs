//! SQL for `policies`, `policy_versions` and `policy_generations`. A policy's rules travel as
//! JSONB (`domain::policy::Rules`); the columns beside them are copies for filtering.

use sqlx::types::Json;
use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::PgTx;
use super::page::{Page, PageSpec, after_of, finish};
use crate::domain::policy::{Policy, PolicyStatus, Rules};
use crate::store::StoreResult;

/// Versions kept per policy; older ones are deleted as new ones are stored.
pub const VERSIONS_KEPT: i32 = 10;

const COLUMNS: &str = "policy_id, tenant_id, version, rules, created_at, updated_at";

#[derive(FromRow)]
struct Row {
    policy_id: String,
    tenant_id: String,
    version: i32,
    rules: Json<Rules>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<Row> for Policy {
    fn from(r: Row) -> Self {
        Policy {
            policy_id: r.policy_id,
            tenant_id: r.tenant_id,
            rules: r.rules.0,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One stored version of a policy's rules.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: i32,
    pub rules: Rules,
    /// `create`, `update` or `rollback`.
    pub change: String,
    pub restored_from: Option<i32>,
    pub created_at: OffsetDateTime,
}

#[derive(FromRow)]
struct VersionRow {
    version: i32,
    rules: Json<Rules>,
    change: String,
    restored_from: Option<i32>,
    created_at: OffsetDateTime,
}

/// Filters of a policy list (the spec's, plus the tenant).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub tenant_id: String,
    pub scope_pattern: Option<String>,
    pub status: Option<PolicyStatus>,
    pub has_action_quotas: Option<bool>,
    pub references_action_kind: Option<String>,
}

/// Inserts a new policy or writes every column of an existing one.
pub async fn save(tx: &mut PgTx, p: &Policy) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO policies (policy_id, tenant_id, name, scope_pattern, status, priority, has_quotas, \
         action_kinds, version, rules, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) \
         ON CONFLICT (policy_id) DO UPDATE SET name=$3, scope_pattern=$4, status=$5, priority=$6, has_quotas=$7, \
         action_kinds=$8, version=$9, rules=$10, updated_at=$12",
    )
    .bind(&p.policy_id)
    .bind(&p.tenant_id)
    .bind(&p.rules.name)
    .bind(&p.rules.scope_pattern)
    .bind(p.rules.status.as_str())
    .bind(i32::try_from(p.rules.priority).unwrap_or(i32::MAX))
    .bind(p.rules.has_quotas())
    .bind(p.rules.action_kinds())
    .bind(p.version)
    .bind(Json(&p.rules))
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores version `p.version` of `p` and deletes those older than the last [`VERSIONS_KEPT`].
pub async fn save_version(tx: &mut PgTx, p: &Policy, change: &str, restored_from: Option<i32>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO policy_versions (policy_id, version, rules, change, restored_from, created_at) \
         VALUES ($1,$2,$3,$4,$5,$6)",
    )
    .bind(&p.policy_id)
    .bind(p.version)
    .bind(Json(&p.rules))
    .bind(change)
    .bind(restored_from)
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM policy_versions WHERE policy_id = $1 AND version <= $2")
        .bind(&p.policy_id)
        .bind(p.version - VERSIONS_KEPT)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Bumps the tenant's policy generation (1 at its first policy change); returns the new one.
pub async fn bump_generation(tx: &mut PgTx, tenant: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO policy_generations (tenant_id, generation) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET generation = policy_generations.generation + 1 RETURNING generation",
    )
    .bind(tenant)
    .fetch_one(&mut **tx)
    .await?)
}

/// The tenant's policy generation: 0 before any policy change.
pub async fn generation(pool: &sqlx::PgPool, tenant: &str) -> StoreResult<i64> {
    let g: Option<i64> = sqlx::query_scalar("SELECT generation FROM policy_generations WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(pool)
        .await?;
    Ok(g.unwrap_or(0))
}

pub async fn get(pool: &sqlx::PgPool, id: &str) -> StoreResult<Option<Policy>> {
    let sql = format!("SELECT {COLUMNS} FROM policies WHERE policy_id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    Ok(row.map(Policy::from))
}

pub async fn get_for_update(tx: &mut PgTx, id: &str) -> StoreResult<Option<Policy>> {
    let sql = format!("SELECT {COLUMNS} FROM policies WHERE policy_id = $1 FOR UPDATE");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await?;
    Ok(row.map(Policy::from))
}

/// Whether another policy of `tenant` than `except` is named `name`.
pub async fn name_taken(tx: &mut PgTx, tenant: &str, name: &str, except: &str) -> StoreResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM policies WHERE tenant_id = $1 AND name = $2 AND policy_id <> $3)",
    )
    .bind(tenant)
    .bind(name)
    .bind(except)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn count_of_tenant(tx: &mut PgTx, tenant: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM policies WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&mut **tx)
        .await?)
}

/// Every policy of `tenant`, at most `max` (the catalogue caps a tenant's policies).
pub async fn of_tenant(pool: &sqlx::PgPool, tenant: &str, max: i64) -> StoreResult<Vec<Policy>> {
    let sql = format!("SELECT {COLUMNS} FROM policies WHERE tenant_id = $1 ORDER BY created_at, policy_id LIMIT $2");
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(max).fetch_all(pool).await?;
    Ok(rows.into_iter().map(Policy::from).collect())
}

/// As [`of_tenant`], inside a transaction.
pub async fn of_tenant_tx(tx: &mut PgTx, tenant: &str, max: i64) -> StoreResult<Vec<Policy>> {
    let sql = format!("SELECT {COLUMNS} FROM policies WHERE tenant_id = $1 ORDER BY created_at, policy_id LIMIT $2");
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(max).fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().map(Policy::from).collect())
}

pub async fn list(pool: &sqlx::PgPool, filter: &Filter, page: &PageSpec) -> StoreResult<Page<Policy>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS}, {} FROM policies WHERE tenant_id = ", page.cursor_columns()));
    qb.push_bind(filter.tenant_id.clone());
    if let Some(p) = &filter.scope_pattern {
        qb.push(" AND scope_pattern = ").push_bind(p.clone());
    }
    if let Some(s) = filter.status {
        qb.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(q) = filter.has_action_quotas {
        qb.push(" AND has_quotas = ").push_bind(q);
    }
    if let Some(k) = &filter.references_action_kind {
        qb.push(" AND action_kinds @> ARRAY[").push_bind(k.clone()).push("]::text[]");
    }
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows = qb
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((Policy::from(Row::from_row(r)?), after_of(r)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(finish(rows, page.limit))
}

/// The stored versions of a policy, newest first.
pub async fn versions(pool: &sqlx::PgPool, id: &str) -> StoreResult<Vec<Version>> {
    let rows: Vec<VersionRow> = sqlx::query_as(
        "SELECT version, rules, change, restored_from, created_at FROM policy_versions \
         WHERE policy_id = $1 ORDER BY version DESC LIMIT $2",
    )
    .bind(id)
    .bind(i64::from(VERSIONS_KEPT))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(version_of).collect())
}

pub async fn version(tx: &mut PgTx, id: &str, version: i32) -> StoreResult<Option<Version>> {
    let row: Option<VersionRow> = sqlx::query_as(
        "SELECT version, rules, change, restored_from, created_at FROM policy_versions \
         WHERE policy_id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(version_of))
}

fn version_of(r: VersionRow) -> Version {
    Version {
        version: r.version,
        rules: r.rules.0,
        change: r.change,
        restored_from: r.restored_from,
        created_at: r.created_at,
    }
}
