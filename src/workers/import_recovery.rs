//! Undoes the Redis writes of configuration imports that did not commit, once Redis answers
//! again (an import that fails while Redis is down cannot undo them itself).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::catalogue::Catalogue;

/// How long Redis may hold an uncommitted import's writes after it answers again, at most about.
const INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(catalogue: Catalogue, shutdown: CancellationToken) {
    super::every(INTERVAL, shutdown, || async {
        if let Err(err) = catalogue.recover_imports(false).await {
            tracing::warn!(error = %err.message, "undoing a failed config import failed; retrying next tick");
        }
    })
    .await;
}
