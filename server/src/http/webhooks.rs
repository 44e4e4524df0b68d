//! `POST /webhooks/github`: GitHub's deliveries, verified and queued by the engine
//! (`pipeline::receive`); `GET /api/builds/{project}/{id}/logs`: a build's log, streamed.
//! The webhook is called by GitHub, not a user: its credential is the repository's HMAC secret.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use enclii_api::ApiError;
use futures::StreamExt;
use switchyard_engine::{Engine, auth, pipeline};

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
        Err(e) => fail(e.into_api()),
    }
}

fn fail(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(e)).into_response()
}

async fn build_logs(
    State(engine): State<Engine>,
    Path((project, id)): Path<(String, i64)>,
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
    match pipeline::build_logs(&engine, caller.as_ref(), &project, id, follow).await {
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
        Ok(lines) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            Body::from_stream(lines.map(Ok::<_, std::io::Error>)),
        )
            .into_response(),
        Err(e) => fail(e.into_api()),
    }
}
