//! `GET /v1/reservations/{id}` and `GET /v1/reservations` (filters, sort, cursor, include).

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::common::{owned_by, owner_for_admin, require};
use super::wire::{Amount, amount};
use crate::auth::{AnyAuth, Caller};
use crate::domain::Permission;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::extract::{PathParam, QueryParams};
use crate::ledger::reads::{ReservationRecord, ReservationStatus};
use crate::state::AppState;

#[derive(Serialize)]
pub struct ReservationBody {
    reservation_id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    idempotency_key: String,
    subject: Value,
    action: Value,
    reserved: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    committed: Option<Amount>,
    created_at_ms: i64,
    expires_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    finalized_at_ms: Option<i64>,
    scope_path: String,
    affected_scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    committed_metadata: Option<Value>,
}

/// `with_metadata`/`with_committed`: the list's `include` projection; GET shows both.
fn body(r: ReservationRecord, with_metadata: bool, with_committed: bool) -> ReservationBody {
    let finalized = matches!(r.status, ReservationStatus::Committed | ReservationStatus::Released);
    ReservationBody {
        reservation_id: r.reservation_id,
        status: r.status.as_str(),
        idempotency_key: r.idempotency_key,
        subject: r.subject,
        action: r.action,
        reserved: amount(r.unit, r.estimate),
        committed: (r.status == ReservationStatus::Committed).then(|| amount(r.unit, r.committed.unwrap_or(0))),
        created_at_ms: r.created_at_ms,
        expires_at_ms: r.expires_at_ms,
        finalized_at_ms: if finalized { r.finalized_at_ms } else { None },
        scope_path: r.scope_path,
        affected_scopes: r.affected_scopes,
        metadata: if with_metadata { r.metadata } else { None },
        committed_metadata: if with_committed { r.committed_metadata } else { None },
    }
}

pub async fn get(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    PathParam(id): PathParam<String>,
) -> ApiResult<impl IntoResponse> {
    let tenant = match &caller {
        Caller::Tenant(t) => {
            require(t, Permission::ReservationsList)?;
            let tenant = t.key.tenant_id.to_string();
            owned_by(&state.ledger, &tenant, &id).await?;
            tenant
        }
        Caller::Admin => owner_for_admin(&id)?,
    };
    let record =
        state.ledger.reservation(&tenant, &id).await?.ok_or_else(|| ApiError::not_found("reservation not found"))?;
    if record.status == ReservationStatus::Expired {
        return Err(ApiError::new(ErrorCode::ReservationExpired, "reservation expired"));
    }
    Ok(Json(body(record, true, true)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    idempotency_key: Option<String>,
    status: Option<String>,
    tenant: Option<String>,
    workspace: Option<String>,
    app: Option<String>,
    workflow: Option<String>,
    agent: Option<String>,
    toolset: Option<String>,
    from: Option<String>,
    to: Option<String>,
    expires_from: Option<String>,
    expires_to: Option<String>,
    finalized_from: Option<String>,
    finalized_to: Option<String>,
    sort_by: Option<String>,
    sort_dir: Option<String>,
    include: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Serialize)]
pub struct ListBody {
    reservations: Vec<ReservationBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    has_more: bool,
}

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn time_ms(field: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    blank(v)
        .map(|s| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
                .map_err(|_| ApiError::invalid_field(field, "must be an RFC 3339 date-time"))
        })
        .transpose()
}

/// An inclusive window; `from > to` is a 400.
fn window(from: (&str, &Option<String>), to: (&str, &Option<String>)) -> ApiResult<(Option<i64>, Option<i64>)> {
    let (lo, hi) = (time_ms(from.0, from.1)?, time_ms(to.0, to.1)?);
    if let (Some(a), Some(b)) = (lo, hi)
        && a > b
    {
        return Err(ApiError::invalid_field(from.0, format!("must not be after {}", to.0)));
    }
    Ok((lo, hi))
}

fn in_window(v: Option<i64>, (lo, hi): (Option<i64>, Option<i64>)) -> bool {
    match v {
        None => lo.is_none() && hi.is_none(),
        Some(v) => lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi),
    }
}

const SORTS: &[&str] =
    &["reservation_id", "tenant", "scope_path", "status", "reserved", "created_at_ms", "expires_at_ms"];

/// The sort key of a row as a string that orders like the value (numbers zero-padded).
fn sort_key(r: &ReservationRecord, by: &str) -> String {
    let num = |n: i64| format!("{:020}", n.max(0));
    match by {
        "reservation_id" => r.reservation_id.clone(),
        "tenant" => r.subject.get("tenant").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase(),
        "scope_path" => r.scope_path.clone(),
        "status" => r.status.as_str().to_string(),
        "reserved" => num(r.estimate),
        "expires_at_ms" => num(r.expires_at_ms),
        _ => num(r.created_at_ms),
    }
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// Canonical filter tuple (sort, direction, filters, windows) the cursor belongs to.
    f: String,
    k: String,
    i: String,
}

