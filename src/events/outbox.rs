//! The outbox drain: moves the events the ledger scripts append to each tenant's Redis stream
//! into Postgres.
//!
//! Each pass visits only the tenants whose stream the scripts marked dirty (`ledger::signals`),
//! so idle tenants cost nothing. Every instance reads those streams through one consumer group, so each entry goes
//! to one consumer at a time. An entry is acknowledged (and deleted from the stream) only
//! after the transaction that stores it has committed; an entry a crashed consumer held is
//! claimed by another after `reclaim_idle`. Event ids derive from the tenant and the stream
//! entry id, so an entry stored twice (a crash between commit and acknowledge) lands on the
//! same row: at-least-once delivery from Redis, exactly once in Postgres. An entry that
//! cannot be stored is set aside as a dead letter (`super::dead_letters`) and acknowledged
//! like a stored one; an outage sets nothing aside.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::dead_letters;
use super::usage::{self, UsageEntry};
use crate::domain::event::{Event, EventActor, EventType, SOURCE_ADMIN, SOURCE_SERVER, SOURCE_SWEEPER};
use crate::ledger::Ledger;
use crate::store::pg::{self, PgStore};
use crate::store::redis::RedisStore;
use crate::store::redis::streams::{StreamEntry, StreamError, StreamResult};
use crate::store::{StoreError, StoreResult};

/// The consumer group every instance joins on every outbox stream.
pub const GROUP: &str = "tollgate-drain";
/// Entries read (or reclaimed) per stream per call.
const BATCH: usize = 200;
/// Batches one tenant gets per pass, so one busy tenant cannot starve the others.
const BATCHES_PER_TENANT: usize = 10;
/// How often stuck entries are looked for.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct DrainConfig {
    pub poll: Duration,
    /// An entry delivered to a consumer and not acknowledged for this long is reclaimed.
    pub reclaim_idle: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self { poll: Duration::from_millis(200), reclaim_idle: Duration::from_secs(30) }
    }
}

pub struct Drain {
    pg: PgStore,
    redis: RedisStore,
    /// For the work signals: which tenants have events waiting.
    ledger: Ledger,
    config: DrainConfig,
    consumer: String,
    /// Streams whose group this instance has made sure of.
    grouped: HashSet<String>,
}

impl Drain {
    pub fn new(pg: PgStore, redis: RedisStore, ledger: Ledger, config: DrainConfig) -> Self {
        let consumer = format!("tollgate-{}", uuid::Uuid::new_v4().simple());
        Self { pg, redis, ledger, config, consumer, grouped: HashSet::new() }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        if let Err(err) = self.ledger.backfill_signals().await {
            tracing::warn!(error = %err, "building the work signals failed; retrying at the next start");
        }
        let mut tick = tokio::time::interval(self.config.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reclaimed = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let reclaim = reclaimed.elapsed() >= RECLAIM_EVERY;
            if reclaim {
                reclaimed = Instant::now();
            }
            match self.ledger.dirty_tenants().await {
                Ok(tenants) => self.pass(&tenants, reclaim, &shutdown).await,
                Err(err) => tracing::warn!(error = %err.message, "outbox drain could not read the dirty tenants"),
            }
        }
    }

    /// Drains each of `tenants` (those whose outbox the scripts marked dirty); a tenant whose
    /// stream is then empty leaves the dirty set.
    async fn pass(&mut self, tenants: &[String], reclaim: bool, shutdown: &CancellationToken) {
        let mut depth = (0, 0);
        for tenant in tenants {
            if shutdown.is_cancelled() {
                return;
            }
            if reclaim {
                match self.depth(tenant).await {
                    Ok((len, age_ms)) => depth = (depth.0 + len, depth.1.max(age_ms)),
                    Err(err) => tracing::warn!(tenant, error = %err, "reading the outbox depth failed"),
                }
            }
            match self.drain_tenant(tenant, reclaim).await {
                Ok(_) => {
                    if let Err(err) = self.ledger.settle_dirty(tenant).await {
                        tracing::warn!(tenant, error = %err.message, "clearing the outbox mark failed");
                    }
                }
                Err(err) => {
                    // A Redis that lost its data (restarted without persistence) lost the
                    // group too: make it again on the next pass.
                    if matches!(err, StreamError::NoGroup) {
                        self.grouped.remove(&self.redis.keys().outbox(tenant));
                    }
                    tracing::warn!(tenant, error = %err, "outbox drain failed; retrying next tick");
                }
            }
        }
        if reclaim {
            crate::telemetry::outbox(depth.0, Duration::from_millis(depth.1));
        }
    }

