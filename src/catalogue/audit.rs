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
    /// The admin plane's caller: the bootstrap key, or a principal through its access token
    /// (the token's id is the entry's `key_id`; `metadata.actor` names the principal).
    pub fn admin(ctx: Correlation) -> Self {
        let key_id = ctx.admin.as_ref().and_then(|a| a.key_id.clone());
        Self { actor_type: "admin", key_id, ctx }
    }

    /// Who acted, for `metadata.actor`: the admin principal's id, the tenant key's id, or
    /// `admin` for the bootstrap key.
    pub fn name(&self) -> String {
        match (&self.ctx.admin, &self.key_id) {
            (Some(a), _) => a.actor().to_string(),
            (None, Some(key)) => key.clone(),
            (None, None) => "admin".to_string(),
        }
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
        let mut metadata = json!({ "actor_type": self.actor_type, "actor": self.name() });
        if let (Some(meta), Value::Object(extra)) = (metadata.as_object_mut(), extra) {
            meta.extend(extra);
        }
        AuditEntry {
            log_id: uuid::Uuid::now_v7(),
            timestamp: crate::domain::clock::now(),
            tenant_id: tenant_id.to_string(),
            key_id: self.key_id.clone(),
            user_agent: self.ctx.user_agent.clone(),
            source_ip: self.ctx.source_ip.clone(),
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

/// Who made a refused request, as far as it authenticated.
#[derive(Debug, Clone)]
pub enum Who {
    /// No valid credential: the spec's `__unauth__`.
    Unauthenticated,
    Admin(crate::domain::access::AdminIdentity),
    /// A valid tenant key on one of the tenant routes the admin plane serves.
    TenantKey {
        tenant_id: String,
        key_id: String,
    },
}

/// A refused admin-plane request, to be audited.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub ctx: Correlation,
    pub who: Who,
    /// `<METHOD> <route>`.
    pub operation: String,
    pub code: crate::domain::error::ErrorCode,
    /// Refusals from the same source left unaudited since the last written one.
    pub suppressed: u64,
}

/// The sentinel of requests refused before authentication (the spec's `__unauth__`).
pub const UNAUTH: &str = "__unauth__";

impl Refusal {
    fn entry(&self) -> AuditEntry {
        let (tenant, actor_type, actor, key_id) = match &self.who {
            Who::Unauthenticated => (UNAUTH.to_string(), "admin", UNAUTH.to_string(), None),
            Who::Admin(i) => (
                i.tenant_id.as_ref().map_or(crate::domain::audit::ADMIN_TENANT.to_string(), |t| t.to_string()),
                "admin",
                i.actor().to_string(),
                i.key_id.clone(),
            ),
            Who::TenantKey { tenant_id, key_id } => {
                (tenant_id.clone(), "api_key", key_id.clone(), Some(key_id.clone()))
            }
        };
        let mut metadata = json!({ "actor_type": actor_type, "actor": actor, "refused": true });
        if self.suppressed > 0
            && let Some(m) = metadata.as_object_mut()
        {
            m.insert("suppressed".into(), json!(self.suppressed));
        }
        AuditEntry {
            log_id: uuid::Uuid::now_v7(),
            timestamp: crate::domain::clock::now(),
            tenant_id: tenant,
            key_id,
            user_agent: self.ctx.user_agent.clone(),
            source_ip: self.ctx.source_ip.clone(),
            operation: self.operation.clone(),
            resource_type: None,
            resource_id: None,
            request_id: Some(self.ctx.request_id.clone()),
            trace_id: Some(self.ctx.trace_id.clone()),
            status: i32::from(self.code.status()),
            error_code: Some(self.code.as_str().to_string()),
            metadata: Some(metadata),
        }
    }
}

impl super::Catalogue {
    /// Appends the audit entry of a refused request, in a transaction of its own.
    pub async fn audit_refusal(&self, refusal: Refusal) -> crate::domain::error::Result<()> {
        let mut tx = self.pg.begin().await?;
        crate::store::pg::audit::append(&mut tx, &refusal.entry()).await?;
        crate::store::pg::commit(tx).await?;
        Ok(())
    }

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
