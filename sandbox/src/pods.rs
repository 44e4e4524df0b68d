//! The pods the simulator plays, by namespace and name: what each container is doing (read by the
//! status writer, the log endpoint and `/metrics`), and the request counters of each pod, brought
//! up to date from the traffic model ([`crate::traffic`]) whenever something reads or changes them.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;

use crate::behaviour;
use crate::build_job::BuildInputs;
use crate::logs::{self, LogKind};
use crate::task_job::TaskInputs;
use crate::traffic::{self, Counters};

/// A lock that survives a panicked holder: the data stays usable for the simulation.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An init container or a container, by its index in the pod spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Init(usize),
    Main(usize),
}

/// How a container run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Exit {
    pub code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started: Timestamp,
    pub finished: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RunState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started: Timestamp,
    },
    Exited(Exit),
}

/// One container as the kubelet reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerRun {
    pub state: RunState,
    pub last: Option<Exit>,
    pub restart_count: i32,
    pub ready: bool,
}

impl ContainerRun {
    pub fn waiting(reason: &str, message: Option<String>) -> Self {
        Self {
            state: RunState::Waiting {
                reason: reason.to_owned(),
                message,
            },
            last: None,
            restart_count: 0,
            ready: false,
        }
    }

    pub fn succeeded(&self) -> bool {
        matches!(&self.state, RunState::Exited(e) if e.code == 0)
    }

    /// The run a log request reads: the current one or, between restarts, the one that ended last.
    pub fn current_run(&self) -> Option<logs::Run> {
        match &self.state {
            RunState::Running { started } => Some(logs::Run {
                started: *started,
                finished: None,
            }),
            RunState::Exited(e) => Some(run_of(e)),
            RunState::Waiting { .. } => self.last.as_ref().map(run_of),
        }
    }

    /// The run before (`previous=true`).
    pub fn previous_run(&self) -> Option<logs::Run> {
        self.last.as_ref().map(run_of)
    }
}

fn run_of(e: &Exit) -> logs::Run {
    logs::Run {
        started: e.started,
        finished: Some(e.finished),
    }
}

/// What changes while a pod runs.
#[derive(Debug)]
pub struct PodState {
    pub start_time: Timestamp,
    pub init: Vec<ContainerRun>,
    pub containers: Vec<ContainerRun>,
    /// When each condition last changed, and to what.
    pub transitions: BTreeMap<&'static str, (bool, Timestamp)>,
    pub counters: Counters,
    counted_until: Instant,
    /// A container of the pod has passed its readiness probe once: an `unhealthy` image fails
    /// from then on (a service that broke after it was deployed).
    pub went_ready: bool,
}

impl PodState {
    pub fn run(&self, slot: Slot) -> Option<&ContainerRun> {
        match slot {
            Slot::Init(i) => self.init.get(i),
            Slot::Main(i) => self.containers.get(i),
        }
    }

    pub fn run_mut(&mut self, slot: Slot) -> Option<&mut ContainerRun> {
        match slot {
            Slot::Init(i) => self.init.get_mut(i),
            Slot::Main(i) => self.containers.get_mut(i),
        }
    }

    /// Ready, as Services see it: every container ready.
    pub fn ready(&self) -> bool {
        !self.containers.is_empty() && self.containers.iter().all(|c| c.ready)
    }
}

/// A pod this simulator plays.
#[derive(Debug)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: usize,
    pub spec: PodSpec,
    /// `enclii.dev/service`, or the pod's name.
    pub service: String,
    /// `enclii.dev/track`.
    pub track: Option<String>,
    /// Labelled `app.kubernetes.io/managed-by: enclii`: Prometheus scrapes its `http` port.
    pub managed_by_enclii: bool,
    pub build: Option<BuildInputs>,
    /// A pod of any other Job: what its command does.
    pub task: Option<TaskInputs>,
    /// None for a pod that had finished before the simulator (re)started.
    pub ip: Option<Ipv4Addr>,
    /// Whether `ip` is still allocated to the pod (released when it finishes or goes).
    pub holds_ip: AtomicBool,
    pub state: Mutex<PodState>,
    /// Wakes the pod's status writer.
    pub changed: tokio::sync::Notify,
}

