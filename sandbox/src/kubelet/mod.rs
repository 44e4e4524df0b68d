//! The kubelet's part for the pods bound to one simulated node: a watch on the pods whose
//! `spec.nodeName` is the node (as a kubelet's), and one task per pod ([`pod::play`]) that is
//! told of every change to its pod and ends when the pod is deleted or gone. After a restart (of
//! the simulator or of the watch) the pods found are adopted: running ones keep their address,
//! start time and restarts; finished ones are only kept for their logs.

pub mod pod;
pub mod probe;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tracing::Instrument;

use crate::Simulation;
use crate::network::node_name;
use crate::pods::{ContainerRun, PodRecord, PodStateSeed, lock};

/// Plays the kubelet of node `node` for ever (the watch retries with back-off).
pub async fn play_node(sim: Arc<Simulation>, node: usize) {
    let api: Api<Pod> = Api::all(sim.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", node_name(node)));
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut node = Node {
        sim,
        node,
        pods: HashMap::new(),
    };
    let mut listing: Vec<Pod> = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(p)) => listing.push(p),
            Ok(watcher::Event::InitDone) => node.resync(std::mem::take(&mut listing)),
            Ok(watcher::Event::Apply(p)) => node.dispatch(p),
            Ok(watcher::Event::Delete(p)) => node.forget(&p),
            Err(e) => tracing::warn!(node = node.node, error = %e, "watching pods; retrying"),
        }
    }
    tracing::error!(node = node.node, "the pod watch ended");
}

struct Node {
    sim: Arc<Simulation>,
    node: usize,
    /// The task of each pod (by UID) hears of its changes through its channel; dropping the
    /// sender tells it the pod is gone.
    pods: HashMap<String, watch::Sender<Option<Pod>>>,
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

impl Node {
    /// After a (re)list: pods no longer there are gone; the rest are dispatched, those that
    /// already have an address first, so that no new pod takes it.
    fn resync(&mut self, mut pods: Vec<Pod>) {
        let listed: HashSet<String> = pods.iter().map(uid).collect();
        self.pods.retain(|uid, _| listed.contains(uid));
        pods.sort_by_key(|p| pod_ip(p).is_none());
        for p in pods {
            self.dispatch(p);
        }
    }

    fn forget(&mut self, pod: &Pod) {
        if let Some(tx) = self.pods.remove(&uid(pod)) {
            tx.send_replace(None);
        }
    }

    fn dispatch(&mut self, pod: Pod) {
        let uid = uid(&pod);
        if let Some(tx) = self.pods.get(&uid) {
            tx.send_replace(Some(pod));
            return;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let span = tracing::info_span!("pod", %namespace, %name, node = self.node);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let finished = matches!(phase, Some("Succeeded" | "Failed"));
        let ip = if finished {
            None
        } else {
            self.address_for(&pod)
        };
        let add_scheduled = !pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled"));
        let record = Arc::new(PodRecord::new(&pod, self.node, ip, seed(&pod)));
        let (tx, rx) = watch::channel(Some(pod));
        self.pods.insert(uid, tx);
        span.in_scope(|| tracing::info!(ip = ?ip, "playing the pod"));
        tokio::spawn(
            pod::play(self.sim.clone(), record, add_scheduled, finished, rx).instrument(span),
        );
    }

    /// The pod's address: the one it had, if it is still free, else a new one.
    fn address_for(&self, pod: &Pod) -> Option<Ipv4Addr> {
        let mut addresses = lock(&self.sim.addresses);
        if let Some(ip) = pod_ip(pod)
            && addresses.reserve(self.node, ip)
        {
            return Some(ip);
        }
        addresses.allocate(self.node)
    }
}

fn pod_ip(pod: &Pod) -> Option<Ipv4Addr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

/// Where the pod's containers start from: fresh, or as its status left them.
fn seed(pod: &Pod) -> PodStateSeed {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let from = |names: Vec<&str>, statuses: &Option<Vec<ContainerStatus>>, fresh: &str| {
        names
            .into_iter()
            .map(|name| {
                statuses
                    .iter()
                    .flatten()
                    .find(|s| s.name == name)
                    .and_then(status::run_from_status)
                    .unwrap_or_else(|| ContainerRun::waiting(fresh, None))
            })
            .collect::<Vec<_>>()
    };
    let init_names: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    let waiting_for = if init_names.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    PodStateSeed {
        start_time: status
            .start_time
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0),
        init: from(
            init_names,
            &status.init_container_statuses,
            "PodInitializing",
        ),
        containers: from(
            spec.containers.iter().map(|c| c.name.as_str()).collect(),
            &status.container_statuses,
            waiting_for,
        ),
    }
}
