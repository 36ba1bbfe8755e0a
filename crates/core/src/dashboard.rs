//! The numbers the console's dashboard draws: counts and sums per day over a window.
//!
//! Invariants:
//!
//! * A day is a UTC calendar day, numbered as days since 1970-01-01 ([`day_number`]): the unit
//!   the store groups rows by (integer division of Unix milliseconds), so the database and
//!   this module always agree on which day a row belongs to.
//! * A [`DailySeries`] has a value for every day of its window in every series — 0 where the
//!   store had no row — so charts and tables never have to guess what a missing day means.
//!   Rows outside the window are dropped, never folded into its ends.
//! * Sums saturate instead of overflowing: a total is for reading, and no input can make
//!   building it panic.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The periods the dashboard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    #[default]
    Days30,
    Days90,
}

impl Window {
    pub const ALL: [Window; 2] = [Window::Days30, Window::Days90];

    pub fn days(self) -> i64 {
        match self {
            Window::Days30 => 30,
            Window::Days90 => 90,
        }
    }

    /// The window a query asks for: `90` for the longer one, anything else the default.
    pub fn parse(asked: Option<&str>) -> Self {
        match asked.map(str::trim) {
            Some("90") => Window::Days90,
            _ => Window::Days30,
        }
    }
}

/// The day `at` falls on, as days since 1970-01-01 (UTC).
pub fn day_number(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis().div_euclid(DAY_MS)
}

/// The calendar date of day number `day`.
pub fn date_of(day: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(Duration::try_days(day)?))
        .unwrap_or(NaiveDate::MIN)
}

/// The first millisecond of day number `day`.
pub fn start_of_day(day: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(day.saturating_mul(DAY_MS)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// One named line of a chart: a value per day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub name: String,
    pub values: Vec<i64>,
}

/// Values per day for several named series over consecutive days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailySeries {
    /// Day number of the first day.
    pub first_day: i64,
    pub days: usize,
    pub series: Vec<Series>,
}

impl DailySeries {
    /// Builds the series of `days` days from `first_day` out of `(day, name, value)` rows as
    /// the store groups them. Series named in `order` come first, in that order, whether or not
    /// any row names them; others follow by name. Rows for the same day and name add up.
    pub fn from_rows(
        first_day: i64,
        days: usize,
        rows: impl IntoIterator<Item = (i64, String, i64)>,
        order: &[&str],
    ) -> Self {
        let mut series: Vec<Series> = order
            .iter()
            .map(|name| Series {
                name: (*name).to_owned(),
                values: vec![0; days],
            })
            .collect();
        let mut extra: Vec<Series> = Vec::new();
        for (day, name, value) in rows {
            let Some(index) = day
                .checked_sub(first_day)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < days)
            else {
                continue;
            };
            let line = match series.iter().position(|s| s.name == name) {
                Some(i) => &mut series[i],
                None => match extra.iter().position(|s| s.name == name) {
                    Some(i) => &mut extra[i],
                    None => {
                        extra.push(Series {
                            name,
                            values: vec![0; days],
                        });
                        extra.last_mut().expect("just pushed")
                    }
                },
            };
            line.values[index] = line.values[index].saturating_add(value);
        }
        extra.sort_by(|a, b| a.name.cmp(&b.name));
        series.extend(extra);
        Self {
            first_day,
            days,
            series,
        }
    }

    /// The dates of the window, in order.
    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        (0..self.days as i64).map(|i| date_of(self.first_day.saturating_add(i)))
    }

    /// The sum of every series per day.
    pub fn day_totals(&self) -> Vec<i64> {
        (0..self.days)
            .map(|i| {
                self.series
                    .iter()
                    .fold(0i64, |sum, s| sum.saturating_add(s.values[i]))
            })
            .collect()
    }

    /// The largest day total (0 for an empty window).
    pub fn peak(&self) -> i64 {
        self.day_totals().into_iter().max().unwrap_or(0).max(0)
    }

    /// The sum of everything.
    pub fn total(&self) -> i64 {
        self.day_totals()
            .into_iter()
            .fold(0i64, |sum, v| sum.saturating_add(v))
    }

    /// The sum of one series.
    pub fn series_total(&self, name: &str) -> i64 {
        self.series
            .iter()
            .filter(|s| s.name == name)
            .flat_map(|s| s.values.iter())
            .fold(0i64, |sum, v| sum.saturating_add(*v))
    }

    /// The series that have anything in them.
    pub fn nonzero(&self) -> impl Iterator<Item = &Series> {
        self.series
            .iter()
            .filter(|s| s.values.iter().any(|v| *v != 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn days_are_utc_calendar_days() {
        let midnight = Utc.with_ymd_and_hms(2031, 3, 1, 0, 0, 0).unwrap();
        let day = day_number(midnight);
        assert_eq!(day_number(midnight - Duration::milliseconds(1)), day - 1);
        assert_eq!(day_number(midnight + Duration::hours(23)), day);
        assert_eq!(date_of(day), NaiveDate::from_ymd_opt(2031, 3, 1).unwrap());
        assert_eq!(start_of_day(day), midnight);
        assert_eq!(day_number(Utc.timestamp_opt(0, 0).unwrap()), 0);
        assert_eq!(date_of(i64::MAX), NaiveDate::MIN, "no panic on nonsense");
    }

    #[test]
    fn every_day_of_the_window_has_a_value_in_every_series() {
        let rows = vec![
            (100, "valid".to_owned(), 3),
            (102, "expired".to_owned(), 1),
            (102, "valid".to_owned(), 2),
            (102, "valid".to_owned(), 1),
            (99, "valid".to_owned(), 50),
            (103, "valid".to_owned(), 50),
            (101, "blocked".to_owned(), i64::MAX),
            (101, "blocked".to_owned(), 1),
        ];
        let s = DailySeries::from_rows(100, 3, rows, &["valid", "not_found"]);
        let names: Vec<_> = s.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["valid", "not_found", "blocked", "expired"]);
        assert_eq!(s.series[0].values, [3, 0, 3], "rows outside dropped");
        assert_eq!(s.series[1].values, [0, 0, 0]);
        assert_eq!(s.series[2].values, [0, i64::MAX, 0], "saturates");
        assert_eq!(s.day_totals(), [3, i64::MAX, 4]);
        assert_eq!(s.peak(), i64::MAX);
        assert_eq!(s.series_total("valid"), 6);
        assert_eq!(s.nonzero().count(), 3);
        assert_eq!(s.dates().count(), 3);
        assert_eq!(Window::parse(Some("90")).days(), 90);
        assert_eq!(Window::parse(Some("<b>")), Window::Days30);
        assert_eq!(Window::parse(None), Window::Days30);
    }
}
