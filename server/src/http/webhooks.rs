//! `POST /webhooks/github`: GitHub's deliveries, verified and queued by the engine
//! (`pipeline::receive`); `GET /api/builds/{project}/{id}/logs`: a build's log, streamed.
//! The webhook is called by GitHub, not a user: its credential is the repository's HMAC secret.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use switchyard_engine::{Engine, pipeline};

use super::AppState;

pub fn routes(webhook_max_bytes: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/webhooks/github",
            post(github).layer(DefaultBodyLimit::max(webhook_max_bytes)),
        )
        .route("/api/builds/{project}/{id}/logs", get(build_logs))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn github(State(engine): State<Engine>, headers: HeaderMap, body: Bytes) -> Response {
    let incoming = pipeline::Incoming {
        event: header(&headers, "x-github-event"),
        delivery: header(&headers, "x-github-delivery"),
        signature: header(&headers, "x-hub-signature-256"),
        body: &body,
    };
    match pipeline::receive(&engine, incoming).await {
        Ok(answer) => (
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(answer.body),
        )
            .into_response(),
        // Not acknowledged: GitHub shows the failure and the delivery can be redelivered.
        Err(e) => super::streaming::fail(e.into_api()),
    }
}

async fn build_logs(
    State(engine): State<Engine>,
    Path((project, id)): Path<(String, i64)>,
    Query(q): Query<HashMap<String, String>>,
    parts: Parts,
) -> Response {
    let caller = match super::streaming::caller(&engine, &parts).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let follow = q.get("follow").is_some_and(|f| f == "true" || f == "1");
    let sse = q.get("format").is_some_and(|f| f == "sse");
    match pipeline::build_logs(&engine, caller.as_ref(), &project, id, follow).await {
        Ok(lines) => super::streaming::lines(lines, sse),
        Err(e) => super::streaming::fail(e.into_api()),
    }
}
