//! Per-source counters for the admin plane, each over a fixed window: failed authentications
//! (a source that fails [`AUTH_FAILURES_MAX`] times is refused with 429 until its window ends)
//! and refusal audit entries (at most [`REFUSAL_AUDITS_MAX`] per source and window; the rest
//! are counted and the next written entry says how many were left out), so a flood can neither
//! guess keys at speed nor fill the audit table. In memory, per instance; no IO.

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Failed admin authentications one source may make per window before it is refused.
pub const AUTH_FAILURES_MAX: u32 = 20;
/// Refusal audit entries written per source per window; a flood beyond is only counted.
pub const REFUSAL_AUDITS_MAX: u32 = 30;
/// The window of both counters.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Sources tracked at most; when full, expired windows are dropped, then everything (an
/// attacker spraying addresses resets counters, but cannot grow memory).
pub const SOURCES_MAX: usize = 10_000;

struct Window {
    started: Instant,
    count: u32,
    /// Events past the limit in this window (refusals not audited).
    over: u64,
}

pub struct SourceWindows {
    windows: DashMap<String, Window>,
    max: u32,
}

impl SourceWindows {
    pub fn new(max: u32) -> Self {
        Self { windows: DashMap::new(), max }
    }

    fn make_room(&self) {
        if self.windows.len() < SOURCES_MAX {
            return;
        }
        self.windows.retain(|_, w| w.started.elapsed() < WINDOW);
        if self.windows.len() >= SOURCES_MAX {
            self.windows.clear();
        }
    }

    /// How long `source` stays refused, when it has reached the limit in its window.
    pub fn blocked(&self, source: &str) -> Option<Duration> {
        let w = self.windows.get(source)?;
        let left = WINDOW.checked_sub(w.started.elapsed())?;
        (w.count >= self.max).then_some(left)
    }

    /// Counts one event. `Some(n)` when it is within the limit (`n` events past the limit
    /// went uncounted since the last one within it), `None` when it is over the limit.
    pub fn hit(&self, source: &str) -> Option<u64> {
        if !self.windows.contains_key(source) {
            self.make_room();
        }
        let mut w = self.windows.entry(source.to_string()).or_insert_with(|| Window {
            started: Instant::now(),
            count: 0,
            over: 0,
        });
        if w.started.elapsed() >= WINDOW {
            let over = w.over;
            *w = Window { started: Instant::now(), count: 1, over: 0 };
            return Some(over);
        }
        if w.count >= self.max {
            w.over += 1;
            return None;
        }
        w.count += 1;
        Some(std::mem::take(&mut w.over))
    }
}

/// The admin plane's two per-source limits.
pub struct AdminThrottle {
    pub auth_failures: SourceWindows,
    pub refusal_audits: SourceWindows,
}

impl Default for AdminThrottle {
    fn default() -> Self {
        Self {
            auth_failures: SourceWindows::new(AUTH_FAILURES_MAX),
            refusal_audits: SourceWindows::new(REFUSAL_AUDITS_MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_blocked_once_it_reaches_the_limit_and_others_are_not() {
        let w = SourceWindows::new(3);
        for _ in 0..3 {
            assert_eq!(w.blocked("a"), None);
            assert_eq!(w.hit("a"), Some(0));
        }
        assert!(w.blocked("a").is_some());
        assert_eq!(w.hit("a"), None);
        assert_eq!(w.hit("a"), None);
        assert_eq!(w.blocked("b"), None);
    }
}
