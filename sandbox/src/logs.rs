//! What simulated containers log, and the kubelet's log query (`/containerLogs/…?follow=…`).
//! Pure: a container's log is a function of what it is and when it ran, so a query at any moment
//! (with `tailLines`, `sinceSeconds`, …) and a follow that polls give consistent lines.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// What a container writes to its log.
#[derive(Clone, Debug, PartialEq)]
pub enum LogKind {
    /// A web service: one access-log line per interval while it runs.
    Requests { service: String },
    /// A container that starts and then crashes.
    Crash { service: String, message: String },
    /// Lines spread evenly over the time the container takes (a build).
    Paced { lines: Vec<String>, over: Duration },
    /// Lines written as it starts (a short init container).
    Immediate { lines: Vec<String> },
}

/// One run of a container: from its start to its exit, if it has exited.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Run {
    pub started: Timestamp,
    pub finished: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub at: Timestamp,
    pub text: String,
}

/// How many earlier lines a service's log shows: its log has no history beyond that.
const SERVICE_HISTORY: i64 = 5;

impl LogKind {
    /// The lines the run wrote after `after` (exclusive) up to `upto` (inclusive); with no
    /// `after`, everything so far (for a service, its last five lines).
    pub fn lines(
        &self,
        run: &Run,
        after: Option<Timestamp>,
        upto: Timestamp,
        interval: Duration,
    ) -> Vec<Line> {
        let end = match run.finished {
            Some(f) if f < upto => f,
            _ => upto,
        };
        let wanted = |at: Timestamp| at <= end && after.is_none_or(|a| at > a);
        match self {
            LogKind::Requests { service } => {
                let step = interval.max(Duration::from_millis(1));
                let step_ns = step.as_nanos() as i128;
                let elapsed = end.duration_since(run.started).as_nanos();
                if elapsed < 0 {
                    return Vec::new();
                }
                let last = (elapsed / step_ns) as i64;
                let first = match after {
                    None => (last - SERVICE_HISTORY + 1).max(0),
                    Some(a) => {
                        let since = a.duration_since(run.started).as_nanos();
                        if since < 0 {
                            0
                        } else {
                            (since / step_ns) as i64 + 1
                        }
                    }
                };
                (first..=last)
                    .map(|k| {
                        let at = at_offset(run.started, step * k as u32);
                        Line {
                            at,
                            text: format!(
                                "{} {service} GET /health 200 {}ms request={k}",
                                millis(at),
                                1 + k % 7
                            ),
                        }
                    })
                    .filter(|l| wanted(l.at))
                    .collect()
            }
            LogKind::Crash { service, message } => {
                let mut out = vec![Line {
                    at: run.started,
                    text: format!("{} {service} starting", millis(run.started)),
                }];
                if let Some(f) = run.finished {
                    out.push(Line {
                        at: f,
                        text: format!("{} {service} fatal: {message}", millis(f)),
                    });
                }
                out.retain(|l| wanted(l.at));
                out
            }
            LogKind::Paced { lines, over } => {
                let n = lines.len().max(1) as u32;
                lines
                    .iter()
                    .enumerate()
                    .map(|(j, text)| Line {
                        at: at_offset(run.started, *over * j as u32 / n),
                        text: text.clone(),
                    })
                    .filter(|l| wanted(l.at))
                    .collect()
            }
            LogKind::Immediate { lines } => lines
                .iter()
                .map(|text| Line {
                    at: run.started,
                    text: text.clone(),
                })
                .filter(|l| wanted(l.at))
                .collect(),
        }
    }

    /// Whether the run has written every line it ever will by `at` (a follow can end).
    pub fn complete(&self, run: &Run, at: Timestamp) -> bool {
        run.finished.is_some_and(|f| f <= at)
    }
}

fn at_offset(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(t)
}

