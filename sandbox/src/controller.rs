//! Plays the cluster's controllers for Deployments: a ReplicaSet per pod template, pods that
//! become ready (or fail as their image name asks), old pods removed once the new ones are ready,
//! and the Deployment's status and conditions, including the progress deadline.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::Shared;

const DEPLOYMENTS: &str = "apps/v1/deployments";
const REPLICASETS: &str = "apps/v1/replicasets";
const PODS: &str = "/v1/pods";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Behaviour {
    Healthy,
    CrashLoop,
    PullError,
    Unschedulable,
    Stuck,
}

fn behaviour(image: &str) -> Behaviour {
    if image.contains("crashloop") {
        Behaviour::CrashLoop
    } else if image.contains("pull-error") {
        Behaviour::PullError
    } else if image.contains("unschedulable") {
        Behaviour::Unschedulable
    } else if image.contains("stuck") {
        Behaviour::Stuck
    } else {
        Behaviour::Healthy
    }
}

fn template_hash(template: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut h);
    format!("{:x}", h.finish())[..8].to_owned()
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn desired_replicas(shared: &Shared, ns: &str, name: &str, deploy: &Value) -> i64 {
    if let Some(r) = deploy["spec"]["replicas"].as_i64() {
        return r;
    }
    // An autoscaler owns the count: start at its minimum, as the real one would settle.
    shared
        .store
        .get("autoscaling/v2/horizontalpodautoscalers", Some(ns), name)
        .and_then(|hpa| hpa["spec"]["minReplicas"].as_i64())
        .unwrap_or(1)
}

