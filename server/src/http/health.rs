//! Liveness and readiness, under the paths load balancers and the seed's status page expect.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use switchyard_engine::{Engine, db};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(ready))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        // The dashboard's alias, probed by the seed's status page (`app.enclii.io/api/health`).
        .route("/api/health", get(ready))
}

/// The process is up and serving HTTP; says nothing about its dependencies.
async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Within a kubelet probe's default timeout (1 s), with room for the response.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// Ready to serve: the database answers.
async fn ready(State(engine): State<Engine>) -> (StatusCode, Json<Value>) {
    // Bounded: while PostgreSQL is away the pool keeps dialling until its acquire timeout, and a
    // probe must hear "not ready" before its own timeout rather than nothing.
    let database = match tokio::time::timeout(READY_TIMEOUT, db::ping(&engine.pool)).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    };
    if let Err(error) = &database {
        tracing::warn!(%error, "readiness: database check failed");
    }
    let ok = database.is_ok();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "service": "switchyard",
        "version": env!("CARGO_PKG_VERSION"),
        "checks": { "database": if ok { "ok" } else { "down" } },
    });
    (status, Json(body))
}
