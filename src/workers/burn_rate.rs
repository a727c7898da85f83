//! The burn-rate check: once a minute, every budget whose spent moved in the last hour (the
//! hourly rollups name them, so idle budgets cost nothing) is checked against what it has left:
//! if the last hour's burn empties it in under 2 hours, a `burn_rate` alert is raised (once per
//! budget and period: the UTC month); an open one whose budget no longer burns that fast is
//! resolved. Also sets the open-alert and exhaustion-ETA gauges. Safe on every instance at once
//! (raising is idempotent: one open alert per condition).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::events::alerts::burn_check;
use crate::ledger::Ledger;
use crate::store::pg::PgStore;

const INTERVAL: Duration = Duration::from_secs(60);

pub async fn run(pg: PgStore, ledger: Ledger, shutdown: CancellationToken) {
    super::every(INTERVAL, shutdown, || async {
        if let Err(err) = burn_check(&pg, &ledger).await {
            tracing::warn!(error = %err, "the burn-rate check failed; retrying in a minute");
        }
    })
    .await;
}
