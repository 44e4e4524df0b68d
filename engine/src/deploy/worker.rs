//! The deployment driver. Each replica runs one worker; a deployment is driven by whichever worker
//! holds its lease, and every step it takes is a row in PostgreSQL, so a restarted or different
//! replica resumes where the last one stopped.
//!
//! Why row leases (`FOR UPDATE SKIP LOCKED` plus `lease_owner`/`lease_until`) rather than advisory
//! locks or a Kubernetes Lease: the claim and the state change are one statement in the database
//! that already holds the deployment, so there is no second system to disagree with; a lease
//! outlives a connection drop (an advisory lock dies with its session and would hand the work over
//! while the first driver may still be applying); and a dead replica's work returns after at most
//! `cluster.lease_secs` without anyone having to notice it died. Every write a driver makes is
//! fenced by its lease (`WHERE lease_owner = me`), so a driver that lost its lease cannot record a
//! step or an analysis after its successor took over.

use std::time::Duration;

use enclii_spec::SpecFile;
use enclii_spec::model::RolloutStrategy;
use enclii_spec::render::{
    self, LABEL_SERVICE, LABEL_TRACK, Manifest, TRACK_CANARY, TRACK_STABLE, Target,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::analysis::{Prometheus, Queries};
use super::canary::{self, Decision, Policy, StepClock};
use super::{apply, rollout};
use crate::Engine;

pub const CHANNEL: &str = "enclii_deployments";

/// Claims and drives deployments until the process stops. `prometheus_url` overrides the
/// configured one (the in-process sandbox brings its own).
pub async fn run(engine: Engine, clusters: super::Clusters, replica: String) {
    let prometheus = prometheus(&engine);
    let mut listener = match PgListener::connect_with(&engine.pool).await {
        Ok(mut l) => match l.listen(CHANNEL).await {
            Ok(()) => Some(l),
            Err(_) => None,
        },
        Err(_) => None,
    };
    let lease = lease(&engine);
    let mut stopping = engine.stopping.subscribe();
    loop {
        if engine.pool.is_closed() {
            tracing::info!("the database pool closed; the deployment worker stops");
            return;
        }
        if *stopping.borrow() {
            tracing::info!("this replica is stopping; the deployment worker claims no more");
            return;
        }
        // A token per claim, not the replica's name: see `crate::leases`.
        let token = crate::leases::claim_token(&replica);
        match claim(&engine.pool, &token, lease).await {
            Ok(Some(id)) => {
                let driver = Driver {
                    engine: engine.clone(),
                    clusters: clusters.clone(),
                    id,
                    replica: token,
                    prometheus: prometheus.clone(),
                    notice: std::sync::OnceLock::new(),
                };
                tokio::spawn(async move { driver.run_with_lease().await });
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "claiming a deployment failed; retrying shortly");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        // A new deployment notifies at once; the timeout also catches expired leases and
        // deployments that were waiting for another one of the same service to finish.
        let wait = lease.min(Duration::from_secs(2));
        let woke = tokio::select! {
            woke = async {
                match listener.as_mut() {
                    Some(l) => tokio::time::timeout(wait, l.recv()).await,
                    None => Ok(Err(sqlx::Error::PoolClosed)),
                }
            } => woke,
            _ = stopping.changed() => continue,
        };
        if let Ok(Err(_)) = woke {
            // No listener (or it broke): fall back to polling, never to a busy loop.
            listener = None;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn prometheus(engine: &Engine) -> Option<std::sync::Arc<Prometheus>> {
    engine
        .settings
        .canary
        .prometheus_url
        .as_deref()
        .map(|u| std::sync::Arc::new(Prometheus::new(u)))
}

/// Drives the deployment `id` in this process when it is free to claim (pending with nothing else
/// of its service in progress, or its driver's lease expired), under a lease like any replica's;
/// returns whether it was claimed here. For `switchyard bootstrap`, which deploys the first
/// Switchyard before any replica exists to claim it, and must not drive anyone else's work.
pub async fn drive_one(
    engine: Engine,
    clusters: super::Clusters,
    id: i64,
    replica: &str,
) -> sqlx::Result<bool> {
    let lease = lease(&engine);
    let token = crate::leases::claim_token(replica);
    // The row lock makes a concurrent claimer wait, then see the state this one wrote.
    let mut tx = engine.pool.begin().await?;
    let claimed = sqlx::query!(
        r#"UPDATE deployments d SET state = 'in_progress', started_at = COALESCE(started_at, now()),
                  lease_owner = $1, lease_until = now() + make_interval(secs => $2),
                  state_reason = CASE WHEN d.state = 'pending' THEN NULL ELSE d.state_reason END
           WHERE d.id = $3
             AND ((d.state = 'pending' AND (d.held_until IS NULL OR d.held_until <= now()) AND NOT EXISTS (
                     SELECT 1 FROM deployments o
                     WHERE o.service_id = d.service_id AND o.environment_id = d.environment_id
                       AND o.state = 'in_progress'))
                  OR (d.state = 'in_progress' AND d.lease_until < now()))
           RETURNING d.id, d.started_at = now() AS "first_start!""#,
        token,
        lease.as_secs_f64(),
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(claimed) = claimed else {
        return Ok(false);
    };
    if !starts(&mut tx, claimed.id, claimed.first_start).await? {
        tx.commit().await?;
        return Ok(false);
    }
    tx.commit().await?;
    let driver = Driver {
        prometheus: prometheus(&engine),
        engine,
        clusters,
        id,
        replica: token,
        notice: std::sync::OnceLock::new(),
    };
    driver.run_with_lease().await;
    Ok(true)
}

fn lease(engine: &Engine) -> Duration {
    Duration::from_secs(engine.settings.cluster.lease_secs.max(1))
}

/// Takes one deployment that is pending (and no other deployment of the same service and
/// environment is being driven), or whose driver's lease ran out. Never one awaiting approval
/// (`platform/approvals.rs`), nor one a freeze window holds (`held_until`, `platform/freezes.rs`):
/// it is taken by the first claim after its hold ends.
pub async fn claim(pool: &PgPool, replica: &str, lease: Duration) -> sqlx::Result<Option<i64>> {
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query!(
        r#"UPDATE deployments SET state = 'in_progress', started_at = COALESCE(started_at, now()),
                  lease_owner = $1, lease_until = now() + make_interval(secs => $2),
                  state_reason = CASE WHEN state = 'pending' THEN NULL ELSE state_reason END
           WHERE id = (SELECT d.id FROM deployments d
                       WHERE (d.state = 'pending' AND (d.held_until IS NULL OR d.held_until <= now()) AND NOT EXISTS (
                                 SELECT 1 FROM deployments o
                                 WHERE o.service_id = d.service_id AND o.environment_id = d.environment_id
                                   AND o.state = 'in_progress'))
                          OR (d.state = 'in_progress' AND d.lease_until < now())
                       ORDER BY d.id FOR UPDATE SKIP LOCKED LIMIT 1)
           RETURNING id, started_at = now() AS "first_start!""#,
        replica,
        lease.as_secs_f64()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let claimed = match claimed {
        Some(c) if starts(&mut tx, c.id, c.first_start).await? => Some(c.id),
        _ => None,
    };
    tx.commit().await?;
    Ok(claimed)
}

/// In the claim's transaction, whether a claimed deployment starts. Its first claim is its start:
/// unless a freeze window began after it was requested (it waited behind another deployment, or
/// for a worker) — then it goes back to waiting, held until the window ends, as a request made now
/// would be (`platform/freezes.rs`; rollbacks and forced deployments are never held). The start is
/// announced (`notify`) with the change. A later claim after an expired lease is the same
/// deployment resumed: it goes on, and is not news.
async fn starts(tx: &mut sqlx::PgConnection, id: i64, first_start: bool) -> sqlx::Result<bool> {
    if !first_start {
        return Ok(true);
    }
    let d = sqlx::query!(
        r#"SELECT environment_id, strategy, forced_by IS NOT NULL AS "forced!" FROM deployments WHERE id = $1"#,
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    if d.strategy != "rollback" && !d.forced {
        if let Some(freeze) = crate::platform::freezes::active(&mut *tx, d.environment_id).await? {
            sqlx::query!(
                "UPDATE deployments SET state = 'pending', started_at = NULL, lease_owner = NULL,
                        lease_until = NULL, held_until = $2, state_reason = $3
                 WHERE id = $1",
                id,
                freeze.until,
                crate::platform::freezes::held_reason(&freeze)
            )
            .execute(&mut *tx)
            .await?;
            return Ok(false);
        }
    }
    crate::notify::facts::deployment(tx, id, "in_progress", "").await?;
    Ok(true)
}

/// Why a driver stops before a terminal state.
#[derive(Debug)]
enum Stop {
    /// The lease went to another replica, or the deployment is no longer in progress.
    Lost,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::Db(e)
    }
}

type Flow<T = ()> = Result<T, Stop>;

struct Driver {
    engine: Engine,
    clusters: super::Clusters,
    id: i64,
    replica: String,
    prometheus: Option<std::sync::Arc<Prometheus>>,
    /// Said with the deployment's outcome: what the platform left out of the release (hostnames
    /// the project has not proven it controls).
    notice: std::sync::OnceLock<String>,
}

/// What the driver needs to know about the deployment, loaded once.
struct Job {
    project: String,
    project_id: uuid::Uuid,
    service: String,
    environment: String,
    namespace: String,
    image: String,
    release: String,
    strategy: String,
    traffic_split: Option<String>,
    /// The environment's cluster.
    client: kube::Client,
    /// The service's variables and secrets in this environment, for its pods.
    env: Vec<super::env::EnvEntry>,
    /// Traffic goes through the configured Gateway's HTTPRoute (decided once per deployment).
    use_gateway: bool,
    file: SpecFile,
}

/// A step row: new, or found again after a restart.
struct StepRow {
    seq: i32,
    state: String,
}

impl Driver {
    fn pool(&self) -> &PgPool {
        &self.engine.pool
    }

    async fn run_with_lease(self) {
        let lease = crate::leases::Lease {
            work: crate::leases::Work::Deployment,
            id: self.id,
            token: self.replica.clone(),
            duration: lease(&self.engine),
        };
        let stopping = self.engine.stopping.subscribe();
        let held = crate::leases::hold(self.pool(), &lease, stopping, || async {
            match self.drive().await {
                Ok(()) | Err(Stop::Lost) => Ok(()),
                Err(Stop::Db(e)) => Err(e),
            }
        })
        .await;
        let id = self.id;
        match held {
            crate::leases::Held::Finished => {}
            crate::leases::Held::Lost => tracing::warn!(
                deployment = id,
                "lost the lease; another replica drives this deployment now"
            ),
            crate::leases::Held::Expired => tracing::warn!(
                deployment = id,
                "stopped driving: the lease could not be kept; whoever claims it next resumes it"
            ),
            crate::leases::Held::HandedOver => tracing::info!(
                deployment = id,
                "this replica is stopping; handed the deployment over"
            ),
            crate::leases::Held::Failed(e) => {
                tracing::error!(deployment = id, error = %e, "driving a deployment failed on the database; it will be resumed when its lease expires")
            }
        }
    }

    #[tracing::instrument(skip(self), fields(deployment = self.id))]
    async fn drive(&self) -> Flow {
        let Some(job) = self.load().await? else {
            return Ok(());
        };
        let plan = job.file.service.spec.rollout.clone().unwrap_or_default();
        let canary_wanted = job.strategy == "canary" && plan.strategy == RolloutStrategy::Canary;
        let first_drive = job.traffic_split.is_none();
        // A resumed deployment keeps the path its first driver chose.
        let path = match &job.traffic_split {
            Some(split) => split.clone(),
            None => {
                let gateway = match self.gateway_served(&job).await {
                    Ok(g) => g,
                    Err(reason) => return self.finish("failed", &reason).await,
                };
                let split = if !canary_wanted {
                    match job.strategy.as_str() {
                        "rollback" => "one step: a rollback restores a release that ran before, without analysis".to_owned(),
                        _ => "one step: the spec asks for a rolling update".to_owned(),
                    }
                } else {
                    match self.stable_replicas(&job).await {
                        Ok(Some(n)) if n > 0 => {
                            match (&gateway, &self.engine.settings.canary.gateway) {
                                (Some(()), Some(g)) => format!(
                                    "gateway api: HTTPRoute weights through Gateway {}/{}, beside the {n} stable pods",
                                    g.namespace, g.name
                                ),
                                (None, Some(_)) => format!(
                                    "replica ratio: canary pods beside the {n} stable pods behind one Service (a Gateway is configured but the cluster does not serve the Gateway API)"
                                ),
                                _ => format!(
                                    "replica ratio: canary pods beside the {n} stable pods behind one Service (no Gateway is configured)"
                                ),
                            }
                        }
                        Ok(_) => "one step: no stable pods run yet to compare a canary against"
                            .to_owned(),
                        Err(reason) => return self.finish("failed", &reason).await,
                    }
                };
                // One-step rollouts keep the route (at rest) in the render when a Gateway is used.
                let split = match (gateway, split.starts_with("one step")) {
                    (Some(()), true) => {
                        format!("{split} (HTTPRoute through the configured Gateway)")
                    }
                    _ => split,
                };
                self.fenced_update_split(&split).await?;
                split
            }
        };
        let mut job = job;
        job.use_gateway = path.starts_with("gateway api")
            || path.ends_with("(HTTPRoute through the configured Gateway)");
        // The namespace must be this project's before anything is applied in it.
        let tenant = super::tenancy::Tenant {
            namespace: &job.namespace,
            project: &job.project,
            project_id: job.project_id,
            environment: &job.environment,
        };
        let settings = &self.engine.settings;
        if let Err(refusal) = super::tenancy::ensure(
            &job.client,
            &tenant,
            &settings.cluster.tenancy,
            settings
                .canary
                .gateway
                .as_ref()
                .map(|g| g.namespace.as_str()),
        )
        .await
        {
            return self.finish("failed", &refusal.to_string()).await;
        }
        if first_drive {
            // Everything the release will apply, checked before anything of it is: a refusal
            // (validation, admission, RBAC) fails it now, not halfway through its objects or after
            // its canary passed.
            let mut manifests = self.render(&job);
            manifests.extend(render::release_job(&job.file, &self.target(&job), self.id));
            super::env::inject(&mut manifests, &job.service, &job.env);
            if let Err(reason) = apply::check_all(&job.client, &manifests).await {
                let reason = format!("the cluster refuses this release: {reason}");
                return self.finish("failed", &reason).await;
            }
        }
        if !self.release_phase(&job).await? {
            return Ok(());
        }
        if enclii_api::is_canary_split(&path) {
            self.canary(&job, &plan).await
        } else {
            self.full_rollout(&job, None).await
        }
    }

    /// Runs the spec's release command, once per deployment, before anything of the release is
    /// applied: `false` when it failed (the deployment is finished, failed, with the command's
    /// exit code and log tail; the running release was never touched). A driver that takes over
    /// finds the step and the Job (named by the deployment) and follows it rather than start the
    /// command again. A rollback restores a release that ran before and skips it. An abort or a
    /// newer deployment waits for the command to end: a migration stopped halfway is worse than
    /// one that finishes (the canary loop honours them right after).
    async fn release_phase(&self, job: &Job) -> Flow<bool> {
        let Some(release) = job.file.service.spec.release.as_ref() else {
            return Ok(true);
        };
        if job.strategy == "rollback" {
            return Ok(true);
        }
        let step = self.step("release", None).await?;
        if step.state == "succeeded" {
            return Ok(true);
        }
        let Some(manifest) = render::release_job(&job.file, &self.target(job), self.id) else {
            return Ok(true);
        };
        let name = manifest.name.clone();
        let mut manifests = vec![manifest];
        super::env::inject(&mut manifests, &job.service, &job.env);
        self.step_message(
            step.seq,
            &format!("running `{}` (Job {name})", release.command.join(" ")),
        )
        .await?;
        let started = std::time::Instant::now();
        let outcome = super::task::run(
            &job.client,
            &job.namespace,
            &manifests,
            release.timeout_seconds,
        )
        .await;
        let took = started.elapsed().as_secs_f64();
        match outcome {
            Ok(super::task::Outcome::Succeeded { log_tail }) => {
                self.step_end(
                    step.seq,
                    "succeeded",
                    &format!("`{}` succeeded in {took:.1}s", release.command.join(" ")),
                    json!({ "job": name, "exit_code": 0, "log_tail": log_tail }),
                )
                .await?;
                Ok(true)
            }
            Ok(outcome) => {
                let reason = super::task::release_failure(&release.command, &outcome);
                self.step_end(
                    step.seq,
                    "failed",
                    &reason,
                    json!({ "job": name, "exit_code": outcome.exit_code(), "log_tail": outcome.log_tail() }),
                )
                .await?;
                metrics::counter!("enclii_release_commands_failed_total").increment(1);
                self.finish("failed", &reason).await?;
                Ok(false)
            }
            Err(e) => {
                let reason = format!("the release command could not be run: {e}");
                self.step_end(step.seq, "failed", &reason, json!({ "job": name }))
                    .await?;
                self.finish("failed", &reason).await?;
                Ok(false)
            }
        }
    }

    /// `Some(())` when a Gateway is configured and the cluster serves the Gateway API's HTTPRoute.
    async fn gateway_served(&self, job: &Job) -> Result<Option<()>, String> {
        if self.engine.settings.canary.gateway.is_none() {
            return Ok(None);
        }
        let found = apply::with_retries(
            "discover the Gateway API",
            5,
            Duration::from_secs(10),
            || async {
                match job
                    .client
                    .list_api_group_resources(render::GATEWAY_API_VERSION)
                    .await
                {
                    Ok(list) => Ok(list.resources.iter().any(|r| r.name == "httproutes")),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
                    Err(e) => Err(e),
                }
            },
        )
        .await?;
        Ok(found.then_some(()))
    }

    async fn load(&self) -> Flow<Option<Job>> {
        let row = sqlx::query!(
            r#"SELECT s.name AS service, p.slug AS project, p.id AS project_id, e.name AS environment, e.namespace, r.id AS release_id,
                      d.service_id, d.environment_id,
                      r.image_ref, r.image_digest, sr.source, d.strategy, d.traffic_split
               FROM deployments d JOIN services s ON s.id = d.service_id JOIN projects p ON p.id = s.project_id
                    JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
                    JOIN spec_revisions sr ON sr.service_id = r.service_id AND sr.revision = r.spec_revision
               WHERE d.id = $1"#,
            self.id
        )
        .fetch_one(self.pool())
        .await?;
        let preview = crate::previews::is_preview(self.pool(), row.environment_id).await?;
        let file = match enclii_spec::parse(&row.source) {
            Ok(mut f) if preview => {
                // A pull request's copy: the platform's hostname only, one replica.
                let generated = self
                    .engine
                    .settings
                    .domains
                    .generated_suffix
                    .as_deref()
                    .map(|suffix| {
                        crate::platform::domains::generated_hostname(
                            &row.service,
                            &row.namespace,
                            suffix,
                        )
                    });
                if generated.is_none() {
                    let _ = self.notice.set(
                        "a preview without a hostname: the platform has no domains.generated_suffix".into(),
                    );
                }
                crate::previews::as_preview(&mut f.service.spec, generated.as_deref());
                f
            }
            Ok(mut f) => {
                // A spec may name any hostname; only those this project proved it controls (or
                // the platform's own for this service) are routed, so no tenant can take another's
                // domain or the platform's.
                let proven =
                    crate::platform::domains::verified_in_project(self.pool(), row.project_id)
                        .await?;
                let generated = self
                    .engine
                    .settings
                    .domains
                    .generated_suffix
                    .as_deref()
                    .map(|suffix| {
                        crate::platform::domains::generated_hostname(
                            &row.service,
                            &row.namespace,
                            suffix,
                        )
                    });
                let left_out = crate::platform::domains::keep_routable(
                    &mut f.service.spec.domains,
                    &proven,
                    generated.as_deref(),
                );
                if !left_out.is_empty() {
                    let _ = self.notice.set(format!(
                        "not routed (not a verified domain of project {}): {}",
                        row.project,
                        left_out.join(", ")
                    ));
                }
                // Verified custom domains are routed like the spec's own.
                for d in crate::platform::domains::routed(
                    self.pool(),
                    row.service_id,
                    row.environment_id,
                )
                .await?
                {
                    if !f.service.spec.domains.iter().any(|s| s.domain == d.domain) {
                        f.service.spec.domains.push(d);
                    }
                }
                f
            }
            Err(_) => {
                self.finish("failed", "the release's spec no longer parses")
                    .await?;
                return Ok(None);
            }
        };
        let client = self.clusters.for_environment(&row.environment);
        let env = match crate::platform::env::for_pods(
            &self.engine,
            self.id,
            row.service_id,
            row.environment_id,
        )
        .await
        {
            Ok(env) => env,
            Err(reason) => {
                self.finish("failed", &reason).await?;
                return Ok(None);
            }
        };
        Ok(Some(Job {
            env,
            project: row.project,
            project_id: row.project_id,
            service: row.service,
            environment: row.environment,
            namespace: row.namespace,
            image: pinned_image(&row.image_ref, row.image_digest.as_deref()),
            release: row.release_id.to_string(),
            strategy: row.strategy,
            traffic_split: row.traffic_split,
            use_gateway: false,
            client,
            file,
        }))
    }

    /// The release's objects. The namespace is not among them: `tenancy::ensure` owns it.
    fn render(&self, job: &Job) -> Vec<Manifest> {
        let mut manifests = render::render(&job.file, &self.target(job));
        manifests.retain(|m| m.kind != "Namespace");
        manifests
    }

    fn target<'a>(&'a self, job: &'a Job) -> Target<'a> {
        let gateway = match (&self.engine.settings.canary.gateway, job.use_gateway) {
            (Some(g), true) => Some(render::GatewayRef {
                name: &g.name,
                namespace: &g.namespace,
            }),
            _ => None,
        };
        Target {
            project: &job.project,
            environment: &job.environment,
            namespace: &job.namespace,
            image: &job.image,
            release: &job.release,
            gateway,
            progress_deadline_secs: self.engine.settings.cluster.progress_deadline_secs,
        }
    }

    /// Ready pods of the stable track, as the cluster reports them (`None`: no stable Deployment).
    async fn stable_replicas(&self, job: &Job) -> Result<Option<i32>, String> {
        let api: Api<Deployment> = Api::namespaced(job.client.clone(), &job.namespace);
        let d = apply::with_retries(
            "read the stable Deployment",
            5,
            Duration::from_secs(10),
            || api.get_opt(&job.service),
        )
        .await?;
        Ok(d.and_then(|d| d.status).and_then(|s| s.ready_replicas))
    }

    /// Applies every object (the stable track gets the release), waits for its pods, then prunes
    /// what the spec no longer asks for, the canary Deployment included.
    async fn full_rollout(&self, job: &Job, promoted_from: Option<&str>) -> Flow {
        let mut manifests = self.render(job);
        super::env::inject(&mut manifests, &job.service, &job.env);
        let step = self.step("apply", None).await?;
        if step.state != "succeeded" {
            match apply::apply_all(&job.client, &manifests).await {
                Ok(applied) => {
                    let message = format!("applied {} objects", applied.len());
                    self.step_end(
                        step.seq,
                        "succeeded",
                        &message,
                        json!({ "objects": applied }),
                    )
                    .await?
                }
                Err(reason) => {
                    self.step_end(step.seq, "failed", &reason, json!({}))
                        .await?;
                    return self.finish("failed", &reason).await;
                }
            }
        }
        let step = self.step("rollout", Some(100)).await?;
        let limit = Duration::from_secs(self.engine.settings.cluster.rollout_timeout_secs);
        let outcome = self
            .watch(job, &job.service, TRACK_STABLE, step.seq, limit)
            .await;
        let ready = match outcome {
            rollout::Progress::Succeeded { ready } => ready,
            rollout::Progress::Failed { reason } => {
                self.step_end(step.seq, "failed", &reason, json!({}))
                    .await?;
                let reason = match promoted_from {
                    // maxUnavailable 0: the pods not yet replaced still run the previous release.
                    Some(_) => format!(
                        "promotion failed: {reason}; the pods not yet replaced keep serving the previous release, `enclii rollback` restores it fully"
                    ),
                    None => reason,
                };
                return self.finish("failed", &reason).await;
            }
            rollout::Progress::Waiting { .. } => {
                return self
                    .finish("failed", "the rollout stopped without an outcome")
                    .await;
            }
        };
        self.step_end(
            step.seq,
            "succeeded",
            &format!("{ready} new pods ready"),
            json!({ "ready": ready }),
        )
        .await?;
        let step = self.step("prune", None).await?;
        match apply::prune(
            &job.client,
            &job.namespace,
            &job.service,
            &job.environment,
            &manifests,
        )
        .await
        {
            Ok(pruned) => {
                let message = format!("pruned {} objects", pruned.len());
                self.step_end(
                    step.seq,
                    "succeeded",
                    &message,
                    json!({ "objects": pruned }),
                )
                .await?
            }
            Err(reason) => {
                // The release runs; only the clean-up failed. Say so rather than fail the rollout.
                self.step_end(step.seq, "failed", &reason, json!({}))
                    .await?;
            }
        }
        let reason = match promoted_from {
            Some(how) => format!("{how}; {ready} pods of the new release are ready"),
            None => format!("{ready} pods of the new release are ready"),
        };
        self.finish("succeeded", &reason).await
    }

    async fn watch(
        &self,
        job: &Job,
        deployment: &str,
        track: &str,
        seq: i32,
        limit: Duration,
    ) -> rollout::Progress {
        let pool = self.pool().clone();
        let id = self.id;
        let pods = format!("{LABEL_SERVICE}={},{LABEL_TRACK}={track}", job.service);
        rollout::watch(job.client.clone(), &job.namespace, deployment, &pods, &job.release, limit, move |p| {
            if let rollout::Progress::Waiting { ready, desired } = p {
                // Progress is evidence too: the dashboard and `deploy --wait` show it as it happens.
                let (pool, ready, desired) = (pool.clone(), *ready, *desired);
                tokio::spawn(async move {
                    let _ = sqlx::query!(
                        "UPDATE deployment_steps SET message = $3, evidence = evidence || jsonb_build_object('ready', $4::int, 'desired', $5::int)
                         WHERE deployment_id = $1 AND seq = $2 AND state = 'running'",
                        id,
                        seq,
                        format!("{ready}/{desired} new pods ready"),
                        ready,
                        desired
                    )
                    .execute(&pool)
                    .await;
                });
            }
        })
        .await
    }

    /// Steps the canary through the spec's weights, analysing each, then promotes it; or takes it
    /// away at the first breach, at a manual abort, or when a newer deployment supersedes it.
    async fn canary(&self, job: &Job, plan: &enclii_spec::model::Rollout) -> Flow {
        let Some(prometheus) = self.prometheus.clone() else {
            return self
                .withdraw(job, "failed", "canary analysis needs Prometheus: set canary.prometheus_url, or deploy with `rollout.strategy: rolling`", json!({}))
                .await;
        };
        let settings = &self.engine.settings.canary;
        let policy = Policy {
            max_error_rate: plan.max_error_rate,
            min_requests: plan.min_requests as f64,
            inconclusive_limit: settings.inconclusive_limit.max(1),
        };
        let queries = Queries::new(settings, &job.namespace, &job.service, TRACK_CANARY);
        let interval = Duration::from_millis(settings.interval_ms.max(50));
        let canary_name = render::canary_name(&job.service);
        // The canary pods need what the stable pods have: the volumes (the namespace exists).
        let prerequisites: Vec<Manifest> = self
            .render(job)
            .into_iter()
            .filter(|m| m.kind == "PersistentVolumeClaim")
            .collect();
        let mut promoted_by_hand = false;
        'steps: for step in plan.steps.iter().filter(|s| s.weight < 100) {
            let weight = step.weight;
            let row = self.step("canary", Some(weight as i32)).await?;
            if row.state == "succeeded" {
                continue;
            }
            match self.control(job, row.seq).await? {
                Control::Continue => {}
                Control::Ended => return Ok(()),
                Control::Promote => {
                    promoted_by_hand = true;
                    self.step_end(row.seq, "succeeded", "promoted by hand", json!({}))
                        .await?;
                    break 'steps;
                }
            }
            let stable = match self.stable_replicas(job).await {
                Ok(n) => n.unwrap_or(1).max(1),
                Err(reason) => {
                    self.step_end(row.seq, "failed", &reason, json!({})).await?;
                    return self.withdraw(job, "failed", &reason, json!({})).await;
                }
            };
            // With a route the weight is exact and the canary only needs capacity for its share;
            // with a replica ratio, the pod count is the split.
            let (replicas, effective) = if job.use_gateway {
                (canary::replicas_for_share(weight, stable), weight as f64)
            } else {
                let r = canary::canary_replicas(weight, stable);
                (r, canary::effective_weight(r, stable))
            };
            let mut canary_deployment =
                vec![render::canary(&job.file, &self.target(job), replicas)];
            super::env::inject(&mut canary_deployment, &job.service, &job.env);
            let mut manifests = prerequisites.clone();
            manifests.extend(canary_deployment);
            if let Err(reason) = apply::apply_all(&job.client, &manifests).await {
                self.step_end(row.seq, "failed", &reason, json!({})).await?;
                return self.withdraw(job, "failed", &reason, json!({})).await;
            }
            sqlx::query!(
                "UPDATE deployment_steps SET evidence = evidence || $3 WHERE deployment_id = $1 AND seq = $2",
                self.id,
                row.seq,
                json!({ "canary_pods": replicas, "stable_pods": stable, "effective_weight": effective })
            )
            .execute(self.pool())
            .await?;
            let limit = Duration::from_secs(self.engine.settings.cluster.rollout_timeout_secs);
            match self
                .watch(job, &canary_name, TRACK_CANARY, row.seq, limit)
                .await
            {
                rollout::Progress::Succeeded { .. } => {
                    // Traffic moves only once the canary's pods are ready to take it.
                    if let Some(route) = render::route(&job.file, &self.target(job), weight) {
                        if let Err(reason) = apply::apply_all(&job.client, &[route]).await {
                            self.step_end(row.seq, "failed", &reason, json!({})).await?;
                            return self.withdraw(job, "failed", &reason, json!({})).await;
                        }
                    }
                }
                rollout::Progress::Failed { reason } => {
                    let reason =
                        format!("the canary's pods failed at {weight}% of traffic: {reason}");
                    self.step_end(row.seq, "failed", &reason, json!({})).await?;
                    metrics::counter!("enclii_canary_rollbacks_total", "cause" => "pods")
                        .increment(1);
                    return self
                        .withdraw(job, "rolled_back", &reason, json!({ "weight": weight }))
                        .await;
                }
                rollout::Progress::Waiting { .. } => {
                    return self
                        .withdraw(
                            job,
                            "failed",
                            "the canary's rollout stopped without an outcome",
                            json!({}),
                        )
                        .await;
                }
            }
            self.step_message(row.seq, &format!("{replicas} canary pods beside {stable} stable pods (~{effective:.0}% of traffic); analysing")).await?;
            loop {
                match self.control(job, row.seq).await? {
                    Control::Promote => {
                        promoted_by_hand = true;
                        self.step_end(row.seq, "succeeded", "promoted by hand", json!({}))
                            .await?;
                        break 'steps;
                    }
                    Control::Continue => {}
                    Control::Ended => return Ok(()),
                }
                let (measurement, error) = match prometheus.measure(&queries).await {
                    Ok(m) => (m, None),
                    // An unreachable Prometheus is no evidence of health: inconclusive, recorded.
                    Err(e) => (Default::default(), Some(e)),
                };
                let (held_for, inconclusive_before) = self.step_clock(row.seq).await?;
                let clock = StepClock {
                    held_for,
                    pause: step.pause.0,
                    inconclusive_before,
                };
                let decision = canary::decide(weight, measurement, clock, policy);
                metrics::counter!("enclii_canary_analyses_total", "decision" => decision.label())
                    .increment(1);
                let detail = error.unwrap_or_else(|| match &decision {
                    Decision::RollBack { reason } | Decision::GiveUp { reason } => reason.clone(),
                    Decision::Promote => {
                        format!("passed after {}s at this weight", held_for.as_secs())
                    }
                    Decision::Hold => format!(
                        "healthy; holding {}s of {}s",
                        held_for.as_secs(),
                        step.pause.0.as_secs()
                    ),
                    Decision::Inconclusive => "too little traffic to judge".to_owned(),
                });
                self.record_analysis(row.seq, weight, &measurement, &decision, &detail, &queries)
                    .await?;
                let evidence = json!({
                    "weight": weight,
                    "error_rate_percent": measurement.error_ratio.filter(|r| r.is_finite()).map(|r| r * 100.0),
                    "requests": measurement.requests,
                    "query": queries.error_rate,
                    "threshold_percent": policy.max_error_rate,
                });
                match decision {
                    Decision::Promote => {
                        metrics::counter!("enclii_canary_promotions_total", "kind" => "step")
                            .increment(1);
                        self.step_end(row.seq, "succeeded", &detail, evidence)
                            .await?;
                        continue 'steps;
                    }
                    Decision::Hold | Decision::Inconclusive => tokio::time::sleep(interval).await,
                    Decision::RollBack { reason } => {
                        self.step_end(row.seq, "failed", &reason, evidence.clone())
                            .await?;
                        metrics::counter!("enclii_canary_rollbacks_total", "cause" => "error_rate")
                            .increment(1);
                        return self.withdraw(job, "rolled_back", &reason, evidence).await;
                    }
                    Decision::GiveUp { reason } => {
                        self.step_end(row.seq, "failed", &reason, evidence.clone())
                            .await?;
                        metrics::counter!("enclii_canary_rollbacks_total", "cause" => "inconclusive").increment(1);
                        return self.withdraw(job, "failed", &reason, evidence).await;
                    }
                }
            }
        }
        metrics::counter!("enclii_canary_promotions_total", "kind" => if promoted_by_hand { "manual" } else { "analysis" })
            .increment(1);
        let how = if promoted_by_hand {
            "promoted by hand to 100%"
        } else {
            "every canary step passed its analysis; promoted to 100%"
        };
        self.full_rollout(job, Some(how)).await
    }

    /// Reads a manual request (or a newer deployment's) and carries out an abort at once.
    async fn control(&self, job: &Job, seq: i32) -> Flow<Control> {
        let row = sqlx::query!(
            "SELECT requested_action, state, lease_owner FROM deployments WHERE id = $1",
            self.id
        )
        .fetch_one(self.pool())
        .await?;
        if row.state != "in_progress" || row.lease_owner.as_deref() != Some(self.replica.as_str()) {
            return Err(Stop::Lost);
        }
        match row.requested_action.as_deref() {
            Some("promote") => Ok(Control::Promote),
            Some(action @ ("abort" | "supersede")) => {
                let (state, reason) = if action == "abort" {
                    (
                        "aborted",
                        "aborted by hand; traffic is back on the stable release",
                    )
                } else {
                    (
                        "superseded",
                        "a newer deployment of this service was requested; the canary was withdrawn",
                    )
                };
                metrics::counter!("enclii_canary_aborts_total", "why" => action.to_owned())
                    .increment(1);
                self.step_end(seq, "failed", reason, json!({})).await?;
                self.withdraw(job, state, reason, json!({})).await?;
                Ok(Control::Ended)
            }
            _ => Ok(Control::Continue),
        }
    }

    /// Takes the canary away (the stable track was never touched, so it serves everything again),
    /// records how, and ends the deployment in `state`.
    async fn withdraw(
        &self,
        job: &Job,
        state: &str,
        reason: &str,
        evidence: serde_json::Value,
    ) -> Flow {
        let step = self.step("withdraw", Some(0)).await?;
        // With a route, traffic goes back to stable first; then the canary's pods go.
        if let Some(route) = render::route(&job.file, &self.target(job), 0) {
            if let Err(e) = apply::apply_all(&job.client, &[route]).await {
                self.step_end(step.seq, "failed", &e, evidence).await?;
                return self
                    .finish(state, &format!("{reason}; returning the route to stable failed ({e}): the canary still gets its share"))
                    .await;
            }
        }
        let api: Api<Deployment> = Api::namespaced(job.client.clone(), &job.namespace);
        let name = render::canary_name(&job.service);
        let removed = apply::with_retries(
            &format!("delete Deployment/{name}"),
            5,
            Duration::from_secs(10),
            || async {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(e),
                }
            },
        )
        .await;
        let mut evidence = evidence;
        evidence["canary_removed"] = removed.is_ok().into();
        match removed {
            Ok(()) => {
                self.step_end(
                    step.seq,
                    "succeeded",
                    "canary removed; the stable release serves all traffic",
                    evidence,
                )
                .await?;
                self.finish(state, reason).await
            }
            Err(e) => {
                self.step_end(step.seq, "failed", &e, evidence).await?;
                self.finish(state, &format!("{reason}; removing the canary failed ({e}): it still gets a share of traffic"))
                    .await
            }
        }
    }

    /// The step of `kind` at `weight` that a previous driver started, or a new one.
    async fn step(&self, kind: &str, weight: Option<i32>) -> Flow<StepRow> {
        let found = sqlx::query!(
            r#"SELECT seq, state FROM deployment_steps
               WHERE deployment_id = $1 AND kind = $2 AND weight IS NOT DISTINCT FROM $3
               ORDER BY seq DESC LIMIT 1"#,
            self.id,
            kind,
            weight
        )
        .fetch_optional(self.pool())
        .await?;
        if let Some(r) = found {
            if r.state != "failed" {
                return Ok(StepRow {
                    seq: r.seq,
                    state: r.state,
                });
            }
        }
        let seq = sqlx::query_scalar!(
            r#"INSERT INTO deployment_steps (deployment_id, seq, kind, state, weight)
               SELECT $1, (SELECT COALESCE(max(seq), 0) + 1 FROM deployment_steps WHERE deployment_id = $1), $2, 'running', $3
               WHERE EXISTS (SELECT 1 FROM deployments WHERE id = $1 AND lease_owner = $4 AND state = 'in_progress')
               RETURNING seq"#,
            self.id,
            kind,
            weight,
            self.replica
        )
        .fetch_optional(self.pool())
        .await?
        .ok_or(Stop::Lost)?;
        Ok(StepRow {
            seq,
            state: "running".into(),
        })
    }

    /// How long the step has held its weight, and how many of its analyses were inconclusive.
    async fn step_clock(&self, seq: i32) -> Flow<(Duration, u32)> {
        let r = sqlx::query!(
            r#"SELECT EXTRACT(EPOCH FROM now() - s.started_at)::float8 AS "held!",
                      (SELECT count(*) FROM canary_analyses a WHERE a.deployment_id = s.deployment_id AND a.step_seq = s.seq
                         AND a.decision = 'inconclusive') AS "inconclusive!"
               FROM deployment_steps s WHERE s.deployment_id = $1 AND s.seq = $2"#,
            self.id,
            seq
        )
        .fetch_one(self.pool())
        .await?;
        Ok((
            Duration::from_secs_f64(r.held.max(0.0)),
            r.inconclusive as u32,
        ))
    }

    async fn record_analysis(
        &self,
        seq: i32,
        weight: u32,
        m: &canary::Measurement,
        decision: &Decision,
        detail: &str,
        queries: &Queries,
    ) -> Flow {
        // The run number comes from the rows themselves and the key refuses a duplicate, so two
        // drivers cannot both record run n; the lease fence stops a driver that was replaced.
        let inserted = sqlx::query!(
            r#"INSERT INTO canary_analyses (deployment_id, step_seq, run, weight, error_rate, requests, decision, detail, query, replica)
               SELECT $1, $2, (SELECT COALESCE(max(run), 0) + 1 FROM canary_analyses WHERE deployment_id = $1 AND step_seq = $2),
                      $3, $4, $5, $6, $7, $8, $9
               WHERE EXISTS (SELECT 1 FROM deployments WHERE id = $1 AND lease_owner = $9 AND state = 'in_progress')
               ON CONFLICT DO NOTHING"#,
            self.id,
            seq,
            weight as i32,
            m.error_ratio.filter(|r| r.is_finite()).map(|r| r * 100.0),
            m.requests.filter(|r| r.is_finite()),
            decision.label(),
            detail,
            format!("{}\n{}", queries.error_rate, queries.requests),
            self.replica
        )
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 1 {
            Ok(())
        } else {
            Err(Stop::Lost)
        }
    }

    async fn fenced_update_split(&self, split: &str) -> Flow {
        let r = sqlx::query!(
            "UPDATE deployments SET traffic_split = $3 WHERE id = $1 AND lease_owner = $2 AND state = 'in_progress'",
            self.id,
            self.replica,
            split
        )
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 1 {
            Ok(())
        } else {
            Err(Stop::Lost)
        }
    }

    async fn step_message(&self, seq: i32, message: &str) -> Flow {
        sqlx::query!(
            "UPDATE deployment_steps SET message = $3 WHERE deployment_id = $1 AND seq = $2",
            self.id,
            seq,
            message
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn step_end(
        &self,
        seq: i32,
        state: &str,
        message: &str,
        evidence: serde_json::Value,
    ) -> Flow {
        let r = sqlx::query!(
            "UPDATE deployment_steps SET state = $3, message = $4, evidence = evidence || $5, finished_at = now()
             WHERE deployment_id = $1 AND seq = $2
               AND EXISTS (SELECT 1 FROM deployments WHERE id = $1 AND lease_owner = $6 AND state = 'in_progress')",
            self.id,
            seq,
            state,
            message,
            evidence,
            self.replica
        )
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 1 {
            Ok(())
        } else {
            Err(Stop::Lost)
        }
    }

    /// The one terminal state: only the lease holder of an in-progress deployment can write it.
    async fn finish(&self, state: &str, reason: &str) -> Flow {
        let with_notice;
        let reason = match self.notice.get() {
            Some(notice) => {
                with_notice = format!("{reason}; {notice}");
                with_notice.as_str()
            }
            None => reason,
        };
        // The state and its notification commit together (`notify`'s outbox).
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query!(
            "UPDATE deployments SET state = $2, state_reason = $3, finished_at = now(), lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND state = 'in_progress' AND lease_owner = $4
             RETURNING strategy",
            self.id,
            state,
            reason,
            self.replica
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = r else { return Err(Stop::Lost) };
        crate::notify::facts::deployment(&mut tx, self.id, state, reason).await?;
        tx.commit().await?;
        metrics::counter!("enclii_rollouts_total", "strategy" => r.strategy, "state" => state.to_owned()).increment(1);
        // The first line only: a release command's log tail follows it, and a tenant's output (a
        // migration printing its connection string) has no place in the platform's logs.
        let summary = reason.lines().next().unwrap_or_default();
        tracing::info!(
            deployment = self.id,
            state,
            reason = summary,
            "deployment finished"
        );
        // Wakes workers: a deployment of the same service may have been waiting for this one.
        let _ = sqlx::query!(
            "SELECT pg_notify('enclii_deployments', $1)",
            self.id.to_string()
        )
        .execute(self.pool())
        .await;
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Control {
    Continue,
    Promote,
    /// The deployment was aborted or superseded, and is finished.
    Ended,
}

/// The image by digest when the release knows it: a tag can be moved, a digest cannot.
pub fn pinned_image(image_ref: &str, digest: Option<&str>) -> String {
    match digest {
        Some(d) if !image_ref.contains('@') => {
            let last_slash = image_ref.rfind('/').map(|i| i + 1).unwrap_or(0);
            let repo = match image_ref[last_slash..].find(':') {
                Some(colon) => &image_ref[..last_slash + colon],
                None => image_ref,
            };
            format!("{repo}@{d}")
        }
        _ => image_ref.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_pinned_by_digest_when_known() {
        let d = "sha256:abc";
        assert_eq!(
            pinned_image("ghcr.io/org/app:1.2", Some(d)),
            "ghcr.io/org/app@sha256:abc"
        );
        assert_eq!(
            pinned_image("registry:5000/app", Some(d)),
            "registry:5000/app@sha256:abc"
        );
        assert_eq!(
            pinned_image("registry:5000/app:v1", Some(d)),
            "registry:5000/app@sha256:abc"
        );
        assert_eq!(
            pinned_image("ghcr.io/org/app:1.2", None),
            "ghcr.io/org/app:1.2"
        );
        assert_eq!(pinned_image("app@sha256:def", Some(d)), "app@sha256:def");
    }
}