impl PodRecord {
    pub fn new(
        pod: &k8s_openapi::api::core::v1::Pod,
        node: usize,
        ip: Option<Ipv4Addr>,
        state: PodStateSeed,
    ) -> Self {
        let meta = &pod.metadata;
        let labels = meta.labels.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let build = BuildInputs::of(&spec);
        let task = build.is_none().then(|| TaskInputs::of(&spec)).flatten();
        Self {
            namespace: meta.namespace.clone().unwrap_or_default(),
            service: labels
                .get(traffic::SERVICE_LABEL)
                .cloned()
                .unwrap_or_else(|| name.clone()),
            track: labels.get(traffic::TRACK_LABEL).cloned(),
            managed_by_enclii: labels
                .get("app.kubernetes.io/managed-by")
                .is_some_and(|m| m == "enclii"),
            name,
            uid: meta.uid.clone().unwrap_or_default(),
            node,
            holds_ip: AtomicBool::new(ip.is_some()),
            ip,
            build,
            task,
            state: Mutex::new(PodState {
                went_ready: state.containers.iter().any(|c| c.ready),
                start_time: state.start_time,
                init: state.init,
                containers: state.containers,
                transitions: BTreeMap::new(),
                counters: Counters::default(),
                counted_until: Instant::now(),
            }),
            changed: tokio::sync::Notify::new(),
            spec,
        }
    }

    pub fn container(&self, slot: Slot) -> Option<&Container> {
        match slot {
            Slot::Init(i) => self.spec.init_containers.as_ref()?.get(i),
            Slot::Main(i) => self.spec.containers.get(i),
        }
    }

    pub fn slot_named(&self, name: &str) -> Option<Slot> {
        if let Some(i) = self.spec.containers.iter().position(|c| c.name == name) {
            return Some(Slot::Main(i));
        }
        self.spec
            .init_containers
            .iter()
            .flatten()
            .position(|c| c.name == name)
            .map(Slot::Init)
    }

    pub fn image(&self, slot: Slot) -> &str {
        self.container(slot)
            .and_then(|c| c.image.as_deref())
            .unwrap_or_default()
    }

    pub fn restart_policy(&self) -> &str {
        self.spec.restart_policy.as_deref().unwrap_or("Always")
    }

    /// What the container writes to its log.
    pub fn log_kind(&self, slot: Slot, build_time: std::time::Duration) -> LogKind {
        let name = self
            .container(slot)
            .map(|c| c.name.as_str())
            .unwrap_or_default();
        match (&self.build, slot) {
            (Some(b), Slot::Main(0)) => LogKind::Paced {
                lines: b.log(),
                over: build_time,
            },
            (Some(b), Slot::Init(0)) => LogKind::Immediate {
                lines: vec![format!("checked out {}", b.git_ref)],
            },
            (_, Slot::Init(_)) | (Some(_), _) => LogKind::Immediate {
                lines: vec![format!("{name}: done")],
            },
            (None, Slot::Main(_)) if self.task.is_some() => LogKind::Immediate {
                lines: self
                    .task
                    .as_ref()
                    .map(|t| t.lines.clone())
                    .unwrap_or_default(),
            },
            (None, Slot::Main(_)) => match behaviour::Behaviour::of(self.image(slot)) {
                behaviour::Behaviour::CrashLoop => LogKind::Crash {
                    service: self.service.clone(),
                    message: CRASH_MESSAGE.to_owned(),
                },
                _ => LogKind::Requests {
                    service: self.service.clone(),
                },
            },
        }
    }