/// RFC 3339 with milliseconds, as the services' own log lines write time.
pub fn millis(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A line as the kubelet sends it: with `timestamps`, the time it was written (RFC 3339 with
/// nanoseconds) and a space first.
pub fn render(line: &Line, timestamps: bool) -> String {
    if timestamps {
        format!("{} {}\n", rfc3339_nano(line.at), line.text)
    } else {
        format!("{}\n", line.text)
    }
}

/// Go's `time.RFC3339Nano`: trailing zeros of the fraction dropped.
fn rfc3339_nano(t: Timestamp) -> String {
    let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.subsec_nanosecond();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let fraction = format!("{nanos:09}");
    format!("{base}.{}Z", fraction.trim_end_matches('0'))
}

/// The kubelet's `PodLogOptions`, from the query the API server forwards.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogQuery {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    pub since: Option<Since>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Since {
    Seconds(i64),
    Time(Timestamp),
}

impl LogQuery {
    /// Errors name the parameter that is wrong (the kubelet answers them with 400).
    pub fn from_params(params: &HashMap<String, String>) -> Result<Self, String> {
        let flag = |name: &str| -> Result<bool, String> {
            match params.get(name).map(String::as_str) {
                None => Ok(false),
                // Go's strconv.ParseBool.
                Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
                Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
                Some(other) => Err(format!("{name}: {other:?} is not a boolean")),
            }
        };
        let number = |name: &str, min: i64| -> Result<Option<i64>, String> {
            match params.get(name) {
                None => Ok(None),
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if n >= min => Ok(Some(n)),
                    _ => Err(format!(
                        "{name}: {v:?} must be an integer of at least {min}"
                    )),
                },
            }
        };
        // `tail` is the older spelling; `all` means no limit.
        let tail_lines = match params.get("tail").map(String::as_str) {
            Some("all") => None,
            Some(t) => Some(
                t.parse::<usize>()
                    .map_err(|_| format!("tail: {t:?} must be a number or \"all\""))?,
            ),
            None => number("tailLines", 0)?.map(|n| n as usize),
        };
        let since_seconds = number("sinceSeconds", 1)?;
        let since_time = params
            .get("sinceTime")
            .map(|t| {
                t.parse::<Timestamp>()
                    .map_err(|_| format!("sinceTime: {t:?} is not an RFC 3339 time"))
            })
            .transpose()?;
        let since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err("at most one of sinceTime or sinceSeconds may be specified".into());
            }
            (Some(s), None) => Some(Since::Seconds(s)),
            (None, Some(t)) => Some(Since::Time(t)),
            (None, None) => None,
        };
        Ok(Self {
            follow: flag("follow")?,
            previous: flag("previous")?,
            timestamps: flag("timestamps")?,
            tail_lines,
            limit_bytes: number("limitBytes", 1)?.map(|n| n as usize),
            since,
        })
    }

    /// The lines a query shows first (before following): those since the cutoff, then the tail.
    pub fn select(&self, mut lines: Vec<Line>, now: Timestamp) -> Vec<Line> {
        let cutoff = match self.since {
            Some(Since::Seconds(s)) => Some(now - SignedDuration::from_secs(s)),
            Some(Since::Time(t)) => Some(t),
            None => None,
        };
        if let Some(c) = cutoff {
            lines.retain(|l| l.at >= c);
        }
        if let Some(n) = self.tail_lines {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        lines
    }
}

/// Counts bytes against `limitBytes`: what of a chunk may still be sent.
#[derive(Debug)]
pub struct ByteBudget(Option<usize>);

impl ByteBudget {
    pub fn new(limit: Option<usize>) -> Self {
        Self(limit)
    }

