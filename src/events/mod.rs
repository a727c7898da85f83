//! Events and webhook delivery.
//!
//! - Ledger changes append their events to the tenant's Redis outbox inside the script that
//!   makes the change; `outbox` drains those streams into Postgres, and `dead_letters` sets
//!   aside the entries that cannot be stored, so a stream never stalls behind one.
//! - Catalogue changes (tenants, keys, webhooks) call [`record`] inside the transaction of
//!   the change, so an event exists if and only if its change committed.
//! - [`record`] stores each event once (by id) and, in the same transaction, queues one
//!   delivery per matching ACTIVE subscription; `dispatch` sends the queued deliveries.

pub mod alerts;
pub mod dead_letters;
pub mod dispatch;
pub mod guard;
mod notices;
pub mod outbox;
mod pacing;
pub mod usage;

pub use pacing::wake as wake_dispatch;
pub mod seal;

use std::collections::HashMap;

use crate::domain::event::Event;
use crate::domain::webhook::Subscription;
use crate::store::StoreResult;
use crate::store::pg::webhooks::{NewDelivery, insert_delivery};
use crate::store::pg::{PgTx, events, webhooks};

/// Stores `batch` in `tx` and queues its deliveries; events stored before (a redelivered
/// outbox entry) are skipped with their deliveries. Returns how many were new.
pub async fn record(tx: &mut PgTx, batch: &[Event]) -> StoreResult<usize> {
    Ok(record_new(tx, batch).await?.len())
}

/// As [`record`], returning the events this call stored for the first time.
pub async fn record_new<'a>(tx: &mut PgTx, batch: &'a [Event]) -> StoreResult<Vec<&'a Event>> {
    let mut subscribers: HashMap<String, Vec<Subscription>> = HashMap::new();
    let mut stored = Vec::new();
    let mut queued = false;
    for event in batch {
        if !events::insert(tx, event).await? {
            continue;
        }
        stored.push(event);
        if !subscribers.contains_key(&event.tenant_id) {
            let subs = webhooks::active_for(tx, &event.tenant_id).await?;
            subscribers.insert(event.tenant_id.clone(), subs);
        }
        let Some(subs) = subscribers.get(&event.tenant_id) else { continue };
        for sub in subs.iter().filter(|s| s.wants(event)) {
            let delivery = NewDelivery {
                subscription_id: &sub.subscription_id,
                event_id: &event.event_id,
                event_type: event.event_type,
                trace_id: event.trace_id.as_deref(),
                replay_id: None,
                at: event.timestamp,
            };
            insert_delivery(tx, &delivery).await?;
            queued = true;
        }
    }
    crate::telemetry::events_stored(stored.len());
    if queued {
        pacing::wake();
    }
    Ok(stored)
}
