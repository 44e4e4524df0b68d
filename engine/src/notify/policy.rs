//! The delivery worker's decisions, as plain functions: when to try a failed delivery again, whether
//! a destination may receive another message now or its burst is held for a digest, when a
//! destination counts as failing, and when the status page's prober announces a target unhealthy
//! or recovered. No I/O: the worker reads the inputs and writes the outcome.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How a delivery attempt ended, as far as deciding what comes next needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Worth trying again: a connection error, a timeout, a 5xx, 408 or 429 (with the receiver's
    /// `Retry-After`, if it said one).
    Transient {
        retry_after: Option<Duration>,
    },
    /// The receiver refused the message itself (another 4xx: the webhook was deleted, the URL is
    /// wrong): sending it again would be refused again.
    Permanent,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    RetryIn(Duration),
    GiveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub cap: Duration,
}

/// `attempts` is how many have been made, this one included; `jitter` in [0, 1) spreads retries of
/// many deliveries that failed together (a receiver back up is not hit by all of them at once).
pub fn next(attempt: Attempt, attempts: u32, retries: Retries, jitter: f64) -> Next {
    match attempt {
        Attempt::Delivered => Next::Done,
        Attempt::Permanent => Next::GiveUp,
        Attempt::Transient { .. } if attempts >= retries.max_attempts => Next::GiveUp,
        Attempt::Transient { retry_after } => {
            let doubled = retries
                .base
                .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
            let wait = doubled.min(retries.cap);
            // "Equal jitter": between half and all of the wait, never less than half.
            let jittered = wait.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
            // The receiver's own wish wins when it asks for longer, within the cap.
            let wait = match retry_after {
                Some(asked) => jittered.max(asked.min(retries.cap)),
                None => jittered,
            };
            Next::RetryIn(wait)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages a destination gets in one window; what comes beyond waits for a digest.
    pub per_window: u32,
    pub window: Duration,
}

/// A destination's current window: when it started and how many messages went out in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub started_at: Option<DateTime<Utc>>,
    pub sent: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send now; the destination's window becomes `window`.
    Send { window: Window },
    /// Over the limit: hold it; it goes out in the digest sent once the window ends at `until`.
    Hold { until: DateTime<Utc> },
}

/// Whether one more message may go to a destination now (a fixed window per destination: simple
/// to hold in one row, and a burst costs at most two windows' worth).
pub fn admit(current: Window, limit: RateLimit, now: DateTime<Utc>) -> Admission {
    let window = chrono::Duration::from_std(limit.window).unwrap_or(chrono::Duration::MAX);
    match current.started_at {
        Some(started) if now < started + window => {
            if current.sent < limit.per_window.max(1) {
                Admission::Send {
                    window: Window {
                        started_at: Some(started),
                        sent: current.sent + 1,
                    },
                }
            } else {
                Admission::Hold {
                    until: started + window,
                }
            }
        }
        _ => Admission::Send {
            window: Window {
                started_at: Some(now),
                sent: 1,
            },
        },
    }
}

/// A destination is shown failing after this many failed attempts in a row.
pub fn failing(consecutive_failures: u32, threshold: u32) -> bool {
    consecutive_failures >= threshold.max(1)
}

/// A change the status page's prober announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    Unhealthy,
    Recovered,
}

