//! Calendar rules of the tax lots: the tax year of a sale and whether a holding is
//! long term. Both work on UTC calendar dates of event time, because the IRS counts
//! days, not hours: "start counting on the day following the day you acquired the
//! property; the day you disposed of it is part of your holding period" (IRS
//! Publication 550, "Holding Period"), and long term means held more than one year.

use riskstream_schemas::{Timestamp, MICROS_PER_DAY};
use serde::{Deserialize, Serialize};
use time::{Date, Month};

/// Julian day number of 1970-01-01, so `Timestamp::day()` maps onto `time::Date`.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// Short or long term, by the holding period of the shares sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Term {
    Short,
    Long,
}

/// The UTC calendar date of an event time (clamped to the dates `time` can hold).
pub fn date_of(ts: Timestamp) -> Date {
    let julian = ts.day().saturating_add(UNIX_EPOCH_JULIAN_DAY);
    let julian = i32::try_from(julian).unwrap_or(if julian < 0 { i32::MIN } else { i32::MAX });
    Date::from_julian_day(julian).unwrap_or(if julian < 0 { Date::MIN } else { Date::MAX })
}

/// The tax year of a sale: the UTC calendar year of its event time.
pub fn tax_year(ts: Timestamp) -> i32 {
    date_of(ts).year()
}

/// The first anniversary of a date. February 29 has none; its anniversary is taken
/// as February 28 of the next year, so shares acquired on 2024-02-29 turn long term
/// on 2025-03-01 (no IRS text settles this case; see the module doc).
fn anniversary(date: Date) -> Date {
    let year = date.year().saturating_add(1);
    date.replace_year(year).or_else(|_| Date::from_calendar_date(year, Month::February, 28)).unwrap_or(Date::MAX)
}

/// Long term when sold on a date after the first anniversary of `holding_start`'s
/// date: a lot whose holding period starts on 2025-03-10 is long term if sold on
/// 2026-03-11 or later.
pub fn term(holding_start: Timestamp, sold: Timestamp) -> Term {
    if date_of(sold) > anniversary(date_of(holding_start)) {
        Term::Long
    } else {
        Term::Short
    }
}

/// `ts` moved `days` calendar days earlier (the time of day is kept).
pub(crate) fn days_before(ts: Timestamp, days: i64) -> Timestamp {
    Timestamp(ts.micros().saturating_sub(days.saturating_mul(MICROS_PER_DAY)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn one_year_boundary_counts_calendar_days() {
        let bought = at("2025-03-10T15:00:00Z");
        assert_eq!(term(bought, at("2026-03-10T23:59:59Z")), Term::Short);
        assert_eq!(term(bought, at("2026-03-11T00:00:00Z")), Term::Long);
    }

    #[test]
    fn leap_day_anniversary_is_february_28() {
        let bought = at("2024-02-29T12:00:00Z");
        assert_eq!(term(bought, at("2025-02-28T12:00:00Z")), Term::Short);
        assert_eq!(term(bought, at("2025-03-01T12:00:00Z")), Term::Long);
    }

    #[test]
    fn tax_year_is_the_utc_year() {
        assert_eq!(tax_year(at("2025-12-31T23:59:59Z")), 2025);
        assert_eq!(tax_year(at("2026-01-01T00:00:00Z")), 2026);
        assert_eq!(tax_year(at("1969-12-31T12:00:00Z")), 1969);
    }
}
