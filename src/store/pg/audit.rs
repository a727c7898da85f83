//! SQL for the hash-chained `audit_log`. Appends are serialised by locking the single
//! `audit_chain_head` row, so each entry's `prev_hash` is its predecessor's `hash` even when
//! several instances write at once.

use sqlx::{FromRow, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::PgTx;
use super::page::{After, Page, PageSpec, after_of, finish};
use crate::domain::audit::{AuditEntry, BrokenLink, ChainReport};
use crate::domain::audit_export::ChainedEntry;
use crate::store::StoreResult;

const COLUMNS: &str = "seq, log_id, \"timestamp\", tenant_id, key_id, user_agent, source_ip, operation, \
    resource_type, resource_id, request_id, trace_id, status, error_code, metadata, prev_hash, hash";

/// Rows read per round trip while verifying the chain.
const VERIFY_BATCH: i64 = 1_000;
/// Rows per INSERT when appending many (17 binds each, well under Postgres's 65 535).
const APPEND_BATCH: usize = 1_000;

#[derive(FromRow)]
struct Row {
    seq: i64,
    log_id: uuid::Uuid,
    timestamp: OffsetDateTime,
    tenant_id: String,
    key_id: Option<String>,
    user_agent: Option<String>,
    source_ip: Option<String>,
    operation: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    request_id: Option<String>,
    trace_id: Option<String>,
    status: i32,
    error_code: Option<String>,
    metadata: Option<sqlx::types::Json<serde_json::Value>>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl Row {
    fn entry(self) -> (i64, AuditEntry, Vec<u8>, Vec<u8>) {
        let entry = AuditEntry {
            log_id: self.log_id,
            timestamp: self.timestamp,
            tenant_id: self.tenant_id,
            key_id: self.key_id,
            user_agent: self.user_agent,
            source_ip: self.source_ip,
            operation: self.operation,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            request_id: self.request_id,
            trace_id: self.trace_id,
            status: self.status,
            error_code: self.error_code,
            metadata: self.metadata.map(|m| m.0),
        };
        (self.seq, entry, self.prev_hash, self.hash)
    }
}

/// Appends one entry to the chain inside the caller's transaction.
pub async fn append(tx: &mut PgTx, entry: &AuditEntry) -> StoreResult<()> {
    let (head_seq, head_hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE").fetch_one(&mut **tx).await?;
    let seq = head_seq + 1;
    let hash = entry.link_hash(seq, &head_hash);
    sqlx::query(
        "INSERT INTO audit_log (seq, log_id, \"timestamp\", tenant_id, key_id, user_agent, source_ip, \
         operation, resource_type, resource_id, request_id, trace_id, status, error_code, metadata, \
         prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)",
    )
    .bind(seq)
    .bind(entry.log_id)
    .bind(entry.timestamp)
    .bind(&entry.tenant_id)
    .bind(&entry.key_id)
    .bind(&entry.user_agent)
    .bind(&entry.source_ip)
    .bind(&entry.operation)
    .bind(&entry.resource_type)
    .bind(&entry.resource_id)
    .bind(&entry.request_id)
    .bind(&entry.trace_id)
    .bind(entry.status)
    .bind(&entry.error_code)
    .bind(entry.metadata.as_ref().map(sqlx::types::Json))
    .bind(&head_hash)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Walks the whole chain in order and reports the first link that does not hold: a row
/// whose content no longer matches its hash, a missing row, or a tip that disagrees with
/// the head (rows deleted from the end).
pub async fn verify(pool: &sqlx::PgPool) -> StoreResult<ChainReport> {
    let mut expected_seq = 1_i64;
    let mut prev_hash = vec![0_u8; 32];
    let mut entries = 0_u64;
    loop {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2");
        let rows: Vec<Row> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(expected_seq).bind(VERIFY_BATCH).fetch_all(pool).await?;
        let batch_len = rows.len();
        for row in rows {
            let (seq, entry, stored_prev, stored_hash) = row.entry();
            let broken = |reason: String| ChainReport {
                entries,
                broken: Some(BrokenLink { seq, log_id: Some(entry.log_id), reason }),
            };
            if seq != expected_seq {
                return Ok(broken(format!("entries {expected_seq}..{} are missing", seq - 1)));
            }
            if stored_prev != prev_hash {
                return Ok(broken("prev_hash does not match the preceding entry's hash".into()));
            }
            if entry.link_hash(seq, &prev_hash) != stored_hash {
                return Ok(broken("content does not match its hash (the row was altered)".into()));
            }
            prev_hash = stored_hash;
            expected_seq += 1;
            entries += 1;
        }
        if batch_len < VERIFY_BATCH as usize {
            break;
        }
    }
    let (head_seq, head_hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, hash FROM audit_chain_head WHERE id = 1").fetch_one(pool).await?;
    let tip_seq = expected_seq - 1;
    if head_seq != tip_seq || head_hash != prev_hash {
        return Ok(ChainReport {
            entries,
            broken: Some(BrokenLink {
                seq: tip_seq + 1,
                log_id: None,
                reason: format!("the chain ends at entry {tip_seq} but the head records entry {head_seq}"),
            }),
        });
    }
    Ok(ChainReport { entries, broken: None })
}

/// Filters of `listAuditLogs`; lists are IN-lists, everything AND-combined.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub operation: Vec<String>,
    pub resource_type: Vec<String>,
    pub resource_id: Option<String>,
    pub error_code: Vec<String>,
    pub error_code_exclude: Vec<String>,
    pub status: Option<i32>,
    pub status_min: Option<i32>,
    pub status_max: Option<i32>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub search: Option<String>,
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
}

pub async fn list(pool: &sqlx::PgPool, f: &Filter, page: &PageSpec) -> StoreResult<Page<AuditEntry>> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS}, {} FROM audit_log WHERE TRUE", page.cursor_columns()));
    push_filter(&mut qb, f);
    page.push_after(&mut qb);
    page.push_order_limit(&mut qb);
    let rows = qb
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((Row::from_row(r)?.entry().1, after_of(r)?)))
        .collect::<StoreResult<Vec<(AuditEntry, After)>>>()?;
    Ok(finish(rows, page.limit))
}

/// Appends `f`'s conditions (`AND …`) to a query over `audit_log`.
fn push_filter(qb: &mut QueryBuilder<Postgres>, f: &Filter) {
    let exact = [
        ("tenant_id", &f.tenant_id),
        ("key_id", &f.key_id),
        ("resource_id", &f.resource_id),
        ("trace_id", &f.trace_id),
        ("request_id", &f.request_id),
    ];
    for (column, value) in exact {
        if let Some(v) = value {
            qb.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    for (column, values) in
        [("operation", &f.operation), ("resource_type", &f.resource_type), ("error_code", &f.error_code)]
    {
        if !values.is_empty() {
            qb.push(format!(" AND {column} = ANY(")).push_bind(values.clone()).push(")");
        }
    }
    if !f.error_code_exclude.is_empty() {
        qb.push(" AND (error_code IS NULL OR NOT error_code = ANY(").push_bind(f.error_code_exclude.clone()).push("))");
    }
    for (sql, value) in
        [(" AND status = ", f.status), (" AND status >= ", f.status_min), (" AND status <= ", f.status_max)]
    {
        if let Some(v) = value {
            qb.push(sql).push_bind(v);
        }
    }
    if let Some(from) = f.from {
        qb.push(" AND \"timestamp\" >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        qb.push(" AND \"timestamp\" <= ").push_bind(to);
    }
    if let Some(search) = &f.search {
        let pattern = super::like_pattern(search);
        qb.push(" AND (operation ILIKE ").push_bind(pattern.clone());
        qb.push(" OR resource_id ILIKE ").push_bind(pattern.clone());
        qb.push(" OR resource_type ILIKE ").push_bind(pattern.clone());
        qb.push(" OR tenant_id ILIKE ").push_bind(pattern).push(")");
    }
}

/// Up to `limit` entries matching `f` after sequence number `after_seq`, in chain order, with
/// their links: one batch of an export.
pub async fn export_batch(
    pool: &sqlx::PgPool,
    f: &Filter,
    after_seq: i64,
    limit: i64,
) -> StoreResult<Vec<ChainedEntry>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_log WHERE seq > "));
    qb.push_bind(after_seq);
    push_filter(&mut qb, f);
    qb.push(" ORDER BY seq LIMIT ").push_bind(limit);
    let rows: Vec<Row> = qb.build_query_as().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let (seq, entry, prev_hash, hash) = r.entry();
            ChainedEntry { seq, entry, prev_hash, hash }
        })
        .collect())
}