pub async fn list(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    // Unlike the window bounds (blank = unset), a blank idempotency key is malformed.
    if let Some(key) = &q.idempotency_key {
        super::wire::check_idempotency_key("idempotency_key", key)?;
    }
    let tenant = match &caller {
        Caller::Tenant(t) => {
            require(t, Permission::ReservationsList)?;
            let own = t.key.tenant_id.to_string();
            if blank(&q.tenant).is_some_and(|p| !p.eq_ignore_ascii_case(&own)) {
                return Err(ApiError::forbidden("tenant does not match the API key's tenant"));
            }
            own
        }
        Caller::Admin => blank(&q.tenant).map(str::to_ascii_lowercase).ok_or_else(|| {
            ApiError::invalid("tenant query parameter is required when using admin key authentication")
        })?,
    };
    let status = blank(&q.status)
        .map(|s| {
            ReservationStatus::parse(s)
                .ok_or_else(|| ApiError::invalid_field("status", "must be ACTIVE, COMMITTED, RELEASED or EXPIRED"))
        })
        .transpose()?;
    let created = window(("from", &q.from), ("to", &q.to))?;
    let expires = window(("expires_from", &q.expires_from), ("expires_to", &q.expires_to))?;
    let finalized = window(("finalized_from", &q.finalized_from), ("finalized_to", &q.finalized_to))?;
    let sort_by = blank(&q.sort_by);
    if let Some(s) = sort_by
        && !SORTS.contains(&s)
    {
        return Err(ApiError::invalid_field("sort_by", format!("must be one of {}", SORTS.join(", "))));
    }
    let descending = match blank(&q.sort_dir) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(ApiError::invalid_field("sort_dir", "must be asc or desc")),
    };
    let limit = super::common::limit_param(q.limit.as_deref())?;
    let include: Vec<&str> = q.include.as_deref().unwrap_or_default().split(',').map(str::trim).collect();
    let levels = [&q.tenant, &q.workspace, &q.app, &q.workflow, &q.agent, &q.toolset];
    let sort = sort_by.unwrap_or("created_at_ms");
    let filter_tuple = format!(
        "{sort}|{descending}|{:?}|{:?}|{:?}|{created:?}|{expires:?}|{finalized:?}",
        status.map(ReservationStatus::as_str),
        blank(&q.idempotency_key),
        levels.iter().map(|l| blank(l).map(str::to_ascii_lowercase)).collect::<Vec<_>>()
    );
    let after = blank(&q.cursor)
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| serde_json::from_slice::<Cursor>(&b).ok())
                .filter(|c| c.f == filter_tuple)
                .ok_or_else(|| {
                    ApiError::invalid_field("cursor", "is not valid for this result set; restart without a cursor")
                })
        })
        .transpose()?;

    let mut rows = match blank(&q.idempotency_key) {
        Some(key) => match state.ledger.reservation_by_idempotency_key(&tenant, key).await? {
            Some(id) => state.ledger.reservations(&tenant, &[id]).await?,
            None => Vec::new(),
        },
        None => state.ledger.recent_reservations(&tenant).await?,
    };
    rows.retain(|r| {
        status.is_none_or(|s| r.status == s)
            && in_window(Some(r.created_at_ms), created)
            && in_window(Some(r.expires_at_ms), expires)
            && (finalized == (None, None) || in_window(r.finalized_at_ms, finalized))
            && crate::domain::scope::LEVELS.iter().zip(levels).all(|(level, want)| match blank(want) {
                None => true,
                Some(v) => r.subject.get(*level).and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case(v)),
            })
    });
    let mut keyed: Vec<(String, ReservationRecord)> = rows.into_iter().map(|r| (sort_key(&r, sort), r)).collect();
    keyed.sort_by(|a, b| (&a.0, &a.1.reservation_id).cmp(&(&b.0, &b.1.reservation_id)));
    if descending {
        keyed.reverse();
    }
    if let Some(c) = &after {
        keyed.retain(|(k, r)| {
            let pos = (k.as_str(), r.reservation_id.as_str()).cmp(&(c.k.as_str(), c.i.as_str()));
            if descending { pos.is_lt() } else { pos.is_gt() }
        });
    }
    let has_more = keyed.len() > limit;
    keyed.truncate(limit);
    let next_cursor = if has_more {
        keyed.last().map(|(k, r)| {
            let c = Cursor { f: filter_tuple.clone(), k: k.clone(), i: r.reservation_id.clone() };
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap_or_default())
        })
    } else {
        None
    };
    let (with_meta, with_committed) = (include.contains(&"metadata"), include.contains(&"committed_metadata"));
    Ok(Json(ListBody {
        reservations: keyed.into_iter().map(|(_, r)| body(r, with_meta, with_committed)).collect(),
        next_cursor,
        has_more,
    }))
}