    /// Entries waiting in a tenant's stream and the age in ms of the oldest (0 when empty),
    /// read before the pass drains them.
    async fn depth(&self, tenant: &str) -> StreamResult<(u64, u64)> {
        let (len, oldest) = self.redis.stream_depth(&self.redis.keys().outbox(tenant)).await?;
        let now_ms = u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let oldest = oldest.as_deref().and_then(|id| id.split_once('-')).and_then(|(ms, _)| ms.parse::<u64>().ok());
        Ok((len, oldest.map_or(0, |ms| now_ms.saturating_sub(ms))))
    }

    /// Moves what is waiting in one tenant's stream (plus, when `reclaim`, entries stuck
    /// with a dead consumer) into Postgres.
    pub async fn drain_tenant(&mut self, tenant: &str, reclaim: bool) -> StreamResult<usize> {
        let key = self.redis.keys().outbox(tenant);
        self.ensure_group(&key).await?;
        let mut moved = 0;
        if reclaim {
            let idle_ms = u64::try_from(self.config.reclaim_idle.as_millis()).unwrap_or(u64::MAX);
            let claimed = self.redis.claim_idle(&key, GROUP, &self.consumer, idle_ms, BATCH).await?;
            if !claimed.is_empty() {
                tracing::info!(tenant, entries = claimed.len(), "reclaimed outbox entries from an idle consumer");
                moved += self.store(tenant, &key, &claimed).await?;
            }
        }
        for _ in 0..BATCHES_PER_TENANT {
            let entries = self.redis.read_group(&key, GROUP, &self.consumer, BATCH).await?;
            if entries.is_empty() {
                return Ok(moved);
            }
            let full = entries.len() == BATCH;
            moved += self.store(tenant, &key, &entries).await?;
            if !full {
                return Ok(moved);
            }
        }
        Ok(moved)
    }

    async fn ensure_group(&mut self, key: &str) -> StreamResult<()> {
        if self.grouped.contains(key) {
            return Ok(());
        }
        match self.redis.create_group(key, GROUP).await {
            Ok(()) | Err(StreamError::GroupExists) => {}
            Err(err) => return Err(err),
        }
        self.grouped.insert(key.to_string());
        Ok(())
    }

    /// Stores `entries`, then acknowledges and deletes them. The events and the usage entries
    /// (`super::usage`) go in one transaction with the usage rollups and alerts they make; if
    /// that fails for a reason other than an outage, they go one at a time, and an entry that
    /// does not decode or whose data Postgres refuses on its own (`Refused`) is set aside as a
    /// dead letter, so one bad entry never holds back the tenant's later ones. On an outage
    /// (`Unavailable`) nothing is acknowledged and the entries are read again.
    async fn store(&mut self, tenant: &str, key: &str, entries: &[StreamEntry]) -> StreamResult<usize> {
        let (mut sources, mut batch) = (Vec::with_capacity(entries.len()), Vec::with_capacity(entries.len()));
        let mut usage = Vec::new();
        for entry in entries {
            let decoded = if usage::is_usage(entry) {
                usage::parse(tenant, entry).map(|u| usage.push((entry, u)))
            } else {
                to_event(tenant, entry).map(|event| {
                    sources.push(entry);
                    batch.push(event);
                })
            };
            if let Err(why) = decoded {
                crate::telemetry::outbox_rejected();
                dead_letters::set_aside(&self.pg, tenant, entry, dead_letters::UNDECODABLE, &why).await?;
            }
        }
        let usages: Vec<UsageEntry> = usage.iter().map(|(_, u)| u.clone()).collect();
        let stored = match self.record(&batch, &usages).await {
            Ok(stored) => stored,
            Err(StoreError::Internal(why) | StoreError::Refused(why)) => {
                tracing::warn!(tenant, entries = batch.len(), error = %why, "outbox batch refused; storing it entry by entry");
                self.record_each(tenant, &sources, &batch).await? + self.record_each_usage(tenant, &usage).await?
            }
            Err(err) => return Err(err.into()),
        };
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        self.redis.ack_and_delete(key, GROUP, &ids).await?;
        Ok(stored)
    }

