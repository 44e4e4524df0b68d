//! Each simulated node's kubelet endpoint, `https://10.244.0.{10+i}:10250`, as the API server
//! reaches it (with the node's InternalIP and the kubelet certificate from `--pki`): pod logs
//! (`GET /containerLogs/{namespace}/{pod}/{container}`, which the API server's `pods/log` proxies
//! with the query parameters of `PodLogOptions`) and `/healthz`. The API server's client
//! certificate is not checked: only the local API server can reach these addresses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

use crate::Simulation;
use crate::logs::{self, ByteBudget, LogQuery};
use crate::network::{KUBELET_PORT, node_ip};
use crate::pods::{PodRecord, RunState, lock};

/// The serving certificate and key (`kubelet.crt`, `kubelet.key`, PEM) in `pki`.
pub fn tls_config(pki: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let cert_file = pki.join("kubelet.crt");
    let key_file = pki.join("kubelet.key");
    let certs = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading {}", cert_file.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .with_context(|| format!("reading {}", key_file.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the kubelet certificate and key do not go together")?;
    Ok(Arc::new(config))
}

/// TLS connections, handshaken off the accept loop so that a slow client holds up no other.
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Listens on the node's kubelet address.
pub async fn bind(node: usize, tls: Arc<ServerConfig>) -> anyhow::Result<TlsListener> {
    let address = SocketAddr::from((node_ip(node), KUBELET_PORT));
    let tcp = TcpListener::bind(address).await.with_context(|| {
        format!("listening on {address} (is 10.244.0.0/16 routed to this machine? scripts/lib.sh ensure_pod_network)")
    })?;
    let local = tcp.local_addr()?;
    let acceptor = TlsAcceptor::from(tls);
    let (tx, incoming) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%address, error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send((tls, peer)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    Ok(TlsListener { incoming, local })
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(c) => c,
            // The accept loop never ends; if it did, there is nothing more to serve.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[derive(Clone)]
struct Kubelet {
    sim: Arc<Simulation>,
    node: usize,
}

/// Serves the node's kubelet endpoint for ever.
pub async fn serve(sim: Arc<Simulation>, node: usize, listener: TlsListener) {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(Kubelet { sim, node });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(node, error = %e, "the kubelet endpoint stopped");
    }
}

fn plain(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

async fn container_logs(
    State(k): State<Kubelet>,
    UrlPath((namespace, pod_name, container)): UrlPath<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = match LogQuery::from_params(&params) {
        Ok(q) => q,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("invalid log query: {e}")),
    };
    let Some(pod) = k
        .sim
        .pods
        .get(&namespace, &pod_name)
        .filter(|p| p.node == k.node)
    else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("pod \"{pod_name}\" does not exist"),
        );
    };
    let Some(slot) = pod.slot_named(&container) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("container \"{container}\" not found in pod \"{pod_name}\""),
        );
    };
    let (run, waiting) = {
        let state = lock(&pod.state);
        let Some(r) = state.run(slot) else {
            return plain(
                StatusCode::NOT_FOUND,
                format!("container \"{container}\" not found"),
            );
        };
        let waiting = match &r.state {
            RunState::Waiting { reason, .. } => reason.clone(),
            _ => String::new(),
        };
        let run = if query.previous {
            r.previous_run()
        } else {
            r.current_run()
        };
        (run, waiting)
    };
    let Some(run) = run else {
        let message = if query.previous {
            format!("previous terminated container \"{container}\" in pod \"{pod_name}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {waiting}"
            )
        };
        return plain(StatusCode::BAD_REQUEST, message);
    };
    let options = &k.sim.options;
    let kind = pod.log_kind(slot, options.build_time());
    let interval = options.log_interval;
    let now = Timestamp::now();
    let mut budget = ByteBudget::new(query.limit_bytes);
    let head: String = query
        .select(kind.lines(&run, None, now, interval), now)
        .iter()
        .map_while(|l| budget.take(logs::render(l, query.timestamps)))
        .collect();
    let done = !query.follow || query.previous || budget.spent() || kind.complete(&run, now);
    let mut response = if done {
        Body::from(head).into_response()
    } else {
        let follow = Follow {
            sim: k.sim.clone(),
            pod,
            slot,
            kind,
            started: run.started,
            after: now,
            budget,
            timestamps: query.timestamps,
            poll: interval.clamp(Duration::from_millis(50), Duration::from_secs(1)),
            interval,
        };
        let rest = futures::stream::unfold(Some(follow), |f| async move { f?.next().await });
        let body = futures::stream::once(async move { head })
            .chain(rest)
            .map(Ok::<_, std::convert::Infallible>);
        Body::from_stream(body).into_response()
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

/// A followed log: new lines as they are written, until the container run ends or the pod goes.
struct Follow {
    sim: Arc<Simulation>,
    pod: Arc<PodRecord>,
    slot: crate::pods::Slot,
    kind: logs::LogKind,
    /// The run followed, by its start.
    started: Timestamp,
    after: Timestamp,
    budget: ByteBudget,
    timestamps: bool,
    poll: Duration,
    interval: Duration,
}

impl Follow {
    /// The next chunk, and what follows it (`None`: the stream ends after this chunk).
    async fn next(mut self) -> Option<(String, Option<Self>)> {
        loop {
            tokio::time::sleep(self.poll).await;
            let still_here = self
                .sim
                .pods
                .get(&self.pod.namespace, &self.pod.name)
                .is_some_and(|p| p.uid == self.pod.uid);
            let run = {
                let state = lock(&self.pod.state);
                state.run(self.slot).and_then(|r| {
                    [r.current_run(), r.previous_run()]
                        .into_iter()
                        .flatten()
                        .find(|run| run.started == self.started)
                })
            };
            let now = Timestamp::now();
            let run = run.filter(|_| still_here)?;
            let chunk: String = self
                .kind
                .lines(&run, Some(self.after), now, self.interval)
                .iter()
                .map_while(|l| self.budget.take(logs::render(l, self.timestamps)))
                .collect();
            self.after = now;
            let ended = self.budget.spent() || self.kind.complete(&run, now);
            if !chunk.is_empty() {
                return Some((chunk, (!ended).then_some(self)));
            }
            if ended {
                return None;
            }
        }
    }
}
