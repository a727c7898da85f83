//! When the webhook dispatcher next asks Postgres for due deliveries. Busy, it polls at its
//! configured rate; idle, the wait doubles up to [`IDLE_MAX`], so an idle instance makes a
//! fraction of a query per second. Work cuts the wait short: queuing a delivery wakes every
//! dispatcher of the process and keeps it polling at the busy rate for [`HOT_WINDOW`] (the
//! queuing transaction commits within it), and a retry this instance scheduled wakes it when
//! due. A delivery queued by another instance waits at most `IDLE_MAX`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The longest an idle dispatcher waits between two claims.
pub const IDLE_MAX: Duration = Duration::from_secs(8);
/// How long a wake keeps the dispatchers at the busy rate.
const HOT_WINDOW: Duration = Duration::from_secs(1);

static WAKE: Notify = Notify::const_new();
/// Until when (ms since the process's first wake clock reading) dispatchers poll at the busy rate.
static HOT_UNTIL_MS: AtomicI64 = AtomicI64::new(0);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn clock_ms() -> i64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    i64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// Deliveries were queued: dispatchers claim promptly.
pub fn wake() {
    let until = clock_ms().saturating_add(i64::try_from(HOT_WINDOW.as_millis()).unwrap_or(0));
    HOT_UNTIL_MS.fetch_max(until, Ordering::Relaxed);
    WAKE.notify_waiters();
}

/// One dispatcher's pace (shared by its loop and its delivery tasks).
pub struct Pacer {
    poll: Duration,
    /// The current idle wait in ms.
    idle_ms: AtomicU64,
    /// The soonest retry this dispatcher scheduled (ms on `clock_ms`), `i64::MAX` for none.
    next_retry_ms: AtomicI64,
}

impl Pacer {
    pub fn new(poll: Duration) -> Self {
        Self { poll, idle_ms: AtomicU64::new(ms(poll)), next_retry_ms: AtomicI64::new(i64::MAX) }
    }

    /// A retry scheduled `after` from now.
    pub fn retry_in(&self, after: Duration) {
        let at = clock_ms().saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
        self.next_retry_ms.fetch_min(at, Ordering::Relaxed);
    }

    /// After a claim: `worked` (something claimed, or no slot free) keeps the busy rate.
    pub fn claimed(&self, worked: bool) {
        let idle = if worked {
            ms(self.poll)
        } else {
            (self.idle_ms.load(Ordering::Relaxed) * 2).min(ms(IDLE_MAX.max(self.poll)))
        };
        self.idle_ms.store(idle, Ordering::Relaxed);
    }

    /// Waits until the next claim is due, or a wake.
    pub async fn wait(&self) {
        let now = clock_ms();
        let idle = Duration::from_millis(self.idle_ms.load(Ordering::Relaxed));
        let mut wait = if HOT_UNTIL_MS.load(Ordering::Relaxed) > now { self.poll } else { idle };
        let retry = self.next_retry_ms.load(Ordering::Relaxed);
        if retry != i64::MAX {
            let until = u64::try_from(retry.saturating_sub(now)).unwrap_or(0);
            wait = wait.min(Duration::from_millis(until));
            if until == 0 {
                self.next_retry_ms.store(i64::MAX, Ordering::Relaxed);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = WAKE.notified() => {}
        }
    }
}
