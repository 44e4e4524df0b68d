//! The node simulator: plays the kubelets of a local cluster whose control plane is real
//! (kube-apiserver, kube-controller-manager, kube-scheduler; `scripts/cluster.sh`). It has no API
//! of its own: it registers Nodes and keeps them Ready ([`node`]), runs the pods the scheduler
//! binds to them ([`kubelet`]) with real addresses in 10.244.0.0/16 ([`network`]) on which they
//! serve HTTP and Prometheus metrics ([`workload`], [`traffic`]), and serves their logs to the API
//! server through each node's kubelet endpoint ([`kubelet_api`]); it also provisions the volumes
//! pods claim ([`volumes`]). Images decide what a pod does ([`behaviour`]); the engine's build
//! Jobs build nothing but report a digest ([`build_job`]); its other Jobs (release commands,
//! scheduled jobs, one-off runs) play their command's `echo`, `sleep` and `exit` ([`task_job`]).
//! For tests and the embedded default only, never the production path.
//!
//! `enclii-nodes run` runs it; `enclii-nodes setup` readies a fresh cluster for Switchyard
//! ([`setup`]); [`testing`] is how tests find the local cluster.

pub mod setup;
pub mod testing;

mod behaviour;
mod build_job;
mod kubelet;
mod kubelet_api;
mod logs;
mod network;
mod node;
mod pods;
mod scrape;
mod task_job;
mod traffic;
mod volumes;
mod workload;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, reflector, watcher};

pub use network::MAX_NODES;

#[derive(Clone, Debug)]
pub struct Options {
    /// How many nodes (`sim-node-1` …), at most [`MAX_NODES`].
    pub nodes: usize,
    /// How long a container takes to become ready (or to crash, or to build).
    pub ready_delay: Duration,
    /// Pause between the lines of a followed service log.
    pub log_interval: Duration,
    /// The folder with the kubelet's serving certificate and key (`kubelet.crt`, `kubelet.key`).
    pub pki: PathBuf,
    /// Where to keep Prometheus' file-based discovery of the pods to scrape ([`scrape`]).
    pub scrape_targets: Option<PathBuf>,
    /// The nodes' and pods' network, `10.N.0.0/16` (default 10.244.0.0/16; [`network`]).
    pub network: Option<String>,
}

impl Options {
    pub fn new(pki: impl Into<PathBuf>) -> Self {
        Self {
            nodes: 3,
            ready_delay: Duration::from_millis(1500),
            log_interval: Duration::from_millis(500),
            pki: pki.into(),
            scrape_targets: None,
            network: None,
        }
    }

    /// How long a container of `image` takes before its first readiness probe: `slow` images
    /// take ten times `ready_delay` and three seconds more (long enough to restart the API server
    /// under a rollout).
    fn warm_up(&self, image: &str) -> Duration {
        if image.contains("slow") {
            self.ready_delay * 10 + Duration::from_secs(3)
        } else {
            self.ready_delay
        }
    }

    /// How long an init container runs.
    fn init_time(&self) -> Duration {
        self.ready_delay / 4
    }

    /// How long a build takes (with its checkout, about twice `ready_delay`).
    fn build_time(&self) -> Duration {
        self.ready_delay * 3 / 2
    }
}

/// What the simulator's tasks share.
struct Simulation {
    client: kube::Client,
    options: Options,
    pods: pods::Registry,
    addresses: Mutex<network::PodAddresses>,
    /// HTTPRoutes (when the Gateway API is installed): canary traffic splits by their weights.
    routes: reflector::Store<DynamicObject>,
}

impl Simulation {
    fn advance_traffic(&self) {
        self.pods.advance_traffic(&self.routes.state());
    }
}

/// Counters also move between scrapes, so that route weight changes count from about when
/// they happen.
const TRAFFIC_TICK: Duration = Duration::from_secs(2);

/// How often to look for the Gateway API while it is not installed.
const GATEWAY_API_POLL: Duration = Duration::from_secs(10);

/// Keeps `writer` filled with the cluster's HTTPRoutes, once the Gateway API is installed. Until
/// then no watch is started: kube's back-off restarts after each failed list, so a watch of an
/// API that is not served would retry every second or so.
async fn watch_routes(
    client: kube::Client,
    writer: reflector::store::Writer<DynamicObject>,
    resource: ApiResource,
) {
    loop {
        match client.list_api_group_resources(&resource.api_version).await {
            Ok(list) if list.resources.iter().any(|r| r.name == resource.plural) => break,
            Ok(_) | Err(_) => tokio::time::sleep(GATEWAY_API_POLL).await,
        }
    }
    tracing::info!("the Gateway API is installed: canary traffic follows HTTPRoute weights");
    let routes: Api<DynamicObject> = Api::all_with(client, &resource);
    reflector(writer, watcher(routes, watcher::Config::default()))
        .default_backoff()
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::warn!(error = %e, "watching HTTPRoutes; retrying");
            }
        })
        .await;
}

/// Runs the simulated nodes until one of its tasks fails (they are meant to run for ever).
pub async fn run(client: kube::Client, options: Options) -> anyhow::Result<()> {
    if !(1..=MAX_NODES).contains(&options.nodes) {
        bail!(
            "--nodes must be from 1 to {MAX_NODES} (the kubelet certificate names 10.244.0.10-29)"
        );
    }
    if let Some(cidr) = &options.network {
        network::use_network(cidr).map_err(anyhow::Error::msg)?;
    }
    let tls = kubelet_api::tls_config(&options.pki)?;
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let route_resource = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
    let routes_writer = reflector::store::Writer::new(route_resource.clone());
    let sim = Arc::new(Simulation {
        client: client.clone(),
        routes: routes_writer.as_reader(),
        options,
        pods: pods::Registry::default(),
        addresses: Mutex::new(network::PodAddresses::default()),
    });
    let mut tasks = tokio::task::JoinSet::new();
    // The kubelet endpoints first: a node whose logs cannot be reached is no use.
    for node in 1..=sim.options.nodes {
        let listener = kubelet_api::bind(node, tls.clone())
            .await
            .with_context(|| format!("the kubelet endpoint of node {node}"))?;
        tasks.spawn(kubelet_api::serve(sim.clone(), node, listener));
    }
    tasks.spawn(volumes::run(client.clone()));
    tasks.spawn(watch_routes(client, routes_writer, route_resource));
    let ticking = sim.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(TRAFFIC_TICK);
        loop {
            tick.tick().await;
            ticking.advance_traffic();
        }
    });
    if let Some(path) = sim.options.scrape_targets.clone() {
        tasks.spawn(scrape::keep_written(sim.clone(), path));
    }
    for node in 1..=sim.options.nodes {
        tasks.spawn(node::keep_alive(sim.clone(), node));
        tasks.spawn(kubelet::play_node(sim.clone(), node));
    }
    tracing::info!(
        nodes = sim.options.nodes,
        ready_delay_ms = sim.options.ready_delay.as_millis() as u64,
        "node simulator running"
    );
    match tasks.join_next().await {
        Some(Err(e)) => Err(e).context("a simulator task failed"),
        _ => bail!("a simulator task ended"),
    }
}