    /// The pod's address, if it still holds it; it holds it no more (so it is released once).
    pub fn take_ip(&self) -> Option<Ipv4Addr> {
        self.holds_ip
            .swap(false, Ordering::SeqCst)
            .then_some(self.ip)
            .flatten()
    }

    /// Changes the pod's state and wakes its status writer.
    pub fn update<R>(&self, f: impl FnOnce(&mut PodState) -> R) -> R {
        let r = f(&mut lock(&self.state));
        self.changed.notify_one();
        r
    }
}

pub const CRASH_MESSAGE: &str = "simulated crash: exit code 1";

/// The state a pod starts from: fresh, or what its status said (the simulator restarted).
pub struct PodStateSeed {
    pub start_time: Timestamp,
    pub init: Vec<ContainerRun>,
    pub containers: Vec<ContainerRun>,
}

/// Every pod played, by namespace and name.
#[derive(Default)]
pub struct Registry {
    pods: Mutex<HashMap<(String, String), Arc<PodRecord>>>,
}

impl Registry {
    pub fn insert(&self, pod: Arc<PodRecord>) {
        lock(&self.pods).insert((pod.namespace.clone(), pod.name.clone()), pod);
    }

    /// Forgets the pod, unless a newer pod of the same name took its place.
    pub fn remove(&self, pod: &PodRecord) {
        let mut pods = lock(&self.pods);
        let key = (pod.namespace.clone(), pod.name.clone());
        if pods.get(&key).is_some_and(|p| p.uid == pod.uid) {
            pods.remove(&key);
        }
    }

    /// Every pod played, in no particular order.
    pub fn all(&self) -> Vec<Arc<PodRecord>> {
        lock(&self.pods).values().cloned().collect()
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodRecord>> {
        lock(&self.pods)
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Adds to every pod's counters what it served since the last update, at the rates of the
    /// moment (call before readiness changes, so each rate counts for exactly its time).
    pub fn advance_traffic(&self, routes: &[Arc<DynamicObject>]) {
        let pods: Vec<Arc<PodRecord>> = lock(&self.pods).values().cloned().collect();
        let now = Instant::now();
        let ready: Vec<bool> = pods.iter().map(|p| lock(&p.state).ready()).collect();
        let mut by_service: HashMap<(&str, &str), BTreeMap<Option<String>, usize>> = HashMap::new();
        for (p, _) in pods.iter().zip(&ready).filter(|(_, r)| **r) {
            *by_service
                .entry((&p.namespace, &p.service))
                .or_default()
                .entry(p.track.clone())
                .or_default() += 1;
        }
        let mut route_specs: HashMap<&str, Vec<&serde_json::Value>> = HashMap::new();
        for r in routes {
            if let Some(ns) = r.metadata.namespace.as_deref() {
                route_specs.entry(ns).or_default().push(&r.data["spec"]);
            }
        }
        let mut weights: HashMap<(&str, &str), Option<traffic::RouteWeights>> = HashMap::new();
        for (p, ready) in pods.iter().zip(ready) {
            let mut state = lock(&p.state);
            let seconds = now.duration_since(state.counted_until).as_secs_f64();
            state.counted_until = now;
            let image = p.image(Slot::Main(0));
            if !ready || !behaviour::receives_traffic(image) {
                continue;
            }
            let key = (p.namespace.as_str(), p.service.as_str());
            let Some(counts) = by_service.get(&key) else {
                continue;
            };
            let w = *weights.entry(key).or_insert_with(|| {
                traffic::route_weights(route_specs.get(key.0).into_iter().flatten().copied(), key.1)
            });
            let share = traffic::track_share(p.track.as_deref(), counts, w);
            let rate = traffic::pod_rate(
                counts.values().sum(),
                counts.get(&p.track).copied().unwrap_or(0),
                share,
            );
            state
                .counters
                .add(rate, behaviour::error_ratio(image, share), seconds);
        }
    }
}
