//! The build worker: claims queued builds (`FOR UPDATE SKIP LOCKED`, leases like the deployment
//! driver's, at most `pipeline.max_concurrent` running), runs each as a Job, records the image,
//! SBOM and provenance on a release, and deploys it. A cluster failure is retried with backoff up
//! to `pipeline.max_attempts`; a build that fails on its own code fails at once, with its log tail.

use std::time::Duration;

use enclii_spec::render::Manifest;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, LogParams, PropagationPolicy};
use kube::runtime::watcher;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::job::{self, BuildTarget};
use crate::Engine;
use crate::deploy::{Clusters, apply};

pub async fn run(engine: Engine, clusters: Clusters, replica: String) {
    let mut listener = match PgListener::connect_with(&engine.pool).await {
        Ok(mut l) => l.listen(super::CHANNEL).await.ok().map(|_| l),
        Err(_) => None,
    };
    let mut stopping = engine.stopping.subscribe();
    loop {
        if engine.pool.is_closed() || *stopping.borrow() {
            return;
        }
        // A token per claim, not the replica's name: see `crate::leases`.
        let token = crate::leases::claim_token(&replica);
        match claim(&engine, &token).await {
            Ok(Some(id)) => {
                let (engine, clusters) = (engine.clone(), clusters.clone());
                tokio::spawn(async move { drive_with_lease(engine, clusters, id, token).await });
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "claiming a build failed; retrying shortly");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let woke = tokio::select! {
            woke = async {
                match listener.as_mut() {
                    Some(l) => tokio::time::timeout(Duration::from_secs(2), l.recv()).await,
                    None => Ok(Err(sqlx::Error::PoolClosed)),
                }
            } => woke,
            _ = stopping.changed() => continue,
        };
        if let Ok(Err(_)) = woke {
            listener = None;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn lease(engine: &Engine) -> Duration {
    Duration::from_secs(engine.settings.cluster.lease_secs.max(1))
}

/// A queued build whose time has come while fewer than the limit run, or a running one whose
/// driver's lease expired. (Two replicas claiming at the same instant can exceed the limit by one
/// each; the limit protects the cluster's capacity, not an invariant.)
async fn claim(engine: &Engine, replica: &str) -> sqlx::Result<Option<i64>> {
    // A build whose driver stopped on every attempt fails rather than being taken up forever.
    let mut tx = engine.pool.begin().await?;
    let given_up = sqlx::query!(
        "UPDATE builds SET state = 'failed', finished_at = now(), lease_owner = NULL, lease_until = NULL,
                state_reason = format('gave up after %s attempts: the build''s driver stopped each time', attempts)
         WHERE state = 'running' AND lease_until < now() AND attempts >= $1
         RETURNING id, state_reason AS \"reason!\"",
        engine.settings.pipeline.max_attempts
    )
    .fetch_all(&mut *tx)
    .await?;
    for b in &given_up {
        crate::notify::facts::build_failed(&mut tx, b.id, &b.reason).await?;
    }
    tx.commit().await?;
    sqlx::query_scalar!(
        r#"UPDATE builds SET state = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, now()),
                  lease_owner = $1, lease_until = now() + make_interval(secs => $2)
           WHERE id = (SELECT id FROM builds
                       WHERE (state = 'queued' AND next_attempt_at <= now()
                              AND (SELECT count(*) FROM builds WHERE state = 'running' AND lease_until > now()) < $3)
                          OR (state = 'running' AND lease_until < now())
                       ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
           RETURNING id"#,
        replica,
        lease(engine).as_secs_f64(),
        engine.settings.pipeline.max_concurrent
    )
    .fetch_optional(&engine.pool)
    .await
}

async fn drive_with_lease(engine: Engine, clusters: Clusters, id: i64, replica: String) {
    let lease = crate::leases::Lease {
        work: crate::leases::Work::Build,
        id,
        token: replica,
        duration: lease(&engine),
    };
    let stopping = engine.stopping.subscribe();
    let held = crate::leases::hold(&engine.pool, &lease, stopping, || async {
        match drive(&engine, &clusters, id, &lease.token).await {
            Ok(()) => Ok(()),
            Err(crate::Error::Db(e)) => Err(e),
            Err(e) => {
                tracing::error!(build = id, error = %e, "driving a build failed");
                Ok(())
            }
        }
    })
    .await;
    match held {
        crate::leases::Held::Finished => {}
        crate::leases::Held::Lost => {
            tracing::warn!(build = id, "lost the build's lease; another replica has it")
        }
        crate::leases::Held::Expired => tracing::warn!(
            build = id,
            "stopped driving the build: the lease could not be kept; whoever claims it next resumes it"
        ),
        crate::leases::Held::HandedOver => {
            tracing::info!(
                build = id,
                "this replica is stopping; handed the build over"
            )
        }
        crate::leases::Held::Failed(e) => tracing::error!(
            build = id,
            error = %e,
            "driving a build failed on the database; it will be resumed when its lease expires"
        ),
    }
}

enum Ended {
    Succeeded(job::Outcome),
    /// The build itself failed (its code, its Dockerfile): final.
    Failed(String),
    /// The cluster failed us: worth another attempt.
    Infrastructure(String),
    Cancelled,
}

#[tracing::instrument(skip(engine, clusters, replica))]
async fn drive(engine: &Engine, clusters: &Clusters, id: i64, replica: &str) -> crate::Result<()> {
    let pool = &engine.pool;
    let row = sqlx::query!(
        r#"SELECT b.git_repository, b.git_ref, b.attempts, b.spec_revision, b.service_id, b.environment_id,
                  s.name AS service, p.id AS project_id, p.slug AS project, e.name AS environment, sr.source
           FROM builds b JOIN services s ON s.id = b.service_id JOIN projects p ON p.id = s.project_id
                JOIN environments e ON e.id = b.environment_id
                JOIN spec_revisions sr ON sr.service_id = b.service_id AND sr.revision = b.spec_revision
           WHERE b.id = $1"#,
        id
    )
    .fetch_one(pool)
    .await?;
    let settings = &engine.settings.pipeline;
    let file = match enclii_spec::parse(&row.source) {
        Ok(f) => f,
        Err(_) => {
            return finish(
                pool,
                id,
                replica,
                "failed",
                "the build's spec no longer parses",
            )
            .await;
        }
    };
    if engine.registry_tokens.is_none() {
        return finish(
            pool,
            id,
            replica,
            "failed",
            "the platform cannot give builds registry credentials: pipeline.registry_token.signing_key is not configured",
        )
        .await;
    }
    let image = job::image_ref(settings, &row.project, &row.service, &row.git_ref);
    let namespace = job::build_namespace(settings, &row.project);
    let job_name = job::job_name(&row.service, id);
    let push_secret = job::push_secret_name(&job_name);
    let target = BuildTarget {
        id,
        project: &row.project,
        service: &row.service,
        repository: &row.git_repository,
        git_ref: &row.git_ref,
        image: &image,
        namespace: &namespace,
        push_secret: &push_secret,
    };
    let manifest = job::build_job(&file.service, &target, settings);
    // A new credential for each attempt: the one a failed attempt's pod held dies with it.
    let credential = super::registry::mint();
    let secret = job::push_secret(settings, &target, &credential.password);
    let client = clusters.for_environment(&row.environment);
    let fenced = sqlx::query!(
        "UPDATE builds SET job_name = $2, image_ref = $3, push_credential_hash = $5
         WHERE id = $1 AND lease_owner = $4 AND state = 'running'",
        id,
        manifest.name,
        image,
        replica,
        credential.hash
    )
    .execute(pool)
    .await?;
    if fenced.rows_affected() == 0 {
        // Another replica holds the build now.
        return Ok(());
    }
    let namespace_objects = job::namespace_objects(settings, &row.project, row.project_id);
    let ended = run_job(
        engine,
        &client,
        id,
        (row.project_id, &namespace_objects),
        &[secret, manifest],
        &image,
    )
    .await;
    match ended {
        Ended::Succeeded(outcome) => {
            let Some(digest) = outcome.digest.clone() else {
                return finish(
                    pool,
                    id,
                    replica,
                    "failed",
                    "the build finished without reporting an image digest",
                )
                .await;
            };
            let mut tx = pool.begin().await?;
            let release = sqlx::query!(
                r#"INSERT INTO releases (service_id, spec_revision, image_ref, image_digest, git_repository, git_commit, sbom_ref, provenance_ref, built_for_preview)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                           EXISTS (SELECT 1 FROM previews WHERE environment_id = $9)) RETURNING id"#,
                row.service_id,
                row.spec_revision,
                image,
                digest,
                row.git_repository,
                row.git_ref,
                outcome.sbom_ref,
                outcome.provenance_ref,
                row.environment_id
            )
            .fetch_one(&mut *tx)
            .await?;
            // A preview goes out in one step: there is no traffic to hold a canary to.
            let preview = crate::previews::is_preview(&mut *tx, row.environment_id).await?;
            let strategy = match file.service.spec.rollout.as_ref().map(|r| r.strategy) {
                _ if preview => "rolling",
                Some(enclii_spec::model::RolloutStrategy::Rolling) => "rolling",
                _ => "canary",
            };
            let project = crate::platform::ProjectRef {
                id: row.project_id,
                slug: row.project.clone(),
                role: None,
            };
            let deployment = crate::platform::deployments::for_build(
                &mut tx,
                &project,
                row.service_id,
                &row.service,
                row.environment_id,
                &row.environment,
                (release.id, image.clone(), row.spec_revision),
                strategy,
            )
            .await
            .map_err(|e| match e {
                crate::Error::Db(e) => e,
                crate::Error::Api(e) => sqlx::Error::Protocol(e.message().to_owned()),
            })?;
            let done = sqlx::query!(
                "UPDATE builds SET state = 'succeeded', state_reason = $3, image_digest = $4, sbom_ref = $5, provenance_ref = $6,
                        release_id = $7, deployment_id = $8, finished_at = now(), lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
                id,
                replica,
                format!("built {image}@{digest}; deployment #{} started", deployment.id),
                digest,
                outcome.sbom_ref,
                outcome.provenance_ref,
                release.id,
                deployment.id
            )
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                tx.commit().await?;
                metrics::counter!("enclii_builds_total", "state" => "succeeded").increment(1);
            }
            // Otherwise another replica took the build over: roll back, it records the outcome.
            Ok(())
        }
        Ended::Failed(reason) => finish(pool, id, replica, "failed", &reason).await,
        Ended::Cancelled => {
            finish(
                pool,
                id,
                replica,
                "cancelled",
                "cancelled by hand; the Job was deleted",
            )
            .await
        }
        Ended::Infrastructure(reason) if row.attempts < settings.max_attempts => {
            let backoff =
                settings.retry_base_ms as f64 / 1000.0 * 2f64.powi(row.attempts.max(1) - 1);
            tracing::warn!(build = id, %reason, "build failed on the cluster; retrying");
            sqlx::query!(
                "UPDATE builds SET state = 'queued', state_reason = $3, next_attempt_at = now() + make_interval(secs => $4),
                        lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
                id,
                replica,
                format!("attempt {} failed on the cluster ({reason}); retrying", row.attempts),
                backoff
            )
            .execute(pool)
            .await?;
            Ok(())
        }
        Ended::Infrastructure(reason) => {
            let reason = format!("gave up after {} attempts: {reason}", row.attempts);
            finish(pool, id, replica, "failed", &reason).await
        }
    }
}

/// Ensures the project's build namespace, applies the build's Secret and Job, follows the Job to
/// its end, then deletes the Secret (its credential is dead by then anyway: the token service
/// honours it only while the build runs).
async fn run_job(
    engine: &Engine,
    client: &kube::Client,
    id: i64,
    namespace: (uuid::Uuid, &[Manifest]),
    build: &[Manifest; 2],
    image: &str,
) -> Ended {
    let ended = follow_job(engine, client, id, namespace, build, image).await;
    let secret = &build[0];
    let secrets: Api<Secret> = Api::namespaced(
        client.clone(),
        secret.namespace.as_deref().unwrap_or_default(),
    );
    if let Err(e) = secrets.delete(&secret.name, &DeleteParams::default()).await {
        tracing::debug!(build = id, error = %e, "the build's push Secret was not deleted");
    }
    ended
}

async fn follow_job(
    engine: &Engine,
    client: &kube::Client,
    id: i64,
    (project_id, namespace_objects): (uuid::Uuid, &[Manifest]),
    build: &[Manifest; 2],
    image: &str,
) -> Ended {
    let settings = &engine.settings.pipeline;
    let manifest = &build[1];
    let namespace = manifest.namespace.clone().unwrap_or_default();
    // The namespace and its policies with every build: the platform's settings may have changed,
    // and a namespace that is not this project's is never used.
    match crate::deploy::tenancy::ensure_objects(client, &namespace, project_id, namespace_objects)
        .await
    {
        Ok(()) => {}
        Err(e @ crate::deploy::tenancy::Refusal::NotOurs { .. }) => {
            return Ended::Failed(e.to_string());
        }
        Err(e) => return Ended::Infrastructure(e.to_string()),
    }
    if let Err(e) = apply::apply_all(client, build).await {
        return Ended::Infrastructure(e);
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    // The sandbox's safety rests on the pod's own user namespace: a cluster without user
    // namespace support drops `hostUsers: false` silently, and the build would run unconfined as
    // root on the node. Read back what the API server kept; never run without it.
    match jobs.get_opt(&manifest.name).await {
        Ok(Some(stored)) => {
            let host_users = stored
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.host_users);
            if host_users != Some(false) {
                delete_job(&jobs, &manifest.name).await;
                return Ended::Failed(
                    "the cluster does not keep `hostUsers: false` on build pods (user namespaces are not supported there): builds do not run without a user namespace of their own; enable user namespaces on the nodes (Kubernetes 1.33+, a runtime that supports them)".into(),
                );
            }
        }
        Ok(None) => {
            return Ended::Infrastructure("the build's Job vanished after it was applied".into());
        }
        Err(e) => return Ended::Infrastructure(format!("reading the build's Job back: {e}")),
    }
    let mut events = watcher(
        jobs.clone(),
        watcher::Config::default().fields(&format!("metadata.name={}", manifest.name)),
    )
    .boxed();
    let deadline = tokio::time::sleep(Duration::from_secs(settings.timeout_secs + 60));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        let event = tokio::select! {
            _ = &mut deadline => {
                delete_job(&jobs, &manifest.name).await;
                return Ended::Failed(format!("the build did not finish within {}s", settings.timeout_secs));
            }
            _ = tick.tick() => {
                // A cancel request is a row flag: checked every tick, acted on at once.
                let cancel = sqlx::query_scalar!("SELECT cancel_requested FROM builds WHERE id = $1", id)
                    .fetch_one(&engine.pool)
                    .await
                    .unwrap_or(false);
                if cancel {
                    delete_job(&jobs, &manifest.name).await;
                    return Ended::Cancelled;
                }
                continue;
            }
            e = events.next() => e,
        };
        let job = match event {
            Some(Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j))) => j,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "build watch error; the watcher retries");
                continue;
            }
            None => return Ended::Infrastructure("the cluster closed the watch".into()),
        };
        let conditions = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let done = |kind: &str| {
            conditions
                .iter()
                .any(|c| c.type_ == kind && c.status == "True")
        };
        if done("Complete") {
            let message = termination_message(client, &namespace, &manifest.name).await;
            return Ended::Succeeded(job::read_outcome(image, &message.unwrap_or_default()));
        }
        if done("Failed") {
            let tail = log_tail(client, &namespace, &manifest.name).await;
            let why = conditions
                .iter()
                .find(|c| c.type_ == "Failed")
                .and_then(|c| c.message.clone())
                .unwrap_or_default();
            return Ended::Failed(format!(
                "the build failed: {why}{}",
                tail.map(|t| format!("\n{t}")).unwrap_or_default()
            ));
        }
    }
}

