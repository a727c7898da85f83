//! `GET /v1/reservations/{id}` and `GET /v1/reservations` (filters, sort, cursor, include).

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::common::{owned_by, owner_for_admin, require};
use super::wire::{Amount, amount};
use crate::auth::{AnyAuth, Caller};
use crate::domain::Permission;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::extract::{PathParam, QueryParams};
use crate::http::page::{self, ListParams, Page, Paging, Position};
use crate::ledger::Ledger;
use crate::ledger::reads::{LIST_SCAN_MAX, ReservationRecord, ReservationStatus};
use crate::ledger::scan::CreatedAt;
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReservationDetail)]
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

#[utoipa::path(get, path = "/v1/reservations/{reservation_id}", operation_id = "getReservation", tag = "Reservations",
    params(("reservation_id" = String, Path, description = "The reservation's id")),
    responses((status = 200, description = "The reservation", body = ReservationBody), crate::http::openapi::E400_401_403_404_410_429_500_503),
    security(("ApiKeyAuth" = []), ("AdminKeyAuth" = []))
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
    include: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: ListParams,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReservationListResponse)]
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

/// An inclusive window in ms; either end may be open.
type Window = (Option<i64>, Option<i64>);

/// An inclusive window; `from > to` is a 400.
fn window(from: (&str, &Option<String>), to: (&str, &Option<String>)) -> ApiResult<Window> {
    let (lo, hi) = (time_ms(from.0, from.1)?, time_ms(to.0, to.1)?);
    if let (Some(a), Some(b)) = (lo, hi)
        && a > b
    {
        return Err(ApiError::invalid_field(from.0, format!("must not be after {}", to.0)));
    }
    Ok((lo, hi))
}

fn in_window(v: Option<i64>, (lo, hi): Window) -> bool {
    match v {
        None => lo.is_none() && hi.is_none(),
        Some(v) => lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi),
    }
}

const SORTS: &[&str] =
    &["reservation_id", "tenant", "scope_path", "status", "reserved", "created_at_ms", "expires_at_ms"];

/// A number as text that orders like the number (times and amounts are never negative).
fn num(n: i64) -> String {
    format!("{:020}", n.max(0))
}

/// A row's position in the list: the sort column as text that orders like the value (numbers
/// zero-padded), then the reservation id.
fn position(r: &ReservationRecord, by: &str) -> Position {
    let key = match by {
        "reservation_id" => r.reservation_id.clone(),
        "tenant" => r.subject.get("tenant").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase(),
        "scope_path" => r.scope_path.clone(),
        "status" => r.status.as_str().to_string(),
        "reserved" => num(r.estimate),
        "expires_at_ms" => num(r.expires_at_ms),
        _ => num(r.created_at_ms),
    };
    Position { key, id: r.reservation_id.clone() }
}

/// The validated filters of a listing; also what a cursor's fingerprint covers.
#[derive(Debug)]
struct Filters {
    tenant: String,
    idempotency_key: Option<String>,
    status: Option<ReservationStatus>,
    /// The subject filters by level (tenant … toolset), lowercased.
    levels: Vec<Option<String>>,
    created: Window,
    expires: Window,
    finalized: Window,
}

impl Filters {
    fn parse(caller: &Caller, q: &ListQuery) -> ApiResult<Self> {
        // Unlike the window bounds (blank = unset), a blank idempotency key is malformed.
        if let Some(key) = &q.idempotency_key {
            super::wire::check_idempotency_key("idempotency_key", key)?;
        }
        let tenant = match caller {
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
        let levels = [&q.tenant, &q.workspace, &q.app, &q.workflow, &q.agent, &q.toolset];
        Ok(Self {
            tenant,
            idempotency_key: blank(&q.idempotency_key).map(String::from),
            status,
            levels: levels.iter().map(|l| blank(l).map(str::to_ascii_lowercase)).collect(),
            created: window(("from", &q.from), ("to", &q.to))?,
            expires: window(("expires_from", &q.expires_from), ("expires_to", &q.expires_to))?,
            finalized: window(("finalized_from", &q.finalized_from), ("finalized_to", &q.finalized_to))?,
        })
    }

    fn keeps(&self, r: &ReservationRecord) -> bool {
        self.status.is_none_or(|s| r.status == s)
            && in_window(Some(r.created_at_ms), self.created)
            && in_window(Some(r.expires_at_ms), self.expires)
            && (self.finalized == (None, None) || in_window(r.finalized_at_ms, self.finalized))
            && crate::domain::scope::LEVELS.iter().zip(&self.levels).all(|(level, want)| match want {
                None => true,
                Some(v) => r.subject.get(*level).and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case(v)),
            })
    }