/// `recent` is the target's latest probes, newest first (`true`: up); `open` whether it was
/// announced unhealthy and not yet recovered. One failed probe is not an outage (a deploy's
/// restart, a dropped packet): `failures` in a row are. Each outage is announced once, and its end
/// once, however long it lasts: never a message per probe.
pub fn status_alert(open: bool, recent: &[bool], failures: usize) -> Option<Alert> {
    let failures = failures.max(1);
    match (open, recent.first()) {
        (true, Some(true)) => Some(Alert::Recovered),
        (false, Some(false))
            if recent.len() >= failures && recent[..failures].iter().all(|up| !up) =>
        {
            Some(Alert::Unhealthy)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRIES: Retries = Retries {
        max_attempts: 5,
        base: Duration::from_secs(2),
        cap: Duration::from_secs(60),
    };

    #[test]
    fn a_transient_failure_is_retried_with_doubling_waits_up_to_the_cap_then_given_up() {
        let t = Attempt::Transient { retry_after: None };
        // jitter 1.0: the whole wait.
        assert_eq!(
            next(t, 1, RETRIES, 1.0),
            Next::RetryIn(Duration::from_secs(2))
        );
        assert_eq!(
            next(t, 2, RETRIES, 1.0),
            Next::RetryIn(Duration::from_secs(4))
        );
        assert_eq!(
            next(t, 4, RETRIES, 1.0),
            Next::RetryIn(Duration::from_secs(16))
        );
        let long = Retries {
            max_attempts: 50,
            ..RETRIES
        };
        assert_eq!(
            next(t, 10, long, 1.0),
            Next::RetryIn(Duration::from_secs(60))
        );
        assert_eq!(
            next(t, 40, long, 1.0),
            Next::RetryIn(Duration::from_secs(60))
        );
        assert_eq!(next(t, 5, RETRIES, 1.0), Next::GiveUp);
        assert_eq!(next(t, 6, RETRIES, 1.0), Next::GiveUp);
    }

    #[test]
    fn jitter_spreads_a_wait_between_its_half_and_its_whole() {
        let t = Attempt::Transient { retry_after: None };
        assert_eq!(
            next(t, 3, RETRIES, 0.0),
            Next::RetryIn(Duration::from_secs(4))
        );
        assert_eq!(
            next(t, 3, RETRIES, 0.5),
            Next::RetryIn(Duration::from_secs(6))
        );
        assert_eq!(
            next(t, 3, RETRIES, 7.0),
            Next::RetryIn(Duration::from_secs(8))
        );
    }

    #[test]
    fn a_receivers_retry_after_is_honoured_within_the_cap() {
        let asked = |s| Attempt::Transient {
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(
            next(asked(30), 1, RETRIES, 1.0),
            Next::RetryIn(Duration::from_secs(30))
        );
        assert_eq!(
            next(asked(1), 3, RETRIES, 1.0),
            Next::RetryIn(Duration::from_secs(8))
        );
        assert_eq!(
            next(asked(3600), 1, RETRIES, 1.0),
            Next::RetryIn(Duration::from_secs(60))
        );
    }

    #[test]
    fn delivered_is_done_and_a_refused_message_is_not_sent_again() {
        assert_eq!(next(Attempt::Delivered, 1, RETRIES, 0.3), Next::Done);
        assert_eq!(next(Attempt::Permanent, 1, RETRIES, 0.3), Next::GiveUp);
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    const LIMIT: RateLimit = RateLimit {
        per_window: 3,
        window: Duration::from_secs(60),
    };

    #[test]
    fn a_destination_gets_its_limit_per_window_and_the_rest_is_held_until_the_window_ends() {
        let fresh = Window {
            started_at: None,
            sent: 0,
        };
        let mut w = fresh;
        for n in 1..=3 {
            match admit(w, LIMIT, at(n)) {
                Admission::Send { window } => {
                    assert_eq!(window.sent, n as u32);
                    assert_eq!(window.started_at, Some(at(1)));
                    w = window;
                }
                other => panic!("message {n} should go out, got {other:?}"),
            }
        }
        assert_eq!(admit(w, LIMIT, at(10)), Admission::Hold { until: at(61) });
        assert_eq!(admit(w, LIMIT, at(60)), Admission::Hold { until: at(61) });
        // The window ends: a new one starts with this message.
        assert_eq!(
            admit(w, LIMIT, at(61)),
            Admission::Send {
                window: Window {
                    started_at: Some(at(61)),
                    sent: 1
                }
            }
        );
    }

    #[test]
    fn a_limit_of_zero_still_lets_one_message_through_per_window() {
        let zero = RateLimit {
            per_window: 0,
            ..LIMIT
        };
        let w = Window {
            started_at: Some(at(0)),
            sent: 0,
        };
        assert!(matches!(admit(w, zero, at(1)), Admission::Send { .. }));
    }

    #[test]
    fn failing_after_the_threshold_of_failures_in_a_row() {
        assert!(!failing(0, 3));
        assert!(!failing(2, 3));
        assert!(failing(3, 3));
        assert!(failing(1, 0));
    }

    #[test]
    fn an_outage_is_announced_once_after_failures_in_a_row_and_its_end_once() {
        // newest first
        assert_eq!(status_alert(false, &[false], 2), None);
        assert_eq!(status_alert(false, &[false, true], 2), None);
        assert_eq!(
            status_alert(false, &[false, false], 2),
            Some(Alert::Unhealthy)
        );
        assert_eq!(
            status_alert(false, &[false, false, false, true], 2),
            Some(Alert::Unhealthy)
        );
        // Already announced: nothing more while it lasts.
        assert_eq!(status_alert(true, &[false, false, false], 2), None);
        assert_eq!(
            status_alert(true, &[true, false, false], 2),
            Some(Alert::Recovered)
        );
        // Up and not announced: nothing.
        assert_eq!(status_alert(false, &[true, false, false], 2), None);
        assert_eq!(status_alert(false, &[], 2), None);
        assert_eq!(status_alert(true, &[], 2), None);
    }
}
