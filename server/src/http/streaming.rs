//! What the streaming endpoints (pod logs, build logs, live events) share: they are not server
//! functions, so they establish the caller themselves, first; they answer errors with the API's
//! error body; and they send lines as plain text (the CLI) or as server-sent events (the dashboard).
//!
//! A stream outlives the request that opened it, so a check at its start is not enough: a token
//! revoked, a session ended or a member removed must stop receiving. [`Streams::guard`] wraps the
//! streaming routes (every route with a `{project}`): it resolves the caller once (the handler
//! reads it through [`caller`]), holds one of the caller's `session.max_streams_per_caller` slots
//! while the response body lives, and every `session.stream_recheck_secs` resolves the credential
//! again and asks `platform::project_access` afresh. A fresh `Caller` each time: the request's own
//! remembers its project answer (`auth::ProjectMemo`) for as long as it lives, which for a stream
//! is hours. When the answer is no, a server-sent event stream ends with an `end` event saying why
//! (the browser does not reconnect), a plain-text one just ends. When the replica is told to stop
//! (`Engine::stop_work`), every stream ends at once without that event, and the browser reconnects
//! to another replica. The guard works on the response
//! body, under the handler, so that no streaming handler can forget it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use enclii_api::ApiError;
use futures::{Stream, StreamExt};
use switchyard_engine::Engine;
use switchyard_engine::auth::{self, Action, Caller};
use switchyard_engine::deploy::logs::{MAX_LINE_BYTES, fit_text_line};

/// The caller of a request (cookie or bearer), or the error response to send instead.
pub async fn caller(engine: &Engine, parts: &Parts) -> Result<Option<Caller>, Response> {
    // Behind the guard the caller was resolved already: once per request, as for server functions.
    if let Some(Admitted(caller)) = parts.extensions.get::<Admitted>() {
        return Ok(Some(caller.clone()));
    }
    auth::from_headers(engine, &parts.headers, client_addr(engine, parts))
        .await
        .map_err(|e| fail(e.into_api()))
}

fn client_addr(engine: &Engine, parts: &Parts) -> Option<IpAddr> {
    super::auth::addr(engine, parts)
}

pub fn fail(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(e)).into_response()
}

/// Lines (each ending in `\n`) as `text/plain`, or with `sse` as one event each followed by an
/// `end` event, which tells the browser the stream is finished rather than dropped (no reconnect).
/// A line longer than `MAX_LINE_BYTES` is cut with a marker, whatever its source.
pub fn lines(lines: impl Stream<Item = String> + Send + 'static, sse: bool) -> Response {
    let lines = lines.map(|l| fit_text_line(l, MAX_LINE_BYTES));
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

/// What every stream needs of its caller, at its start and on every re-check: all of them read
/// a project. A stream that needs more must check it at its start, and have its own guard.
const STREAM_ACTION: Action = Action::ViewProject;

/// The streams open in this process, per user (a user's tokens and sessions share one bound: a
/// token minted per stream must not multiply it).
#[derive(Clone)]
pub struct Streams {
    engine: Engine,
    open: Arc<Mutex<HashMap<u128, usize>>>,
}

impl Streams {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            open: Arc::default(),
        }
    }

    /// `routes` with the guard described in the module doc on every route that names a
    /// `{project}`; the others (the GitHub webhook) pass through untouched.
    pub fn guard<S: Clone + Send + Sync + 'static>(&self, routes: Router<S>) -> Router<S> {
        routes.route_layer(axum::middleware::from_fn_with_state(self.clone(), admit))
    }

    fn take_slot(&self, user: u128) -> Option<Slot> {
        let max = self.engine.settings.session.max_streams_per_caller;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let held = open.entry(user).or_default();
        if *held >= max {
            return None;
        }
        *held += 1;
        Some(Slot {
            open: self.open.clone(),
            user,
        })
    }
}

