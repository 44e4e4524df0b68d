//! One pod's life on a simulated node: its init containers one after the other, then its
//! containers side by side, each doing what its image asks (see [`crate::behaviour`]), with real
//! probes against the servers it runs; a status writer that reports every change through the
//! `pods/status` subresource; and, once the pod is being deleted, the end of its containers and the
//! final delete the kubelet does (grace period 0), without which ReplicaSets never finish scaling
//! down.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};

use super::probe;
use super::status::{self, Facts};
use crate::Simulation;
use crate::behaviour::Behaviour;
use crate::network::node_ip;
use crate::pods::{CRASH_MESSAGE, Exit, PodRecord, RunState, Slot, lock};
use crate::workload;

pub const FIELD_MANAGER: &str = "enclii-kubelet-sim";

/// Restart back-off: 1 s, doubling, capped at 10 s (a kubelet's is 10 s to 5 min).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often a container that is not ready yet is probed again.
const UNREADY_RECHECK: Duration = Duration::from_millis(500);
/// Status changes this close together go out in one patch.
const COALESCE: Duration = Duration::from_millis(25);

struct PodCtx {
    sim: Arc<Simulation>,
    pod: Arc<PodRecord>,
}

/// What ended a pod's play.
enum End {
    /// Marked for deletion: its containers stop and the kubelet deletes it.
    Deleting,
    /// Gone from the API server.
    Gone,
}

/// Plays the pod until it is deleted or gone. `updates` carries the pod as the API server has it
/// (`None`, or the sender dropped: gone); `finished` is a pod that had ended before the simulator
/// started, which is only kept for its logs; `add_scheduled` a pod without the scheduler's
/// `PodScheduled` condition (created on the node directly).
pub async fn play(
    sim: Arc<Simulation>,
    pod: Arc<PodRecord>,
    add_scheduled: bool,
    finished: bool,
    mut updates: watch::Receiver<Option<Pod>>,
) {
    sim.pods.insert(pod.clone());
    let ctx = PodCtx {
        sim: sim.clone(),
        pod: pod.clone(),
    };
    if !finished {
        // The first status: addresses, start time, containers being created.
        pod.changed.notify_one();
    }
    let end = tokio::select! {
        _ = async {
            if !finished {
                lifecycle(&ctx).await;
                tracing::debug!("all containers finished");
            }
            release_ip(&ctx);
            std::future::pending::<()>().await
        } => End::Gone,
        () = write_status(&ctx, add_scheduled) => End::Gone,
        end = until_deleted(&mut updates) => end,
    };
    // The containers' servers stopped with the lifecycle future.
    if let End::Deleting = end {
        delete_now(&sim, &pod).await;
    }
    release_ip(&ctx);
    sim.pods.remove(&pod);
}

async fn until_deleted(updates: &mut watch::Receiver<Option<Pod>>) -> End {
    loop {
        match &*updates.borrow_and_update() {
            None => return End::Gone,
            Some(p) if p.metadata.deletion_timestamp.is_some() => return End::Deleting,
            Some(_) => {}
        }
        if updates.changed().await.is_err() {
            return End::Gone;
        }
    }
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(n, i)| (n.as_str(), i.as_str())).collect()
}

fn release_ip(ctx: &PodCtx) {
    if let Some(ip) = ctx.pod.take_ip() {
        lock(&ctx.sim.addresses).release(ctx.pod.node, ip);
    }
}

