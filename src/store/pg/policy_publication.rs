//! SQL of policy publication: which tenants' policy sets Redis may lag behind, a consistent
//! snapshot of one tenant's set, and the mark that a generation reached Redis.

use super::PgTx;
use super::policies::of_tenant_tx;
use crate::domain::policy::Policy;
use crate::store::StoreResult;

/// The tenant's generation and every policy of it (at most `max`), read with the generation row
/// locked, so no change commits between the two reads and publishers of one tenant take turns.
pub async fn snapshot(tx: &mut PgTx, tenant: &str, max: i64) -> StoreResult<(i64, Vec<Policy>)> {
    let g: Option<i64> =
        sqlx::query_scalar("SELECT generation FROM policy_generations WHERE tenant_id = $1 FOR UPDATE")
            .bind(tenant)
            .fetch_optional(&mut **tx)
            .await?;
    let policies = of_tenant_tx(tx, tenant, max).await?;
    Ok((g.unwrap_or(0), policies))
}

/// Up to `max` tenants whose published generation lags, each row locked for this transaction
/// (`SKIP LOCKED`: a row another instance is publishing is left to it).
pub async fn lagging(tx: &mut PgTx, max: i64) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT tenant_id FROM policy_generations WHERE published_generation < generation \
         ORDER BY tenant_id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(max)
    .fetch_all(&mut **tx)
    .await?)
}

/// Marks every tenant's set as not yet published.
pub async fn reset_published(pool: &sqlx::PgPool) -> StoreResult<()> {
    sqlx::query("UPDATE policy_generations SET published_generation = 0 WHERE published_generation <> 0")
        .execute(pool)
        .await?;
    Ok(())
}

/// Records that Redis holds `generation` of the tenant's set (never moves backwards).
pub async fn mark_published_tx(tx: &mut PgTx, tenant: &str, generation: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE policy_generations SET published_generation = GREATEST(published_generation, $2) WHERE tenant_id = $1",
    )
    .bind(tenant)
    .bind(generation)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
