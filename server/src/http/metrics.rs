//! Prometheus metrics: HTTP requests by route and status, and the database pool, at `/metrics` and
//! the dashboard's alias `/api/metrics`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use switchyard_engine::Engine;

use super::AppState;

const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The process-wide recorder. Installed once: tests build many routers in one process.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &LATENCY_BUCKETS,
                )
                .expect("bucket list is non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            // Histograms keep samples until upkeep folds them; do it off the request path.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok();
            handle
        })
        .clone()
}

pub fn routes() -> Router<AppState> {
    handle();
    Router::new()
        .route("/metrics", get(render))
        .route("/api/metrics", get(render))
}

/// May this request read the metrics? Only with the configured token (compared in constant
/// time); with none configured, nobody may.
pub fn allowed(configured: Option<&str>, authorization: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    let (Some(expected), Some(given)) = (
        configured.filter(|t| !t.is_empty()),
        authorization.and_then(|a| a.strip_prefix("Bearer ")),
    ) else {
        return false;
    };
    expected.as_bytes().ct_eq(given.trim().as_bytes()).into()
}

async fn render(
    State(engine): State<Engine>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use secrecy::ExposeSecret;
    let configured = engine
        .settings
        .http
        .metrics_token
        .as_ref()
        .map(|t| t.expose_secret().to_owned());
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !allowed(configured.as_deref(), authorization) {
        let why = if configured.is_some() {
            "metrics need the bearer token configured as http.metrics_token"
        } else {
            "metrics are off: configure http.metrics_token and give it to Prometheus"
        };
        return (axum::http::StatusCode::UNAUTHORIZED, why).into_response();
    }
    exposition(&engine).await.into_response()
}

async fn exposition(engine: &Engine) -> impl IntoResponse {
    let pool = &engine.pool;
    let idle = pool.num_idle() as f64;
    metrics::gauge!("db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(pool.size() as f64 - idle);
    metrics::gauge!("db_pool_max_connections").set(engine.settings.database.max_connections as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
}

/// Counts and times every request. Routes are labelled by their pattern, never the raw path, so that
/// ids in URLs cannot explode the series count.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    // `code`, as the canary's default queries read it (`code=~"5.."`): an upgrade of Switchyard
    // itself is judged on its own 5xx rate like any service's.
    let labels = [("method", method), ("route", route), ("code", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
