//! The expiry sweeper: on every instance, each tick expires due reservations tenant by
//! tenant in bounded batches, visiting only the tenants the due index names. Concurrent
//! sweepers are safe: the script re-checks every reservation, so each expires (and returns
//! its hold) exactly once. It needs Redis only, so it keeps working through a Postgres outage.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ledger::Ledger;

/// Time between sweeps: expiry lags a reservation's deadline by at most about this much.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(1_000);
/// Batches one tenant gets per tick, so one busy tenant cannot starve the others.
const BATCHES_PER_TENANT: usize = 10;

pub async fn run(ledger: Ledger, shutdown: CancellationToken) {
    match ledger.backfill_signals().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(tenants = n, "built the work signals of existing tenants"),
        Err(err) => tracing::warn!(error = %err, "building the work signals failed; retrying at the next start"),
    }
    super::every(SWEEP_INTERVAL, shutdown.clone(), || async {
        if let Err(err) = sweep_once(&ledger, &shutdown).await {
            tracing::warn!(error = %err, "expiry sweep failed; retrying next tick");
        }
    })
    .await;
}

/// One pass over the tenants with something due; returns how many reservations it expired.
pub async fn sweep_once(ledger: &Ledger, shutdown: &CancellationToken) -> anyhow::Result<u64> {
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)?;
    let ids = ledger.due_tenants(now_ms).await?;
    let mut expired = 0;
    let mut backlog = 0;
    for tenant in ids {
        if shutdown.is_cancelled() {
            break;
        }
        for _ in 0..BATCHES_PER_TENANT {
            let (n, more) = ledger.sweep_tenant(&tenant, now_ms).await?;
            expired += n;
            if !more {
                break;
            }
        }
        backlog += ledger.due_count(&tenant, now_ms).await?;
    }
    crate::telemetry::expiry_sweep(expired, backlog);
    Ok(expired)
}
