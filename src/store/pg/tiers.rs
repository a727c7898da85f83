//! SQL for `tiers`: the built-in and operator-defined tenant templates.

use sqlx::FromRow;
use time::OffsetDateTime;

use super::PgTx;
use crate::domain::tenant::{CommitOveragePolicy, RateLimit};
use crate::domain::tier::{BudgetTemplate, Class, TenantDefaults, Tier, TierDef};
use crate::store::{StoreError, StoreResult};

const COLUMNS: &str = "tier, description, built_in, operator_modified, admission_class, rate_limit_per_second, \
    rate_limit_burst, default_commit_overage_policy, default_reservation_ttl_ms, max_reservation_ttl_ms, \
    max_reservation_extensions, default_budgets, default_policies, created_at, updated_at";

/// Tiers a deployment may hold at most, so a list of them is always one short answer.
pub const TIERS_MAX: i64 = 100;

#[derive(FromRow)]
struct Row {
    tier: String,
    description: Option<String>,
    built_in: bool,
    operator_modified: bool,
    admission_class: String,
    rate_limit_per_second: Option<i32>,
    rate_limit_burst: Option<i32>,
    default_commit_overage_policy: String,
    default_reservation_ttl_ms: i64,
    max_reservation_ttl_ms: i64,
    max_reservation_extensions: i64,
    default_budgets: sqlx::types::Json<Vec<BudgetTemplate>>,
    default_policies: sqlx::types::Json<Vec<serde_json::Value>>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Internal(format!("tiers row has an unknown {what} {value:?}"))
}

impl TryFrom<Row> for TierDef {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(TierDef {
            tier: Tier::parse(&r.tier).map_err(|_| corrupt("tier", &r.tier))?,
            description: r.description,
            built_in: r.built_in,
            operator_modified: r.operator_modified,
            class: Class::parse(&r.admission_class).ok_or_else(|| corrupt("class", &r.admission_class))?,
            rate_limit: super::tenants::rate_limit_of(r.rate_limit_per_second, r.rate_limit_burst),
            tenant_defaults: TenantDefaults {
                default_commit_overage_policy: CommitOveragePolicy::parse(&r.default_commit_overage_policy)
                    .ok_or_else(|| corrupt("overage policy", &r.default_commit_overage_policy))?,
                default_reservation_ttl_ms: r.default_reservation_ttl_ms,
                max_reservation_ttl_ms: r.max_reservation_ttl_ms,
                max_reservation_extensions: r.max_reservation_extensions,
            },
            default_budgets: r.default_budgets.0,
            default_policies: r.default_policies.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub async fn list(pool: &sqlx::PgPool) -> StoreResult<Vec<TierDef>> {
    let sql = format!("SELECT {COLUMNS} FROM tiers ORDER BY built_in DESC, created_at, tier LIMIT {TIERS_MAX}");
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
    rows.into_iter().map(TierDef::try_from).collect()
}

pub async fn get(pool: &sqlx::PgPool, tier: &str) -> StoreResult<Option<TierDef>> {
    let sql = format!("SELECT {COLUMNS} FROM tiers WHERE tier = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tier).fetch_optional(pool).await?;
    row.map(TierDef::try_from).transpose()
}

/// Reads a tier and locks its row until the transaction ends.
pub async fn get_for_update(tx: &mut PgTx, tier: &str) -> StoreResult<Option<TierDef>> {
    let sql = format!("SELECT {COLUMNS} FROM tiers WHERE tier = $1 FOR UPDATE");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tier).fetch_optional(&mut **tx).await?;
    row.map(TierDef::try_from).transpose()
}

pub async fn count(tx: &mut PgTx) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM tiers").fetch_one(&mut **tx).await?)
}

fn rate_cols(limit: Option<RateLimit>) -> (Option<i32>, Option<i32>) {
    (limit.map(|r| r.per_second as i32), limit.map(|r| r.burst as i32))
}

/// Inserts a new tier; `Ok(false)` when the name is taken (nothing written).
pub async fn insert(tx: &mut PgTx, t: &TierDef) -> StoreResult<bool> {
    write(
        tx,
        t,
        "INSERT INTO tiers (tier, description, built_in, operator_modified, admission_class, \
        rate_limit_per_second, rate_limit_burst, default_commit_overage_policy, default_reservation_ttl_ms, \
        max_reservation_ttl_ms, max_reservation_extensions, default_budgets, default_policies, created_at, \
        updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) ON CONFLICT (tier) DO NOTHING",
    )
    .await
}

/// Writes every mutable column of `t` back.
pub async fn update(tx: &mut PgTx, t: &TierDef) -> StoreResult<()> {
    write(
        tx,
        t,
        "UPDATE tiers SET description=$2, built_in=$3, operator_modified=$4, admission_class=$5, \
        rate_limit_per_second=$6, rate_limit_burst=$7, default_commit_overage_policy=$8, \
        default_reservation_ttl_ms=$9, max_reservation_ttl_ms=$10, max_reservation_extensions=$11, \
        default_budgets=$12, default_policies=$13, created_at=$14, updated_at=$15 WHERE tier=$1",
    )
    .await
    .map(|_| ())
}

async fn write(tx: &mut PgTx, t: &TierDef, sql: &'static str) -> StoreResult<bool> {
    let (per_second, burst) = rate_cols(t.rate_limit);
    let d = &t.tenant_defaults;
    let done = sqlx::query(sql)
        .bind(t.tier.as_str())
        .bind(&t.description)
        .bind(t.built_in)
        .bind(t.operator_modified)
        .bind(t.class.as_str())
        .bind(per_second)
        .bind(burst)
        .bind(d.default_commit_overage_policy.as_str())
        .bind(d.default_reservation_ttl_ms)
        .bind(d.max_reservation_ttl_ms)
        .bind(d.max_reservation_extensions)
        .bind(sqlx::types::Json(&t.default_budgets))
        .bind(sqlx::types::Json(&t.default_policies))
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Copies the flags' class and rate limit into a built-in tier an operator has not patched;
/// returns whether the row changed.
pub async fn seed_built_in(tx: &mut PgTx, tier: &str, class: Class, limit: Option<RateLimit>) -> StoreResult<bool> {
    let (per_second, burst) = rate_cols(limit);
    let done = sqlx::query(
        "UPDATE tiers SET admission_class = $2, rate_limit_per_second = $3, rate_limit_burst = $4, updated_at = now() \
         WHERE tier = $1 AND built_in AND NOT operator_modified AND (admission_class IS DISTINCT FROM $2 \
         OR rate_limit_per_second IS DISTINCT FROM $3 OR rate_limit_burst IS DISTINCT FROM $4)",
    )
    .bind(tier)
    .bind(class.as_str())
    .bind(per_second)
    .bind(burst)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
