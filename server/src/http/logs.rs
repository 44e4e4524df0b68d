//! `GET /api/runs/{project}/{id}/logs`: a one-off run's log, the same way.
//! `GET /api/logs/{project}/{service}/{environment}?follow=true&tail=100`: a service's pod logs as a
//! plain-text stream for `enclii logs -f`, or as server-sent events (`&format=sse`) for the
//! dashboard. Not a server function (it streams),
//! so it establishes the caller itself, first, like every server function does; the streams' guard
//! (`streaming.rs`) bounds them per caller and ends them when access goes.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use enclii_api::ApiError;
use switchyard_engine::Engine;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/logs/{project}/{service}/{environment}", get(logs))
        .route("/api/runs/{project}/{id}/logs", get(run_logs))
}

/// `GET /api/runs/{project}/{id}/logs?follow=true`: a one-off run's log (`enclii run` follows it
/// to the run's end).
async fn run_logs(
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
    match switchyard_engine::platform::jobs::run_logs(
        &engine,
        caller.as_ref(),
        &project,
        id,
        follow,
    )
    .await
    {
        Ok(lines) => super::streaming::lines(lines, sse),
        Err(e) => super::streaming::fail(e.into_api()),
    }
}

async fn logs(
    State(engine): State<Engine>,
    Path((project, service, environment)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    parts: Parts,
) -> Response {
    let caller = match super::streaming::caller(&engine, &parts).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let follow = q.get("follow").is_some_and(|f| f == "true" || f == "1");
    let sse = q.get("format").is_some_and(|f| f == "sse");
    let tail = q
        .get("tail")
        .and_then(|t| t.parse().ok())
        .unwrap_or(100i64)
        .clamp(1, 10_000);
    match switchyard_engine::deploy::logs::open(
        &engine,
        caller.as_ref(),
        &project,
        &service,
        &environment,
        follow,
        tail,
    )
    .await
    {
        // `format=sse`: the same lines as server-sent events, for the dashboard's EventSource.
        Ok(lines) => super::streaming::lines(lines, sse),
        Err(e) => match e.into_api() {
            // A dashboard panel opened before any pod runs: say so and have the browser come back
            // (an error status would make EventSource give up for good).
            ApiError::Unavailable { message } if sse => {
                use axum::response::sse::{Event, Sse};
                let notice = Event::default()
                    .event("notice")
                    .data(message)
                    .retry(std::time::Duration::from_secs(3));
                Sse::new(futures::stream::iter([Ok::<_, std::convert::Infallible>(
                    notice,
                )]))
                .into_response()
            }
            e => super::streaming::fail(e),
        },
    }
}
