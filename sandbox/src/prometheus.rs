//! A Prometheus that answers instant queries about `http_requests_total` per service and track,
//! from what runs in the sandbox: each ready pod serves 5 requests a second, and its image decides
//! how many fail (see the crate docs). A test can pin a track's traffic with `set_traffic`.
//!
//! It understands the shapes of Enclii's default queries, not PromQL: the `namespace`, `service`
//! and `track` matchers, `code=~"5.."` (the error ratio), `increase(…[window])` (a count over the
//! window) and otherwise a rate.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Form, Json, Router};
use serde_json::{Value, json};

use crate::{Shared, Traffic};

/// Requests a second one ready pod serves.
const RPS_PER_POD: f64 = 5.0;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query_get).post(query_post))
        .route("/api/v1/query_range", get(range_get).post(range_post))
        .with_state(shared)
}

fn label<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    let start = query.find(&format!("{name}=\""))? + name.len() + 2;
    let end = query[start..].find('"')? + start;
    Some(&query[start..end])
}

/// `[90s]` or `[5m]` → seconds.
fn window_secs(query: &str) -> f64 {
    let Some(start) = query.find('[') else {
        return 60.0;
    };
    let Some(end) = query[start..].find(']') else {
        return 60.0;
    };
    let w = &query[start + 1..start + end];
    let (num, unit) = w.split_at(w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len()));
    let n: f64 = num.parse().unwrap_or(60.0);
    match unit {
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => n,
    }
}

/// The share of requests an image's pods fail, given how much of the traffic the track gets.
fn error_ratio(image: &str, share: f64) -> f64 {
    if image.contains("degrades") {
        // Fine under light load, failing once it takes half the traffic: the breach at 50%.
        if share >= 0.5 { 0.06 } else { 0.004 }
    } else if image.contains("errors") {
        0.08
    } else {
        0.004
    }
}

fn ready_pods(shared: &Shared, ns: &str, service: &str, track: &str) -> Vec<Value> {
    let selector = crate::store::Selector::parse(
        Some(&format!(
            "enclii.dev/service={service},enclii.dev/track={track}"
        )),
        None,
    );
    shared
        .store
        .list("/v1/pods", Some(ns), &selector)
        .1
        .into_iter()
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .collect()
}

/// What the track serves now: pinned by a test, or derived from its ready pods.
fn traffic(shared: &Shared, ns: &str, service: &str, track: &str) -> Option<Traffic> {
    let pinned = shared
        .traffic
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&(service.to_owned(), track.to_owned()))
        .copied();
    if pinned.is_some() {
        return pinned;
    }
    let pods = ready_pods(shared, ns, service, track);
    let image = pods.first()?["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if image.contains("no-traffic") {
        return None;
    }
    let other = if track == "canary" {
        "stable"
    } else {
        "canary"
    };
    let others = ready_pods(shared, ns, service, other).len();
    let share = pods.len() as f64 / (pods.len() + others) as f64;
    Some(Traffic {
        requests_per_second: RPS_PER_POD * pods.len() as f64,
        error_ratio: error_ratio(&image, share),
    })
}

fn answer(shared: &Shared, text: &str) -> Json<Value> {
    let ns = label(text, "namespace").unwrap_or_default();
    let service = label(text, "service").unwrap_or_default();
    let track = label(text, "track").unwrap_or("stable");
    let now = chrono::Utc::now().timestamp();
    let result = match traffic(shared, ns, service, track) {
        // No series at all: what Prometheus answers for a track that received no requests.
        None => json!([]),
        Some(t) => {
            let value = if text.contains("5..") {
                t.error_ratio
            } else if text.contains("increase(") {
                t.requests_per_second * window_secs(text)
            } else {
                t.requests_per_second
            };
            json!([{ "metric": {}, "value": [now, value.to_string()] }])
        }
    };
    Json(json!({ "status": "success", "data": { "resultType": "vector", "result": result } }))
}

/// A range query: the sandbox keeps no history, so every point is what the service serves now,
/// varied gently by time so that charts look like charts. `histogram_quantile` queries answer a
/// latency in seconds (45 ms; 210 ms for images that fail requests).
fn answer_range(shared: &Shared, q: &HashMap<String, String>) -> Json<Value> {
    let text = q.get("query").map(String::as_str).unwrap_or_default();
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<f64>().ok());
    let (Some(start), Some(end), Some(step)) = (num("start"), num("end"), num("step")) else {
        return Json(json!({"status": "error", "errorType": "bad_data",
            "error": "start, end and step are required"}));
    };
    if step <= 0.0 || end < start || (end - start) / step > 11_000.0 {
        return Json(json!({"status": "error", "errorType": "bad_data",
            "error": "exceeded maximum resolution of 11,000 points per timeseries"}));
    }
    let ns = label(text, "namespace").unwrap_or_default();
    let service = label(text, "service").unwrap_or_default();
    let track = label(text, "track").unwrap_or("stable");
    let Some(t) = traffic(shared, ns, service, track) else {
        return Json(json!({"status": "success", "data": {"resultType": "matrix", "result": []}}));
    };
    let base = if text.contains("histogram_quantile") {
        if t.error_ratio > 0.01 { 0.210 } else { 0.045 }
    } else if text.contains("5..") {
        t.error_ratio
    } else {
        t.requests_per_second
    };
    let mut values = Vec::new();
    let mut at = start;
    while at <= end {
        let wobble = 1.0 + 0.08 * (at / 420.0).sin() + 0.04 * (at / 97.0).cos();
        values.push(json!([at as i64, (base * wobble).to_string()]));
        at += step;
    }
    Json(json!({"status": "success", "data": {"resultType": "matrix",
        "result": [{"metric": {}, "values": values}]}}))
}

async fn range_get(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    answer_range(&shared, &q)
}

async fn range_post(
    State(shared): State<Arc<Shared>>,
    Form(q): Form<HashMap<String, String>>,
) -> Json<Value> {
    answer_range(&shared, &q)
}

async fn query_get(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    answer(
        &shared,
        q.get("query").map(String::as_str).unwrap_or_default(),
    )
}

async fn query_post(
    State(shared): State<Arc<Shared>>,
    Form(q): Form<HashMap<String, String>>,
) -> Json<Value> {
    answer(
        &shared,
        q.get("query").map(String::as_str).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_error_profiles() {
        assert_eq!(window_secs("sum(increase(x[90s]))"), 90.0);
        assert_eq!(window_secs("sum(increase(x[5m]))"), 300.0);
        assert_eq!(window_secs("sum(x)"), 60.0);
        assert!(error_ratio("app:errors", 0.1) > 0.02);
        assert!(error_ratio("app:degrades", 0.25) < 0.02);
        assert!(error_ratio("app:degrades", 0.5) > 0.02);
        assert!(error_ratio("app:2", 0.5) < 0.02);
    }
}
