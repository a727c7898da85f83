//! Building audit entries for the request being served, and reading them back.

use serde_json::{Value, json};

use crate::domain::audit::AuditEntry;
use crate::http::context::RequestCtx;

/// Who performed a mutation, as recorded in `metadata.actor_type`.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `admin`, `api_key`, `admin_on_behalf_of` or `system`.
    pub actor_type: &'static str,
    pub key_id: Option<String>,
    pub ctx: RequestCtx,
}

impl Actor {
    pub fn admin(ctx: RequestCtx) -> Self {
        Self {
            actor_type: "admin",
            key_id: None,
            ctx,
        }
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
            timestamp: super::now(),
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
