//! What the streaming endpoints (pod logs, build logs, live events) share: they are not server
//! functions, so they establish the caller themselves, first; they answer errors with the API's
//! error body; and they send lines as plain text (the CLI) or as server-sent events (the dashboard).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use enclii_api::ApiError;
use futures::{Stream, StreamExt};
use switchyard_engine::Engine;
use switchyard_engine::auth::{self, Caller};

/// The caller of a request (cookie or bearer), or the error response to send instead.
pub async fn caller(engine: &Engine, parts: &Parts) -> Result<Option<Caller>, Response> {
    let addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    auth::from_headers(engine, &parts.headers, addr)
        .await
        .map_err(|e| fail(e.into_api()))
}

pub fn fail(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(e)).into_response()
}

/// Lines (each ending in `\n`) as `text/plain`, or with `sse` as one event each followed by an
/// `end` event, which tells the browser the stream is finished rather than dropped (no reconnect).
pub fn lines(lines: impl Stream<Item = String> + Send + 'static, sse: bool) -> Response {
    if !sse {
        return (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            Body::from_stream(lines.map(Ok::<_, std::io::Error>)),
        )
            .into_response();
    }
    let events = lines
        .map(|l| Ok::<_, Infallible>(Event::default().data(l.trim_end_matches('\n').to_owned())));
    let end = futures::stream::once(async { Ok(Event::default().event("end").data("")) });
    Sse::new(events.chain(end))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
