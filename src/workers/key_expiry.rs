//! Announces API keys that pass their expiry: `api_key.expired`, once per key, from whichever
//! instance marks the key first.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::catalogue::Catalogue;

/// How late an `api_key.expired` event may be, at most about.
const INTERVAL: Duration = Duration::from_secs(10);

pub async fn run(catalogue: Catalogue, shutdown: CancellationToken) {
    super::every(INTERVAL, shutdown, || async {
        if let Err(err) = catalogue.announce_expired_keys().await {
            tracing::warn!(error = %err.message, "announcing expired API keys failed; retrying next tick");
        }
    })
    .await;
}
