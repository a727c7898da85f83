//! Retention of the event tables: every hour, deliveries finished more than the delivery
//! retention ago, then events older than the event retention that no delivery refers to, and
//! week-old bulk-action records and applied usage entries (the drain's redelivery guard). Safe
//! on every instance at once (plain deletes).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::pg::{PgStore, retention};

const INTERVAL: Duration = Duration::from_secs(3_600);

#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub event_days: u32,
    pub delivery_days: u32,
}

pub async fn run(pg: PgStore, keep: Retention, shutdown: CancellationToken) {
    super::every(INTERVAL, shutdown.clone(), || async {
        match prune(&pg, keep, &shutdown).await {
            Ok((deliveries, events)) if deliveries + events > 0 => {
                tracing::info!(deliveries, events, "pruned event tables past their retention");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "pruning the event tables failed; retrying next hour"),
        }
    })
    .await;
}

async fn prune(pg: &PgStore, keep: Retention, shutdown: &CancellationToken) -> crate::store::StoreResult<(u64, u64)> {
    let (mut deliveries, mut events) = (0, 0);
    loop {
        let n = retention::prune_deliveries(pg.pool(), keep.delivery_days).await?;
        deliveries += n;
        if n == 0 || shutdown.is_cancelled() {
            break;
        }
    }
    loop {
        let n = retention::prune_events(pg.pool(), keep.event_days).await?;
        events += n;
        if n == 0 || shutdown.is_cancelled() {
            break;
        }
    }
    retention::prune_bulk_actions(pg.pool()).await?;
    retention::prune_usage_entries(pg.pool()).await?;
    Ok((deliveries, events))
}
