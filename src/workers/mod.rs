//! Background loops owned by the application; each stops when the shutdown token fires.

pub mod auth_listener;
pub mod burn_rate;
pub mod expiry;
pub mod import_recovery;
pub mod key_expiry;
pub mod key_usage;
pub mod policy_publication;
pub mod provision_recovery;
pub mod retention;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `pass` every `interval` (a late tick waits, it never bursts) until `shutdown` fires.
pub async fn every<F, Fut>(interval: Duration, shutdown: CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        pass().await;
    }
}
