//! Building audit entries for the request being served, and reading them back.

use serde_json::{Value, json};

use crate::domain::Correlation;
use crate::domain::audit::AuditEntry;
use crate::domain::event::{Event, EventActor, EventType, SOURCE_ADMIN};

/// Who performed a mutation, as recorded in `metadata.actor_type`.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `admin`, `api_key`, `admin_on_behalf_of` or `system`.
    pub actor_type: &'static str,
    pub key_id: Option<String>,
    pub ctx: Correlation,
}

impl Actor {
    pub fn admin(ctx: Correlation) -> Self {
        Self { actor_type: "admin", key_id: None, ctx }
    }

    /// An event this actor's request caused, with its request and trace ids.
    pub fn event(&self, event_type: EventType, tenant_id: &str, data: Value) -> Event {
        let mut e = Event::new(event_type, tenant_id, SOURCE_ADMIN, data);
        e.actor = Some(EventActor::of(self.actor_type, self.key_id.clone()));
        e.request_id = Some(self.ctx.request_id.clone());
        e.trace_id = Some(self.ctx.trace_id.clone());
        e
    }

    /// One entry for a successful mutation; `extra` is merged into the metadata.
    pub fn entry(
        &self,
        operation: &str,
        tenant_id: &str,
        resource: (&str, &str),
        status: u16,
        extra: Value,
    ) -> AuditEntry {
        let mut metadata = json!({ "actor_type": self.actor_type });
        if let (Some(meta), Value::Object(extra)) = (metadata.as_object_mut(), extra) {
            meta.extend(extra);
        }
        AuditEntry {
            log_id: uuid::Uuid::now_v7(),
            timestamp: crate::domain::clock::now(),
            tenant_id: tenant_id.to_string(),
            key_id: self.key_id.clone(),
            user_agent: self.ctx.user_agent.clone(),
            source_ip: None,
            operation: operation.to_string(),
            resource_type: Some(resource.0.to_string()),
            resource_id: Some(resource.1.to_string()),
            request_id: Some(self.ctx.request_id.clone()),
            trace_id: Some(self.ctx.trace_id.clone()),
            status: i32::from(status),
            error_code: None,
            metadata: Some(metadata),
        }
    }
}

impl super::Catalogue {
    /// Runs a ledger mutation with its audit entry: the entry is appended in an open
    /// transaction that commits only if the mutation changed something (`changed` says so;
    /// an idempotent replay did not). A crash between the ledger write and the commit loses
    /// the entry; the mutation itself stays all-or-nothing.
    ///
    /// Private to the catalogue: every audited admin mutation is a catalogue method.
    pub(super) async fn audited<T>(
        &self,
        entry: crate::domain::audit::AuditEntry,
        mutation: impl std::future::Future<Output = crate::domain::error::Result<T>>,
        changed: impl FnOnce(&T) -> bool,
    ) -> crate::domain::error::Result<T> {
        let mut tx = self.pg.begin().await?;
        crate::store::pg::audit::append(&mut tx, &entry).await?;
        let out = mutation.await?;
        if changed(&out) {
            crate::store::pg::commit(tx).await?;
        }
        Ok(out)
    }
}
