//! A service's Job run to its end: a release command before a deployment moves traffic, or a
//! one-off `enclii run`. The Job is named by what it runs for (the deployment, the run), so a
//! second caller (a driver that took over a deployment) finds the one the first started and
//! follows it instead of starting the command again. Its outcome is read from the cluster: the
//! Job's conditions (the Job controller enforces the timeout as `activeDeadlineSeconds`), the exit
//! code of its pod's container, and the tail of its log.

use std::time::Duration;

use enclii_spec::render::Manifest;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, LogParams, PropagationPolicy};

use super::apply;

/// Lines of a task's log kept with its outcome.
pub const LOG_TAIL_LINES: i64 = 20;

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        log_tail: String,
    },
    /// The command exited with a code other than 0 (`None`: the pod never ran it, such as an
    /// image that cannot be pulled).
    Failed {
        exit_code: Option<i32>,
        reason: String,
        log_tail: String,
    },
    /// Stopped after its `activeDeadlineSeconds`.
    TimedOut {
        after_secs: u32,
        log_tail: String,
    },
}

impl Outcome {
    pub fn log_tail(&self) -> &str {
        match self {
            Outcome::Succeeded { log_tail }
            | Outcome::Failed { log_tail, .. }
            | Outcome::TimedOut { log_tail, .. } => log_tail,
        }
    }

    /// The exit code as a process would report it (a timeout is 124, as `timeout(1)` says).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Succeeded { .. } => 0,
            Outcome::Failed { exit_code, .. } => exit_code.unwrap_or(1),
            Outcome::TimedOut { .. } => 124,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The cluster refused the Job or stopped answering; the message names the call.
    #[error("{0}")]
    Cluster(String),
}

impl From<String> for TaskError {
    fn from(s: String) -> Self {
        TaskError::Cluster(s)
    }
}

/// Starts the Job in `manifests` (with what it needs applied before it, such as the Secret of the
/// service's variables) unless a Job of that name exists already, then follows it to its end.
/// `timeout_secs` is the Job's own deadline; the wait gives the Job controller a minute beyond it.
pub async fn run(
    client: &kube::Client,
    namespace: &str,
    manifests: &[Manifest],
    timeout_secs: u32,
) -> Result<Outcome, TaskError> {
    let job = manifests
        .iter()
        .find(|m| m.kind == "Job")
        .ok_or_else(|| TaskError::Cluster("no Job to run".into()))?;
    start(client, namespace, manifests).await?;
    follow(client, namespace, &job.name, timeout_secs).await
}

/// Applies `manifests` unless their Job exists (adopted as it is: a Job's pod template cannot
/// change, and the run it stands for must not start twice).
pub async fn start(
    client: &kube::Client,
    namespace: &str,
    manifests: &[Manifest],
) -> Result<(), TaskError> {
    let Some(job) = manifests.iter().find(|m| m.kind == "Job") else {
        return Err(TaskError::Cluster("no Job to run".into()));
    };
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let found = apply::with_retries(
        &format!("read Job/{}", job.name),
        5,
        Duration::from_secs(10),
        || jobs.get_opt(&job.name),
    )
    .await?;
    if found.is_none() {
        apply::apply_all(client, manifests).await?;
    }
    Ok(())
}

/// Follows the Job `name` until it completes, fails or runs out of time.
pub async fn follow(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout_secs: u32,
) -> Result<Outcome, TaskError> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let limit = tokio::time::Instant::now() + Duration::from_secs(u64::from(timeout_secs) + 60);
    // The tail is read while the pod runs too: a pod stopped at its deadline is deleted with its
    // log, and what it wrote until then is what says why it was slow.
    let mut tail = String::new();
    let mut polls: u32 = 0;
    loop {
        let job = apply::with_retries(
            &format!("read Job/{name}"),
            5,
            Duration::from_secs(10),
            || jobs.get_opt(name),
        )
        .await?
        .ok_or_else(|| TaskError::Cluster(format!("Job/{name} was deleted before it ended")))?;
        if let Some(outcome) = outcome(client, namespace, name, &job, timeout_secs, &tail).await {
            return Ok(outcome);
        }
        if tokio::time::Instant::now() >= limit {
            delete(client, namespace, name).await;
            return Ok(Outcome::TimedOut {
                after_secs: timeout_secs,
                log_tail: tail,
            });
        }
        if polls % 4 == 3
            && let Some(t) = log_tail(client, namespace, name).await
        {
            tail = t;
        }
        polls += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How the Job `name` ended, or `None` while it runs (or when it cannot be read). A Job that is
/// gone (deleted by hand, or by the cluster a day after it ended, `TASK_TTL_SECS`) ended without
/// a known exit code: its run must not stay "running" for ever.
pub async fn ended(client: &kube::Client, namespace: &str, name: &str) -> Option<Outcome> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let Some(job) = jobs.get_opt(name).await.ok()? else {
        return Some(Outcome::Failed {
            exit_code: None,
            reason: format!("its Job {name} no longer exists; how it ended is unknown"),
            log_tail: String::new(),
        });
    };
    let deadline = job
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .unwrap_or_default();
    outcome(
        client,
        namespace,
        name,
        &job,
        deadline.clamp(0, i64::from(u32::MAX)) as u32,
        "",
    )
    .await
}

