//! `GET /api/logs/{project}/{service}/{environment}?follow=true&tail=100`: a service's pod logs as a
//! plain-text stream for `enclii logs -f`, or as server-sent events (`&format=sse`) for the
//! dashboard. Not a server function (it streams),
//! so it establishes the caller itself, first, like every server function does.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use enclii_api::ApiError;
use futures::StreamExt;
use switchyard_engine::Engine;
use switchyard_engine::auth;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/logs/{project}/{service}/{environment}", get(logs))
}

fn fail(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(e)).into_response()
}

async fn logs(
    State(engine): State<Engine>,
    Path((project, service, environment)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    parts: Parts,
) -> Response {
    let addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let caller = match auth::from_headers(&engine, &parts.headers, addr).await {
        Ok(c) => c,
        Err(e) => return fail(e.into_api()),
    };
    let follow = q.get("follow").is_some_and(|f| f == "true" || f == "1");
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
        Ok(lines) if q.get("format").is_some_and(|f| f == "sse") => {
            use axum::response::sse::{Event, KeepAlive, Sse};
            let events = lines.map(|l| {
                Ok::<_, std::convert::Infallible>(
                    Event::default().data(l.trim_end_matches('\n').to_owned()),
                )
            });
            // `end` tells the browser the stream is finished (not dropped): no reconnect.
            let end = futures::stream::once(async {
                Ok::<_, std::convert::Infallible>(Event::default().event("end").data(""))
            });
            Sse::new(events.chain(end))
                .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
                .into_response()
        }
        Ok(lines) => {
            let body = Body::from_stream(lines.map(Ok::<_, std::io::Error>));
            (
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => match e.into_api() {
            // A dashboard panel opened before any pod runs: say so and have the browser come back
            // (an error status would make EventSource give up for good).
            ApiError::Unavailable { message } if q.get("format").is_some_and(|f| f == "sse") => {
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
            e => fail(e),
        },
    }
}
