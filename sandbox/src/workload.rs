//! What a running container serves on its pod's address: on every port it declares and every
//! port its probes use, `GET /` answers "ok", any other path answers as a health check would, and
//! `/metrics` reports `http_requests_total` by status code for Prometheus. An `unhealthy` image
//! answers 503 on everything but `/metrics`, so its real readiness probe fails.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::Container;
use tokio::sync::oneshot;

use crate::Simulation;
use crate::kubelet::probe;
use crate::pods::{PodRecord, lock};

/// The ports a container listens on: those it declares (TCP) and those its probes use.
pub fn ports(container: &Container) -> Vec<u16> {
    let mut ports: Vec<u16> = container
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect();
    for probe in [
        &container.readiness_probe,
        &container.liveness_probe,
        &container.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        if let Some(plan) = probe::Plan::of(probe, container) {
            ports.push(plan.port());
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// A container's listeners; dropping it stops them (the container exited).
pub struct Servers {
    _stop: Vec<oneshot::Sender<()>>,
}

#[derive(Clone)]
struct Served {
    sim: Arc<Simulation>,
    pod: Arc<PodRecord>,
    unhealthy: bool,
}

/// Starts listening on the container's ports at the pod's address. A port that cannot be bound
/// (two containers declaring it) is logged and skipped, as the container would fail to bind it.
pub async fn serve(
    sim: Arc<Simulation>,
    pod: Arc<PodRecord>,
    ip: Ipv4Addr,
    container: &Container,
    unhealthy: bool,
) -> Servers {
    let mut stop = Vec::new();
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .fallback(answer)
        .with_state(Served {
            sim,
            pod: pod.clone(),
            unhealthy,
        });
    for port in ports(container) {
        let address = SocketAddr::from((ip, port));
        let listener = match tokio::net::TcpListener::bind(address).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(pod = %pod.name, container = %container.name, %address, error = %e, "cannot listen");
                continue;
            }
        };
        let (tx, rx) = oneshot::channel::<()>();
        stop.push(tx);
        let app = app.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(%address, error = %e, "pod server failed");
            }
        });
    }
    Servers { _stop: stop }
}

async fn metrics(State(s): State<Served>) -> Response {
    s.sim.advance_traffic();
    let text = lock(&s.pod.state).counters.exposition();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn answer(State(s): State<Served>, uri: Uri) -> Response {
    let path = uri.path();
    // Healthy until the pod has been ready once: it deploys, then breaks.
    let failing = s.unhealthy && lock(&s.pod.state).went_ready;
    match (failing, path) {
        (true, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{path}: unhealthy\n"),
        )
            .into_response(),
        (false, "/") => "ok".into_response(),
        (false, _) => format!("{path}: ok\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, Probe};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn a_container_listens_on_its_ports_and_its_probes_ports() {
        let c = Container {
            name: "web".into(),
            ports: Some(vec![
                ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    ..Default::default()
                },
                ContainerPort {
                    container_port: 53,
                    protocol: Some("UDP".into()),
                    ..Default::default()
                },
            ]),
            readiness_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    port: IntOrString::String("http".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            liveness_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    port: IntOrString::Int(9090),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(ports(&c), [8080, 9090]);
    }
}
