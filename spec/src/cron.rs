//! Cron schedules as Kubernetes CronJobs read them: five fields (minute, hour, day of month,
//! month, day of week) with `*`, lists, ranges, steps, month and weekday names, `?` for `*`, and
//! the macros `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
//! Written here rather than taken from a crate because the spec crate also compiles into the
//! dashboard's wasm: this is a few hundred lines, pure, with no time zone database (the API
//! server checks `timeZone` against its own when the CronJob is applied).
//!
//! Times are wall-clock minutes counted from 1970-01-01 00:00 in the schedule's own zone
//! ([`Minute`]); the caller converts (the engine with `chrono-tz`, `platform/jobs.rs::Clock`).

use std::fmt;

/// Minutes since 1970-01-01 00:00, wall clock.
pub type Minute = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64, // bits 0..=59
    hours: u32,   // bits 0..=23
    days: u32,    // bits 1..=31
    months: u16,  // bits 1..=12
    weekdays: u8, // bits 0..=6, Sunday 0
    /// Cron's rule: when both day fields are restricted, a day matches if either does.
    days_restricted: bool,
    weekdays_restricted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The first name stands for this number (months count from 1, weekdays from 0).
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
    },
    // 7 is Sunday too.
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        names_from: 0,
    },
];

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, CronError> {
        let text = text.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(CronError(format!(
                    "`{other}` is not a schedule macro; use @yearly, @monthly, @weekly, @daily or @hourly, or five fields"
                )));
            }
            other => other,
        };
        if expanded.starts_with("TZ=") || expanded.starts_with("CRON_TZ=") {
            return Err(CronError(
                "a schedule may not set its time zone; use the job's `timezone`".into(),
            ));
        }
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError(format!(
                "`{text}` has {} fields; a schedule has five: minute hour day-of-month month day-of-week (such as `*/15 * * * *`)",
                parts.len()
            )));
        }
        let mut bits = [0u64; 5];
        for (i, (part, field)) in parts.iter().zip(FIELDS.iter()).enumerate() {
            bits[i] = parse_field(part, field)?;
        }
        // Sunday as 7 is Sunday as 0.
        if bits[4] & (1 << 7) != 0 {
            bits[4] = (bits[4] | 1) & 0x7f;
        }
        Ok(Schedule {
            minutes: bits[0],
            hours: bits[1] as u32,
            days: bits[2] as u32,
            months: bits[3] as u16,
            weekdays: bits[4] as u8,
            days_restricted: !is_star(parts[2]),
            weekdays_restricted: !is_star(parts[4]),
        })
    }

    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let d = self.days & (1 << day) != 0;
        let w = self.weekdays & (1 << weekday) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => d || w,
            (true, false) => d,
            (false, true) => w,
            (false, false) => true,
        }
    }

    /// The first scheduled minute strictly after `after`, looking at most eight years ahead (a
    /// schedule such as `0 0 30 2 *` never fires: `None`).
    pub fn next_after(&self, after: Minute) -> Option<Minute> {
        let start = after.checked_add(1)?;
        let mut day = start.div_euclid(1440);
        let mut minute_of_day = start.rem_euclid(1440);
        for _ in 0..(366 * 8) {
            let (_, month, dom) = civil_from_days(day);
            let weekday = (day + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
            if self.months & (1 << month) != 0 && self.day_matches(dom, weekday) {
                let from_hour = (minute_of_day / 60) as u32;
                for hour in from_hour..24 {
                    if self.hours & (1 << hour) == 0 {
                        continue;
                    }
                    let from_minute = if hour == from_hour {
                        minute_of_day % 60
                    } else {
                        0
                    } as u32;
                    if let Some(m) = (from_minute..60).find(|m| self.minutes & (1 << m) != 0) {
                        return Some(day * 1440 + i64::from(hour) * 60 + i64::from(m));
                    }
                }
            }
            day += 1;
            minute_of_day = 0;
        }
        None
    }

    /// The time between the next two runs after `after`, in minutes: how late a run may be before
    /// it counts as missed is measured in these.
    pub fn interval_after(&self, after: Minute) -> Option<i64> {
        let first = self.next_after(after)?;
        Some(self.next_after(first)? - first)
    }
}

fn is_star(part: &str) -> bool {
    part == "*" || part == "?"
}