/// The outcome the Job's conditions say it had, with its pod's exit code and log tail (`tail`
/// when the pod is gone).
async fn outcome(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    job: &Job,
    timeout_secs: u32,
    tail: &str,
) -> Option<Outcome> {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if holds("Complete").is_some() {
        let log_tail = log_tail(client, namespace, name)
            .await
            .unwrap_or_else(|| tail.to_owned());
        return Some(Outcome::Succeeded { log_tail });
    }
    let failed = holds("Failed")?;
    let log_tail = log_tail(client, namespace, name)
        .await
        .unwrap_or_else(|| tail.to_owned());
    if failed.reason.as_deref() == Some("DeadlineExceeded") {
        return Some(Outcome::TimedOut {
            after_secs: timeout_secs,
            log_tail,
        });
    }
    Some(Outcome::Failed {
        exit_code: exit_code(client, namespace, name).await,
        reason: failed.message.clone().unwrap_or_default(),
        log_tail,
    })
}

/// Deletes the Job and its pods (a run stopped by hand, or one the wait gave up on).
pub async fn delete(client: &kube::Client, namespace: &str, name: &str) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let _ = jobs.delete(name, &dp).await;
}

/// The Job's pod (the newest, should there be several).
pub async fn pod(client: &kube::Client, namespace: &str, job: &str) -> Option<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .ok()?
        .items
        .into_iter()
        .max_by_key(|p| p.metadata.creation_timestamp.clone())
}

async fn exit_code(client: &kube::Client, namespace: &str, job: &str) -> Option<i32> {
    let pod = pod(client, namespace, job).await?;
    pod.status?
        .container_statuses?
        .into_iter()
        .next()?
        .state?
        .terminated
        .map(|t| t.exit_code)
}

/// The last [`LOG_TAIL_LINES`] lines of the Job's pod, each cut to a bounded length.
pub async fn log_tail(client: &kube::Client, namespace: &str, job: &str) -> Option<String> {
    let pod = pod(client, namespace, job).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = LogParams {
        tail_lines: Some(LOG_TAIL_LINES),
        limit_bytes: Some(64 * 1024),
        ..Default::default()
    };
    let text = pods
        .logs(pod.metadata.name.as_deref()?, &params)
        .await
        .ok()?;
    Some(
        text.lines()
            .map(|l| super::logs::fit_text_line(l.to_owned(), 1024))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// A deployment's failure reason for a release command that did not succeed.
pub fn release_failure(command: &[String], outcome: &Outcome) -> String {
    let shown = command.join(" ");
    let what = match outcome {
        Outcome::Succeeded { .. } => return format!("the release command `{shown}` succeeded"),
        Outcome::Failed {
            exit_code: Some(code),
            ..
        } => format!("the release command `{shown}` failed with exit code {code}"),
        Outcome::Failed {
            exit_code: None,
            reason,
            ..
        } => format!("the release command `{shown}` did not run: {reason}"),
        Outcome::TimedOut { after_secs, .. } => {
            format!("the release command `{shown}` did not finish within {after_secs}s")
        }
    };
    let tail = outcome.log_tail().trim_end();
    let tail = if tail.is_empty() {
        "(it logged nothing)".to_owned()
    } else {
        format!("last lines of its log:\n{tail}")
    };
    format!(
        "{what}; nothing of the new release serves traffic, the running release keeps serving; {tail}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_release_says_its_code_and_its_log_and_what_keeps_serving() {
        let command = vec!["./migrate".to_owned(), "up".to_owned()];
        let failed = Outcome::Failed {
            exit_code: Some(3),
            reason: "BackoffLimitExceeded".into(),
            log_tail: "migrating 0042\nerror: relation exists\n".into(),
        };
        let reason = release_failure(&command, &failed);
        assert!(
            reason.starts_with("the release command `./migrate up` failed with exit code 3;"),
            "{reason}"
        );
        assert!(reason.contains("the running release keeps serving"));
        assert!(reason.ends_with("last lines of its log:\nmigrating 0042\nerror: relation exists"));
        assert_eq!(failed.exit_code(), 3);
        let slow = Outcome::TimedOut {
            after_secs: 2,
            log_tail: String::new(),
        };
        assert!(release_failure(&command, &slow).contains("did not finish within 2s"));
        assert!(release_failure(&command, &slow).ends_with("(it logged nothing)"));
        assert_eq!(slow.exit_code(), 124);
    }
}