async fn delete_job(jobs: &Api<Job>, name: &str) {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let _ = jobs.delete(name, &dp).await;
}

async fn build_pod(client: &kube::Client, namespace: &str, job: &str) -> Option<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .ok()?
        .items
        .into_iter()
        .next()
}

async fn termination_message(client: &kube::Client, namespace: &str, job: &str) -> Option<String> {
    let pod = build_pod(client, namespace, job).await?;
    pod.status?
        .container_statuses?
        .into_iter()
        .find(|c| c.name == "buildkit")?
        .state?
        .terminated?
        .message
}

/// The last lines of the build's log, for the failure's reason.
async fn log_tail(client: &kube::Client, namespace: &str, job: &str) -> Option<String> {
    let pod = build_pod(client, namespace, job).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = LogParams {
        container: Some("buildkit".into()),
        tail_lines: Some(15),
        ..Default::default()
    };
    pods.logs(pod.metadata.name.as_deref()?, &params).await.ok()
}

/// The pod logs of a build, for `GET /api/builds/…/logs` (the caller was checked).
pub async fn logs(
    client: kube::Client,
    namespace: &str,
    job: &str,
    follow: bool,
) -> Result<impl futures::Stream<Item = String> + Send + 'static + use<>, String> {
    let pod = build_pod(&client, namespace, job)
        .await
        .ok_or_else(|| format!("the build's pod ({job}) is not running (yet, or any more)"))?;
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let params = LogParams {
        container: Some("buildkit".into()),
        follow,
        ..Default::default()
    };
    let reader = pods
        .log_stream(pod.metadata.name.as_deref().unwrap_or_default(), &params)
        .await
        .map_err(|e| format!("cannot read the build's log: {e}"))?;
    // Bounded like the services' logs: a line without end costs neither memory nor the stream.
    let max = crate::deploy::logs::MAX_LINE_BYTES - 1;
    Ok(crate::deploy::logs::bounded_lines(reader, max).map(|l| format!("{l}\n")))
}

async fn finish(
    pool: &PgPool,
    id: i64,
    replica: &str,
    state: &str,
    reason: &str,
) -> crate::Result<()> {
    // The state and its notification commit together (`notify`'s outbox).
    let mut tx = pool.begin().await?;
    let r = sqlx::query!(
        "UPDATE builds SET state = $3, state_reason = $4, finished_at = now(), lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        id,
        replica,
        state,
        reason
    )
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() == 1 && state == "failed" {
        crate::notify::facts::build_failed(&mut tx, id, reason).await?;
    }
    tx.commit().await?;
    if r.rows_affected() == 1 {
        metrics::counter!("enclii_builds_total", "state" => state.to_owned()).increment(1);
        tracing::info!(build = id, state, reason, "build finished");
    }
    Ok(())
}
