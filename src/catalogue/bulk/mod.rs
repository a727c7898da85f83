//! What the bulk actions over tenants, budgets and webhook subscriptions share: the gates
//! (at most [`BULK_ROWS_MAX`] matches, `expected_count`), the idempotency record replayed for
//! [`REPLAY_WINDOW`], the per-row outcome envelope and the one audit entry of an invocation.
//!
//! A [`Bulk`] holds one Postgres transaction from the moment its key is locked: a duplicate
//! request waits for the first to finish and then replays its response, and the invocation's
//! audit entry and idempotency record commit together, after every row was attempted.

mod budgets;
mod tenants;

use serde_json::{Value, json};

use super::Catalogue;
use super::audit::Actor;
use crate::domain::audit::AuditEntry;
use crate::domain::clock::now;
use crate::domain::error::{Error, ErrorCode, Result};
use crate::store::pg::bulk::{self as store, BulkKey};
use crate::store::pg::{self, PgTx};

pub use budgets::BulkFunding;
pub use tenants::TenantAction;

/// The spec's hard cap: a filter matching more rows than this is refused (400), so one
/// invocation stays one bounded, synchronous transaction.
pub const BULK_ROWS_MAX: usize = 500;
/// How long a response is replayed for its idempotency key (the spec's 15 minutes).
pub const REPLAY_WINDOW: time::Duration = time::Duration::minutes(15);

/// One bulk request as validated by its handler.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    /// `bulkActionTenants`, `bulkActionBudgets` or `bulkActionWebhooks`.
    pub operation: &'static str,
    /// The tenant the request is confined to ('' when none): keys are per tenant, so one
    /// tenant's key never replays or blocks another's.
    pub scope: String,
    /// The action as the request spelled it (`SUSPEND`, `CREDIT`, …).
    pub action: String,
    pub idempotency_key: String,
    /// Fingerprint of the whole request: the same key with another request is a 409.
    pub request_hash: String,
    pub expected_count: Option<i64>,
    /// The request's filter as sent, recorded in the invocation's audit entry.
    pub filter: Value,
    /// What the rows are, for messages (`tenants`, `budgets`, `subscriptions`).
    pub noun: &'static str,
}

/// What happened to one matched row.
#[derive(Debug, Clone)]
pub enum RowOutcome {
    Succeeded,
    /// A no-op, with the spec's reason (`ALREADY_IN_TARGET_STATE`, `ALREADY_DELETED`).
    Skipped(&'static str),
    /// A row-level code (`INVALID_TRANSITION`, `BUDGET_EXCEEDED`, …) and a message safe to show.
    Failed(String, String),
}

impl RowOutcome {
    pub fn failed(code: &str, message: impl Into<String>) -> Self {
        Self::Failed(code.to_string(), message.into())
    }
}

/// A bulk invocation under way (see the module header).
pub struct Bulk {
    req: BulkRequest,
    tx: PgTx,
    total_matched: usize,
    succeeded: Vec<Value>,
    failed: Vec<Value>,
    skipped: Vec<Value>,
}

/// The start of a bulk request: the stored response of an earlier one with the same key, or
/// a fresh invocation.
pub enum Begun {
    Replay(Value),
    Fresh(Box<Bulk>),
}

impl BulkRequest {
    fn key(&self) -> BulkKey<'_> {
        BulkKey { operation: self.operation, scope: &self.scope, idempotency_key: &self.idempotency_key }
    }
}

impl Catalogue {
    /// Locks the request's idempotency key, then replays the response stored under it within
    /// the window (409 `IDEMPOTENCY_MISMATCH` when it was stored for another request).
    pub async fn bulk_begin(&self, req: BulkRequest) -> Result<Begun> {
        let mut tx = self.pg.begin().await?;
        store::lock(&mut tx, req.key()).await?;
        match store::recorded(&mut tx, req.key(), now() - REPLAY_WINDOW).await? {
            Some((hash, _)) if hash != req.request_hash => Err(Error::new(
                ErrorCode::IdempotencyMismatch,
                "idempotency_key was used with a different bulk request",
            )),
            Some((_, response)) => Ok(Begun::Replay(response)),
            None => Ok(Begun::Fresh(Box::new(Bulk {
                req,
                tx,
                total_matched: 0,
                succeeded: Vec::new(),
                failed: Vec::new(),
                skipped: Vec::new(),
            }))),
        }
    }
}