    /// Stores each of `batch` (made from `sources`, index for index) in its own transaction,
    /// setting aside those whose data Postgres refuses. Any other error stops it (an outage,
    /// or an `Internal` error that is likely the server's, such as a missing table or grant:
    /// setting every entry aside for it would empty the event log): what is stored stays
    /// stored (a redelivery lands on the same rows) and the caller acknowledges nothing.
    async fn record_each(&self, tenant: &str, sources: &[&StreamEntry], batch: &[Event]) -> StoreResult<usize> {
        let mut stored = 0;
        for (entry, event) in sources.iter().zip(batch) {
            match self.record(std::slice::from_ref(event), &[]).await {
                Ok(n) => stored += n,
                Err(StoreError::Refused(why)) => {
                    dead_letters::set_aside(&self.pg, tenant, entry, dead_letters::UNSTORABLE, &why).await?;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(stored)
    }

    /// As `record_each`, for the usage entries (applied once each: a redelivery is a no-op).
    async fn record_each_usage(&self, tenant: &str, usage: &[(&StreamEntry, UsageEntry)]) -> StoreResult<usize> {
        for (entry, u) in usage {
            match self.record(&[], std::slice::from_ref(u)).await {
                Ok(_) => {}
                Err(StoreError::Refused(why)) => {
                    dead_letters::set_aside(&self.pg, tenant, entry, dead_letters::UNSTORABLE, &why).await?;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(0)
    }

    /// Stores `batch` and applies `usage` in one committed transaction, with the rollups and
    /// alerts they make; returns how many events were new.
    async fn record(&self, batch: &[Event], usage: &[UsageEntry]) -> StoreResult<usize> {
        let mut tx = self.pg.begin().await?;
        let stored = super::record_new(&mut tx, batch).await?;
        usage::apply(&mut tx, usage, &stored).await?;
        super::alerts::apply(&mut tx, &stored).await?;
        let n = stored.len();
        pg::commit(tx).await?;
        Ok(n)
    }
}

/// The event id of a stream entry: `evt_` and 32 hex digits, the entry's millisecond (12)
/// and sequence (8) then 12 of SHA-256(tenant, entry id). Stable across redelivery, and
/// ordered like the stream within a tenant (as UUIDv7 ids of catalogue events are by time).
pub fn event_id_of(tenant: &str, entry_id: &str) -> String {
    let (ms, seq) = entry_id.split_once('-').unwrap_or((entry_id, "0"));
    let (ms, seq) = (ms.parse::<u64>().unwrap_or(0), seq.parse::<u64>().unwrap_or(0));
    let digest =
        Sha256::new().chain_update(tenant.as_bytes()).chain_update(b"/").chain_update(entry_id.as_bytes()).finalize();
    format!("evt_{:012x}{:08x}{}", ms & 0xffff_ffff_ffff, seq & 0xffff_ffff, hex::encode(&digest[..6]))
}

fn field(entry: &StreamEntry, name: &str) -> Option<String> {
    entry.field(name).map(String::from)
}

/// Data fields the scripts send as decimal strings that the spec types as integers.
const INT_FIELDS: &[&str] = &[
    "allocated",
    "remaining",
    "debt",
    "spent",
    "reserved",
    "overdraft_limit",
    "debt_incurred",
    "total_debt",
    "requested_amount",
    "estimated_amount",
    "actual_amount",
    "overage",
    "released_amount",
    "ttl_ms",
    "extensions_used",
    "carried_amount",
    "unused_amount",
    "forfeited_amount",
    "periods_crossed",
];
const BOOL_FIELDS: &[&str] = &["is_over_limit", "spent_override_provided", "dry_run", "hold_kept"];

/// Rewrites one data object to the spec's JSON types, in place.
fn normalize(map: &mut Map<String, Json>) {
    for (k, v) in map.iter_mut() {
        if let Json::String(s) = v {
            if INT_FIELDS.contains(&k.as_str()) {
                if let Ok(n) = s.parse::<i64>() {
                    *v = Json::from(n);
                }
            } else if BOOL_FIELDS.contains(&k.as_str()) {
                *v = Json::Bool(s == "1");
            }
        } else if let Json::Object(inner) = v {
            normalize(inner);
        }
    }
    map.retain(|_, v| !matches!(v, Json::String(s) if s.is_empty()));
}

fn rfc3339_of_ms(ms: &str) -> Option<Json> {
    let ms: i128 = ms.parse().ok()?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok()?;
    at.format(&time::format_description::well_known::Rfc3339).ok().map(Json::String)
}

/// What an event's type adds: its source, its actor, a correlation id, and the data fields
/// its spec payload spells differently from the script's.
fn shape_by_type(
    tenant: &str,
    event_type: EventType,
    request_id: Option<&str>,
    data: &mut Map<String, Json>,
) -> (&'static str, Option<EventActor>, Option<String>) {
    let mut source = SOURCE_SERVER;
    let mut actor = None;
    let mut correlation_id = None;
    match event_type {
        EventType::ReservationExpired => {
            source = SOURCE_SWEEPER;
            actor = Some(EventActor::of("system", None));
            for (from, to) in [("created_at_ms", "created_at"), ("expired_at_ms", "expired_at")] {
                if let Some(v) = data.remove(from).and_then(|v| v.as_str().and_then(rfc3339_of_ms)) {
                    data.insert(to.into(), v);
                }
            }
        }
        EventType::ReservationDenied | EventType::ReservationObservedDenied | EventType::ReservationObservedAllowed => {
            // The reservation request's subject and action, as the client sent them.
            if let Some(Json::String(req)) = data.remove("request")
                && let Ok(Json::Object(req)) = serde_json::from_str::<Json>(&req)
            {
                for k in ["subject", "action"] {
                    if let Some(v) = req.get(k) {
                        data.insert(k.into(), v.clone());
                    }
                }
            }
        }
        EventType::BudgetOverLimitEntered | EventType::BudgetOverLimitExited => {
            let debt = data.get("debt").and_then(Json::as_i64).unwrap_or(0);
            let limit = data.get("overdraft_limit").and_then(Json::as_i64).unwrap_or(0);
            if limit > 0 {
                data.insert("debt_utilization".into(), Json::from(debt as f64 / limit as f64));
            }
        }
        EventType::BudgetClosedViaTenantCascade | EventType::ReservationReleasedViaTenantCascade => {
            source = SOURCE_ADMIN;
            if let Some(rq) = request_id {
                correlation_id = Some(format!("tenant_close_cascade:{tenant}:{rq}"));
            }
        }
        EventType::BudgetCreated
        | EventType::BudgetUpdated
        | EventType::BudgetFunded
        | EventType::BudgetDebited
        | EventType::BudgetReset
        | EventType::BudgetResetSpent
        | EventType::BudgetDebtRepaid
        | EventType::BudgetFrozen
        | EventType::BudgetUnfrozen => source = SOURCE_ADMIN,
        _ => {}
    }
    (source, actor, correlation_id)
}

/// Builds the spec's `Event` from one outbox entry of `tenant`.
pub fn to_event(tenant: &str, entry: &StreamEntry) -> Result<Event, String> {
    // A field that is not text would otherwise read as missing and the event lose it quietly.
    if let Some((name, _)) =
        entry.raw.iter().find(|(name, value)| std::str::from_utf8(name).is_err() || std::str::from_utf8(value).is_err())
    {
        return Err(format!("field {:?} is not UTF-8", String::from_utf8_lossy(name)));
    }
    let kind = field(entry, "t").ok_or("no event type")?;
    let event_type = EventType::parse(&kind).ok_or_else(|| format!("unknown event type {kind:?}"))?;
    let ts: i128 = field(entry, "ts").and_then(|s| s.parse().ok()).ok_or("no timestamp")?;
    let timestamp = OffsetDateTime::from_unix_timestamp_nanos(ts * 1_000_000).map_err(|e| e.to_string())?;
    let scope = field(entry, "s").filter(|s| !s.is_empty());
    let unit = field(entry, "u").filter(|s| !s.is_empty());
    let request_id = field(entry, "rq").filter(|s| !s.is_empty());
    let trace_id = field(entry, "tr").filter(|s| s.len() == 32);
    let raw = field(entry, "d").unwrap_or_else(|| "{}".into());
    let mut data: Map<String, Json> = match serde_json::from_str(&raw) {
        Ok(Json::Object(m)) => m,
        // cjson encodes an empty table as an empty array.
        Ok(Json::Array(a)) if a.is_empty() => Map::new(),
        _ => return Err("data is not a JSON object".into()),
    };
    normalize(&mut data);
    if let Some(scope) = &scope {
        data.entry("scope").or_insert_with(|| Json::String(scope.clone()));
    }
    if let Some(unit) = &unit {
        data.entry("unit").or_insert_with(|| Json::String(unit.clone()));
    }
    let (source, actor, by_type) = shape_by_type(tenant, event_type, request_id.as_deref(), &mut data);
    // An explicit correlation id (a bulk action's) wins over the type's default.
    let correlation_id = field(entry, "c").filter(|c| !c.is_empty()).or(by_type);
    Ok(Event {
        event_id: event_id_of(tenant, &entry.id),
        event_type,
        category: event_type.category(),
        timestamp,
        tenant_id: tenant.to_string(),
        scope,
        actor,
        source: source.to_string(),
        data: Json::Object(data),
        correlation_id,
        request_id,
        trace_id,
        metadata: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_with_a_field_that_is_not_utf8_is_not_an_event() {
        let mut entry = StreamEntry { id: "1-0".into(), ..StreamEntry::default() };
        for (name, value) in [("t", "budget.funded"), ("ts", "1"), ("d", "{}")] {
            entry.fields.insert(name.into(), value.into());
            entry.raw.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        }
        assert!(to_event("acme", &entry).is_ok());
        entry.raw.push((b"s".to_vec(), b"\xff".to_vec()));
        assert_eq!(to_event("acme", &entry).unwrap_err(), "field \"s\" is not UTF-8");
    }
}
