//! SQL for `alerts`: raise once per open condition, resolve by condition or by id, list.

use sqlx::{Postgres, QueryBuilder, Row as _};
use time::OffsetDateTime;

use super::PgTx;
use super::page::{Page, PageSpec, after_of, finish};
use crate::store::StoreResult;

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Alert {
    pub alert_id: String,
    pub tenant_id: String,
    pub scope: String,
    pub unit: String,
    pub kind: String,
    pub condition: String,
    pub severity: String,
    pub message: String,
    pub details: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub resolved: bool,
    pub resolved_at: Option<OffsetDateTime>,
    pub resolved_by: Option<String>,
}

const COLUMNS: &str = "alert_id, tenant_id, scope, unit, kind, condition, severity, message, details, created_at, \
    resolved, resolved_at, resolved_by";

/// Inserts `a` unless an alert of its condition is open; returns whether it did.
/// `once_ever`: also unless one of its condition was ever raised (once per period).
pub async fn raise(tx: &mut PgTx, a: &Alert, once_ever: bool) -> StoreResult<bool> {
    let guard = if once_ever { " AND NOT EXISTS (SELECT 1 FROM alerts WHERE condition = $6)" } else { "" };
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO alerts (alert_id, tenant_id, scope, unit, kind, condition, severity, message, details, created_at) \
         SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9,$10 WHERE TRUE{guard} \
         ON CONFLICT (condition) WHERE NOT resolved DO NOTHING"
    )))
    .bind(&a.alert_id)
    .bind(&a.tenant_id)
    .bind(&a.scope)
    .bind(&a.unit)
    .bind(&a.kind)
    .bind(&a.condition)
    .bind(&a.severity)
    .bind(&a.message)
    .bind(&a.details)
    .bind(a.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Which of one budget's open alerts a resolution covers.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    Kind(&'a str),
    /// Threshold alerts at or above this utilization.
    ThresholdsFrom(f64),
    All,
}

/// Resolves the open alerts of one budget that `which` names; returns how many.
pub async fn resolve_budget(
    tx: &mut PgTx,
    budget: (&str, &str, &str),
    which: Which<'_>,
    at: OffsetDateTime,
) -> StoreResult<u64> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new("UPDATE alerts SET resolved = TRUE, resolved_by = 'system', resolved_at = ");
    qb.push_bind(at).push(" WHERE NOT resolved AND tenant_id = ").push_bind(budget.0.to_string());
    qb.push(" AND scope = ").push_bind(budget.1.to_string()).push(" AND unit = ").push_bind(budget.2.to_string());
    match which {
        Which::Kind(kind) => {
            qb.push(" AND kind = ").push_bind(kind.to_string());
        }
        Which::ThresholdsFrom(t) => {
            qb.push(" AND kind = 'threshold' AND (details->>'threshold')::float8 >= ").push_bind(t - 1e-9);
        }
        Which::All => {}
    }
    Ok(qb.build().execute(&mut **tx).await?.rows_affected())
}

/// Resolves one alert by an operator; `None` when there is no such alert, else the alert and
/// whether this call resolved it (an alert resolved already is returned as it is).
pub async fn resolve_by_id(
    tx: &mut PgTx,
    id: &str,
    by: &str,
    at: OffsetDateTime,
) -> StoreResult<Option<(Alert, bool)>> {
    let row = sqlx::query_as::<_, Alert>(sqlx::AssertSqlSafe(format!(
        "UPDATE alerts SET resolved = TRUE, resolved_by = $2, resolved_at = $3 WHERE alert_id = $1 AND NOT resolved \
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(by)
    .bind(at)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(alert) = row {
        return Ok(Some((alert, true)));
    }
    let row =
        sqlx::query_as::<_, Alert>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM alerts WHERE alert_id = $1")))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|a| (a, false)))
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub tenant: Option<String>,
    pub severity: Option<String>,
    pub resolved: Option<bool>,
}

pub async fn list(pool: &sqlx::PgPool, f: &Filter, page: &PageSpec) -> StoreResult<Page<Alert>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS}, {} FROM alerts WHERE TRUE", page.cursor_columns()));
    if let Some(t) = &f.tenant {
        qb.push(" AND tenant_id = ").push_bind(t.clone());
    }
    if let Some(s) = &f.severity {
        qb.push(" AND severity = ").push_bind(s.clone());
    }
    if let Some(r) = f.resolved {
        qb.push(" AND resolved = ").push_bind(r);
    }
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows = qb.build().fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        use sqlx::FromRow as _;
        out.push((Alert::from_row(&row)?, after_of(&row)?));
    }
    Ok(finish(out, page.limit))
}

/// Open alerts by severity: `[info, warning, critical]`.
pub async fn open_counts(pool: &sqlx::PgPool) -> StoreResult<[i64; 3]> {
    let rows = sqlx::query("SELECT severity, count(*)::bigint FROM alerts WHERE NOT resolved GROUP BY severity")
        .fetch_all(pool)
        .await?;
    let mut out = [0; 3];
    for row in rows {
        let severity: String = row.try_get(0)?;
        let n: i64 = row.try_get(1)?;
        let i = match severity.as_str() {
            "info" => 0,
            "warning" => 1,
            _ => 2,
        };
        out[i] += n;
    }
    Ok(out)
}

/// The budgets with an open alert of `kind`, at most 10 000.
pub async fn open_budgets_of_kind(tx: &mut PgTx, kind: &str) -> StoreResult<Vec<(String, String, String)>> {
    let rows = sqlx::query(
        "SELECT DISTINCT tenant_id, scope, unit FROM alerts WHERE NOT resolved AND kind = $1 ORDER BY 1, 2, 3 LIMIT 10000",
    )
    .bind(kind)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
    }
    Ok(out)
}