/// The kubelet's last word on a pod whose containers stopped: delete it now. The UID
/// precondition spares a new pod that took the name meanwhile.
pub async fn delete_now(sim: &Simulation, pod: &PodRecord) {
    let api: Api<Pod> = Api::namespaced(sim.client.clone(), &pod.namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(pod.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let mut wait = FIRST_BACKOFF;
    loop {
        match api.delete(&pod.name, &params).await {
            Ok(_) => return,
            // Gone already, or another pod by now.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return,
            Err(e) => {
                tracing::warn!(error = %e, "deleting the pod; retrying");
                sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Sends the pod's status whenever it changes, until the pod is gone.
async fn write_status(ctx: &PodCtx, add_scheduled: bool) {
    let pod = &ctx.pod;
    let api: Api<Pod> = Api::namespaced(ctx.sim.client.clone(), &pod.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let names = |containers: &[Container]| -> Vec<(String, String)> {
        containers
            .iter()
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .collect()
    };
    let init = names(pod.spec.init_containers.as_deref().unwrap_or_default());
    let main = names(&pod.spec.containers);
    let facts = Facts {
        uid: &pod.uid,
        host_ip: node_ip(pod.node),
        pod_ip: pod.ip,
        restart_policy: pod.restart_policy(),
        init: pairs(&init),
        main: pairs(&main),
        add_scheduled,
    };
    loop {
        pod.changed.notified().await;
        sleep(COALESCE).await;
        let mut wait = FIRST_BACKOFF;
        loop {
            let status = status::render(&facts, &mut lock(&pod.state), Timestamp::now());
            let body = serde_json::json!({ "metadata": { "uid": pod.uid }, "status": status });
            match api
                .patch_status(&pod.name, &params, &Patch::Strategic(body))
                .await
            {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(e) => {
                    tracing::warn!(error = %e, "updating the pod's status; retrying");
                    sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Init containers in order, each to success, then the containers together.
async fn lifecycle(ctx: &PodCtx) {
    if ctx.pod.ip.is_none() {
        tracing::error!("no pod address left on the node: the pod's sandbox cannot be created");
        return std::future::pending().await;
    }
    let inits = ctx.pod.spec.init_containers.as_ref().map_or(0, Vec::len);
    for i in 0..inits {
        run_container(ctx, Slot::Init(i)).await;
        let ok = lock(&ctx.pod.state)
            .init
            .get(i)
            .is_some_and(|r| r.succeeded());
        if !ok {
            // Failed for good (restart policy Never): the pod failed.
            return;
        }
    }
    let containers = ctx.pod.spec.containers.len();
    join_all((0..containers).map(|i| run_container(ctx, Slot::Main(i)))).await;
}

/// How a container run ends.
enum Plan {
    /// Serves until a liveness probe kills it.
    Serve { unhealthy: bool },
    /// Serves a moment, then exits with code 1.
    Crash,
    /// Exits after a while with this code and termination message (init containers, builds,
    /// other Jobs' containers).
    Complete {
        after: Duration,
        code: i32,
        message: Option<String>,
    },
}

fn plan(ctx: &PodCtx, slot: Slot, behaviour: Behaviour) -> Plan {
    let options = &ctx.sim.options;
    let complete = |after, code, message| Plan::Complete {
        after,
        code,
        message,
    };
    match (&ctx.pod.build, slot) {
        (_, Slot::Init(_)) => complete(options.init_time(), 0, None),
        (Some(b), Slot::Main(_)) => complete(
            options.build_time(),
            if b.fails() { 1 } else { 0 },
            b.termination_message(),
        ),
        (None, Slot::Main(_)) => match behaviour {
            Behaviour::CrashLoop => Plan::Crash,
            // A Job's container runs to completion, as its command says.
            _ if ctx.pod.restart_policy() != "Always" => match &ctx.pod.task {
                Some(t) => complete(t.runs_for.unwrap_or(options.ready_delay), t.exit_code, None),
                None => complete(options.ready_delay, 0, None),
            },
            Behaviour::Unhealthy => Plan::Serve { unhealthy: true },
            _ => Plan::Serve { unhealthy: false },
        },
    }
}

/// When a run that started at `started` (perhaps before the simulator did) reaches `after`.
fn deadline(started: Timestamp, after: Duration) -> Instant {
    let elapsed = Timestamp::now()
        .duration_since(started)
        .try_into()
        .unwrap_or(Duration::ZERO);
    Instant::now() + after.saturating_sub(elapsed)
}

async fn run_container(ctx: &PodCtx, slot: Slot) {
    let Some(container) = ctx.pod.container(slot).cloned() else {
        return;
    };
    let image = container.image.clone().unwrap_or_default();
    let behaviour = if ctx.pod.build.is_some() {
        Behaviour::Healthy
    } else {
        Behaviour::of(&image)
    };
    let policy = ctx.pod.restart_policy().to_owned();
    let restarts = |code| match slot {
        // Init containers must succeed: they are retried unless the pod never restarts.
        Slot::Init(_) => code != 0 && policy != "Never",
        Slot::Main(_) => status::restarts(&policy, code),
    };
    // A restarted simulator resumes runs that were under way and leaves finished ones be.
    let mut resume = match lock(&ctx.pod.state).run(slot).map(|r| &r.state) {
        Some(RunState::Running { started }) => Some(*started),
        Some(RunState::Exited(e)) if !restarts(e.code) => return,
        _ => None,
    };
    if resume.is_none() {
        match behaviour {
            Behaviour::Stuck => return std::future::pending().await,
            Behaviour::PullError => return pull_back_off(ctx, slot, &image).await,
            _ => {}
        }
    }
    let mut backoff = FIRST_BACKOFF;
    loop {
        let resumed = resume.take();
        let started = resumed.unwrap_or_else(Timestamp::now);
        if resumed.is_none() {
            ctx.pod.update(|s| {
                if let Some(r) = s.run_mut(slot) {
                    r.state = RunState::Running { started };
                    r.ready = false;
                }
            });
        }
        let ip = ctx.pod.ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        let (code, reason, message) = match plan(ctx, slot, behaviour) {
            Plan::Complete {
                after,
                code,
                message,
            } => {
                sleep_until(deadline(started, after)).await;
                let reason = if code == 0 { "Completed" } else { "Error" };
                (code, reason, message)
            }
            Plan::Crash => {
                let _servers =
                    workload::serve(ctx.sim.clone(), ctx.pod.clone(), ip, &container, false).await;
                sleep_until(deadline(started, ctx.sim.options.ready_delay)).await;
                (1, "Error", Some(CRASH_MESSAGE.to_owned()))
            }
            Plan::Serve { unhealthy } => {
                let _servers =
                    workload::serve(ctx.sim.clone(), ctx.pod.clone(), ip, &container, unhealthy)
                        .await;
                supervise(ctx, slot, &container, started).await;
                tracing::info!(container = %container.name, "liveness probe failed: restarting the container");
                // Killed, as the kubelet does: SIGKILL's 128 + 9.
                (137, "Error", None)
            }
        };
        let exit = Exit {
            code,
            reason: reason.to_owned(),
            message,
            started,
            finished: Timestamp::now(),
        };
        let again = restarts(code);
        ctx.sim.advance_traffic();
        let pod_ref = format!("{}_{}({})", ctx.pod.name, ctx.pod.namespace, ctx.pod.uid);
        ctx.pod.update(|s| {
            if let Some(r) = s.run_mut(slot) {
                r.ready = false;
                if again {
                    r.last = Some(exit);
                    r.restart_count += 1;
                    r.state = RunState::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(format!(
                            "back-off {}s restarting failed container={} pod={pod_ref}",
                            backoff.as_secs(),
                            container.name
                        )),
                    };
                } else {
                    r.state = RunState::Exited(exit);
                }
            }
        });
        if !again {
            return;
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// An image the registry does not have: `ErrImagePull`, then `ImagePullBackOff`, again and again.
async fn pull_back_off(ctx: &PodCtx, slot: Slot, image: &str) {
    let set = |reason: &str, message: String| {
        ctx.pod.update(|s| {
            if let Some(r) = s.run_mut(slot) {
                r.state = RunState::Waiting {
                    reason: reason.to_owned(),
                    message: Some(message),
                };
            }
        })
    };
    let pulling = ctx.sim.options.ready_delay / 2;
    let mut backoff = FIRST_BACKOFF;
    loop {
        sleep(pulling).await;
        set(
            "ErrImagePull",
            format!("failed to pull image \"{image}\": simulated registry says not found"),
        );
        sleep(pulling.max(Duration::from_millis(500))).await;
        set(
            "ImagePullBackOff",
            format!("Back-off pulling image \"{image}\""),
        );
        sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A serving container's probes, from its start: ready once `ready_delay` has passed and its
/// readiness probe (if any) passes; unready again after enough failures. Returns when the
/// liveness probe has failed enough times for the kubelet to kill the container.
async fn supervise(ctx: &PodCtx, slot: Slot, container: &Container, started: Timestamp) {
    let ip = ctx.pod.ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    let readiness = container
        .readiness_probe
        .as_ref()
        .and_then(|p| probe::Plan::of(p, container));
    let liveness = container
        .liveness_probe
        .as_ref()
        .and_then(|p| probe::Plan::of(p, container));
    let warm = deadline(
        started,
        ctx.sim
            .options
            .warm_up(&container.image.clone().unwrap_or_default()),
    );
    let far = || Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let mut next_readiness = warm;
    let mut next_liveness = match &liveness {
        Some(p) => warm + p.period,
        None => far(),
    };
    // A resumed container may be ready already.
    let mut ready = lock(&ctx.pod.state).run(slot).is_some_and(|r| r.ready);
    let (mut readiness_failures, mut liveness_failures) = (0, 0);
    loop {
        sleep_until(next_readiness.min(next_liveness)).await;
        if Instant::now() >= next_readiness {
            let passed = match &readiness {
                Some(p) => p.passes(ip).await,
                None => true,
            };
            readiness_failures = if passed { 0 } else { readiness_failures + 1 };
            let threshold = readiness.as_ref().map_or(1, |p| p.failure_threshold);
            let now_ready = passed || (ready && readiness_failures < threshold);
            if now_ready != ready {
                ready = now_ready;
                ctx.sim.advance_traffic();
                ctx.pod.update(|s| {
                    s.went_ready |= ready;
                    if let Some(r) = s.run_mut(slot) {
                        r.ready = ready;
                    }
                });
            }
            next_readiness = match &readiness {
                None => far(),
                Some(p) if ready => Instant::now() + p.period,
                Some(p) => Instant::now() + p.period.min(UNREADY_RECHECK),
            };
        }
        if let Some(p) = &liveness
            && Instant::now() >= next_liveness
        {
            if p.passes(ip).await {
                liveness_failures = 0;
            } else {
                liveness_failures += 1;
                if liveness_failures >= p.failure_threshold {
                    return;
                }
            }
            next_liveness = Instant::now() + p.period;
        }
    }
}
