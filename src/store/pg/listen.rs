//! A dedicated Postgres connection that receives `NOTIFY` on one channel (the auth cache's
//! evictions). It never reconnects by itself: a dropped connection is reported, because what
//! was sent meanwhile is lost and the caller must act on that.

use sqlx::postgres::PgListener;

use super::PgStore;
use crate::store::StoreResult;

pub struct Listener(PgListener);

/// What [`Listener::recv`] saw.
#[derive(Debug)]
pub enum Received {
    /// A notification's payload.
    Payload(String),
    /// The connection dropped and was re-established; notifications sent meanwhile are lost.
    Lost,
}

impl Listener {
    /// Opens a connection with the store's settings.
    pub async fn connect(pg: &PgStore) -> StoreResult<Self> {
        let mut listener = PgListener::connect_with(pg.pool()).await?;
        // sqlx would reconnect silently and lose what was sent meanwhile; surface the loss instead.
        listener.ignore_pool_close_event(false);
        Ok(Self(listener))
    }

    pub async fn listen(&mut self, channel: &str) -> StoreResult<()> {
        Ok(self.0.listen(channel).await?)
    }

    /// Waits for the next notification (cancel-safe).
    pub async fn recv(&mut self) -> StoreResult<Received> {
        Ok(match self.0.try_recv().await? {
            Some(notification) => Received::Payload(notification.payload().to_string()),
            None => Received::Lost,
        })
    }
}