/// One open stream of a user, given back when the response body is dropped (finished, ended by
/// the guard, or the client went away).
struct Slot {
    open: Arc<Mutex<HashMap<u128, usize>>>,
    user: u128,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = open.get_mut(&self.user) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// The caller the guard resolved, for the handler.
#[derive(Clone)]
struct Admitted(Caller);

async fn admit(
    State(streams): State<Streams>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let project = params.ok().and_then(|params| {
        params
            .iter()
            .find(|(name, _)| *name == "project")
            .map(|(_, value)| value.to_owned())
    });
    let Some(project) = project else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let caller = match caller(&streams.engine, &parts).await {
        Ok(Some(caller)) => caller,
        // Anonymous: the handler refuses it, as it refuses everyone without access.
        Ok(None) => return next.run(Request::from_parts(parts, body)).await,
        Err(response) => return response,
    };
    let Some(slot) = streams.take_slot(caller.user_id.as_u128()) else {
        let max = streams.engine.settings.session.max_streams_per_caller;
        return fail(ApiError::TooMany {
            message: format!(
                "you have {max} live streams open (logs or live updates), the most allowed at once: \
                 close one (a dashboard tab, an `enclii logs -f`) and try again"
            ),
        });
    };
    let watch = Watch {
        engine: streams.engine.clone(),
        credential: credential(&parts.headers),
        client_addr: client_addr(&streams.engine, &parts),
        project,
        user: caller.user_id.to_string(),
        _slot: slot,
    };
    parts.extensions.insert(Admitted(caller));
    let response = next.run(Request::from_parts(parts, body)).await;
    if !response.status().is_success() {
        return response;
    }
    let sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::from_stream(watched(body, watch, sse)))
}

/// The request's credential headers and nothing else: what resolving the caller again needs.
fn credential(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in [header::AUTHORIZATION, header::COOKIE] {
        for value in headers.get_all(&name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// What a stream re-checks with. No `Debug`: it holds the caller's credential.
struct Watch {
    engine: Engine,
    credential: HeaderMap,
    client_addr: Option<IpAddr>,
    project: String,
    user: String,
    _slot: Slot,
}

/// Why a stream stops before its source ends.
enum Ended {
    /// The caller may no longer read it; the message says why, for the caller.
    Revoked(String),
    /// The check itself failed (the database): access is not proven, so the stream stops, but
    /// without an `end` event, so that the browser reconnects and is checked again.
    Unchecked,
}

impl Watch {
    fn period(&self) -> Duration {
        // At least a second: a zero period would be a busy loop (and tokio refuses it).
        Duration::from_secs(self.engine.settings.session.stream_recheck_secs.max(1))
    }

    /// The caller's access now, from its credential as if it had just arrived.
    async fn still_allowed(&self) -> Result<(), Ended> {
        let check = async {
            let caller =
                auth::from_headers(&self.engine, &self.credential, self.client_addr).await?;
            switchyard_engine::platform::project_access(
                &self.engine.pool,
                caller.as_ref(),
                &self.project,
                STREAM_ACTION,
            )
            .await
        };
        match check.await.map_err(|e| e.into_api()) {
            Ok(_) => Ok(()),
            Err(
                e @ (ApiError::Unauthenticated { .. }
                | ApiError::Forbidden { .. }
                | ApiError::NotFound { .. }),
            ) => Err(Ended::Revoked(e.message().to_owned())),
            Err(_) => Err(Ended::Unchecked),
        }
    }
}

/// `body`'s chunks until it ends or the caller's access does, checked every period (first one
/// period after the start, which the handler checked). The check comes before any further chunk.
fn watched(
    body: Body,
    watch: Watch,
    sse: bool,
) -> impl Stream<Item = Result<Bytes, axum::Error>> + Send + 'static {
    let period = watch.period();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopping = watch.engine.stopping.subscribe();
    let state = Some((body.into_data_stream(), watch, ticks, stopping));
    futures::stream::unfold(state, move |state| async move {
        let (mut chunks, watch, mut ticks, mut stopping) = state?;
        loop {
            tokio::select! {
                biased;
                // This replica is stopping: end now, without an `end` event, so that the browser
                // reconnects (to a replica that stays) rather than hold the shutdown for its grace.
                () = async {
                    if stopping.wait_for(|s| *s).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => return None,
                _ = ticks.tick() => match watch.still_allowed().await {
                    Ok(()) => {}
                    Err(Ended::Revoked(why)) => {
                        tracing::info!(project = %watch.project, user = %watch.user, reason = %why,
                            "stream ended: access revoked");
                        return sse.then(|| (Ok(end_event(&why)), None));
                    }
                    Err(Ended::Unchecked) => {
                        tracing::warn!(project = %watch.project, user = %watch.user,
                            "stream ended: its caller's access could not be checked");
                        return None;
                    }
                },
                chunk = chunks.next() => return chunk.map(|c| (c, Some((chunks, watch, ticks, stopping)))),
            }
        }
    })
}

/// The last event of a stream whose caller lost access. Every event axum's `Sse` sends is a frame
/// of its own, so this one never lands inside another.
fn end_event(why: &str) -> Bytes {
    let why = why.replace(['\r', '\n'], " ");
    Bytes::from(format!("event: end\ndata: access revoked: {why}\n\n"))
}