fn parse_field(part: &str, field: &Field) -> Result<u64, CronError> {
    let mut bits = 0u64;
    for item in part.split(',') {
        let bad = |why: &str| {
            CronError(format!(
                "`{item}` in the {} field {why} ({}–{})",
                field.name, field.min, field.max
            ))
        };
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad("has a step that is not a positive number"))?;
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if is_star(range) {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                value(a, field).ok_or_else(|| bad("is not a range of values"))?,
                value(b, field).ok_or_else(|| bad("is not a range of values"))?,
            )
        } else {
            let v = value(range, field).ok_or_else(|| bad("is not a value"))?;
            // `5/15` means from 5 to the end, every 15.
            (v, if step.is_some() { field.max } else { v })
        };
        if lo < field.min || hi > field.max {
            return Err(bad("is out of range"));
        }
        if lo > hi {
            return Err(bad("is a range that ends before it starts"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v = v.saturating_add(step.unwrap_or(1));
        }
    }
    Ok(bits)
}

fn value(text: &str, field: &Field) -> Option<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    let lower = text.to_ascii_lowercase();
    field
        .names
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as u32 + field.names_from)
}

/// (year, month 1–12, day 1–31) of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days from 1970-01-01 to a civil date (the inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> Minute {
        days_from_civil(y, mo, d) * 1440 + h * 60 + mi
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1000, 0, 59, 365, 11_016, 20_000, 20_789, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2026, 12, 3), 20_790);
    }

    #[test]
    fn the_next_run_follows_each_field() {
        let now = at(2026, 12, 3, 4, 17); // a Thursday
        let next = |s: &str| Schedule::parse(s).unwrap().next_after(now).unwrap();
        assert_eq!(next("* * * * *"), at(2026, 12, 3, 4, 18));
        assert_eq!(next("*/15 * * * *"), at(2026, 12, 3, 4, 30));
        assert_eq!(next("5 4 * * *"), at(2026, 12, 4, 4, 5));
        assert_eq!(next("0 2 * * *"), at(2026, 12, 4, 2, 0));
        assert_eq!(next("@hourly"), at(2026, 12, 3, 5, 0));
        assert_eq!(next("@monthly"), at(2027, 1, 1, 0, 0));
        assert_eq!(next("0 9 * * mon-fri"), at(2026, 12, 3, 9, 0));
        assert_eq!(next("0 9 * * SAT"), at(2026, 12, 5, 9, 0));
        assert_eq!(next("0 0 * * 7"), at(2026, 12, 6, 0, 0));
        assert_eq!(next("0 0 29 feb *"), at(2028, 2, 29, 0, 0));
        // Both day fields restricted: either matches (the 1st, or a Monday).
        assert_eq!(next("0 0 1 * 1"), at(2026, 12, 7, 0, 0));
        assert_eq!(Schedule::parse("0 0 30 2 *").unwrap().next_after(now), None);
    }

    #[test]
    fn huge_steps_and_odd_text_never_panic() {
        let s = Schedule::parse("59/4294967295 23/4294967295 * * *").unwrap();
        assert_eq!(s.next_after(0), Some(23 * 60 + 59));
        for odd in [
            "*/",
            "/5",
            "-",
            ",",
            "*,*",
            "a-b",
            "5/-1 * * * *",
            "\u{0} * * * *",
        ] {
            let _ = Schedule::parse(odd);
        }
    }

    #[test]
    fn intervals_are_the_gap_between_the_next_two_runs() {
        let now = at(2026, 12, 3, 4, 17);
        let interval = |s: &str| Schedule::parse(s).unwrap().interval_after(now).unwrap();
        assert_eq!(interval("* * * * *"), 1);
        assert_eq!(interval("*/15 * * * *"), 15);
        assert_eq!(interval("@daily"), 1440);
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (bad, says) in [
            ("* * * *", "has 4 fields"),
            ("60 * * * *", "out of range"),
            ("* 24 * * *", "out of range"),
            ("* * 0 * *", "out of range"),
            ("* * * 13 *", "out of range"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "ends before it starts"),
            ("* * * * funday", "is not a value"),
            ("@fortnightly", "not a schedule macro"),
            ("TZ=UTC 0 * * * *", "time zone"),
            ("", "has 0 fields"),
            ("* * * * 8", "out of range"),
            ("1-2-3 * * * *", "is not a range"),
            ("99999999999 * * * *", "is not a value"),
        ] {
            let e = Schedule::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
