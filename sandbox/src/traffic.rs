//! The requests simulated pods serve, as their `/metrics` report them to Prometheus. A service
//! gets 5 requests a second for each of its ready pods; a track (`stable`, `canary`) takes its
//! share of them, from the weights of the service's HTTPRoute when there is one, or else in
//! proportion to its ready pods; each ready pod of the track serves an equal part. The image
//! decides the share that fails (see [`crate::behaviour`]). Counters only grow: each update adds
//! what the rates of the moment served since the previous one.

use std::collections::BTreeMap;

/// Requests a second one ready pod adds to its service's traffic.
pub const REQUESTS_PER_POD: f64 = 5.0;

pub const TRACK_LABEL: &str = "enclii.dev/track";
pub const SERVICE_LABEL: &str = "enclii.dev/service";

/// The weights of a service's HTTPRoute backends, `<service>-stable` and `<service>-canary`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RouteWeights {
    pub stable: f64,
    pub canary: f64,
}

/// The route weights for `service` among a namespace's HTTPRoute specs, if one sends to its
/// tracks (a backend without a weight weighs 1, as in the Gateway API).
pub fn route_weights<'a>(
    route_specs: impl IntoIterator<Item = &'a serde_json::Value>,
    service: &str,
) -> Option<RouteWeights> {
    let stable = format!("{service}-stable");
    let canary = format!("{service}-canary");
    route_specs.into_iter().find_map(|spec| {
        let mut weights = RouteWeights {
            stable: 0.0,
            canary: 0.0,
        };
        let mut ours = false;
        let backends = spec["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|rule| rule["backendRefs"].as_array().into_iter().flatten());
        for backend in backends {
            let weight = backend["weight"].as_f64().unwrap_or(1.0);
            match backend["name"].as_str() {
                Some(n) if n == stable => weights.stable += weight,
                Some(n) if n == canary => weights.canary += weight,
                _ => continue,
            }
            ours = true;
        }
        ours.then_some(weights)
    })
}

/// The share of the service's traffic a track takes: by route weight, else by ready pods. A pod
/// without a track label shares the service with every other ready pod.
pub fn track_share(
    track: Option<&str>,
    ready_by_track: &BTreeMap<Option<String>, usize>,
    weights: Option<RouteWeights>,
) -> f64 {
    if let (Some(w), Some(t)) = (weights, track) {
        let total = w.stable + w.canary;
        return match t {
            _ if total <= 0.0 => 0.0,
            "stable" => w.stable / total,
            "canary" => w.canary / total,
            _ => 0.0,
        };
    }
    let all: usize = ready_by_track.values().sum();
    let mine = ready_by_track
        .get(&track.map(str::to_owned))
        .copied()
        .unwrap_or(0);
    if all == 0 {
        0.0
    } else {
        mine as f64 / all as f64
    }
}

/// Requests a second one ready pod of a track serves: its equal part of the track's share of the
/// service's traffic.
pub fn pod_rate(service_ready: usize, track_ready: usize, share: f64) -> f64 {
    if track_ready == 0 {
        return 0.0;
    }
    REQUESTS_PER_POD * service_ready as f64 * share / track_ready as f64
}

/// The share of requests done within each bucket's bound (seconds): most take 10-50 ms.
pub const LATENCY_BUCKETS: [(&str, f64); 5] = [
    ("0.01", 0.10),
    ("0.025", 0.50),
    ("0.05", 0.96),
    ("0.1", 0.99),
    ("0.25", 1.0),
];
const MEAN_LATENCY_SECONDS: f64 = 0.03;

/// `http_requests_total` of one pod, by status code.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub ok: f64,
    pub errors: f64,
}

impl Counters {
    /// Adds what `rate` requests a second, `error_ratio` of them failing, served in `seconds`.
    pub fn add(&mut self, rate: f64, error_ratio: f64, seconds: f64) {
        if rate > 0.0 && seconds > 0.0 {
            let served = rate * seconds;
            self.errors += served * error_ratio;
            self.ok += served * (1.0 - error_ratio);
        }
    }

