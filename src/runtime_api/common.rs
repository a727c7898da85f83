//! Checks every runtime endpoint shares: key permissions (403 `FORBIDDEN` on this plane),
//! the optional `X-Idempotency-Key` header, and reservation ownership.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::auth::TenantCaller;
use crate::domain::Permission;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ledger::{Ledger, reservation_owner};

pub static X_CYCLES_TENANT: HeaderName = HeaderName::from_static("x-cycles-tenant");
static X_IDEMPOTENCY_KEY: &str = "x-idempotency-key";
/// Path parameter bounds of `reservation_id` (spec: 1..128).
const RESERVATION_ID_LEN_MAX: usize = 128;

pub fn require(caller: &TenantCaller, perm: Permission) -> ApiResult<()> {
    caller.require(perm, ErrorCode::Forbidden)
}

/// When both the header and the body carry an idempotency key they must agree.
pub fn check_idempotency_header(headers: &HeaderMap, body_key: &str) -> ApiResult<()> {
    match headers.get(X_IDEMPOTENCY_KEY) {
        Some(v) if v.as_bytes() != body_key.as_bytes() => {
            Err(ApiError::invalid_field("idempotency_key", "differs from the X-Idempotency-Key header"))
        }
        _ => Ok(()),
    }
}

/// `X-Cycles-Tenant: <effective tenant>` for successful responses.
pub fn tenant_header(tenant: &str) -> [(HeaderName, HeaderValue); 1] {
    let value = HeaderValue::from_str(tenant).unwrap_or(HeaderValue::from_static(""));
    [(X_CYCLES_TENANT.clone(), value)]
}

pub fn check_reservation_id(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.len() > RESERVATION_ID_LEN_MAX {
        return Err(ApiError::invalid_field(
            "reservation_id",
            format!("must be 1 to {RESERVATION_ID_LEN_MAX} characters"),
        ));
    }
    Ok(())
}

/// Resolves which tenant's keyspace holds `id` for a caller of `tenant`: 404 for an id that
/// is not ours, 403 for another tenant's existing reservation.
pub async fn owned_by(ledger: &Ledger, tenant: &str, id: &str) -> ApiResult<()> {
    check_reservation_id(id)?;
    match reservation_owner(id) {
        Some(owner) if owner == tenant => Ok(()),
        Some(owner) if ledger.reservation_exists(owner, id).await? => {
            Err(ApiError::forbidden("reservation belongs to another tenant"))
        }
        _ => Err(ApiError::not_found("reservation not found")),
    }
}

/// The owner of `id` for an admin-key caller (who may act on any tenant's reservation).
pub fn owner_for_admin(id: &str) -> ApiResult<String> {
    check_reservation_id(id)?;
    reservation_owner(id).map(String::from).ok_or_else(|| ApiError::not_found("reservation not found"))
}
