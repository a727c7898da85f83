//! Finishes provisioning calls that committed in Postgres but did not finish in Redis (the
//! engine died, or Redis was out): the first tick runs at start-up, then one every
//! [`INTERVAL`], on every instance; records are leased, so instances never race on one.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::catalogue::Catalogue;

/// How long a customer left half-provisioned by a Redis outage waits, at most about, once
/// Redis is back.
const INTERVAL: Duration = Duration::from_secs(2);

pub async fn run(catalogue: Catalogue, shutdown: CancellationToken) {
    super::every(INTERVAL, shutdown, || async {
        match catalogue.recover_provisions().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(finished = n, "pending provisioning records finished"),
            Err(err) => tracing::warn!(error = %err.message, "provisioning recovery failed; retrying next tick"),
        }
    })
    .await;
}