pub fn deployment_deleted(shared: &Arc<Shared>, ns: &str, name: &str) {
    for rs in shared
        .store
        .list(REPLICASETS, Some(ns), &Default::default())
        .1
    {
        if rs["metadata"]["labels"]["enclii.dev/deployment"].as_str() == Some(name) {
            let rs_name = rs["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            delete_pods_of(shared, ns, &rs_name);
            shared.store.delete(REPLICASETS, Some(ns), &rs_name);
        }
    }
}

fn delete_pods_of(shared: &Shared, ns: &str, rs: &str) {
    for pod in shared.store.list(PODS, Some(ns), &Default::default()).1 {
        if pod["metadata"]["labels"]["enclii.dev/replicaset"].as_str() == Some(rs) {
            shared.store.delete(
                PODS,
                Some(ns),
                pod["metadata"]["name"].as_str().unwrap_or_default(),
            );
        }
    }
}

pub fn deployment_applied(shared: Arc<Shared>, ns: String, name: String, deploy: Value) {
    tokio::spawn(async move { reconcile(shared, ns, name, deploy).await });
}

/// Still the current spec of the Deployment? A newer apply takes over from an older reconcile.
fn current(shared: &Shared, ns: &str, name: &str, generation: i64) -> bool {
    shared
        .store
        .get(DEPLOYMENTS, Some(ns), name)
        .is_some_and(|d| d["metadata"]["generation"].as_i64() == Some(generation))
}

async fn reconcile(shared: Arc<Shared>, ns: String, name: String, deploy: Value) {
    let generation = deploy["metadata"]["generation"].as_i64().unwrap_or(1);
    let template = deploy["spec"]["template"].clone();
    let hash = template_hash(&template);
    let rs_name = format!("{name}-{hash}");
    let replicas = desired_replicas(&shared, &ns, &name, &deploy);
    let image = template["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let behaviour = behaviour(&image);
    let mut labels = template["metadata"]["labels"].clone();
    labels["pod-template-hash"] = hash.clone().into();
    labels["enclii.dev/deployment"] = name.clone().into();

    let existing_rs = shared.store.get(REPLICASETS, Some(&ns), &rs_name);
    if existing_rs.is_none() {
        let mut rs_labels = labels.clone();
        rs_labels["enclii.dev/replicaset"] = rs_name.clone().into();
        shared.store.put(
            REPLICASETS,
            Some(&ns),
            &rs_name,
            json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": { "labels": rs_labels, "annotations": template["metadata"]["annotations"].clone(),
                              "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": deploy["metadata"]["uid"].clone(), "controller": true }] },
                "spec": { "replicas": replicas, "template": template.clone() },
                "status": { "replicas": 0 }
            }),
        );
    }
    let mut pod_labels = labels.clone();
    pod_labels["enclii.dev/replicaset"] = rs_name.clone().into();
    let pods: Vec<String> = (0..replicas).map(|i| format!("{rs_name}-{i}")).collect();
    for pod in &pods {
        if shared.store.get(PODS, Some(&ns), pod).is_none() {
            shared.store.put(
                PODS,
                Some(&ns),
                pod,
                pod_object(
                    &template,
                    &pod_labels,
                    &rs_name,
                    &image,
                    "Pending",
                    waiting("ContainerCreating", ""),
                    false,
                ),
            );
        }
    }
    set_status(
        &shared,
        &ns,
        &name,
        generation,
        replicas,
        0,
        "ReplicaSetUpdated",
        "True",
        &format!("ReplicaSet \"{rs_name}\" is progressing."),
    );

    let opts = shared.options.clone();
    match behaviour {
        Behaviour::Healthy => {
            tokio::time::sleep(opts.ready_delay).await;
            if !current(&shared, &ns, &name, generation) {
                return;
            }
            for pod in &pods {
                shared.store.put(
                    PODS,
                    Some(&ns),
                    pod,
                    pod_object(
                        &template,
                        &pod_labels,
                        &rs_name,
                        &image,
                        "Running",
                        json!({"running": {"startedAt": now()}}),
                        true,
                    ),
                );
            }
            // The new pods are ready: the old ReplicaSets' pods go.
            for rs in shared
                .store
                .list(REPLICASETS, Some(&ns), &Default::default())
                .1
            {
                let other = rs["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if rs["metadata"]["labels"]["enclii.dev/deployment"].as_str() == Some(&name)
                    && other != rs_name
                {
                    delete_pods_of(&shared, &ns, &other);
                    let mut scaled = rs.clone();
                    scaled["spec"]["replicas"] = 0.into();
                    shared.store.put(REPLICASETS, Some(&ns), &other, scaled);
                }
            }
            set_status(
                &shared,
                &ns,
                &name,
                generation,
                replicas,
                replicas,
                "NewReplicaSetAvailable",
                "True",
                &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            );
        }
        Behaviour::CrashLoop | Behaviour::PullError | Behaviour::Unschedulable => {
            tokio::time::sleep(opts.ready_delay / 2).await;
            if !current(&shared, &ns, &name, generation) {
                return;
            }
            for (restarts, pod) in pods.iter().enumerate() {
                let (phase, state, conditions) = match behaviour {
                    Behaviour::CrashLoop => (
                        "Running",
                        waiting(
                            "CrashLoopBackOff",
                            "back-off 10s restarting failed container",
                        ),
                        None,
                    ),
                    Behaviour::PullError => (
                        "Pending",
                        waiting(
                            "ImagePullBackOff",
                            &format!("Back-off pulling image \"{image}\""),
                        ),
                        None,
                    ),
                    _ => (
                        "Pending",
                        waiting("ContainerCreating", ""),
                        Some(
                            json!([{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu." }]),
                        ),
                    ),
                };
                let mut obj = pod_object(
                    &template,
                    &pod_labels,
                    &rs_name,
                    &image,
                    phase,
                    state,
                    false,
                );
                if behaviour == Behaviour::CrashLoop {
                    obj["status"]["containerStatuses"][0]["restartCount"] =
                        (restarts as i64 + 3).into();
                }
                if let Some(c) = conditions {
                    obj["status"]["conditions"] = c;
                }
                shared.store.put(PODS, Some(&ns), pod, obj);
            }
            deadline(&shared, &ns, &name, generation, replicas, &rs_name).await;
        }
        Behaviour::Stuck => deadline(&shared, &ns, &name, generation, replicas, &rs_name).await,
    }
}

/// After the progress deadline, a rollout without progress gets Kubernetes' failure condition.
async fn deadline(
    shared: &Arc<Shared>,
    ns: &str,
    name: &str,
    generation: i64,
    replicas: i64,
    rs_name: &str,
) {
    tokio::time::sleep(shared.options.progress_deadline).await;
    if current(shared, ns, name, generation) {
        set_status(
            shared,
            ns,
            name,
            generation,
            replicas,
            0,
            "ProgressDeadlineExceeded",
            "False",
            &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
        );
    }
}

fn waiting(reason: &str, message: &str) -> Value {
    json!({ "waiting": { "reason": reason, "message": message } })
}

fn pod_object(
    template: &Value,
    labels: &Value,
    rs: &str,
    image: &str,
    phase: &str,
    state: Value,
    ready: bool,
) -> Value {
    let container = template["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap_or("app");
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "labels": labels, "annotations": template["metadata"]["annotations"].clone(),
                      "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": format!("rs-{rs}"), "controller": true }] },
        "spec": template["spec"].clone(),
        "status": {
            "phase": phase,
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
            "containerStatuses": [{ "name": container, "image": image, "ready": ready, "restartCount": 0, "state": state }]
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn set_status(
    shared: &Shared,
    ns: &str,
    name: &str,
    generation: i64,
    replicas: i64,
    ready: i64,
    reason: &str,
    progressing: &str,
    message: &str,
) {
    let Some(mut deploy) = shared.store.get(DEPLOYMENTS, Some(ns), name) else {
        return;
    };
    if deploy["metadata"]["generation"].as_i64() != Some(generation) {
        return;
    }
    deploy["status"] = json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": replicas - ready,
        "conditions": [
            { "type": "Available", "status": if ready >= replicas { "True" } else { "False" }, "reason": if ready >= replicas { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" }, "lastUpdateTime": now() },
            { "type": "Progressing", "status": progressing, "reason": reason, "message": message, "lastUpdateTime": now() }
        ]
    });
    shared.store.put(DEPLOYMENTS, Some(ns), name, deploy);
}
