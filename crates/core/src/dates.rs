//! Dates as Keyturn takes and computes them.
//!
//! Every date Keyturn accepts or derives lies between the Unix epoch and the last second of the
//! year 9999. Beyond that a date is a typo or an attack, the Cryptolens SDKs cannot read it, and
//! adding days to it can overflow what a date can hold, which panics. So dates from outside are
//! parsed and range-checked here, and arithmetic on dates that came from outside (an expiry
//! plus an extension, a provider's period end plus grace days) is checked here, with an error
//! naming the field that asked for it.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};

use crate::DomainError;

/// 9999-12-31T23:59:59Z.
const LATEST_SECONDS: i64 = 253_402_300_799;

/// What a date field accepts, for error messages.
pub const FORMS: &str =
    "a date as YYYY-MM-DD or an RFC 3339 time such as 2031-05-01T12:00:00Z, from 1970 to 9999";

/// The earliest date Keyturn accepts: 1970-01-01T00:00:00Z.
pub fn earliest() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

/// The latest date Keyturn accepts: 9999-12-31T23:59:59Z.
pub fn latest() -> DateTime<Utc> {
    DateTime::from_timestamp(LATEST_SECONDS, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn invalid(field: &'static str) -> DomainError {
    DomainError::new(field, format!("must be {FORMS}"))
}

/// A date given as `YYYY-MM-DD` (midnight UTC that day) or as an RFC 3339 time.
pub fn parse(field: &'static str, input: &str) -> Result<DateTime<Utc>, DomainError> {
    let input = input.trim();
    let at = match NaiveDate::parse_from_str(input, "%Y-%m-%d") {
        Ok(day) if input.len() == 10 => day.and_time(NaiveTime::MIN).and_utc(),
        _ => DateTime::parse_from_rfc3339(input)
            .map_err(|_| invalid(field))?
            .with_timezone(&Utc),
    };
    in_range(field, at)
}

/// `at`, if it lies in the range Keyturn accepts.
pub fn in_range(field: &'static str, at: DateTime<Utc>) -> Result<DateTime<Utc>, DomainError> {
    if at < earliest() || at > latest() {
        return Err(invalid(field));
    }
    Ok(at)
}

/// `from` moved by `days` (negative moves back); an error naming `field` when that leaves the
/// range.
pub fn add_days(
    field: &'static str,
    from: DateTime<Utc>,
    days: i64,
) -> Result<DateTime<Utc>, DomainError> {
    TimeDelta::try_days(days)
        .and_then(|d| from.checked_add_signed(d))
        .filter(|at| (earliest()..=latest()).contains(at))
        .ok_or_else(|| {
            DomainError::new(
                field,
                format!(
                    "{days} days from {} leaves the dates Keyturn accepts (1970 to 9999)",
                    from.format("%Y-%m-%d")
                ),
            )
        })
}

/// `from` plus a span that validation has already bounded (a plan's period, a lease, a file's
/// lifetime) on a date in range, which cannot leave the range; saturates at [`latest`] rather
/// than panic should that ever be wrong.
pub fn later(from: DateTime<Utc>, span: TimeDelta) -> DateTime<Utc> {
    from.checked_add_signed(span)
        .map_or(latest(), |at| at.min(latest()))
}

/// [`later`] by whole days.
pub fn later_by_days(from: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    later(from, TimeDelta::try_days(days).unwrap_or(TimeDelta::MAX))
}

/// [`later`] by seconds.
pub fn later_by_seconds(from: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    later(
        from,
        TimeDelta::try_seconds(seconds).unwrap_or(TimeDelta::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_or_a_time() {
        assert_eq!(
            parse("expires", "2031-05-01").unwrap().to_rfc3339(),
            "2031-05-01T00:00:00+00:00"
        );
        assert_eq!(
            parse("expires", "2031-05-01T12:30:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2031-05-01T10:30:00+00:00"
        );
        for bad in [
            "",
            "tomorrow",
            "2031-02-30",
            "2031-5-1",
            "31/12/2031",
            "+262142-12-31T23:59:59Z",
            "10000-01-01",
            "1969-12-31T23:59:59Z",
        ] {
            let e = parse("expires", bad).unwrap_err();
            assert_eq!(e.field, "expires");
            assert!(e.message.contains("YYYY-MM-DD"), "{bad}: {e}");
        }
        assert_eq!(parse("expires", "9999-12-31T23:59:59Z").unwrap(), latest());
    }

    #[test]
    fn arithmetic_is_checked_at_both_ends_of_the_range() {
        let end = latest() - TimeDelta::days(1);
        assert_eq!(add_days("days", end, 1).unwrap(), latest());
        let e = add_days("days", end, 2).unwrap_err();
        assert_eq!(e.field, "days");
        assert!(add_days("days", DateTime::<Utc>::MAX_UTC, 1).is_err());
        assert!(add_days("days", earliest(), -1).is_err());
        assert!(add_days("days", end, i64::MAX).is_err());
        assert!(add_days("days", end, i64::MIN).is_err());
    }

    #[test]
    fn bounded_spans_saturate_instead_of_panicking() {
        assert_eq!(later_by_days(latest(), 10), latest());
        assert_eq!(
            later_by_seconds(DateTime::<Utc>::MAX_UTC, i64::MAX),
            latest()
        );
        let at = earliest();
        assert_eq!(later_by_days(at, 1), at + TimeDelta::days(1));
    }
}
