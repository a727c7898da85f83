//! Writes the keys used since the last pass into `api_keys.last_used_at`, one statement per
//! pass; a failed pass puts the keys back for the next.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::store::pg::PgStore;

pub async fn run(pg: PgStore, auth: Arc<Authenticator>, interval: Duration, shutdown: CancellationToken) {
    super::every(interval, shutdown, || flush(&pg, &auth)).await;
    // What was used since the last pass is written once more on the way out.
    flush(&pg, &auth).await;
}

async fn flush(pg: &PgStore, auth: &Authenticator) {
    let ids = auth.usage().take();
    if ids.is_empty() {
        return;
    }
    if let Err(err) = crate::store::pg::api_keys::touch(pg.pool(), &ids, crate::domain::clock::now()).await {
        tracing::warn!(error = %err, keys = ids.len(), "recording key use failed; retrying next pass");
        auth.usage().restore(ids);
    }
}
