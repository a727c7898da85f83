//! `bulkActionTenants`: SUSPEND, REACTIVATE or CLOSE every tenant a filter matches. Every row
//! changes in the invocation's one transaction, next to its event and the one audit entry; a
//! CLOSE flips the row's Redis mirror first and runs the tenant-close cascade (its children
//! keep their own audit entries and `tenant_close_cascade:` correlation id), and once
//! committed the ledger side of each cascade runs as after a PATCH.

use serde_json::{Value, json};

use super::{BULK_ROWS_MAX, Bulk, RowOutcome};
use crate::catalogue::Catalogue;
use crate::catalogue::audit::Actor;
use crate::catalogue::tenants::{TenantPatch, apply, close_locked};
use crate::domain::audit::ADMIN_TENANT;
use crate::domain::error::{ErrorCode, Result};
use crate::domain::event::EventType;
use crate::domain::tenant::{Tenant, TenantStatus};
use crate::events;
use crate::store::pg::PgTx;
use crate::store::pg::tenants::{self as store, Filter};

/// The lifecycle action a tenant bulk request applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantAction {
    Suspend,
    Reactivate,
    Close,
}

impl TenantAction {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "SUSPEND" => Some(Self::Suspend),
            "REACTIVATE" => Some(Self::Reactivate),
            "CLOSE" => Some(Self::Close),
            _ => None,
        }
    }

    fn target(self) -> TenantStatus {
        match self {
            Self::Suspend => TenantStatus::Suspended,
            Self::Reactivate => TenantStatus::Active,
            Self::Close => TenantStatus::Closed,
        }
    }
}

/// What the rows changed that must reach the caches, the mirrors and the ledger.
#[derive(Default)]
struct Changes {
    announce: Vec<String>,
    /// Tenants whose status moved (mirrored after the commit).
    mirrored: Vec<Tenant>,
    /// Tenants whose ledger cascade runs after the commit (closed now, or re-closed).
    closed: Vec<String>,
}

impl Catalogue {
    /// Applies `action` to every tenant `filter` matches (see the module header).
    pub async fn bulk_tenants(
        &self,
        actor: &Actor,
        mut bulk: Bulk,
        action: TenantAction,
        filter: &Filter,
    ) -> Result<Value> {
        let ids = store::matching_ids(self.pg.pool(), filter, BULK_ROWS_MAX as i64 + 1).await?;
        let matched =
            if ids.len() > BULK_ROWS_MAX { store::count_matching(self.pg.pool(), filter).await? } else { ids.len() };
        bulk.admit(matched)?;
        let correlation = bulk.correlation_id("tenant_bulk_action", actor);
        let mut changes = Changes::default();
        for id in &ids {
            let outcome = self.tenant_row(bulk.tx(), actor, id, action, &correlation, &mut changes).await?;
            bulk.record(id, outcome);
        }
        let entry = bulk.entry(actor, ADMIN_TENANT, "tenant", &correlation, json!({}));
        let body = bulk.finish(self, Some(entry), &changes.announce).await?;
        // Committed: what follows converges on retry (a re-close re-drives it), so a failure
        // here is logged rather than turned into an error for a change that was made.
        for t in &changes.mirrored {
            if let Err(e) = self.redis.mirror_tenant(t).await {
                tracing::warn!(tenant = %t.tenant_id, error = %e, "tenant mirror not refreshed after a bulk action");
            }
        }
        for id in &changes.closed {
            if let Err(e) = self.ledger.close_tenant_ledger(id, &actor.ctx).await {
                tracing::warn!(tenant = %id, error = %e, "ledger cascade of a bulk close did not finish");
            }
        }
        Ok(body)
    }

    async fn tenant_row(
        &self,
        tx: &mut PgTx,
        actor: &Actor,
        id: &str,
        action: TenantAction,
        correlation: &str,
        changes: &mut Changes,
    ) -> Result<RowOutcome> {
        let Some(current) = store::get_for_update(tx, id).await? else {
            return Ok(RowOutcome::failed(ErrorCode::NotFound.as_str(), format!("tenant {id} not found")));
        };
        let target = action.target();
        if current.status == target {
            if action == TenantAction::Close {
                // As a re-close by PATCH: finishes children still open, emits no tenant.closed.
                let (_, announce) = close_locked(tx, actor, current, Some(correlation)).await?;
                changes.announce.extend(announce);
                changes.closed.push(id.to_string());
            }
            return Ok(RowOutcome::Skipped("ALREADY_IN_TARGET_STATE"));
        }
        if current.status == TenantStatus::Closed {
            return Ok(RowOutcome::failed(
                "INVALID_TRANSITION",
                format!("tenant {id} is CLOSED; closing is irreversible"),
            ));
        }
        if action == TenantAction::Close {
            // The ledger must refuse the tenant before anything else changes.
            self.redis.mirror_status(id, TenantStatus::Closed.as_str()).await?;
            let (closed, announce) = close_locked(tx, actor, current, Some(correlation)).await?;
            changes.announce.extend(announce);
            changes.mirrored.push(closed);
            changes.closed.push(id.to_string());
            return Ok(RowOutcome::Succeeded);
        }
        let updated = apply(current.clone(), &TenantPatch { status: Some(target), ..TenantPatch::default() });
        store::update(tx, &updated).await?;
        let kind =
            if target == TenantStatus::Suspended { EventType::TenantSuspended } else { EventType::TenantReactivated };
        let data = json!({
            "tenant_id": id,
            "previous_status": current.status.as_str(),
            "new_status": target.as_str(),
            "changed_fields": ["status"],
        });
        let mut event = actor.event(kind, id, data);
        event.correlation_id = Some(correlation.to_string());
        events::record(tx, &[event]).await?;
        changes.announce.push(format!("tenant:{id}"));
        changes.mirrored.push(updated);
        Ok(RowOutcome::Succeeded)
    }
}