    /// The part of `text` within the budget (cut at a character boundary), or `None` once spent.
    pub fn take(&mut self, mut text: String) -> Option<String> {
        let Some(left) = self.0.as_mut() else {
            return Some(text);
        };
        if *left == 0 {
            return None;
        }
        if text.len() > *left {
            let mut cut = *left;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        *left -= text.len();
        Some(text)
    }

    pub fn spent(&self) -> bool {
        self.0 == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const HALF_SECOND: Duration = Duration::from_millis(500);

    #[test]
    fn a_service_shows_its_last_five_requests_then_one_per_interval() {
        let kind = LogKind::Requests {
            service: "api".into(),
        };
        let run = Run {
            started: t("2026-12-01T10:00:00Z"),
            finished: None,
        };
        let now = t("2026-12-01T10:00:10.2Z");
        let history = kind.lines(&run, None, now, HALF_SECOND);
        assert_eq!(history.len(), 5);
        assert_eq!(
            history[4].text,
            "2026-12-01T10:00:10.000Z api GET /health 200 7ms request=20"
        );
        assert_eq!(history[0].at, t("2026-12-01T10:00:08Z"));
        // Following: exactly the lines written since.
        let next = kind.lines(&run, Some(now), t("2026-12-01T10:00:11Z"), HALF_SECOND);
        let requests: Vec<&str> = next
            .iter()
            .map(|l| l.text.rsplit_once(' ').unwrap().1)
            .collect();
        assert_eq!(requests, ["request=21", "request=22"]);
        // A pod that just started has one line.
        let fresh = kind.lines(&run, None, t("2026-12-01T10:00:00.1Z"), HALF_SECOND);
        assert_eq!(fresh.len(), 1);
    }

    #[test]
    fn a_crash_is_the_last_line_of_its_run() {
        let kind = LogKind::Crash {
            service: "api".into(),
            message: "simulated crash: exit code 1".into(),
        };
        let mut run = Run {
            started: t("2026-12-01T10:00:00Z"),
            finished: None,
        };
        let now = t("2026-12-01T10:00:01Z");
        assert_eq!(kind.lines(&run, None, now, HALF_SECOND).len(), 1);
        assert!(!kind.complete(&run, now));
        run.finished = Some(t("2026-12-01T10:00:01.5Z"));
        let later = t("2026-12-01T10:00:05Z");
        let lines = kind.lines(&run, None, later, HALF_SECOND);
        assert!(
            lines[1]
                .text
                .ends_with("api fatal: simulated crash: exit code 1")
        );
        assert!(kind.complete(&run, later));
    }

    #[test]
    fn a_build_log_appears_over_the_build() {
        let kind = LogKind::Paced {
            lines: (0..10).map(|i| format!("line {i}")).collect(),
            over: Duration::from_secs(10),
        };
        let run = Run {
            started: t("2026-12-01T10:00:00Z"),
            finished: None,
        };
        let so_far = kind.lines(&run, None, t("2026-12-01T10:00:04.5Z"), HALF_SECOND);
        assert_eq!(so_far.len(), 5);
        let rest = kind.lines(
            &run,
            Some(t("2026-12-01T10:00:04.5Z")),
            t("2026-12-01T10:01:00Z"),
            HALF_SECOND,
        );
        assert_eq!(rest.first().unwrap().text, "line 5");
        assert_eq!(rest.len(), 5);
    }

    #[test]
    fn log_queries_read_the_kubelets_parameters() {
        let q = LogQuery::from_params(&params(&[
            ("follow", "true"),
            ("tailLines", "15"),
            ("timestamps", "true"),
            ("limitBytes", "100"),
        ]))
        .unwrap();
        assert!(q.follow && q.timestamps && !q.previous);
        assert_eq!(q.tail_lines, Some(15));
        assert_eq!(q.limit_bytes, Some(100));
        let q = LogQuery::from_params(&params(&[("tail", "all"), ("sinceSeconds", "30")])).unwrap();
        assert_eq!(q.tail_lines, None);
        assert_eq!(q.since, Some(Since::Seconds(30)));
        let q = LogQuery::from_params(&params(&[("sinceTime", "2026-12-01T10:00:00Z")])).unwrap();
        assert_eq!(q.since, Some(Since::Time(t("2026-12-01T10:00:00Z"))));
        for bad in [
            params(&[("tailLines", "-1")]),
            params(&[("limitBytes", "0")]),
            params(&[("follow", "yes")]),
            params(&[("sinceSeconds", "5"), ("sinceTime", "2026-12-01T10:00:00Z")]),
        ] {
            assert!(LogQuery::from_params(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn since_and_tail_pick_the_first_lines() {
        let line = |s: &str| Line {
            at: t(s),
            text: s.to_owned(),
        };
        let lines = vec![
            line("2026-12-01T10:00:00Z"),
            line("2026-12-01T10:00:01Z"),
            line("2026-12-01T10:00:02Z"),
        ];
        let now = t("2026-12-01T10:00:02.5Z");
        let q = LogQuery {
            since: Some(Since::Seconds(2)),
            ..Default::default()
        };
        assert_eq!(q.select(lines.clone(), now).len(), 2);
        let q = LogQuery {
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(q.select(lines.clone(), now)[0].text, "2026-12-01T10:00:02Z");
        assert_eq!(LogQuery::default().select(lines, now).len(), 3);
    }

    #[test]
    fn timestamps_and_byte_limits_shape_the_output() {
        let line = Line {
            at: t("2026-12-01T10:00:00.120Z"),
            text: "hello".into(),
        };
        assert_eq!(render(&line, false), "hello\n");
        assert_eq!(render(&line, true), "2026-12-01T10:00:00.12Z hello\n");
        let whole = Line {
            at: t("2026-12-01T10:00:00Z"),
            text: "x".into(),
        };
        assert_eq!(render(&whole, true), "2026-12-01T10:00:00Z x\n");
        let mut budget = ByteBudget::new(Some(8));
        assert_eq!(budget.take("hello\n".into()).as_deref(), Some("hello\n"));
        assert_eq!(budget.take("world\n".into()).as_deref(), Some("wo"));
        assert!(budget.spent());
        assert_eq!(budget.take("more\n".into()), None);
        let mut unlimited = ByteBudget::new(None);
        assert_eq!(unlimited.take("x".into()).as_deref(), Some("x"));
    }
}
