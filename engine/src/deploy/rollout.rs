//! The truth about a rollout, from what the cluster reports. [`assess`] is pure and decides from
//! one snapshot of the Deployment and its pods; [`watch`] feeds it from watchers (no polling).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;

use enclii_spec::render::ANNOTATION_RELEASE;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Waiting { ready: i32, desired: i32 },
    Succeeded { ready: i32 },
    Failed { reason: String },
}

/// Waiting reasons that will not resolve by waiting.
const FATAL_WAITING: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// How long the ReplicaSet controller's failure to create pods must last before the rollout fails
/// on it. A refusal by admission (Pod Security, a quota) lasts; one from a control plane that is
/// restarting (its authorizer not yet synced) clears at the controller's next try.
pub const REFUSAL_GRACE: Duration = Duration::from_secs(10);

/// Decides from one snapshot of the Deployment and its pods, at `now`.
pub fn assess(
    deploy: &Deployment,
    pods: &[Pod],
    release: &str,
    now: k8s_openapi::jiff::Timestamp,
) -> Progress {
    let generation = deploy.metadata.generation.unwrap_or(0);
    let Some(status) = &deploy.status else {
        return Progress::Waiting {
            ready: 0,
            desired: desired(deploy),
        };
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Progress::Waiting {
            ready: 0,
            desired: desired(deploy),
        };
    }
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing");
    // The ReplicaSet controller could not create pods, for longer than a restart of the control
    // plane explains: admission (Pod Security, a quota) refused them. Waiting will not help; the
    // API server's message says why.
    let refused = status.conditions.iter().flatten().find(|c| {
        c.type_ == "ReplicaFailure"
            && c.status == "True"
            && c.last_transition_time.as_ref().is_none_or(|t| {
                now.duration_since(t.0)
                    .try_into()
                    .is_ok_and(|d: Duration| d >= REFUSAL_GRACE)
            })
    });
    if let Some(c) = refused {
        return Progress::Failed {
            reason: format!(
                "the cluster refused the new pods ({}): {}",
                c.reason.as_deref().unwrap_or("ReplicaFailure"),
                c.message.clone().unwrap_or_default()
            ),
        };
    }
    if let Some(c) = progressing {
        if c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return Progress::Failed {
                reason: format!(
                    "no progress within the deadline (ProgressDeadlineExceeded): {}",
                    c.message.clone().unwrap_or_default()
                ),
            };
        }
    }
    let new_pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_RELEASE))
                .map(String::as_str)
                == Some(release)
        })
        .collect();
    for pod in &new_pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let status = pod.status.as_ref();
        for cs in status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                let reason = w.reason.as_deref().unwrap_or_default();
                if FATAL_WAITING.contains(&reason) {
                    let message = w
                        .message
                        .as_deref()
                        .filter(|m| !m.is_empty())
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default();
                    return Progress::Failed {
                        reason: format!("pod {name}: {reason}{message}"),
                    };
                }
            }
        }
        for c in status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
        {
            if c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
            {
                return Progress::Failed {
                    reason: format!(
                        "pod {name} cannot be scheduled: {}",
                        c.message.clone().unwrap_or_default()
                    ),
                };
            }
        }
    }
    let desired = desired(deploy);
    let ready = new_pods.iter().filter(|p| is_ready(p)).count() as i32;
    let all = |v: Option<i32>| v.unwrap_or(0) >= desired;
    // Old pods still counted (`replicas` above `updatedReplicas`) are still in the Service's
    // endpoints: the new release does not serve all the traffic yet (`kubectl rollout status`'s
    // "old replicas are pending termination").
    let old_pods_gone = status.replicas.unwrap_or(0) <= status.updated_replicas.unwrap_or(0);
    if desired > 0
        && ready >= desired
        && all(status.updated_replicas)
        && all(status.ready_replicas)
        && all(status.available_replicas)
        && old_pods_gone
    {
        Progress::Succeeded { ready }
    } else {
        Progress::Waiting { ready, desired }
    }
}

