//! `GET /api/logs/{project}/{service}/{environment}?follow=true&tail=100`: a service's pod logs as a
//! plain-text stream, for `enclii logs -f` and the dashboard. Not a server function (it streams),
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
use switchyard_engine::auth::{self, Action, sessions};

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
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let session = sessions::cookie_value(
        parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        sessions::COOKIE,
    );
    let addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let caller = match auth::resolve(&engine, authorization, session.as_deref(), addr).await {
        Ok(c) => c,
        Err(e) => return fail(e.into_api()),
    };
    let project = match switchyard_engine::platform::project_access(
        &engine.pool,
        caller.as_ref(),
        &project,
        Action::ViewProject,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return fail(e.into_api()),
    };
    let namespace: Option<String> = match sqlx::query_scalar!(
        "SELECT e.namespace FROM environments e JOIN services s ON s.project_id = e.project_id
         WHERE e.project_id = $1 AND e.name = $2 AND s.name = $3",
        project.id,
        environment,
        service
    )
    .fetch_optional(&engine.pool)
    .await
    {
        Ok(ns) => ns,
        Err(e) => return fail(switchyard_engine::Error::from(e).into_api()),
    };
    let Some(namespace) = namespace else {
        return fail(ApiError::not_found(format!(
            "project `{}` has no service `{service}` or no environment `{environment}`",
            project.slug
        )));
    };
    let Some(client) = engine.kube.get().cloned() else {
        return fail(ApiError::Unavailable {
            message: "this server is not connected to a cluster".into(),
        });
    };
    let follow = q.get("follow").is_some_and(|f| f == "true" || f == "1");
    let tail = q
        .get("tail")
        .and_then(|t| t.parse().ok())
        .unwrap_or(100i64)
        .clamp(1, 10_000);
    match switchyard_engine::deploy::logs::stream(client, &namespace, &service, follow, tail).await
    {
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
        Err(message) => fail(ApiError::Unavailable { message }),
    }
}
