//! Listens on the Postgres auth channel and evicts what changed from this instance's key
//! cache, so revocations and tenant status changes take effect within about a second. While
//! the listener is disconnected the cache is offline (it serves the keys it has seen and
//! refuses others at once); every (re)connect marks the whole cache stale, since
//! notifications may have been lost meanwhile.

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
            Err(err) => {
                auth.cache().go_offline();
                auth.tokens().set_offline(true);
                tracing::warn!(error = %err, "auth listener disconnected; reconnecting");
            }
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
    auth.cache().back_online();
    auth.tokens().set_offline(false);
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = listener.recv() => r?,
        };
        match received {
            Received::Payload(payload) => {
                auth.cache().apply(&payload);
                auth.tokens().apply(&payload);
            }
            // The connection dropped; anything sent meanwhile is lost. Reconnect explicitly, so
            // the cache is offline until the channel is known to be back.
            Received::Lost => {
                return Err(crate::store::StoreError::Unavailable {
                    store: "postgres",
                    cause: "auth channel connection lost".into(),
                });
            }
        }
    }
}
