//! SQL for `provisions`: the record of each provisioning call, written with its tenant and key,
//! and the lease under which a PENDING record is finished.

use sqlx::FromRow;
use time::OffsetDateTime;

use super::PgTx;
use crate::domain::tier::PlannedBudget;
use crate::store::StoreResult;

#[derive(Debug, Clone)]
pub struct Provision {
    pub idempotency_key: String,
    pub request_hash: String,
    pub tenant_id: String,
    pub key_id: String,
    pub budgets: Vec<PlannedBudget>,
    pub policies: Vec<serde_json::Value>,
    pub secret_sealed: Option<Vec<u8>>,
    pub request_id: String,
    pub trace_id: String,
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "idempotency_key, request_hash, tenant_id, key_id, budgets, policies, secret_sealed, \
    request_id, trace_id, created_at";

#[derive(FromRow)]
struct Row {
    idempotency_key: String,
    request_hash: String,
    tenant_id: String,
    key_id: String,
    budgets: sqlx::types::Json<Vec<PlannedBudget>>,
    policies: sqlx::types::Json<Vec<serde_json::Value>>,
    secret_sealed: Option<Vec<u8>>,
    request_id: String,
    trace_id: String,
    created_at: OffsetDateTime,
}

impl From<Row> for Provision {
    fn from(r: Row) -> Self {
        Provision {
            idempotency_key: r.idempotency_key,
            request_hash: r.request_hash,
            tenant_id: r.tenant_id,
            key_id: r.key_id,
            budgets: r.budgets.0,
            policies: r.policies.0,
            secret_sealed: r.secret_sealed,
            request_id: r.request_id,
            trace_id: r.trace_id,
            created_at: r.created_at,
        }
    }
}

/// Inserts a PENDING record leased to its caller for `lease_s`; `Ok(false)` when the
/// idempotency key or the tenant id is taken (a concurrent insert of the same key waits for
/// the first to end).
pub async fn insert_record_first(tx: &mut PgTx, p: &Provision, lease_s: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO provisions (idempotency_key, request_hash, tenant_id, key_id, state, budgets, policies, \
         secret_sealed, request_id, trace_id, created_at, lease_until) \
         VALUES ($1,$2,$3,$4,'PENDING',$5,$6,$7,$8,$9,$10, now() + make_interval(secs => $11)) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&p.idempotency_key)
    .bind(&p.request_hash)
    .bind(&p.tenant_id)
    .bind(&p.key_id)
    .bind(sqlx::types::Json(&p.budgets))
    .bind(sqlx::types::Json(&p.policies))
    .bind(&p.secret_sealed)
    .bind(&p.request_id)
    .bind(&p.trace_id)
    .bind(p.created_at)
    .bind(lease_s as f64)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(pool: &sqlx::PgPool, key: &str) -> StoreResult<Option<Provision>> {
    let sql = format!("SELECT {COLUMNS} FROM provisions WHERE idempotency_key = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(key).fetch_optional(pool).await?;
    Ok(row.map(Into::into))
}

/// Leases the oldest PENDING record whose lease has lapsed to the caller for `lease_s`
/// (`SKIP LOCKED`: instances claiming at once take different records).
pub async fn claim_pending(pool: &sqlx::PgPool, lease_s: i64) -> StoreResult<Option<Provision>> {
    let sql = format!(
        "UPDATE provisions SET lease_until = now() + make_interval(secs => $1) WHERE idempotency_key = (\
         SELECT idempotency_key FROM provisions WHERE state = 'PENDING' \
         AND (lease_until IS NULL OR lease_until < now()) ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}"
    );
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(lease_s as f64).fetch_optional(pool).await?;
    Ok(row.map(Into::into))
}

/// Marks a record COMPLETE (idempotent) and frees its lease.
pub async fn complete(pool: &sqlx::PgPool, key: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE provisions SET state = 'COMPLETE', completed_at = coalesce(completed_at, now()), lease_until = NULL \
         WHERE idempotency_key = $1",
    )
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes the sealed secret out of a COMPLETE record: exactly one caller gets it, once.
pub async fn take_secret(pool: &sqlx::PgPool, key: &str) -> StoreResult<Option<Vec<u8>>> {
    Ok(sqlx::query_scalar(
        "WITH old AS (SELECT idempotency_key, secret_sealed FROM provisions WHERE idempotency_key = $1 \
         AND state = 'COMPLETE' AND secret_sealed IS NOT NULL FOR UPDATE) \
         UPDATE provisions p SET secret_sealed = NULL FROM old WHERE p.idempotency_key = old.idempotency_key \
         RETURNING old.secret_sealed",
    )
    .bind(key)
    .fetch_optional(pool)
    .await?)
}

/// Gives up a lease (the holder failed), so the recovery pass may take the record at once.
pub async fn release_lease(pool: &sqlx::PgPool, key: &str) -> StoreResult<()> {
    sqlx::query("UPDATE provisions SET lease_until = NULL WHERE idempotency_key = $1 AND state = 'PENDING'")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}
