//! Listens on the Postgres auth channel and evicts what changed from this instance's key
//! cache, so revocations and tenant status changes take effect within about a second. While
//! the listener is disconnected notifications may be lost, so every (re)connect clears the
//! whole cache.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
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

async fn listen(pg: &PgStore, auth: &Authenticator, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pg.pool()).await?;
    // sqlx would reconnect silently and lose what was sent meanwhile; surface the loss instead.
    listener.ignore_pool_close_event(false);
    listener.listen(AUTH_CHANNEL).await?;
    auth.cache().clear();
    loop {
        let notification = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            n = listener.try_recv() => n?,
        };
        let Some(notification) = notification else {
            // The connection dropped; anything sent meanwhile is lost.
            auth.cache().clear();
            continue;
        };
        auth.cache().apply(notification.payload());
    }
}