fn desired(deploy: &Deployment) -> i32 {
    deploy
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .or_else(|| deploy.status.as_ref().and_then(|s| s.replicas))
        .unwrap_or(1)
        .max(1)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Follows the Deployment `name` and its pods (those matching the label selector `pods`: one
/// track, so that canary pods never count for the stable rollout) until the rollout of `release`
/// succeeds or fails, calling `on_progress` whenever the count of ready new pods changes. `limit`
/// bounds the wait.
pub async fn watch(
    client: kube::Client,
    namespace: &str,
    name: &str,
    pods: &str,
    release: &str,
    limit: Duration,
    mut on_progress: impl FnMut(&Progress),
) -> Progress {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let pod_api: Api<Pod> = Api::namespaced(client, namespace);
    let d = watcher(
        deployments,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .map(Update::Deployment);
    let p = watcher(pod_api, watcher::Config::default().labels(pods)).map(Update::Pod);
    let mut events = futures::stream::select(d.boxed(), p.boxed());
    let mut deploy: Option<Deployment> = None;
    let mut pod_map: BTreeMap<String, Pod> = BTreeMap::new();
    let mut last: Option<Progress> = None;
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    // Conditions that fail a rollout only once they have lasted (REFUSAL_GRACE) change nothing
    // the watches would report: look again now and then.
    let mut recheck = tokio::time::interval(Duration::from_secs(2));
    loop {
        let event = tokio::select! {
            _ = &mut deadline => return Progress::Failed { reason: format!("the rollout did not finish within {}s", limit.as_secs()) },
            _ = recheck.tick() => Some(Update::Recheck),
            e = events.next() => e,
        };
        match event {
            Some(Update::Recheck) => {}
            None => {
                return Progress::Failed {
                    reason: "the cluster closed the watch".into(),
                };
            }
            Some(Update::Deployment(Ok(e))) => match e {
                watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => deploy = Some(obj),
                watcher::Event::Delete(_) => deploy = None,
                _ => {}
            },
            Some(Update::Pod(Ok(e))) => match e {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                    pod_map.insert(pod.metadata.name.clone().unwrap_or_default(), pod);
                }
                watcher::Event::Delete(pod) => {
                    pod_map.remove(pod.metadata.name.as_deref().unwrap_or_default());
                }
                watcher::Event::Init => pod_map.clear(),
                watcher::Event::InitDone => {}
            },
            // The watcher retries by itself; keep waiting (the deadline bounds it).
            Some(Update::Deployment(Err(e))) | Some(Update::Pod(Err(e))) => {
                tracing::debug!(error = %e, "watch error; the watcher retries");
                continue;
            }
        }
        let Some(d) = &deploy else { continue };
        let pods: Vec<Pod> = pod_map.values().cloned().collect();
        let progress = assess(d, &pods, release, k8s_openapi::jiff::Timestamp::now());
        if last.as_ref() != Some(&progress) {
            on_progress(&progress);
            last = Some(progress.clone());
        }
        if !matches!(progress, Progress::Waiting { .. }) {
            return progress;
        }
    }
}

enum Update {
    Deployment(Result<watcher::Event<Deployment>, watcher::Error>),
    Pod(Result<watcher::Event<Pod>, watcher::Error>),
    Recheck,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(
        generation: i64,
        observed: i64,
        replicas: i32,
        ready: i32,
        progressing: (&str, &str),
    ) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": ready,
                       "availableReplicas": ready, "conditions": [{"type": "Progressing", "status": progressing.0, "reason": progressing.1, "message": "m"}]}
        }))
        .unwrap()
    }

    fn pod(release: &str, ready: bool, waiting: Option<&str>) -> Pod {
        let state = match waiting {
            Some(reason) => json!({"waiting": {"reason": reason, "message": "why"}}),
            None => json!({"running": {}}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-{release}"), "annotations": {ANNOTATION_RELEASE: release}},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                       "containerStatuses": [{"name": "web", "image": "i", "imageID": "", "ready": ready, "restartCount": 0, "state": state}]}
        }))
        .unwrap()
    }

    #[test]
    fn success_needs_the_new_release_pods_ready() {
        let d = deploy(2, 2, 1, 1, ("True", "NewReplicaSetAvailable"));
        assert_eq!(
            assess(&d, &[pod("r2", true, None)], "r2", now()),
            Progress::Succeeded { ready: 1 }
        );
        // Ready pods of the old release do not count: that is how deploys "succeed" while nothing new runs.
        assert_eq!(
            assess(&d, &[pod("r1", true, None)], "r2", now()),
            Progress::Waiting {
                ready: 0,
                desired: 1
            }
        );
    }

    #[test]
    fn success_waits_for_the_old_pods_to_be_gone() {
        let mut d = deploy(2, 2, 2, 2, ("True", "ReplicaSetUpdated"));
        // Two new pods ready, one old one still counted: it still gets traffic.
        d.status.as_mut().unwrap().replicas = Some(3);
        let pods = [pod("r2", true, None), pod("r2", true, None)];
        assert_eq!(
            assess(&d, &pods, "r2", now()),
            Progress::Waiting {
                ready: 2,
                desired: 2
            }
        );
        d.status.as_mut().unwrap().replicas = Some(2);
        assert_eq!(
            assess(&d, &pods, "r2", now()),
            Progress::Succeeded { ready: 2 }
        );
    }

    #[test]
    fn a_status_from_an_older_generation_says_nothing_yet() {
        let d = deploy(3, 2, 1, 1, ("True", "NewReplicaSetAvailable"));
        assert_eq!(
            assess(&d, &[pod("r3", true, None)], "r3", now()),
            Progress::Waiting {
                ready: 0,
                desired: 1
            }
        );
    }

    #[test]
    fn fatal_waiting_reasons_fail_fast_with_the_pod_named() {
        let d = deploy(1, 1, 1, 0, ("True", "ReplicaSetUpdated"));
        for reason in FATAL_WAITING {
            match assess(&d, &[pod("r1", false, Some(reason))], "r1", now()) {
                Progress::Failed { reason: r } => {
                    assert_eq!(r, format!("pod web-r1: {reason}: why"))
                }
                other => panic!("{reason}: {other:?}"),
            }
        }
        assert!(matches!(
            assess(
                &d,
                &[pod("r1", false, Some("ContainerCreating"))],
                "r1",
                now()
            ),
            Progress::Waiting { .. }
        ));
    }

    fn now() -> k8s_openapi::jiff::Timestamp {
        "2026-12-02T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn pods_the_cluster_keeps_refusing_fail_the_rollout_with_its_message() {
        let mut d = deploy(1, 1, 0, 0, ("True", "ReplicaSetUpdated"));
        let conditions = d.status.as_mut().unwrap().conditions.as_mut().unwrap();
        conditions.push(
            serde_json::from_value(json!({
                "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "lastTransitionTime": "2026-12-02T09:59:55Z",
                "message": "pods \"web-1\" is forbidden: violates PodSecurity \"restricted:latest\""
            }))
            .unwrap(),
        );
        // Five seconds old: perhaps a control plane coming back; wait.
        assert!(matches!(
            assess(&d, &[], "r1", now()),
            Progress::Waiting { .. }
        ));
        let later: k8s_openapi::jiff::Timestamp = "2026-12-02T10:00:05Z".parse().unwrap();
        match assess(&d, &[], "r1", later) {
            Progress::Failed { reason } => {
                assert!(
                    reason.contains("FailedCreate") && reason.contains("violates PodSecurity"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_progress_deadline_fails_the_rollout() {
        let d = deploy(1, 1, 1, 0, ("False", "ProgressDeadlineExceeded"));
        assert!(
            matches!(assess(&d, &[], "r1", now()), Progress::Failed { reason } if reason.contains("ProgressDeadlineExceeded"))
        );
    }
}
