//! Listens on the Postgres auth channel and evicts what changed from this instance's key
//! cache, so revocations and tenant status changes take effect within about a second. While
//! the listener is disconnected notifications may be lost, so every (re)connect clears the
//! whole cache.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::store::StoreResult;
use crate::store::pg::listen::{Listener, Received};
use crate::store::pg::{AUTH_CHANNEL, PgStore};

/// Pause before reconnecting after the listener connection fails.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

pub async fn run(pg: PgStore, auth: Arc<Authenticator>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match listen(&pg, &auth, &shutdown).await {
            Ok(()) => return,
            Err(err) => tracing::warn!(error = %err, "auth listener disconnected; reconnecting"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}

async fn listen(pg: &PgStore, auth: &Authenticator, shutdown: &CancellationToken) -> StoreResult<()> {
    let mut listener = Listener::connect(pg).await?;
    listener.listen(AUTH_CHANNEL).await?;
    auth.cache().clear();
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = listener.recv() => r?,
        };
        match received {
            Received::Payload(payload) => auth.cache().apply(&payload),
            // The connection dropped; anything sent meanwhile is lost.
            Received::Lost => auth.cache().clear(),
        }
    }
}
