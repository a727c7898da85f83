//! SQL for `api_keys`.

use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::PgTx;
use super::page::{After, Page, PageSpec, after_of, finish};
use crate::domain::Permission;
use crate::domain::api_key::{ApiKey, KeyStatus};
use crate::domain::tenant::{RateLimit, TenantId, TenantStatus, Tier};
use crate::domain::tier::Class;
use crate::store::{StoreError, StoreResult};

const COLUMNS: &str = "k.key_id, k.tenant_id, k.key_prefix, k.name, k.description, k.permissions, \
    k.scope_filter, k.status, k.metadata, k.created_at, k.last_used_at, k.expires_at, k.revoked_at, \
    k.revoked_reason";

#[derive(FromRow)]
struct Row {
    key_id: String,
    tenant_id: String,
    key_prefix: String,
    name: String,
    description: Option<String>,
    permissions: Vec<String>,
    scope_filter: Vec<String>,
    status: String,
    metadata: Option<sqlx::types::Json<serde_json::Value>>,
    created_at: OffsetDateTime,
    last_used_at: Option<OffsetDateTime>,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
    revoked_reason: Option<String>,
}

impl TryFrom<Row> for ApiKey {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Internal(format!("api_keys row {} has a bad {what}", r.key_id));
        let permissions = r
            .permissions
            .iter()
            .map(|p| Permission::parse(p).ok_or_else(|| corrupt("permission")))
            .collect::<Result<_, _>>()?;
        Ok(ApiKey {
            tenant_id: TenantId::parse(&r.tenant_id).map_err(|_| corrupt("tenant_id"))?,
            stored_status: KeyStatus::parse(&r.status).ok_or_else(|| corrupt("status"))?,
            permissions,
            key_id: r.key_id,
            key_prefix: r.key_prefix,
            name: r.name,
            description: r.description,
            scope_filter: r.scope_filter,
            metadata: r.metadata.map(|m| m.0),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            revoked_reason: r.revoked_reason,
        })
    }
}

fn permission_strings(perms: &[Permission]) -> Vec<String> {
    perms.iter().map(|p| p.as_str().to_string()).collect()
}

pub async fn insert(tx: &mut PgTx, key: &ApiKey, digest: &[u8]) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (key_id, tenant_id, key_prefix, key_digest, name, description, \
         permissions, scope_filter, status, metadata, created_at, expires_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
    )
    .bind(&key.key_id)
    .bind(key.tenant_id.as_str())
    .bind(&key.key_prefix)
    .bind(digest)
    .bind(&key.name)
    .bind(&key.description)
    .bind(permission_strings(&key.permissions))
    .bind(&key.scope_filter)
    .bind(key.stored_status.as_str())
    .bind(key.metadata.as_ref().map(sqlx::types::Json))
    .bind(key.created_at)
    .bind(key.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get(pool: &sqlx::PgPool, key_id: &str) -> StoreResult<Option<ApiKey>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys k WHERE k.key_id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(key_id).fetch_optional(pool).await?;
    row.map(ApiKey::try_from).transpose()
}

/// Reads a key and locks its row; also returns its digest (for cache invalidation).
pub async fn get_for_update(tx: &mut PgTx, key_id: &str) -> StoreResult<Option<(ApiKey, Vec<u8>)>> {
    let sql = format!("SELECT {COLUMNS}, k.key_digest FROM api_keys k WHERE k.key_id = $1 FOR UPDATE");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key_id).fetch_optional(&mut **tx).await?;
    row.map(|row| {
        use sqlx::Row as _;
        let digest: Vec<u8> = row.try_get("key_digest")?;
        Ok((ApiKey::try_from(Row::from_row(&row)?)?, digest))
    })
    .transpose()
}

