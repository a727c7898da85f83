//! Spend an operator can see: token usage records and their summary, the usage rollups, the
//! overview's counts, and alerts (list, and the one write: an operator resolving an alert,
//! audited). The rollups and alerts are written by the outbox drain (`events::usage`,
//! `events::alerts`); nothing here scans the event log to compute usage.

use time::{Date, OffsetDateTime};

use super::Catalogue;
use super::audit::Actor;
use crate::domain::error::{Error, Result};
use crate::store::pg::alerts::{self, Alert};
use crate::store::pg::page::{Page, PageSpec};
use crate::store::pg::token_usage::{self, ModelTotals, StoredRecord, TokenFilter};
use crate::store::pg::usage::{self, Rollup};
use crate::store::pg::{self, overview};

impl Catalogue {
    pub async fn list_token_usage(&self, filter: &TokenFilter, page: &PageSpec) -> Result<Page<StoredRecord>> {
        Ok(token_usage::list_records(self.pg.pool(), filter, page).await?)
    }

    pub async fn token_usage_summary(&self, filter: &TokenFilter) -> Result<Vec<ModelTotals>> {
        Ok(token_usage::summary(self.pg.pool(), filter).await?)
    }

    /// One scope's rollups per unit over the days `[from, to]`.
    pub async fn usage_by_unit(
        &self,
        tenant: &str,
        scope: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<(String, Rollup)>> {
        Ok(usage::sum_by_unit(self.pg.pool(), tenant, scope, from, to).await?)
    }

    /// One scope's rollups per day and unit over `[from, to]`, newest first.
    pub async fn usage_daily(
        &self,
        tenant: &str,
        scope: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<(Date, String, Rollup)>> {
        Ok(usage::daily(self.pg.pool(), tenant, scope, from, to).await?)
    }

    /// What one budget's spent moved by in the hours starting at or after `since`.
    pub async fn committed_since(&self, budget: (&str, &str, &str), since: OffsetDateTime) -> Result<i128> {
        Ok(usage::committed_since(self.pg.pool(), budget.0, budget.1, budget.2, since).await?)
    }

    /// Reserves and tokens of the whole platform on `day`, and the open alerts.
    pub async fn platform_stats(&self, day: Date) -> Result<(i64, i128, i64)> {
        let (reserves, tokens) = usage::platform_day(self.pg.pool(), day).await?;
        let open = alerts::open_counts(self.pg.pool()).await?;
        Ok((reserves, tokens, open.iter().sum()))
    }

    /// The catalogue's half of the overview (tenants, webhooks, recent events).
    pub async fn overview(&self, since: OffsetDateTime) -> Result<overview::Catalogue> {
        Ok(overview::read(self.pg.pool(), since).await?)
    }

    pub async fn list_alerts(&self, filter: &alerts::Filter, page: &PageSpec) -> Result<Page<Alert>> {
        Ok(alerts::list(self.pg.pool(), filter, page).await?)
    }

    /// Resolves an alert by an operator: audited when it was open; an alert resolved already
    /// is returned as it is, with no entry (a retry changes nothing).
    pub async fn resolve_alert(&self, actor: &Actor, id: &str) -> Result<Alert> {
        let mut tx = self.pg.begin().await?;
        let at = crate::domain::clock::now();
        let (alert, resolved_now) = alerts::resolve_by_id(&mut tx, id, &actor.name(), at)
            .await?
            .ok_or_else(|| Error::not_found(format!("alert {id} not found")))?;
        if resolved_now {
            let entry = actor.entry("resolveAlert", &alert.tenant_id, ("alert", id), 200, serde_json::json!({}));
            pg::audit::append(&mut tx, &entry).await?;
            pg::commit(tx).await?;
        }
        Ok(alert)
    }
}