    /// The Prometheus text exposition: whole requests, so a counter never shows a fraction; and
    /// how long they took, as a histogram whose p95 is about 49 ms ([`LATENCY_BUCKETS`]).
    pub fn exposition(&self) -> String {
        let served = (self.ok + self.errors).floor() as u64;
        let mut text = format!(
            "# HELP http_requests_total Requests served, by status code.\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{{code=\"200\"}} {}\n\
             http_requests_total{{code=\"500\"}} {}\n\
             # HELP http_request_duration_seconds How long requests took.\n\
             # TYPE http_request_duration_seconds histogram\n",
            self.ok.floor() as u64,
            self.errors.floor() as u64,
        );
        for (le, share) in LATENCY_BUCKETS {
            let count = (served as f64 * share).floor() as u64;
            text.push_str(&format!(
                "http_request_duration_seconds_bucket{{le=\"{le}\"}} {count}\n"
            ));
        }
        text.push_str(&format!(
            "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {served}\n\
             http_request_duration_seconds_sum {:.3}\n\
             http_request_duration_seconds_count {served}\n",
            served as f64 * MEAN_LATENCY_SECONDS
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ready(pairs: &[(Option<&str>, usize)]) -> BTreeMap<Option<String>, usize> {
        pairs
            .iter()
            .map(|(t, n)| (t.map(str::to_owned), *n))
            .collect()
    }

    #[test]
    fn without_a_route_tracks_share_by_ready_pods() {
        let r = ready(&[(Some("stable"), 3), (Some("canary"), 1)]);
        assert_eq!(track_share(Some("stable"), &r, None), 0.75);
        assert_eq!(track_share(Some("canary"), &r, None), 0.25);
        // Every ready pod serves 5 a second, whatever its track.
        assert_eq!(pod_rate(4, 3, 0.75), 5.0);
        assert_eq!(pod_rate(4, 1, 0.25), 5.0);
        let alone = ready(&[(None, 2)]);
        assert_eq!(track_share(None, &alone, None), 1.0);
        assert_eq!(track_share(Some("canary"), &ready(&[]), None), 0.0);
    }

    #[test]
    fn a_route_splits_traffic_by_weight() {
        let specs = [
            json!({"rules": [{"backendRefs": [{"name": "other-stable", "port": 80, "weight": 100}]}]}),
            json!({"rules": [{"backendRefs": [
                {"name": "api-stable", "port": 80, "weight": 90},
                {"name": "api-canary", "port": 80, "weight": 10}
            ]}]}),
        ];
        let w = route_weights(&specs, "api").unwrap();
        assert_eq!(
            w,
            RouteWeights {
                stable: 90.0,
                canary: 10.0
            }
        );
        let r = ready(&[(Some("stable"), 3), (Some("canary"), 1)]);
        assert_eq!(track_share(Some("canary"), &r, Some(w)), 0.1);
        // 20 requests a second for the service; the canary's one pod serves 2 of them.
        assert!((pod_rate(4, 1, 0.1) - 2.0).abs() < 1e-9);
        assert!((pod_rate(4, 3, 0.9) - 6.0).abs() < 1e-9);
        assert_eq!(route_weights(&specs, "web"), None);
        // All on stable: the canary gets nothing, even with ready pods.
        let all_stable = [json!({"rules": [{"backendRefs": [
            {"name": "api-stable", "weight": 100}, {"name": "api-canary", "weight": 0}
        ]}]})];
        let w = route_weights(&all_stable, "api").unwrap();
        assert_eq!(track_share(Some("canary"), &r, Some(w)), 0.0);
        let unweighted = [json!({"rules": [{"backendRefs": [{"name": "api-stable"}]}]})];
        assert_eq!(
            route_weights(&unweighted, "api"),
            Some(RouteWeights {
                stable: 1.0,
                canary: 0.0
            })
        );
    }

    #[test]
    fn counters_grow_with_what_was_served() {
        let mut c = Counters::default();
        c.add(4.0, 0.25, 10.0);
        assert_eq!((c.ok, c.errors), (30.0, 10.0));
        let before = c;
        c.add(0.0, 0.25, 10.0);
        c.add(4.0, 0.25, -1.0);
        assert_eq!(c, before, "no traffic, no time: no change");
        let text = c.exposition();
        assert!(text.contains("# TYPE http_requests_total counter\n"));
        assert!(
            text.contains("http_requests_total{code=\"200\"} 30\n"),
            "{text}"
        );
        assert!(
            text.contains("http_requests_total{code=\"500\"} 10\n"),
            "{text}"
        );
        // 40 requests: cumulative buckets, the last one all of them.
        for line in [
            "http_request_duration_seconds_bucket{le=\"0.025\"} 20\n",
            "http_request_duration_seconds_bucket{le=\"0.05\"} 38\n",
            "http_request_duration_seconds_bucket{le=\"+Inf\"} 40\n",
            "http_request_duration_seconds_count 40\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
