//! Timestamps on the wire: written as chrono writes them, read by a parser of our own.
//!
//! chrono reads RFC 3339 through its general format parser (`format::parse`, `Parsed`, the
//! scanners): about 20 KB of the dashboard's main wasm module, which every first visit downloads.
//! The API only ever sends two shapes, chrono's (`2026-11-27T20:39:29.123456789Z`) and
//! PostgreSQL's JSON (`2026-11-27T20:39:29.123456+00:00`), and this reads both (and any RFC 3339
//! timestamp with a four-digit year) in a few hundred bytes. Fields use it with
//! `#[serde(with = "crate::timestamp")]` (or `timestamp::option`).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    t.serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).ok_or_else(|| D::Error::custom(format!("not an RFC 3339 timestamp: {text:?}")))
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        t.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => parse(&text)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 timestamp: {text:?}"))),
        }
    }
}

/// `YYYY-MM-DD` `T` `HH:MM:SS[.fraction]` then `Z` or an offset (`±HH:MM`, `±HHMM`, `±HH`);
/// `t`, `z` and a space separator are accepted too. `None` for anything else, or a date or time
/// that does not exist. Fraction digits beyond nanoseconds are dropped.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut at = 19;
    let mut nanos = 0u32;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        // The first nine digits are nanoseconds; later ones are below chrono's precision.
        let kept = digits.min(9);
        nanos = num(at + 1..at + 1 + kept)? * 10u32.pow(9 - kept as u32);
        at += 1 + digits;
    }
    let offset_secs = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [_, _] => (num(at + 1..at + 3)?, 0),
                [_, _, b':', _, _] => (num(at + 1..at + 3)?, num(at + 4..at + 6)?),
                [_, _, _, _] => (num(at + 1..at + 3)?, num(at + 3..at + 5)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) as i64;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let local = date.and_hms_nano_opt(hour, minute, second, nanos)?;
    Some((local - Duration::seconds(offset_secs)).and_utc())
}

#[cfg(test)]
mod tests {
    use super::parse;
    use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

    /// The reference: chrono's own RFC 3339 reader.
    fn chrono(text: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    #[test]
    fn reads_what_chrono_writes_exactly() {
        let mut t = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        // Dates across leap years and month ends, with every kind of fraction chrono writes.
        for step in 0..2_000i64 {
            t = t
                + chrono::Duration::seconds(86_399 * 37 + step)
                + chrono::Duration::nanoseconds(step * 7_919_001);
            for format in [
                SecondsFormat::AutoSi,
                SecondsFormat::Secs,
                SecondsFormat::Millis,
                SecondsFormat::Nanos,
            ] {
                let text = t.to_rfc3339_opts(format, true);
                assert_eq!(parse(&text), chrono(&text), "{text}");
            }
            // serde's form (what the server sends) goes through the same path.
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(parse(json.trim_matches('"')), Some(t), "{json}");
        }
    }

    #[test]
    fn reads_postgres_json_and_other_offsets_as_chrono_does() {
        for text in [
            "2026-11-27T20:39:29.123456+00:00",
            "2026-11-27T20:39:29+05:30",
            "2026-11-27T20:39:29.5-08:00",
            "2026-01-01T00:30:00+01:00",
            "2024-02-29T23:59:59.999999999Z",
            "2026-11-27t20:39:29z",
            "2026-11-27 20:39:29Z",
        ] {
            assert_eq!(parse(text), chrono(text), "{text}");
            assert!(parse(text).is_some(), "{text}");
        }
        // Offsets without a colon, which chrono's strict reader refuses, mean the same.
        assert_eq!(
            parse("2026-11-27T20:39:29+0530"),
            parse("2026-11-27T20:39:29+05:30")
        );
        assert_eq!(
            parse("2026-11-27T20:39:29+05"),
            parse("2026-11-27T20:39:29+05:00")
        );
        // Digits past nanoseconds are dropped, not rounded.
        assert_eq!(
            parse("2026-11-27T20:39:29.1234567891Z"),
            parse("2026-11-27T20:39:29.123456789Z")
        );
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for text in [
            "",
            "2026-11-27",
            "2026-11-27T20:39:29",
            "2026-11-27T20:39:29.Z",
            "2026-02-30T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T20:60:00Z",
            "2026-11-27T20:39:29+24:00",
            "2026-11-27T20:39:29+5:30",
            "2026-11-27T20:39:29Zjunk",
            "2026/11/27T20:39:29Z",
            "２０２６-11-27T20:39:29Z",
            "-026-11-27T20:39:29Z",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn fields_read_and_write_through_it() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Row {
            #[serde(with = "crate::timestamp")]
            at: DateTime<Utc>,
            #[serde(default, with = "crate::timestamp::option")]
            done: Option<DateTime<Utc>>,
        }
        let row = Row {
            at: Utc.with_ymd_and_hms(2026, 11, 27, 20, 39, 29).unwrap(),
            done: None,
        };
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(json, r#"{"at":"2026-11-27T20:39:29Z","done":null}"#);
        assert_eq!(serde_json::from_str::<Row>(&json).unwrap(), row);
        assert_eq!(
            serde_json::from_str::<Row>(r#"{"at":"2026-11-27T20:39:29Z"}"#).unwrap(),
            row
        );
        let err = serde_json::from_str::<Row>(r#"{"at":"yesterday"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not an RFC 3339 timestamp: \"yesterday\""),
            "{err}"
        );
    }
}