/// Appends many entries to the chain in one transaction, `APPEND_BATCH` rows per statement:
/// for importing history, where one statement per entry would be too slow.
pub async fn append_many(tx: &mut PgTx, entries: &[AuditEntry]) -> StoreResult<()> {
    let (mut seq, mut prev): (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE").fetch_one(&mut **tx).await?;
    for chunk in entries.chunks(APPEND_BATCH) {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO audit_log (seq, log_id, \"timestamp\", tenant_id, key_id, user_agent, source_ip, \
             operation, resource_type, resource_id, request_id, trace_id, status, error_code, metadata, \
             prev_hash, hash) ",
        );
        qb.push_values(chunk, |mut row, e| {
            seq += 1;
            let hash = e.link_hash(seq, &prev);
            row.push_bind(seq)
                .push_bind(e.log_id)
                .push_bind(e.timestamp)
                .push_bind(e.tenant_id.clone())
                .push_bind(e.key_id.clone())
                .push_bind(e.user_agent.clone())
                .push_bind(e.source_ip.clone())
                .push_bind(e.operation.clone())
                .push_bind(e.resource_type.clone())
                .push_bind(e.resource_id.clone())
                .push_bind(e.request_id.clone())
                .push_bind(e.trace_id.clone())
                .push_bind(e.status)
                .push_bind(e.error_code.clone())
                .push_bind(e.metadata.clone().map(sqlx::types::Json))
                .push_bind(std::mem::replace(&mut prev, hash.clone()))
                .push_bind(hash);
        });
        qb.build().execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
