//! A Prometheus that answers instant queries from the traffic the test (or the embedded default)
//! set per service and track: request rate, or error ratio when the query counts 5xx responses.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .with_state(shared)
}

fn label<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    let start = query.find(&format!("{name}=\""))? + name.len() + 2;
    let end = query[start..].find('"')? + start;
    Some(&query[start..end])
}

async fn query(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<serde_json::Value> {
    let text = q.get("query").cloned().unwrap_or_default();
    let service = label(&text, "service").unwrap_or_default().to_owned();
    let track = label(&text, "track").unwrap_or("stable").to_owned();
    let traffic = shared
        .traffic
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&(service, track))
        .copied();
    let now = chrono::Utc::now().timestamp();
    let result = match traffic {
        // No series at all: what Prometheus answers for a service that received no traffic.
        None => json!([]),
        Some(t) => {
            let value = if text.contains("5..") {
                t.error_ratio
            } else {
                t.requests_per_second
            };
            json!([{ "metric": {}, "value": [now, value.to_string()] }])
        }
    };
    Json(json!({ "status": "success", "data": { "resultType": "vector", "result": result } }))
}
