//! The expiry sweeper: on every instance, each tick expires due reservations tenant by
//! tenant in bounded batches, visiting only the tenants the due index names. Concurrent
//! sweepers are safe: the script re-checks every reservation, so each expires (and returns
//! its hold) exactly once. It needs Redis only, so it keeps working through a Postgres outage.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ledger::Ledger;

/// Time between sweeps when nothing is left due: expiry lags a reservation's deadline by at
/// most about this much.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(1_000);
/// Time one tenant gets per pass, so one busy tenant cannot starve the others; a pass that
/// expired some and left a backlog is followed at once by the next.
const TENANT_SLICE: Duration = Duration::from_millis(100);

pub async fn run(ledger: Ledger, shutdown: CancellationToken) {
    match ledger.backfill_signals().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(tenants = n, "built the work signals of existing tenants"),
        Err(err) => tracing::warn!(error = %err, "building the work signals failed; retrying at the next start"),
    }
    loop {
        let pass = sweep_once(&ledger, &shutdown).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "expiry sweep failed; retrying next tick");
            Pass::default()
        });
        // Straight on while a backlog shrinks; a backlog that did not move (items the script
        // skips) waits for the tick like an empty one.
        let pause = if pass.backlog > 0 && pass.expired > 0 { Duration::ZERO } else { SWEEP_INTERVAL };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pass {
    pub expired: u64,
    /// Reservations still due when the pass left their tenant.
    pub backlog: u64,
}

/// One pass over the tenants with something due.
pub async fn sweep_once(ledger: &Ledger, shutdown: &CancellationToken) -> anyhow::Result<Pass> {
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)?;
    let ids = ledger.due_tenants(now_ms).await?;
    let mut pass = Pass::default();
    for tenant in ids {
        if shutdown.is_cancelled() {
            break;
        }
        let started = std::time::Instant::now();
        loop {
            let (n, more) = ledger.sweep_tenant(&tenant, now_ms).await?;
            pass.expired += n;
            if !more || started.elapsed() >= TENANT_SLICE {
                break;
            }
        }
        pass.backlog += ledger.due_count(&tenant, now_ms).await?;
    }
    crate::telemetry::expiry_sweep(pass.expired, pass.backlog);
    Ok(pass)
}
