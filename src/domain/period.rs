//! Budget periods (a Tollgate extension of the spec's `period_start` / `period_end` /
//! `rollover_policy`): which period inputs Tollgate can honour, validated once, and the one
//! text form of a period boundary. The roll itself happens in the ledger scripts
//! (`lua/lib.lua`, `roll`); nothing here does IO or knows HTTP.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Shortest period: a period shorter than a second would roll on nearly every request.
pub const PERIOD_MS_MIN: i64 = 1_000;
/// Longest period (100 years of 366 days): a limit on what a boundary may be.
pub const PERIOD_MS_MAX: i64 = 100 * 366 * 86_400_000;
/// Boundaries lie in these years (the calendar arithmetic in the scripts is exact there).
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;
const DAY_MS: i64 = 86_400_000;

/// How long each period lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodLength {
    /// The length of `[period_start, period_end)`, in ms.
    Fixed(i64),
    /// `P1D`: one UTC day.
    Day,
    /// `P1W`: seven UTC days.
    Week,
    /// `P1M`: one calendar month (UTC), from a start on day 1..=28.
    Month,
}

impl PeriodLength {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "P1D" => Self::Day,
            "P1W" => Self::Week,
            "P1M" => Self::Month,
            _ => return None,
        })
    }

    /// The ledger's form (`pl`): the designator, or the length in ms as a decimal.
    pub fn stored(self) -> String {
        match self {
            Self::Fixed(ms) => ms.to_string(),
            Self::Day => "P1D".into(),
            Self::Week => "P1W".into(),
            Self::Month => "P1M".into(),
        }
    }

    /// The length from its ledger form ([`PeriodLength::stored`]); `None` for anything else.
    pub fn from_stored(stored: &str) -> Option<Self> {
        Self::parse(stored).or_else(|| stored.parse().ok().filter(|ms| *ms > 0).map(Self::Fixed))
    }

    /// Whether periods of this length starting at `a_ms` and at `b_ms` keep one schedule: the
    /// two starts are a whole number of periods apart (months: the same day and UTC time).
    pub fn same_schedule(self, a_ms: i64, b_ms: i64) -> bool {
        let apart = |len: i64| (i128::from(a_ms) - i128::from(b_ms)).rem_euclid(i128::from(len)) == 0;
        match self {
            Self::Fixed(ms) => ms > 0 && apart(ms),
            Self::Day => apart(DAY_MS),
            Self::Week => apart(7 * DAY_MS),
            Self::Month => {
                let at = |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok();
                match (at(a_ms), at(b_ms)) {
                    (Some(a), Some(b)) => a.day() == b.day() && a.time() == b.time(),
                    _ => false,
                }
            }
        }
    }

    /// The `period` a budget was created with; `None` for a length given by its boundaries.
    pub fn designator(stored: &str) -> Option<&'static str> {
        ["P1D", "P1W", "P1M"].into_iter().find(|d| *d == stored)
    }
}

/// A budget's first period, as validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetPeriod {
    pub start_ms: i64,
    pub end_ms: i64,
    pub length: PeriodLength,
}

/// A refused period input: the request field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodError {
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> PeriodError {
    PeriodError { field, message: message.into() }
}

fn ms_of(field: &'static str, t: OffsetDateTime) -> Result<i64, PeriodError> {
    if !YEARS.contains(&t.to_offset(UtcOffset::UTC).year()) {
        return Err(refuse(field, "must lie between the years 1970 and 9999"));
    }
    let nanos = t.unix_timestamp_nanos();
    if nanos % 1_000_000 != 0 {
        return Err(refuse(field, "must have at most millisecond precision"));
    }
    i64::try_from(nanos / 1_000_000).map_err(|_| refuse(field, "is out of range"))
}

