//! Timestamps as the dashboard shows them (UTC, ISO-like, to the day, minute or second).
//!
//! Written out by hand rather than with chrono's `format("%Y-%m-%d …")`: the strftime parser and
//! its tables were a 28 KB chunk (before wasm-opt) shared by most pages, for four fixed layouts.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// `2026-11-27`
pub fn day(t: &DateTime<Utc>) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day())
}

/// `2026-11-27 14:03`
pub fn minute(t: &DateTime<Utc>) -> String {
    format!("{} {:02}:{:02}", day(t), t.hour(), t.minute())
}

/// `2026-11-27 14:03:09`
pub fn second(t: &DateTime<Utc>) -> String {
    format!("{} {}", day(t), clock(t))
}

/// `14:03:09`
pub fn clock(t: &DateTime<Utc>) -> String {
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn layouts_match_the_strftime_ones_they_replace() {
        for t in [
            Utc.with_ymd_and_hms(2026, 11, 27, 14, 3, 9).unwrap(),
            Utc.with_ymd_and_hms(987, 1, 2, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap(),
        ] {
            assert_eq!(day(&t), t.format("%Y-%m-%d").to_string());
            assert_eq!(minute(&t), t.format("%Y-%m-%d %H:%M").to_string());
            assert_eq!(second(&t), t.format("%Y-%m-%d %H:%M:%S").to_string());
            assert_eq!(clock(&t), t.format("%H:%M:%S").to_string());
        }
        assert_eq!(
            second(&Utc.with_ymd_and_hms(2026, 11, 27, 14, 3, 9).unwrap()),
            "2026-11-27 14:03:09"
        );
    }
}