impl Bulk {
    /// The gates, before any write: more than [`BULK_ROWS_MAX`] matches is 400
    /// `LIMIT_EXCEEDED`, a differing `expected_count` 409 `COUNT_MISMATCH`; both carry
    /// `details.total_matched`.
    pub fn admit(&mut self, matched: usize) -> Result<()> {
        let noun = self.req.noun;
        if matched > BULK_ROWS_MAX {
            return Err(Error::new(
                ErrorCode::BulkLimitExceeded,
                format!("the filter matches {matched} {noun}, more than {BULK_ROWS_MAX}; narrow it"),
            )
            .with_details(json!({ "total_matched": matched, "limit": BULK_ROWS_MAX })));
        }
        if let Some(expected) = self.req.expected_count
            && usize::try_from(expected).ok() != Some(matched)
        {
            return Err(Error::new(
                ErrorCode::CountMismatch,
                format!("the filter matches {matched} {noun}, not expected_count {expected}"),
            )
            .with_details(json!({ "total_matched": matched, "expected_count": expected })));
        }
        self.total_matched = matched;
        Ok(())
    }

    /// The correlation id of the events the rows emit: `<prefix>:<action lowercased>:<request id>`.
    pub fn correlation_id(&self, prefix: &str, actor: &Actor) -> String {
        format!("{prefix}:{}:{}", self.req.action.to_ascii_lowercase(), actor.ctx.request_id)
    }

    pub fn record(&mut self, id: &str, outcome: RowOutcome) {
        match outcome {
            RowOutcome::Succeeded => self.succeeded.push(json!({ "id": id })),
            RowOutcome::Skipped(reason) => self.skipped.push(json!({ "id": id, "reason": reason })),
            RowOutcome::Failed(code, message) => {
                self.failed.push(json!({ "id": id, "error_code": code, "message": message }))
            }
        }
    }

    fn tx(&mut self) -> &mut PgTx {
        &mut self.tx
    }

    fn response(&self) -> Value {
        json!({
            "action": self.req.action,
            "total_matched": self.total_matched,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "idempotency_key": self.req.idempotency_key,
        })
    }

    /// The invocation's one audit entry: the request, the correlation id and every row's
    /// outcome inline, recorded as the admin acting on the tenants' behalf.
    fn entry(
        &self,
        actor: &Actor,
        tenant: &str,
        resource_type: &str,
        correlation_id: &str,
        extra: Value,
    ) -> AuditEntry {
        let mut details = json!({
            "actor_type": "admin_on_behalf_of",
            "action": self.req.action,
            "idempotency_key": self.req.idempotency_key,
            "expected_count": self.req.expected_count,
            "filter": self.req.filter,
            "total_matched": self.total_matched,
            "correlation_id": correlation_id,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
        });
        if let (Some(d), Value::Object(extra)) = (details.as_object_mut(), extra) {
            d.extend(extra);
        }
        let resource = (resource_type, self.req.idempotency_key.as_str());
        actor.entry(self.req.operation, tenant, resource, 200, details)
    }

    /// Writes the entry (if any) and the idempotency record, commits with the announcements,
    /// and returns the response.
    async fn finish(mut self, catalogue: &Catalogue, entry: Option<AuditEntry>, announce: &[String]) -> Result<Value> {
        let body = self.response();
        if let Some(entry) = entry {
            pg::audit::append(&mut self.tx, &entry).await?;
        }
        store::remember(&mut self.tx, self.req.key(), &self.req.request_hash, &body).await?;
        catalogue.commit_announcing(self.tx, announce).await?;
        Ok(body)
    }
}

impl Catalogue {
    /// Finishes a webhook bulk action with its one audit entry (under the filter's tenant, or
    /// `__admin__` for a filter across tenants).
    pub async fn bulk_finish_webhooks(
        &self,
        bulk: Bulk,
        actor: &Actor,
        tenant: Option<&str>,
        correlation: &str,
    ) -> Result<Value> {
        let tenant = tenant.unwrap_or(crate::domain::audit::ADMIN_TENANT);
        let entry = bulk.entry(actor, tenant, "webhook", correlation, json!({}));
        bulk.finish(self, Some(entry), &[]).await
    }
}