/// `ms` plus one calendar month (UTC), `None` past the supported years.
fn plus_month(ms: i64) -> Option<i64> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let (y, m) =
        if t.month() == Month::December { (t.year() + 1, Month::January) } else { (t.year(), t.month().next()) };
    let next = PrimitiveDateTime::new(Date::from_calendar_date(y, m, t.day()).ok()?, t.time()).assume_utc();
    i64::try_from(next.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Validates a budget's period inputs. `rollover_policy` is the requested policy (`NONE` when
/// absent). `Ok(None)`: no period (and no rollover to apply).
pub fn validate(
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    period: Option<&str>,
    rollover_policy: &str,
) -> Result<Option<BudgetPeriod>, PeriodError> {
    let designated = match period {
        Some(p) => Some(PeriodLength::parse(p).ok_or_else(|| refuse("period", "must be P1D, P1W or P1M"))?),
        None => None,
    };
    let Some(start) = start else {
        if end.is_some() {
            return Err(refuse("period_start", "is required with period_end"));
        }
        if designated.is_some() {
            return Err(refuse("period_start", "is required with period"));
        }
        if rollover_policy != "NONE" {
            return Err(refuse("rollover_policy", "needs a period (period_start with period_end or period)"));
        }
        return Ok(None);
    };
    let start_ms = ms_of("period_start", start)?;
    let end_ms = end.map(|e| ms_of("period_end", e)).transpose()?;
    let length = match designated {
        None => {
            let end_ms =
                end_ms.ok_or_else(|| refuse("period_end", "is required with period_start (or give period)"))?;
            if end_ms <= start_ms {
                return Err(refuse("period_end", "must be after period_start"));
            }
            PeriodLength::Fixed(end_ms - start_ms)
        }
        Some(l) => l,
    };
    let computed = match length {
        PeriodLength::Fixed(ms) => Some(start_ms + ms),
        PeriodLength::Day => Some(start_ms + DAY_MS),
        PeriodLength::Week => Some(start_ms + 7 * DAY_MS),
        PeriodLength::Month => {
            if start.to_offset(UtcOffset::UTC).day() > 28 {
                return Err(refuse("period_start", "of a P1M period must fall on day 1 to 28 of a month (UTC)"));
            }
            plus_month(start_ms)
        }
    }
    .ok_or_else(|| refuse("period_start", "is out of range"))?;
    if let Some(end_ms) = end_ms
        && end_ms != computed
    {
        if end_ms <= start_ms {
            return Err(refuse("period_end", "must be after period_start"));
        }
        return Err(refuse("period", "contradicts period_start and period_end (their distance is not one period)"));
    }
    let span = computed - start_ms;
    if span < PERIOD_MS_MIN {
        return Err(refuse("period_end", format!("must be at least {PERIOD_MS_MIN} ms after period_start")));
    }
    if span > PERIOD_MS_MAX || !YEARS.contains(&year_of(computed)) {
        return Err(refuse("period_end", "is too far after period_start"));
    }
    Ok(Some(BudgetPeriod { start_ms, end_ms: computed, length }))
}

fn year_of(ms: i64) -> i32 {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_or(i32::MAX, |t| t.year())
}

/// A period boundary as Tollgate stores and shows it: UTC, `Z`, milliseconds only when not
/// zero. The scripts write the same text when they roll a period (`lua/lib.lua`, `rfc3339`).
pub fn boundary_text(ms: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return String::new();
    };
    let millis = t.millisecond();
    let frac = if millis == 0 { String::new() } else { format!(".{millis:03}") };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_month_period_ends_one_calendar_month_later() {
        let p = validate(Some(datetime!(2026-01-15 00:00 UTC)), None, Some("P1M"), "NONE").unwrap().unwrap();
        assert_eq!(boundary_text(p.end_ms), "2026-02-15T00:00:00Z");
        let dec = validate(Some(datetime!(2026-12-01 06:30 UTC)), None, Some("P1M"), "NONE").unwrap().unwrap();
        assert_eq!(boundary_text(dec.end_ms), "2027-01-01T06:30:00Z");
    }

    #[test]
    fn bad_period_input_names_its_field() {
        let s = Some(datetime!(2026-01-01 00:00 UTC));
        let field = |r: Result<_, PeriodError>| r.unwrap_err().field;
        assert_eq!(field(validate(s, s, None, "NONE")), "period_end");
        assert_eq!(field(validate(s, Some(datetime!(2026-01-03 00:00 UTC)), Some("P1D"), "NONE")), "period");
        assert_eq!(field(validate(None, None, None, "CARRY_FORWARD")), "rollover_policy");
        assert_eq!(field(validate(s, None, Some("P2D"), "NONE")), "period");
        assert_eq!(field(validate(Some(datetime!(2026-01-31 00:00 UTC)), None, Some("P1M"), "NONE")), "period_start");
        assert_eq!(field(validate(s, None, None, "NONE")), "period_end");
        assert_eq!(field(validate(None, s, None, "NONE")), "period_start");
    }

    #[test]
    fn a_schedule_holds_the_starts_a_whole_number_of_periods_apart() {
        let jan = datetime!(2026-01-15 06:00 UTC).unix_timestamp() * 1_000;
        let mar = datetime!(2026-03-15 06:00 UTC).unix_timestamp() * 1_000;
        assert!(PeriodLength::Month.same_schedule(jan, mar));
        assert!(!PeriodLength::Month.same_schedule(jan, mar + 1));
        assert!(PeriodLength::Fixed(1_500).same_schedule(1_000, 7_000));
        assert!(!PeriodLength::Fixed(1_500).same_schedule(1_000, 7_001));
        assert!(PeriodLength::Day.same_schedule(mar, jan));
        assert_eq!(PeriodLength::from_stored("P1W"), Some(PeriodLength::Week));
        assert_eq!(PeriodLength::from_stored("1500"), Some(PeriodLength::Fixed(1_500)));
        assert_eq!(PeriodLength::from_stored(""), None);
    }

    #[test]
    fn boundaries_print_milliseconds_only_when_set() {
        assert_eq!(boundary_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(boundary_text(1_500), "1970-01-01T00:00:01.500Z");
    }
}