    /// Every reservation these filters keep: the one an idempotency key names, else all of
    /// the tenant's within the creation window; a window of more than `LIST_SCAN_MAX` is
    /// refused (400 naming `sort_by`), never cut short.
    async fn read(&self, ledger: &Ledger) -> ApiResult<Vec<ReservationRecord>> {
        let mut rows = match &self.idempotency_key {
            Some(key) => match ledger.reservation_by_idempotency_key(&self.tenant, key).await? {
                Some(id) => ledger.reservations(&self.tenant, &[id]).await?,
                None => Vec::new(),
            },
            None => ledger.reservations_created_within(&self.tenant, self.created).await?.ok_or_else(|| {
                ApiError::invalid_field(
                    "sort_by",
                    format!(
                        "sorts other than created_at_ms cover at most {LIST_SCAN_MAX} reservations; narrow the \
                         from/to window or sort by created_at_ms"
                    ),
                )
            })?,
        };
        rows.retain(|r| self.keeps(r));
        Ok(rows)
    }
}

/// A page in creation order read straight from the creation index: bounded work per request
/// however many reservations the tenant has, and a cursor wherever more may follow.
async fn by_creation(ledger: &Ledger, filters: &Filters, paging: &Paging) -> ApiResult<Page<ReservationRecord>> {
    let after = match &paging.after {
        None => None,
        Some(p) => {
            let created_at_ms = p.key.parse::<i64>().map_err(|_| page::invalid_cursor())?;
            Some(CreatedAt { created_at_ms, id: p.id.clone() })
        }
    };
    let want = paging.limit + 1;
    let scanned = ledger
        .scan_by_creation(&filters.tenant, after.as_ref(), paging.sort.descending, filters.created, want, |r| {
            filters.keeps(r)
        })
        .await?;
    let rows = scanned.rows.into_iter().map(|r| (position(&r, "created_at_ms"), r)).collect();
    let resume = scanned.stopped_at.map(|s| Position { key: num(s.created_at_ms), id: s.id });
    Ok(paging.page_ordered(rows, resume))
}

#[utoipa::path(get, path = "/v1/reservations", operation_id = "listReservations", tag = "Reservations",
    params(ListQuery, crate::http::page::ListParams),
    responses((status = 200, description = "A page of reservations", body = ListBody), crate::http::openapi::E400_401_403_429_500_503),
    security(("ApiKeyAuth" = []), ("AdminKeyAuth" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let filters = Filters::parse(&caller, &q)?;
    let paging = page::parse(&q.page, SORTS, "created_at_ms", page::RUNTIME, &filters)?;
    let include: Vec<&str> = q.include.as_deref().unwrap_or_default().split(',').map(str::trim).collect();
    let (with_meta, with_committed) = (include.contains(&"metadata"), include.contains(&"committed_metadata"));
    let page = if filters.idempotency_key.is_none() && paging.sort.by == "created_at_ms" {
        by_creation(&state.ledger, &filters, &paging).await?
    } else {
        paging.page(filters.read(&state.ledger).await?, |r| position(r, &paging.sort.by))
    };
    Ok(Json(ListBody {
        reservations: page.items.into_iter().map(|r| body(r, with_meta, with_committed)).collect(),
        next_cursor: page.next_cursor,
        has_more: page.has_more,
    }))
}
