//! Listing a tenant's reservations in creation order straight from the creation index: reads
//! a bounded batch at a time from where the previous page stopped, keeps what the caller's
//! filter accepts, and stops at a page's worth or at a bound on the entries examined, so a
//! request's work is bounded however many reservations the tenant has.

use super::Ledger;
use super::reads::{READ_BATCH, ReservationRecord};
use crate::domain::error::Result;

/// Most index entries one listing request examines; a page that stops here reports where,
/// so the next request continues the scan.
pub const SCAN_ENTRIES_MAX: usize = 10_000;

/// A place in the creation order: the reservation created at `created_at_ms` with this id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedAt {
    pub created_at_ms: i64,
    pub id: String,
}

impl CreatedAt {
    /// Whether an entry comes strictly after this place in the scan's direction (the index
    /// orders entries by time, then id).
    fn is_before(&self, ms: i64, id: &str, newest_first: bool) -> bool {
        let order = (ms, id).cmp(&(self.created_at_ms, self.id.as_str()));
        if newest_first { order.is_lt() } else { order.is_gt() }
    }
}

#[derive(Debug, Default)]
pub struct Scanned {
    /// The kept reservations in scan order, at most the number asked for.
    pub rows: Vec<ReservationRecord>,
    /// The last entry examined when the scan stopped at [`SCAN_ENTRIES_MAX`] before the index
    /// ended: more may follow from there.
    pub stopped_at: Option<CreatedAt>,
}

impl Ledger {
    /// Up to `want` reservations of `tenant` created within `created` (inclusive, ms; either
    /// end open) that `keep` accepts, in creation order (newest first or oldest first),
    /// strictly after `after`.
    pub async fn scan_by_creation(
        &self,
        tenant: &str,
        after: Option<&CreatedAt>,
        newest_first: bool,
        created: (Option<i64>, Option<i64>),
        want: usize,
        keep: impl Fn(&ReservationRecord) -> bool,
    ) -> Result<Scanned> {
        let mut out = Scanned::default();
        if want == 0 {
            return Ok(out);
        }
        let (window_start, window_end) = if newest_first { (created.1, created.0) } else { created };
        let beyond_end = |ms: i64| window_end.is_some_and(|end| if newest_first { ms < end } else { ms > end });
        // The next read starts at the `offset`-th entry created at `from_ms` or later (or
        // earlier, newest first); an offset steps past entries of one millisecond already read.
        let mut from_ms = match (after.map(|a| a.created_at_ms), window_start) {
            (Some(a), Some(w)) => Some(if newest_first { a.min(w) } else { a.max(w) }),
            (a, w) => a.or(w),
        };
        let (mut offset, mut examined) = (0, 0);
        loop {
            let mut batch = self.redis.created_from(tenant, from_ms, newest_first, offset, READ_BATCH).await?;
            let read = batch.len();
            // Entries come in order, so the first one past the window ends the scan.
            let ended = match batch.iter().position(|(_, ms)| beyond_end(*ms)) {
                Some(i) => {
                    batch.truncate(i);
                    true
                }
                None => read < READ_BATCH,
            };
            let Some((last_id, last_ms)) = batch.last().cloned() else {
                return Ok(out);
            };
            let fresh: Vec<String> = batch
                .iter()
                .filter(|(id, ms)| after.is_none_or(|a| a.is_before(*ms, id, newest_first)))
                .map(|(id, _)| id.clone())
                .collect();
            for record in self.reservations(tenant, &fresh).await? {
                if keep(&record) {
                    out.rows.push(record);
                    if out.rows.len() == want {
                        return Ok(out);
                    }
                }
            }
            if ended {
                return Ok(out);
            }
            examined += batch.len();
            if from_ms == Some(last_ms) {
                offset += batch.len();
            } else {
                offset = batch.iter().rev().take_while(|(_, ms)| *ms == last_ms).count();
                from_ms = Some(last_ms);
            }
            if examined >= SCAN_ENTRIES_MAX {
                out.stopped_at = Some(CreatedAt { created_at_ms: last_ms, id: last_id });
                return Ok(out);
            }
        }
    }
}
