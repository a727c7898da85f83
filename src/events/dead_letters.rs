//! Dead letters: outbox entries the drain cannot store as events, set aside in Postgres with
//! their raw content so that the tenant's later entries keep flowing. Setting aside is
//! idempotent per (tenant, stream entry), so redelivery and racing drains count it once.
//! Only the drain writes here; it must not set aside anything over an outage.

use crate::store::StoreResult;
use crate::store::pg::{PgStore, dead_letters};
use crate::store::redis::streams::StreamEntry;

/// The entry is not an event (a field is missing, malformed or not UTF-8).
pub const UNDECODABLE: &str = "undecodable";
/// The entry is an event Postgres refused (e.g. a NUL in text, `\u0000` in JSON).
pub const UNSTORABLE: &str = "unstorable";
/// Every reason, the bounded label set of the dead-letter counter.
pub const REASONS: [&str; 2] = [UNDECODABLE, UNSTORABLE];

/// Error text kept per dead letter, in characters (the same bound as delivery errors).
const ERROR_CHARS_MAX: usize = 512;

/// Sets `entry` of `tenant` aside with `reason` (one of [`REASONS`]) and the error that put
/// it there. Counted and logged only by the call that inserted the row.
pub async fn set_aside(
    pg: &PgStore,
    tenant: &str,
    entry: &StreamEntry,
    reason: &'static str,
    error: &str,
) -> StoreResult<()> {
    // A Postgres message may quote the refused value, NUL included; text cannot hold it.
    let error: String = error.replace('\0', "\\0").chars().take(ERROR_CHARS_MAX).collect();
    let raw = entry.raw_netstrings();
    if dead_letters::insert(pg.pool(), tenant, &entry.id, &raw, reason, &error).await? {
        crate::telemetry::outbox_dead_letter(reason);
        tracing::error!(tenant, entry = %entry.id, reason, error, "outbox entry set aside as a dead letter");
    }
    Ok(())
}
