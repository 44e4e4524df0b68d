//! Plays the Job controller for build Jobs: one pod that "builds" for a moment and then succeeds,
//! reporting an image digest in its termination message as BuildKit's metadata would, or fails
//! with a build error when the commit asks for it (a ref starting with `bad`).

use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Shared;

const JOBS: &str = "batch/v1/jobs";
const PODS: &str = "/v1/pods";

fn between<'a>(text: &'a str, start: &str, end: char) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

/// The ref the checkout fetches and the image the build pushes, read from the Job's scripts.
fn build_inputs(job: &Value) -> (String, String) {
    let spec = &job["spec"]["template"]["spec"];
    let checkout = spec["initContainers"][0]["command"][2]
        .as_str()
        .unwrap_or_default();
    let build = spec["containers"][0]["command"][2]
        .as_str()
        .unwrap_or_default();
    let git_ref = between(checkout, "--depth 1 -- origin '", '\'')
        .unwrap_or_default()
        .to_owned();
    let image = between(build, "type=image,name='", '\'')
        .unwrap_or_default()
        .to_owned();
    (git_ref, image)
}

/// The lines a build pod logs (also used by the pod-log endpoint for build pods).
pub fn build_log(git_ref: &str, image: &str, failing: bool) -> Vec<String> {
    let mut lines = vec![
        format!("checked out {git_ref}"),
        "#1 [internal] load build definition from Dockerfile".to_owned(),
        "#1 transferring dockerfile: 612B done".to_owned(),
        "#2 [internal] load metadata for docker.io/library/node:22-alpine".to_owned(),
        "#3 [build 1/4] WORKDIR /app".to_owned(),
        "#4 [build 2/4] COPY . .".to_owned(),
        "#5 [build 3/4] RUN npm ci && npm run build".to_owned(),
    ];
    if failing {
        lines.push("#5 12.31 npm ERR! Missing script: \"build\"".to_owned());
        lines.push(
            "ERROR: failed to solve: process \"/bin/sh -c npm ci && npm run build\" did not complete successfully: exit code: 1"
                .to_owned(),
        );
    } else {
        lines.push("#5 DONE 14.2s".to_owned());
        lines.push("#6 exporting to image".to_owned());
        lines.push("#6 generating SBOM and provenance attestations done".to_owned());
        lines.push(format!("#6 pushing {image} done"));
    }
    lines
}

pub fn digest_for(git_ref: &str, image: &str) -> String {
    let hash = Sha256::digest(format!("{image}@{git_ref}").as_bytes());
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub fn job_applied(shared: Arc<Shared>, ns: String, name: String, job: Value) {
    // A re-applied Job keeps its pod (Jobs are immutable where it matters).
    if job["status"]["startTime"].is_string() {
        return;
    }
    tokio::spawn(async move { run(shared, ns, name, job).await });
}

async fn run(shared: Arc<Shared>, ns: String, name: String, job: Value) {
    let (git_ref, image) = build_inputs(&job);
    let failing = git_ref.starts_with("bad");
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let pod_name = format!("{name}-{}", &digest_for(&name, "pod")[7..12]);
    let mut labels = job["spec"]["template"]["metadata"]["labels"].clone();
    labels["job-name"] = name.clone().into();
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": pod_name, "namespace": ns, "labels": labels,
                      "annotations": { "enclii.dev/build-ref": git_ref, "enclii.dev/build-image": image, "enclii.dev/build-fails": failing.to_string() } },
        "spec": job["spec"]["template"]["spec"].clone(),
        "status": { "phase": "Running", "startTime": now,
                    "containerStatuses": [{ "name": "buildkit", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                                            "state": { "running": { "startedAt": now } } }] }
    });
    shared.store.put(PODS, Some(&ns), &pod_name, pod.clone());
    let Some(mut current) = shared.store.get(JOBS, Some(&ns), &name) else {
        return;
    };
    current["status"] = json!({ "active": 1, "startTime": now });
    shared.store.put(JOBS, Some(&ns), &name, current);

    tokio::time::sleep(shared.options.ready_delay * 2).await;
    // Deleted meanwhile (cancelled): nothing more happens.
    let Some(mut current) = shared.store.get(JOBS, Some(&ns), &name) else {
        shared.store.delete(PODS, Some(&ns), &pod_name);
        return;
    };
    let end = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (exit, message, condition) = if failing {
        (
            1,
            String::new(),
            json!({ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                    "message": "Job has reached the specified backoff limit" }),
        )
    } else {
        let metadata =
            json!({ "containerimage.digest": digest_for(&git_ref, &image), "image.name": image });
        (
            0,
            metadata.to_string(),
            json!({ "type": "Complete", "status": "True" }),
        )
    };
    pod["status"]["phase"] = if failing { "Failed" } else { "Succeeded" }.into();
    pod["status"]["containerStatuses"][0]["ready"] = false.into();
    pod["status"]["containerStatuses"][0]["state"] = json!({ "terminated": {
        "exitCode": exit, "reason": if failing { "Error" } else { "Completed" }, "message": message,
        "startedAt": now, "finishedAt": end } });
    shared.store.put(PODS, Some(&ns), &pod_name, pod);
    current["status"] = if failing {
        json!({ "failed": 1, "startTime": now, "conditions": [condition] })
    } else {
        json!({ "succeeded": 1, "startTime": now, "completionTime": end, "conditions": [condition] })
    };
    shared.store.put(JOBS, Some(&ns), &name, current);
}

pub fn job_deleted(shared: &Shared, ns: &str, name: &str) {
    for pod in shared.store.list(PODS, Some(ns), &Default::default()).1 {
        if pod["metadata"]["labels"]["job-name"].as_str() == Some(name) {
            if let Some(p) = pod["metadata"]["name"].as_str() {
                shared.store.delete(PODS, Some(ns), p);
            }
        }
    }
}