pub async fn update(tx: &mut PgTx, key: &ApiKey) -> StoreResult<()> {
    sqlx::query(
        "UPDATE api_keys SET name=$2, description=$3, permissions=$4, scope_filter=$5, metadata=$6, \
         expires_at=$7, status=$8, revoked_at=$9, revoked_reason=$10 WHERE key_id=$1",
    )
    .bind(&key.key_id)
    .bind(&key.name)
    .bind(&key.description)
    .bind(permission_strings(&key.permissions))
    .bind(&key.scope_filter)
    .bind(key.metadata.as_ref().map(sqlx::types::Json))
    .bind(key.expires_at)
    .bind(key.stored_status.as_str())
    .bind(key.revoked_at)
    .bind(&key.revoked_reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Revokes every unrevoked key of a tenant (the close cascade); returns the revoked keys'
/// ids and digests.
pub async fn revoke_all_of_tenant(
    tx: &mut PgTx,
    tenant_id: &str,
    at: OffsetDateTime,
    reason: &str,
) -> StoreResult<Vec<(String, Vec<u8>, String)>> {
    Ok(sqlx::query_as(
        "UPDATE api_keys SET status='REVOKED', revoked_at=$2, revoked_reason=$3 \
         WHERE tenant_id=$1 AND status='ACTIVE' RETURNING key_id, key_digest, name",
    )
    .bind(tenant_id)
    .bind(at)
    .bind(reason)
    .fetch_all(&mut **tx)
    .await?)
}

/// Marks up to `limit` keys that have passed their expiry as announced; returns each one's
/// id, tenant, name and permissions. Rows another instance is marking are skipped.
pub async fn take_newly_expired(tx: &mut PgTx, limit: i64) -> StoreResult<Vec<(String, String, String, Vec<String>)>> {
    Ok(sqlx::query_as(
        "UPDATE api_keys SET expiry_announced = TRUE WHERE key_id IN (SELECT key_id FROM api_keys \
           WHERE status = 'ACTIVE' AND expires_at <= now() AND NOT expiry_announced \
           ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING key_id, tenant_id, name, permissions",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

/// A key found by digest, with its tenant's status (what the auth cache holds).
pub struct KeyWithTenant {
    pub key: ApiKey,
    pub tenant_status: TenantStatus,
    pub tenant_tier: Tier,
    pub tenant_rate_limit: Option<RateLimit>,
    /// The admission class and rate limit of the tenant's tier, read with the key so a tier
    /// change reaches the runtime with the next cache fill.
    pub tier_class: Class,
    pub tier_rate_limit: Option<RateLimit>,
}

pub async fn find_by_digest(pool: &sqlx::PgPool, digest: &[u8]) -> StoreResult<Option<KeyWithTenant>> {
    let sql = format!(
        "SELECT {COLUMNS}, t.status AS tenant_status, t.tier AS tenant_tier, t.rate_limit_per_second, \
         t.rate_limit_burst, tr.admission_class, tr.rate_limit_per_second AS tier_rate_limit_per_second, \
         tr.rate_limit_burst AS tier_rate_limit_burst FROM api_keys k \
         JOIN tenants t ON t.tenant_id = k.tenant_id JOIN tiers tr ON tr.tier = t.tier WHERE k.key_digest = $1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(digest).fetch_optional(pool).await?;
    row.map(|row| {
        use sqlx::Row as _;
        let status: String = row.try_get("tenant_status")?;
        let tenant_status =
            TenantStatus::parse(&status).ok_or_else(|| StoreError::Internal(format!("tenant status {status:?}")))?;
        let tier: String = row.try_get("tenant_tier")?;
        let tenant_tier = Tier::parse(&tier).map_err(|_| StoreError::Internal(format!("tenant tier {tier:?}")))?;
        let class: String = row.try_get("admission_class")?;
        let tier_class = Class::parse(&class).ok_or_else(|| StoreError::Internal(format!("tier class {class:?}")))?;
        let tier_rate_limit = super::tenants::rate_limit_of(
            row.try_get("tier_rate_limit_per_second")?,
            row.try_get("tier_rate_limit_burst")?,
        );
        let tenant_rate_limit =
            super::tenants::rate_limit_of(row.try_get("rate_limit_per_second")?, row.try_get("rate_limit_burst")?);
        Ok(KeyWithTenant {
            key: ApiKey::try_from(Row::from_row(&row)?)?,
            tenant_status,
            tenant_tier,
            tenant_rate_limit,
            tier_class,
            tier_rate_limit,
        })
    })
    .transpose()
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub tenant_id: Option<String>,
    pub status: Option<KeyStatus>,
    pub search: Option<String>,
}

pub async fn list(pool: &sqlx::PgPool, filter: &Filter, page: &PageSpec) -> StoreResult<Page<ApiKey>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS}, {} FROM api_keys k WHERE TRUE", page.cursor_columns()));
    if let Some(tenant) = &filter.tenant_id {
        qb.push(" AND k.tenant_id = ").push_bind(tenant.clone());
    }
    match filter.status {
        Some(KeyStatus::Active) => {
            qb.push(" AND k.status = 'ACTIVE' AND k.expires_at > now()");
        }
        Some(KeyStatus::Expired) => {
            qb.push(" AND k.status = 'ACTIVE' AND k.expires_at <= now()");
        }
        Some(KeyStatus::Revoked) => {
            qb.push(" AND k.status = 'REVOKED'");
        }
        None => {}
    }
    if let Some(search) = &filter.search {
        let pattern = super::like_pattern(search);
        qb.push(" AND (k.key_id ILIKE ").push_bind(pattern.clone());
        qb.push(" OR k.name ILIKE ").push_bind(pattern).push(")");
    }
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows = qb
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((ApiKey::try_from(Row::from_row(r)?)?, after_of(r)?)))
        .collect::<StoreResult<Vec<(ApiKey, After)>>>()?;
    Ok(finish(rows, page.limit))
}

/// Records that the keys `ids` were used at `at` (never moving `last_used_at` backwards).
pub async fn touch(pool: &sqlx::PgPool, ids: &[String], at: OffsetDateTime) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE api_keys SET last_used_at = $2 WHERE key_id = ANY($1) AND (last_used_at IS NULL OR last_used_at < $2)",
    )
    .bind(ids)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
