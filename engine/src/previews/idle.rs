//! Whether a preview sleeps, is deleted, or is left alone: a pure function of what the scan knows,
//! tested over its whole table. The scan (`super::scan`) gathers the facts and carries it out.
//!
//! "Idle" is judged with what the platform has: a preview is idle when nothing was deployed to it
//! and nobody woke it for `sleepAfterMinutes` (`touched_at`), *and* Prometheus counted no request
//! to its namespace in that window. Without Prometheus the activity alone decides; when
//! Prometheus cannot be read this time the preview stays awake (an outage is not idleness).
//! `ttlHours` counts from the same `touched_at`: a preview nobody pushed to or woke for that long
//! is deleted, open or not (a pull request that still matters gets a push, or a wake, which
//! resets it).

use std::fmt;

use chrono::{DateTime, Utc};
use enclii_api::PreviewState;

/// Requests to the preview in the sleep window, as far as known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Traffic {
    /// Prometheus answered: this many requests (no series at all is 0).
    Requests(f64),
    /// No Prometheus is configured: activity alone decides.
    Unmonitored,
    /// Prometheus is configured but could not be read.
    Unreadable,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facts {
    pub state: PreviewState,
    pub now: DateTime<Utc>,
    /// The last deploy or wake.
    pub touched_at: DateTime<Utc>,
    pub ttl_hours: Option<i32>,
    pub sleep_after_minutes: Option<i32>,
    /// `None`: not measured yet (the decision says when it needs it).
    pub traffic: Option<Traffic>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Keep,
    /// Idle by activity: ask Prometheus, then decide again with the answer.
    Measure {
        window_minutes: i32,
    },
    Sleep {
        idle_minutes: i64,
    },
    Delete(Cause),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// Its pull request closed, its label went, or someone deleted it (already `deleting`).
    Requested,
    /// Untouched for `ttlHours`.
    Expired { ttl_hours: i32 },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Keep => f.write_str("kept as it is"),
            Verdict::Measure { window_minutes } => {
                write!(
                    f,
                    "idle by activity for {window_minutes} minutes: reading its requests"
                )
            }
            Verdict::Sleep { idle_minutes } => write!(
                f,
                "scaled to zero: no deploy, wake or request for {idle_minutes} minutes"
            ),
            Verdict::Delete(Cause::Requested) => f.write_str("deleted as requested"),
            Verdict::Delete(Cause::Expired { ttl_hours }) => write!(
                f,
                "expired: no deploy or wake for {ttl_hours}h (ttlHours); deleting it"
            ),
        }
    }
}

pub fn decide(f: &Facts) -> Verdict {
    let idle = f.now.signed_duration_since(f.touched_at);
    match f.state {
        PreviewState::Deleted => return Verdict::Keep,
        PreviewState::Deleting => return Verdict::Delete(Cause::Requested),
        PreviewState::Awake | PreviewState::Sleeping => {}
    }
    if let Some(ttl) = f.ttl_hours.filter(|h| *h > 0)
        && idle >= chrono::Duration::hours(i64::from(ttl))
    {
        return Verdict::Delete(Cause::Expired { ttl_hours: ttl });
    }
    if f.state != PreviewState::Awake {
        return Verdict::Keep;
    }
    let Some(after) = f.sleep_after_minutes.filter(|m| *m > 0) else {
        return Verdict::Keep;
    };
    if idle < chrono::Duration::minutes(i64::from(after)) {
        return Verdict::Keep;
    }
    let sleep = Verdict::Sleep {
        idle_minutes: idle.num_minutes(),
    };
    match f.traffic {
        None => Verdict::Measure {
            window_minutes: after,
        },
        Some(Traffic::Unmonitored) => sleep,
        Some(Traffic::Requests(n)) if n < 0.5 => sleep,
        Some(Traffic::Requests(_) | Traffic::Unreadable) => Verdict::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PreviewState::*;

    fn at(minutes_ago: i64) -> Facts {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Facts {
            state: Awake,
            now,
            touched_at: now - chrono::Duration::minutes(minutes_ago),
            ttl_hours: Some(24),
            sleep_after_minutes: Some(30),
            traffic: None,
        }
    }

    #[test]
    fn the_whole_table() {
        let with = |f: Facts, g: fn(&mut Facts)| {
            let mut f = f;
            g(&mut f);
            f
        };
        let cases: Vec<(&str, Facts, Verdict)> = vec![
            ("recently deployed", at(5), Verdict::Keep),
            ("one minute short of the window", at(29), Verdict::Keep),
            (
                "idle by activity: measure first",
                at(30),
                Verdict::Measure { window_minutes: 30 },
            ),
            (
                "no requests: sleep",
                with(at(45), |f| f.traffic = Some(Traffic::Requests(0.0))),
                Verdict::Sleep { idle_minutes: 45 },
            ),
            (
                "requests in the window: awake",
                with(at(45), |f| f.traffic = Some(Traffic::Requests(12.0))),
                Verdict::Keep,
            ),
            (
                "Prometheus unreadable: an outage is not idleness",
                with(at(45), |f| f.traffic = Some(Traffic::Unreadable)),
                Verdict::Keep,
            ),
            (
                "no Prometheus: activity decides",
                with(at(45), |f| f.traffic = Some(Traffic::Unmonitored)),
                Verdict::Sleep { idle_minutes: 45 },
            ),
            (
                "never sleeps without sleepAfterMinutes",
                with(at(600), |f| f.sleep_after_minutes = None),
                Verdict::Keep,
            ),
            (
                "already sleeping: left asleep",
                with(at(600), |f| f.state = Sleeping),
                Verdict::Keep,
            ),
            (
                "untouched for ttlHours: deleted, awake",
                at(24 * 60),
                Verdict::Delete(Cause::Expired { ttl_hours: 24 }),
            ),
            (
                "untouched for ttlHours: deleted, asleep",
                with(at(24 * 60 + 1), |f| f.state = Sleeping),
                Verdict::Delete(Cause::Expired { ttl_hours: 24 }),
            ),
            (
                "TTL wins over traffic",
                with(at(24 * 60), |f| f.traffic = Some(Traffic::Requests(99.0))),
                Verdict::Delete(Cause::Expired { ttl_hours: 24 }),
            ),
            (
                "no ttlHours: kept while the pull request is open",
                with(at(100_000), |f| {
                    f.ttl_hours = None;
                    f.state = Sleeping
                }),
                Verdict::Keep,
            ),
            (
                "being deleted: finish it",
                with(at(0), |f| f.state = Deleting),
                Verdict::Delete(Cause::Requested),
            ),
            (
                "gone: nothing",
                with(at(0), |f| f.state = Deleted),
                Verdict::Keep,
            ),
        ];
        for (name, facts, want) in cases {
            assert_eq!(decide(&facts), want, "{name}");
        }
    }

    #[test]
    fn verdicts_read_as_sentences() {
        assert_eq!(
            Verdict::Sleep { idle_minutes: 45 }.to_string(),
            "scaled to zero: no deploy, wake or request for 45 minutes"
        );
        assert_eq!(
            Verdict::Delete(Cause::Expired { ttl_hours: 24 }).to_string(),
            "expired: no deploy or wake for 24h (ttlHours); deleting it"
        );
    }
}
