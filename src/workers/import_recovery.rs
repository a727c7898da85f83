//! Undoes the Redis writes of configuration imports that did not commit, once Redis answers
//! again (an import that fails while Redis is down cannot undo them itself).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::catalogue::Catalogue;

/// How long Redis may hold an uncommitted import's writes after it answers again, at most
/// about, when the import ran on this instance.
const INTERVAL: Duration = Duration::from_secs(1);
/// The same for an import of another instance (one that died mid-import), and the pace of an
/// idle instance: one query per this.
const IDLE_INTERVAL: Duration = Duration::from_secs(10);

pub async fn run(catalogue: Catalogue, shutdown: CancellationToken) {
    let mut last = std::time::Instant::now() - IDLE_INTERVAL;
    super::every(INTERVAL, shutdown, || {
        let due = catalogue.imports_pending() || last.elapsed() >= IDLE_INTERVAL;
        if due {
            last = std::time::Instant::now();
        }
        let catalogue = &catalogue;
        async move {
            if !due {
                return;
            }
            match catalogue.recover_imports(false).await {
                Ok(_) => catalogue.imports_recovered(),
                Err(err) => {
                    tracing::warn!(error = %err.message, "undoing a failed config import failed; retrying next tick")
                }
            }
        }
    })
    .await;
}
