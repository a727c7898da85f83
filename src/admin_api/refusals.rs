//! The audit trail of refusals: every 401 and 403 on the admin plane becomes an audit entry
//! (tenant `__unauth__` and actor `__unauth__` before authentication; the principal and its
//! tenant, or `__admin__`, after; a tenant key's tenant and id on the tenant routes), with the source address and user agent. At most
//! `auth::throttle::REFUSAL_AUDITS_MAX` entries per source and minute are written; the next
//! entry written for that source carries `metadata.suppressed`, how many were left out.

use crate::catalogue::audit::{Refusal, Who};
use crate::error::ErrorCode;
use crate::http::context::RequestCtx;
use crate::state::AppState;

pub async fn record(state: &AppState, ctx: RequestCtx, who: Who, operation: String, code: ErrorCode) {
    let source = ctx.source_ip.clone().unwrap_or_default();
    let Some(suppressed) = state.auth.throttle().refusal_audits.hit(&source) else {
        crate::telemetry::refusal_audit_suppressed();
        return;
    };
    let refusal = Refusal { ctx, who, operation, code, suppressed };
    // A refusal is answered whatever happens to its audit entry; a failure is logged once by
    // the store error's conversion.
    if let Err(e) = state.catalogue.audit_refusal(refusal).await {
        tracing::warn!(error = %e, "refusal not audited");
    }
}
