//! Wall-clock time for the catalogue and the event log. Ledger decisions never use it: they
//! read Redis `TIME` inside their script, one clock for every instance.

/// Now, truncated to the microsecond precision Postgres stores, so what a response shows
/// equals what a later read returns (and what the audit hash covers).
pub fn now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    let micros = now.nanosecond() / 1_000 * 1_000;
    now.replace_nanosecond(micros).unwrap_or(now)
}
