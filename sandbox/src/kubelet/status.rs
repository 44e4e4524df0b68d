//! A pod's status as the kubelet reports it, from what its containers are doing: the phase (by the
//! kubelet's own rules), the conditions with their transition times, and each container's state.
//! Pure, and its inverse for a restarted simulator: a container's state read back from a status.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::build_job::hex;
use crate::pods::{ContainerRun, Exit, PodState, RunState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
}

/// Whether the kubelet starts a container again after it exited with `code`.
pub fn restarts(restart_policy: &str, code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// The pod phase, as the kubelet's `getPhase` decides it.
pub fn phase(restart_policy: &str, init: &[ContainerRun], main: &[ContainerRun]) -> Phase {
    if !init.iter().all(ContainerRun::succeeded) {
        let failed = init
            .iter()
            .any(|c| matches!(&c.state, RunState::Exited(e) if e.code != 0));
        return if failed && restart_policy == "Never" {
            Phase::Failed
        } else {
            Phase::Pending
        };
    }
    let (mut running, mut stopped, mut succeeded, mut waiting) = (0, 0, 0, 0);
    for c in main {
        match &c.state {
            RunState::Running { .. } => running += 1,
            RunState::Exited(e) => {
                stopped += 1;
                if e.code == 0 {
                    succeeded += 1;
                }
            }
            // Between restarts: it ran before.
            RunState::Waiting { .. } if c.last.is_some() => stopped += 1,
            RunState::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 || main.is_empty() {
        Phase::Pending
    } else if running > 0
        || restart_policy == "Always"
        || (restart_policy == "OnFailure" && stopped != succeeded)
    {
        Phase::Running
    } else if stopped == succeeded {
        Phase::Succeeded
    } else {
        Phase::Failed
    }
}

/// What the status needs besides the containers' state.
pub struct Facts<'a> {
    pub uid: &'a str,
    pub host_ip: Ipv4Addr,
    pub pod_ip: Option<Ipv4Addr>,
    pub restart_policy: &'a str,
    /// Names and images, in spec order.
    pub init: Vec<(&'a str, &'a str)>,
    pub main: Vec<(&'a str, &'a str)>,
    /// The scheduler normally sets `PodScheduled`; a pod created on a node directly has none.
    pub add_scheduled: bool,
}

/// The pod's status now; records in `state` when each condition changed.
pub fn render(f: &Facts, state: &mut PodState, now: Timestamp) -> PodStatus {
    let phase = phase(f.restart_policy, &state.init, &state.containers);
    let unfinished_init: Vec<&str> = f
        .init
        .iter()
        .zip(&state.init)
        .filter(|(_, r)| !r.succeeded())
        .map(|((n, _), _)| *n)
        .collect();
    let unready: Vec<&str> = f
        .main
        .iter()
        .zip(&state.containers)
        .filter(|(_, r)| !r.ready)
        .map(|((n, _), _)| *n)
        .collect();
    let ready = unready.is_empty() && !f.main.is_empty();
    let (not_ready_reason, not_ready_message) = if phase == Phase::Succeeded {
        ("PodCompleted", String::new())
    } else {
        (
            "ContainersNotReady",
            format!("containers with unready status: [{}]", unready.join(" ")),
        )
    };
    let mut conditions = vec![
        condition(state, "PodReadyToStartContainers", true, None, now),
        match unfinished_init.is_empty() {
            true => condition(state, "Initialized", true, None, now),
            false => condition(
                state,
                "Initialized",
                false,
                Some((
                    "ContainersNotInitialized",
                    format!(
                        "containers with incomplete status: [{}]",
                        unfinished_init.join(" ")
                    ),
                )),
                now,
            ),
        },
    ];
    for kind in ["Ready", "ContainersReady"] {
        let why = (!ready).then(|| (not_ready_reason, not_ready_message.clone()));
        conditions.push(condition(state, kind, ready, why, now));
    }
    if f.add_scheduled {
        conditions.push(condition(state, "PodScheduled", true, None, now));
    }
    let statuses = |names: &[(&str, &str)], runs: &[ContainerRun]| {
        names
            .iter()
            .zip(runs)
            .map(|((name, image), run)| container_status(f.uid, name, image, run))
            .collect::<Vec<_>>()
    };
    PodStatus {
        phase: Some(phase.as_str().to_owned()),
        host_ip: Some(f.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: f.host_ip.to_string(),
        }]),
        pod_ip: f.pod_ip.map(|ip| ip.to_string()),
        pod_ips: f.pod_ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
        start_time: Some(Time(state.start_time)),
        conditions: Some(conditions),
        init_container_statuses: (!f.init.is_empty()).then(|| statuses(&f.init, &state.init)),
        container_statuses: Some(statuses(&f.main, &state.containers)),
        ..Default::default()
    }
}

