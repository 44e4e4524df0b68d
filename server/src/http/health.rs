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

/// Ready to serve: the database answers.
async fn ready(State(engine): State<Engine>) -> (StatusCode, Json<Value>) {
    let database = db::ping(&engine.pool).await;
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
