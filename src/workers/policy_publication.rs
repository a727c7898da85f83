//! Publishes policy sets Redis lags behind on (a change whose publication failed after its
//! commit, or every set after a start-up): the first tick runs at start-up, then one every
//! [`INTERVAL`], on every instance; rows are leased, so instances never race on one.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::catalogue::Catalogue;

/// How long a committed policy change whose publication failed waits, at most about, to be in
/// force once Redis answers again.
const INTERVAL: Duration = Duration::from_secs(5);

pub async fn run(catalogue: Catalogue, shutdown: CancellationToken) {
    if let Err(err) = catalogue.republish_all_policies().await {
        tracing::warn!(error = %err.message, "could not mark policy sets for republication");
    }
    super::every(INTERVAL, shutdown, || async {
        loop {
            match catalogue.recover_policy_publications().await {
                Ok(0) => return,
                Ok(n) => tracing::info!(published = n, "policy sets published by the recovery pass"),
                Err(err) => {
                    tracing::warn!(error = %err.message, "policy publication recovery failed; retrying next tick");
                    return;
                }
            }
        }
    })
    .await;
}