fn condition(
    state: &mut PodState,
    kind: &'static str,
    value: bool,
    why: Option<(&str, String)>,
    now: Timestamp,
) -> PodCondition {
    let since = match state.transitions.get(kind) {
        Some((v, at)) if *v == value => *at,
        _ => {
            state.transitions.insert(kind, (value, now));
            now
        }
    };
    let (reason, message) = match why {
        Some((r, m)) => (Some(r.to_owned()), Some(m).filter(|m| !m.is_empty())),
        None => (None, None),
    };
    PodCondition {
        type_: kind.to_owned(),
        status: if value { "True" } else { "False" }.to_owned(),
        last_transition_time: Some(Time(since)),
        reason,
        message,
        ..Default::default()
    }
}

/// A container instance's ID: one per start, as a runtime would hand out.
fn container_id(uid: &str, name: &str, instance: i32) -> String {
    let hash = Sha256::digest(format!("{uid}/{name}/{instance}").as_bytes());
    format!("simulated://{}", hex(&hash))
}

fn image_id(image: &str) -> String {
    format!(
        "simulated://sha256:{}",
        hex(&Sha256::digest(image.as_bytes()))
    )
}

fn terminated(e: &Exit, id: String) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: Some(id),
            exit_code: e.code,
            reason: Some(e.reason.clone()),
            message: e.message.clone(),
            started_at: Some(Time(e.started)),
            finished_at: Some(Time(e.finished)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_status(uid: &str, name: &str, image: &str, run: &ContainerRun) -> ContainerStatus {
    let current = container_id(uid, name, run.restart_count);
    let (state, id) = match &run.state {
        RunState::Waiting { reason, message } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            None,
        ),
        RunState::Running { started } => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started)),
                }),
                ..Default::default()
            },
            Some(current.clone()),
        ),
        RunState::Exited(e) => (terminated(e, current.clone()), Some(current)),
    };
    let ran = !matches!(run.state, RunState::Waiting { .. }) || run.last.is_some();
    ContainerStatus {
        name: name.to_owned(),
        image: image.to_owned(),
        image_id: if ran { image_id(image) } else { String::new() },
        container_id: id,
        ready: run.ready,
        restart_count: run.restart_count,
        started: Some(matches!(run.state, RunState::Running { .. })),
        state: Some(state),
        last_state: run
            .last
            .as_ref()
            .map(|e| terminated(e, container_id(uid, name, run.restart_count - 1))),
        ..Default::default()
    }
}

