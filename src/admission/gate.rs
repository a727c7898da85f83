//! The priority admission gate: at most `max_concurrent` runtime requests in flight on this
//! instance, and each priority class admitted only while the in-flight count is below its
//! share of that maximum, so bulk traffic is shed first and premium last.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

pub use crate::domain::tier::Class;

pub struct Gate {
    max: usize,
    /// Percent of `max` each class may fill, by `Class::index`.
    shares_pct: [u8; 3],
    in_flight: AtomicUsize,
    per_class: [AtomicUsize; 3],
}

/// Holds one in-flight slot; released when dropped (after the response is built).
pub struct Permit {
    gate: Arc<Gate>,
    class: Class,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
        let left = self.gate.per_class[self.class.index()].fetch_sub(1, Ordering::AcqRel) - 1;
        crate::telemetry::gate_in_flight(self.class.as_str(), left);
    }
}

/// What `GET /v1/admin/priority/stats` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateStats {
    pub current_concurrent: usize,
    pub max_concurrent: usize,
    pub per_tier_concurrent: std::collections::BTreeMap<&'static str, usize>,
    pub per_tier_threshold_pct: std::collections::BTreeMap<&'static str, u8>,
}

impl Gate {
    pub fn new(max: usize, shares_pct: [u8; 3]) -> Arc<Gate> {
        Arc::new(Gate {
            max,
            shares_pct,
            in_flight: AtomicUsize::new(0),
            per_class: [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)],
        })
    }

    /// How many requests may be in flight when a request of `class` is admitted.
    fn limit(&self, class: Class) -> usize {
        self.max * usize::from(self.shares_pct[class.index()]) / 100
    }

    /// Admits a request of `class` if the in-flight count is below the class's share.
    pub fn try_admit(self: &Arc<Self>, class: Class) -> Option<Permit> {
        let limit = self.limit(class);
        let mut current = self.in_flight.load(Ordering::Acquire);
        loop {
            if current >= limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        let now = self.per_class[class.index()].fetch_add(1, Ordering::AcqRel) + 1;
        crate::telemetry::gate_in_flight(class.as_str(), now);
        Some(Permit { gate: self.clone(), class })
    }

    pub fn stats(&self) -> GateStats {
        GateStats {
            current_concurrent: self.in_flight.load(Ordering::Acquire),
            max_concurrent: self.max,
            per_tier_concurrent: Class::ALL
                .iter()
                .map(|c| (c.as_str(), self.per_class[c.index()].load(Ordering::Acquire)))
                .collect(),
            per_tier_threshold_pct: Class::ALL.iter().map(|c| (c.as_str(), self.shares_pct[c.index()])).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_is_shed_at_its_share_while_premium_still_gets_in() {
        let gate = Gate::new(10, [100, 80, 50]);
        let bulk: Vec<_> = (0..5).map(|_| gate.try_admit(Class::Bulk).unwrap()).collect();
        assert!(gate.try_admit(Class::Bulk).is_none());
        let standard: Vec<_> = (0..3).map(|_| gate.try_admit(Class::Standard).unwrap()).collect();
        assert!(gate.try_admit(Class::Standard).is_none());
        let premium: Vec<_> = (0..2).map(|_| gate.try_admit(Class::Premium).unwrap()).collect();
        assert!(gate.try_admit(Class::Premium).is_none());
        assert_eq!(gate.stats().current_concurrent, 10);
        drop((bulk, standard, premium));
        assert_eq!(gate.stats().current_concurrent, 0);
    }
}
