//! `GET /api/events/deployments/{project}/{id}`: a deployment's record as server-sent events, sent
//! whenever it changes, until it ends. The dashboard's live timeline and anything else that wants
//! to watch a rollout without polling use it. Like every endpoint, it establishes the caller first;
//! the streams' guard (`streaming.rs`) bounds them per caller and ends them when access goes.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use switchyard_engine::Engine;
use switchyard_engine::platform::deployments;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/events/deployments/{project}/{id}", get(deployment))
        .route("/api/events/status/{project}/{service}", get(status))
}

/// A service's live status (replicas ready/desired, release, image per environment) as
/// server-sent events: now, then whenever its Deployments change in the cluster.
async fn status(
    State(engine): State<Engine>,
    Path((project, service)): Path<(String, String)>,
    parts: Parts,
) -> Response {
    use futures::StreamExt;
    use switchyard_engine::platform::services;
    let caller = match super::streaming::caller(&engine, &parts).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let places = match services::placements(&engine, caller.as_ref(), &project, &service).await {
        Ok(p) => p,
        Err(e) => return super::streaming::fail(e.into_api()),
    };
    let mut changes = Box::pin(switchyard_engine::deploy::status::changes(places, &service));
    let stream = async_stream(move |tx| async move {
        let mut last = None;
        loop {
            let now = match services::status(&engine, caller.as_ref(), &project, &service).await {
                Ok(s) => s,
                Err(_) => return,
            };
            if last.as_ref() != Some(&now) {
                let data = serde_json::to_string(&now).unwrap_or_default();
                if tx
                    .send(Ok(Event::default().event("status").data(data)))
                    .await
                    .is_err()
                {
                    return;
                }
                last = Some(now);
            }
            if changes.next().await.is_none() {
                return;
            }
            // A rollout changes a Deployment many times a second: one read per burst.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn deployment(
    State(engine): State<Engine>,
    Path((project, id)): Path<(String, i64)>,
    parts: Parts,
) -> Response {
    let caller = match super::streaming::caller(&engine, &parts).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    // Subscribe before the first read, so that no change between the two is missed.
    let mut changes = engine.deployment_events.subscribe();
    let first = match deployments::get(&engine.pool, caller.as_ref(), &project, id).await {
        Ok(d) => d,
        Err(e) => return super::streaming::fail(e.into_api()),
    };
    let stream = async_stream(move |tx| async move {
        let mut last = first;
        if tx.send(event(&last)).await.is_err() {
            return;
        }
        while !last.deployment.state.is_terminal() {
            match changes.recv().await {
                Ok(changed) if changed != id => continue,
                // Lagged: some ids were dropped, ours may be among them; re-read to be sure.
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
            // A burst of changes (a step and its analysis) becomes one event.
            tokio::time::sleep(Duration::from_millis(50)).await;
            // The request's caller, whose project answer is remembered for the request: access
            // is re-checked afresh by the guard (`streaming.rs`), which ends the stream without it.
            let now = match deployments::get(&engine.pool, caller.as_ref(), &project, id).await {
                Ok(d) => d,
                Err(_) => return,
            };
            if now != last {
                if tx.send(event(&now)).await.is_err() {
                    return;
                }
                last = now;
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn event(d: &enclii_api::DeploymentDetail) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event("deployment")
        .data(serde_json::to_string(d).unwrap_or_default()))
}

/// A stream fed by a task through a small channel: the task ends when the client goes away.
fn async_stream<F, Fut>(
    body: F,
) -> impl futures::Stream<Item = Result<Event, Infallible>> + Send + 'static
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(body(tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