/// A container as a status left it (the simulator restarted): it keeps its restarts, and a
/// running one its start time (a waiting one starts again).
pub fn run_from_status(status: &ContainerStatus) -> Option<ContainerRun> {
    let exit = |t: &ContainerStateTerminated| -> Option<Exit> {
        Some(Exit {
            code: t.exit_code,
            reason: t.reason.clone().unwrap_or_default(),
            message: t.message.clone(),
            started: t.started_at.as_ref()?.0,
            finished: t.finished_at.as_ref()?.0,
        })
    };
    let state = status.state.as_ref()?;
    let running = state.running.is_some();
    let state = if let Some(r) = &state.running {
        RunState::Running {
            started: r.started_at.as_ref()?.0,
        }
    } else if let Some(t) = &state.terminated {
        RunState::Exited(exit(t)?)
    } else {
        let w = state.waiting.as_ref()?;
        RunState::Waiting {
            reason: w.reason.clone().unwrap_or_default(),
            message: w.message.clone(),
        }
    };
    Some(ContainerRun {
        state,
        last: status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(exit),
        restart_count: status.restart_count,
        // A ready container stays ready while its probes go on passing.
        ready: running && status.ready,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::{PodRecord, PodStateSeed};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn running(ready: bool) -> ContainerRun {
        ContainerRun {
            state: RunState::Running {
                started: t("2026-12-01T10:00:00Z"),
            },
            last: None,
            restart_count: 0,
            ready,
        }
    }

    fn exited(code: i32) -> ContainerRun {
        ContainerRun {
            state: RunState::Exited(Exit {
                code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                message: None,
                started: t("2026-12-01T10:00:00Z"),
                finished: t("2026-12-01T10:00:02Z"),
            }),
            last: None,
            restart_count: 0,
            ready: false,
        }
    }

    fn backing_off() -> ContainerRun {
        let mut c = ContainerRun::waiting("CrashLoopBackOff", None);
        if let RunState::Exited(e) = exited(1).state {
            c.last = Some(e);
        }
        c.restart_count = 1;
        c
    }

    #[test]
    fn the_phase_follows_the_kubelets_rules() {
        let creating = || ContainerRun::waiting("ContainerCreating", None);
        assert_eq!(phase("Always", &[], &[creating()]), Phase::Pending);
        assert_eq!(phase("Always", &[], &[running(false)]), Phase::Running);
        assert_eq!(phase("Always", &[], &[backing_off()]), Phase::Running);
        assert_eq!(
            phase("Always", &[], &[running(true), creating()]),
            Phase::Pending
        );
        // Init containers first.
        assert_eq!(
            phase("Never", &[running(false)], &[creating()]),
            Phase::Pending
        );
        assert_eq!(phase("Never", &[exited(1)], &[creating()]), Phase::Failed);
        assert_eq!(
            phase("OnFailure", &[exited(1)], &[creating()]),
            Phase::Pending
        );
        // Jobs.
        assert_eq!(phase("Never", &[exited(0)], &[exited(0)]), Phase::Succeeded);
        assert_eq!(phase("Never", &[exited(0)], &[exited(1)]), Phase::Failed);
        assert_eq!(phase("OnFailure", &[], &[backing_off()]), Phase::Running);
        assert_eq!(phase("OnFailure", &[], &[exited(0)]), Phase::Succeeded);
        assert!(restarts("Always", 0) && restarts("OnFailure", 1));
        assert!(!restarts("OnFailure", 0) && !restarts("Never", 1));
    }

    fn state(init: Vec<ContainerRun>, containers: Vec<ContainerRun>) -> PodState {
        let pod = k8s_openapi::api::core::v1::Pod::default();
        let record = PodRecord::new(
            &pod,
            1,
            None,
            PodStateSeed {
                start_time: t("2026-12-01T10:00:00Z"),
                init,
                containers,
            },
        );
        record.state.into_inner().unwrap()
    }

    fn facts(init: Vec<(&'static str, &'static str)>) -> Facts<'static> {
        Facts {
            uid: "u1",
            host_ip: Ipv4Addr::new(10, 244, 0, 11),
            pod_ip: Some(Ipv4Addr::new(10, 244, 1, 2)),
            restart_policy: "Always",
            init,
            main: vec![("web", "registry/p/web:1")],
            add_scheduled: false,
        }
    }

    fn cond<'a>(s: &'a PodStatus, kind: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == kind)
            .unwrap()
    }

    #[test]
    fn a_ready_pod_reports_addresses_conditions_and_its_container() {
        let mut st = state(vec![], vec![running(true)]);
        let s = render(&facts(vec![]), &mut st, t("2026-12-01T10:00:02Z"));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.2"));
        assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.244.1.2");
        assert_eq!(s.host_ip.as_deref(), Some("10.244.0.11"));
        for kind in [
            "Ready",
            "ContainersReady",
            "Initialized",
            "PodReadyToStartContainers",
        ] {
            assert_eq!(cond(&s, kind).status, "True", "{kind}");
        }
        assert!(
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .all(|c| c.type_ != "PodScheduled")
        );
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert!(c.ready && c.started == Some(true));
        assert!(c.container_id.as_ref().unwrap().starts_with("simulated://"));
        assert!(c.state.as_ref().unwrap().running.is_some());
        assert!(s.init_container_statuses.is_none());
    }

    #[test]
    fn conditions_keep_their_transition_time_until_they_change() {
        let mut st = state(vec![], vec![running(false)]);
        let f = facts(vec![]);
        let s = render(&f, &mut st, t("2026-12-01T10:00:01Z"));
        let ready = cond(&s, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [web]")
        );
        let s = render(&f, &mut st, t("2026-12-01T10:00:05Z"));
        assert_eq!(
            cond(&s, "Ready").last_transition_time,
            Some(Time(t("2026-12-01T10:00:01Z")))
        );
        st.containers[0].ready = true;
        let s = render(&f, &mut st, t("2026-12-01T10:00:06Z"));
        assert_eq!(
            cond(&s, "Ready").last_transition_time,
            Some(Time(t("2026-12-01T10:00:06Z")))
        );
        assert_eq!(
            cond(&s, "PodReadyToStartContainers").last_transition_time,
            Some(Time(t("2026-12-01T10:00:01Z")))
        );
    }

    #[test]
    fn a_crash_loop_shows_the_last_exit_and_the_restarts() {
        let mut st = state(vec![], vec![backing_off()]);
        let s = render(&facts(vec![]), &mut st, t("2026-12-01T10:00:05Z"));
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(c.restart_count, 1);
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 1);
        assert!(c.container_id.is_none() && !c.image_id.is_empty());
        // Read back, as a restarted simulator would: the restarts survive.
        let mut again = c.clone();
        again.state = Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(t("2026-12-01T10:00:06Z"))),
            }),
            ..Default::default()
        });
        let run = run_from_status(&again).unwrap();
        assert_eq!(run.restart_count, 1);
        assert_eq!(run.last.unwrap().code, 1);
        assert_eq!(
            run.state,
            RunState::Running {
                started: t("2026-12-01T10:00:06Z")
            }
        );
        let waiting = run_from_status(c).unwrap();
        assert_eq!(waiting.restart_count, 1);
        assert!(matches!(waiting.state, RunState::Waiting { .. }));
    }

    #[test]
    fn a_build_pod_initialises_then_completes() {
        let f = Facts {
            restart_policy: "Never",
            ..facts(vec![("checkout", "git")])
        };
        let mut st = state(
            vec![running(false)],
            vec![ContainerRun::waiting("PodInitializing", None)],
        );
        let s = render(&f, &mut st, t("2026-12-01T10:00:01Z"));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Initialized").status, "False");
        assert_eq!(
            cond(&s, "Initialized").message.as_deref(),
            Some("containers with incomplete status: [checkout]")
        );
        st.init[0] = exited(0);
        st.containers[0] = exited(0);
        let s = render(&f, &mut st, t("2026-12-01T10:00:04Z"));
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(s.init_container_statuses.as_ref().unwrap().len(), 1);
    }
}
