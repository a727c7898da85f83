//! The only modules that speak to a driver. `pg` holds the catalogue (tenants, keys, audit);
//! `redis` holds the ledger and the tenant-status mirror. Callers see [`StoreError`], never a
//! driver error: an outage is `Unavailable` (the API answers 503 + `Retry-After`), data the
//! store refuses is `Refused`, anything else is `Internal` (both 500).

pub mod pg;
pub mod redis;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{store} unavailable: {cause}")]
    Unavailable { store: &'static str, cause: String },
    #[error("store error: {0}")]
    Internal(String),
    /// The store refused this data (SQLSTATE classes 22 data exception, 23 integrity
    /// violation, 54 program limit, or a value that does not encode): sending it again fails
    /// the same way, whereas an `Internal` error may be the server's, not the data's.
    #[error("store refused the data: {0}")]
    Refused(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<StoreError> for crate::domain::Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable { store, cause } => Self::unavailable(store, cause),
            StoreError::Internal(cause) | StoreError::Refused(cause) => Self::internal(cause),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable { store: "postgres", cause: err.to_string() },
            // SQLSTATE classes that say "try again", not "this data is wrong": connection
            // exceptions (08), deadlocks and serialization failures (40), resources (53),
            // shutdowns and cancels (57). The outbox drain sets aside only what is `Internal`.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| ["08", "40", "53", "57"].iter().any(|class| c.starts_with(class))) =>
            {
                StoreError::Unavailable { store: "postgres", cause: err.to_string() }
            }
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| ["22", "23", "54"].iter().any(|class| c.starts_with(class))) =>
            {
                StoreError::Refused(err.to_string())
            }
            sqlx::Error::Encode(_) => StoreError::Refused(err.to_string()),
            _ => StoreError::Internal(err.to_string()),
        }
    }
}

impl From<::redis::RedisError> for StoreError {
    fn from(err: ::redis::RedisError) -> Self {
        if redis_error_is_transient(&err) {
            StoreError::Unavailable { store: "redis", cause: err.to_string() }
        } else {
            StoreError::Internal(err.to_string())
        }
    }
}

/// Whether a Redis error means "not now, try again" rather than a bug: connection refused,
/// dropped or timed out, a server still loading its dataset, and a cluster being reconfigured
/// (a redirect or slot move the driver could not follow in time, a failover in progress).
fn redis_error_is_transient(err: &::redis::RedisError) -> bool {
    use ::redis::{ErrorKind, ServerErrorKind as S};
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_cluster_error()
        || matches!(
            err.kind(),
            ErrorKind::Server(S::BusyLoading | S::MasterDown | S::ReadOnly | S::TryAgain | S::ClusterDown)
                | ErrorKind::ClusterConnectionNotFound
        )
}
