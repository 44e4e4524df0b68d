//! The sandbox cluster: a loopback fake of the parts of a Kubernetes API server Enclii uses, a
//! driver that plays the cluster's controllers (ReplicaSets and Pods that become ready, crash, or
//! fail to pull, by image name), and a fake Prometheus. The real kube-rs client talks to it over
//! HTTP. For tests and the embedded default only: the dashboard labels it a sandbox.
//!
//! Images decide what the simulated pods do: a name containing `crashloop` crash-loops,
//! `pull-error` cannot be pulled, `unschedulable` finds no node, `stuck` never starts (until the
//! progress deadline); anything else becomes ready after `ready_delay`. The fake Prometheus reports
//! 5 requests a second per ready pod and, for the canary analysis, errors by image too: `errors`
//! fails 8% of requests, `degrades` fails 6% once its track takes half the traffic (0.4% before),
//! `no-traffic` gets no requests at all, anything else fails 0.4%. Build Jobs succeed with an image
//! digest after a moment, or fail with a build error when their git ref starts with `bad`.

mod api;
mod controller;
mod jobs;
mod prometheus;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

#[derive(Clone, Debug)]
pub struct Options {
    /// How long a healthy pod takes to become ready.
    pub ready_delay: Duration,
    /// When a rollout that makes no progress is declared failed (Kubernetes' progressDeadlineSeconds).
    pub progress_deadline: Duration,
    /// Pause between followed log lines.
    pub log_interval: Duration,
    /// Serve the Gateway API (HTTPRoutes), so canaries split traffic by route weights.
    pub gateway_api: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ready_delay: Duration::from_millis(1500),
            progress_deadline: Duration::from_secs(30),
            log_interval: Duration::from_millis(500),
            gateway_api: false,
        }
    }
}

/// Requests per second and the share of them failing (5xx), per service and track.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub requests_per_second: f64,
    pub error_ratio: f64,
}

pub(crate) struct Shared {
    pub store: store::Store,
    pub options: Options,
    failures: Mutex<Option<(u32, StatusCode)>>,
    delay_next: AtomicU32,
    pub requests: AtomicU32,
    pub traffic: Mutex<HashMap<(String, String), Traffic>>,
}

impl Shared {
    /// The controllers' reaction to an applied object.
    fn applied(
        self: &Arc<Self>,
        resource: &str,
        ns: Option<&str>,
        name: &str,
        object: &serde_json::Value,
    ) {
        if resource == "apps/v1/deployments" {
            controller::deployment_applied(
                self.clone(),
                ns.unwrap_or_default().to_owned(),
                name.to_owned(),
                object.clone(),
            );
        } else if resource == "batch/v1/jobs" {
            jobs::job_applied(
                self.clone(),
                ns.unwrap_or_default().to_owned(),
                name.to_owned(),
                object.clone(),
            );
        }
    }

    fn deleted(self: &Arc<Self>, resource: &str, ns: Option<&str>, name: &str) {
        if resource == "apps/v1/deployments" {
            controller::deployment_deleted(self, ns.unwrap_or_default(), name);
        } else if resource == "batch/v1/jobs" {
            jobs::job_deleted(self, ns.unwrap_or_default(), name);
        }
    }
}

/// A running sandbox. Dropping it stops both servers.
pub struct Sandbox {
    pub kube_url: String,
    pub prometheus_url: String,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sandbox {
    pub async fn start(options: Options) -> std::io::Result<Self> {
        Self::start_on(
            options,
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
    }

    pub async fn start_on(
        options: Options,
        kube: SocketAddr,
        prometheus: SocketAddr,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            store: store::Store::new(),
            options,
            failures: Mutex::new(None),
            delay_next: AtomicU32::new(0),
            requests: AtomicU32::new(0),
            traffic: Mutex::new(HashMap::new()),
        });
        let kube_listener = tokio::net::TcpListener::bind(kube).await?;
        let prom_listener = tokio::net::TcpListener::bind(prometheus).await?;
        let kube_url = format!("http://{}", kube_listener.local_addr()?);
        let prometheus_url = format!("http://{}", prom_listener.local_addr()?);
        let kube_app = api::router(shared.clone());
        let prom_app = prometheus::router(shared.clone());
        let tasks = vec![
            tokio::spawn(async move {
                let _ = axum::serve(kube_listener, kube_app).await;
            }),
            tokio::spawn(async move {
                let _ = axum::serve(prom_listener, prom_app).await;
            }),
        ];
        Ok(Self {
            kube_url,
            prometheus_url,
            shared,
            tasks,
        })
    }

    /// The next `n` API requests fail with `status` (a flaky or overloaded API server).
    pub fn fail_next(&self, n: u32, status: u16) {
        *self
            .shared
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((
            n,
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        ));
    }

    /// The next `n` API requests hang for a minute (timeouts).
    pub fn hang_next(&self, n: u32) {
        self.shared.delay_next.store(n, Ordering::SeqCst);
    }

    /// API requests served so far.
    pub fn requests(&self) -> u32 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn set_traffic(&self, service: &str, track: &str, traffic: Traffic) {
        self.shared
            .traffic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((service.to_owned(), track.to_owned()), traffic);
    }

    /// Reads an object as the API server holds it (for tests).
    pub fn object(
        &self,
        resource: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<serde_json::Value> {
        self.shared.store.get(resource, ns, name)
    }

    pub fn objects(&self, resource: &str, ns: Option<&str>) -> Vec<serde_json::Value> {
        self.shared
            .store
            .list(resource, ns, &store::Selector::default())
            .1
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn inject_failures(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    if shared.delay_next.load(Ordering::SeqCst) > 0 {
        shared.delay_next.fetch_sub(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let fail = {
        let mut f = shared.failures.lock().unwrap_or_else(|p| p.into_inner());
        match f.as_mut() {
            Some((n, status)) if *n > 0 => {
                *n -= 1;
                Some(*status)
            }
            _ => None,
        }
    };
    if let Some(status) = fail {
        let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "injected by the sandbox", "reason": "InternalError", "code": status.as_u16()});
        return (status, axum::Json(body)).into_response();
    }
    next.run(req).await
}
