//! Preview environments per pull request: a `pull_request` webhook (verified by
//! `pipeline::receive` exactly like a push) creates, for each project whose secret signed it, an
//! environment `pr-<number>` with its own namespace (tenancy as any environment: the deploy
//! driver's `tenancy::ensure`), copies each previewed service's variables from `staging` (never
//! production), and queues a build of the pull request's head commit per service whose spec opts
//! in (`spec.previews`, and its `label` on the pull request when set). The build worker deploys
//! it (one step, one replica, no autoscaler) and the deploy driver routes only the platform's own
//! hostname for it, `{service}.{namespace}.{domains.generated_suffix}`: no spec or pull request
//! can name one, and namespaces (so hostnames) never meet across projects.
//!
//! Closing the pull request (or removing its label, or `previews/delete`) marks it `deleting`:
//! its queued builds are cancelled and pending deployments superseded in the webhook's
//! transaction; then its build Jobs, its namespace (only if it is this project's) and its
//! environment row (with its deployments, builds, variables and domains) are deleted, and an
//! event says so. The scan (`watch`, every `previews.scan_secs` on every replica) sleeps idle
//! previews, deletes expired ones and finishes deletions a replica did not; `idle::decide` says
//! which. Each action first takes the row with a conditional UPDATE (`busy_until`), so that two
//! replicas never act on one preview at once.
//!
//! Pull requests from forks get no preview: a fork's author is anyone on GitHub, and a preview
//! runs their code with the project's build credentials and staging's variables (see
//! docs/architecture.md, "Previews").

pub mod idle;

use std::time::Duration;

use chrono::{DateTime, Utc};
use enclii_api::{ApiError, Preview, PreviewEvent, PreviewService, PreviewState};
use enclii_spec::model::Previews;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use uuid::Uuid;

use crate::auth::{Action, Caller};
use crate::pipeline::Start;
use crate::pipeline::github::PullRequest;
use crate::platform::project_access;
use crate::platform::projects::{namespace_for, validate_environment};
use crate::{Engine, audit};

/// The highest pull request number previewed: `pr-<number>` stays a short environment name.
pub const MAX_PR: u32 = 99_999_999;
/// How long one replica holds a preview it acts on (sleep, wake, delete).
const BUSY_SECS: f64 = 120.0;
/// Field manager of the sleep and wake patches (the deploy's own `enclii` takes replicas back
/// with the next deployment).
const FIELD_MANAGER: &str = "enclii-previews";
/// A preview runs one replica of each service (and no autoscaler): it serves one reviewer.
pub const REPLICAS: u32 = 1;

/// The environment (and namespace suffix) of pull request `number`.
pub fn environment_name(number: u32) -> String {
    format!("pr-{number}")
}

/// Whether an environment name is one previews own (`pr-<digits>`): people cannot create these.
pub fn is_preview_name(name: &str) -> bool {
    name.strip_prefix("pr-")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Whether a service previews a pull request with these labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Eligibility {
    Yes,
    NotOptedIn,
    Unlabelled { label: String },
}

pub fn eligibility(spec: Option<&Previews>, labels: &[String]) -> Eligibility {
    match spec {
        Some(p) if p.enabled => match &p.label {
            Some(l) if !labels.iter().any(|have| have == l) => {
                Eligibility::Unlabelled { label: l.clone() }
            }
            _ => Eligibility::Yes,
        },
        _ => Eligibility::NotOptedIn,
    }
}

/// What a `pull_request` delivery did, for its record and the answer to GitHub.
pub(crate) struct Handled {
    /// `accepted` (something was queued or marked for deletion) or `ignored`.
    pub outcome: &'static str,
    pub reason: String,
    pub builds: Vec<Start>,
    /// Previews marked `deleting`, deleted right after the commit when this replica can.
    pub deleting: Vec<i64>,
}

struct Live {
    id: i64,
    environment_id: Option<Uuid>,
    state: String,
    head_sha: String,
    repository: String,
    services: Vec<String>,
}

/// Handles a verified `pull_request` delivery for the projects whose secret signed it, in the
/// delivery's transaction.
pub(crate) async fn pull_request(
    tx: &mut sqlx::PgConnection,
    namespace_prefix: &str,
    secrets: Option<&crate::crypto::SecretBox>,
    projects: &[Uuid],
    url: &str,
    pr: &PullRequest,
) -> sqlx::Result<Handled> {
    let mut handled = Handled {
        outcome: "ignored",
        reason: String::new(),
        builds: Vec::new(),
        deleting: Vec::new(),
    };
    let action = pr.action.as_str();
    if !matches!(
        action,
        "opened" | "reopened" | "synchronize" | "closed" | "labeled" | "unlabeled"
    ) {
        handled.reason = format!(
            "pull request action `{}` does not change previews",
            github_clip(action)
        );
        return Ok(handled);
    }
    if pr.number == 0 || pr.number > MAX_PR {
        handled.reason = "the pull request's number is not one Enclii previews".into();
        return Ok(handled);
    }
    let sha_ok = (40..=64).contains(&pr.head_sha.len())
        && pr
            .head_sha
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if !sha_ok {
        handled.reason = "the pull request's head is not a commit id".into();
        return Ok(handled);
    }
    let mut reasons = Vec::new();
    for project in projects {
        reasons.push(
            for_project(
                tx,
                namespace_prefix,
                secrets,
                *project,
                url,
                pr,
                &mut handled,
            )
            .await?,
        );
    }
    if !handled.builds.is_empty() || !handled.deleting.is_empty() {
        handled.outcome = "accepted";
    }
    handled.reason = reasons.join("; ");
    Ok(handled)
}

fn github_clip(s: &str) -> &str {
    crate::pipeline::github::clip(s, 64)
}

async fn event(db: impl sqlx::PgExecutor<'_>, preview: i64, message: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO preview_events (preview_id, message) VALUES ($1, $2)",
        preview,
        message
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a live preview `deleting`: its queued builds cancelled, running ones asked to stop, its
/// pending deployments superseded. The cluster part follows (`finish_deleting`).
async fn mark_deleting(
    tx: &mut sqlx::PgConnection,
    preview: i64,
    environment: Option<Uuid>,
    why: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE previews SET state = 'deleting' WHERE id = $1 AND state IN ('awake', 'sleeping')",
        preview
    )
    .execute(&mut *tx)
    .await?;
    if let Some(env) = environment {
        sqlx::query!(
            "UPDATE builds SET state = 'cancelled', state_reason = 'the preview is being deleted', finished_at = now()
             WHERE environment_id = $1 AND state = 'queued'",
            env
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE builds SET cancel_requested = true WHERE environment_id = $1 AND state = 'running'",
            env
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE deployments SET requested_action = 'abort'
             WHERE environment_id = $1 AND state = 'in_progress'",
            env
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE deployments SET state = 'superseded', state_reason = 'the preview is being deleted', finished_at = now()
             WHERE environment_id = $1 AND state = 'pending'",
            env
        )
        .execute(&mut *tx)
        .await?;
    }
    event(&mut *tx, preview, why).await
}

#[allow(clippy::too_many_arguments)]
async fn for_project(
    tx: &mut sqlx::PgConnection,
    namespace_prefix: &str,
    secrets: Option<&crate::crypto::SecretBox>,
    project: Uuid,
    url: &str,
    pr: &PullRequest,
    handled: &mut Handled,
) -> sqlx::Result<String> {
    let slug = sqlx::query_scalar!("SELECT slug FROM projects WHERE id = $1", project)
        .fetch_one(&mut *tx)
        .await?;
    let n = pr.number;
    let env_name = environment_name(n);
    // One delivery at a time per pull request and project (GitHub sends opened and labeled at
    // once): the live preview's row is created or changed under this lock.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(1347568214, hashtext($1::uuid::text || '/' || $2::int::text))",
        project,
        n as i32
    )
    .execute(&mut *tx)
    .await?;
    let live = sqlx::query_as!(
        Live,
        "SELECT id, environment_id, state, head_sha, repository, services FROM previews
         WHERE project_id = $1 AND pr_number = $2 AND state <> 'deleted' FOR UPDATE",
        project,
        n as i32
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(l) = &live
        && l.repository != url
    {
        return Ok(format!(
            "{slug}: {env_name} previews pull request #{n} of {}, not of this repository",
            l.repository
        ));
    }
    let rows = sqlx::query!(
        r#"SELECT s.id, s.name, s.current_revision, sr.spec -> 'spec' -> 'previews' AS previews
           FROM services s JOIN spec_revisions sr ON sr.service_id = s.id AND sr.revision = s.current_revision
           WHERE s.project_id = $1 AND s.git_repository = $2 ORDER BY s.name"#,
        project,
        url
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut eligible = Vec::new();
    let mut not = Vec::new();
    for r in &rows {
        let spec: Option<Previews> = r
            .previews
            .clone()
            .and_then(|v| serde_json::from_value(v).ok());
        match eligibility(spec.as_ref(), &pr.labels) {
            Eligibility::Yes => eligible.push((
                r,
                spec.unwrap_or(Previews {
                    enabled: true,
                    label: None,
                    ttl_hours: None,
                    sleep_after_minutes: None,
                }),
            )),
            Eligibility::NotOptedIn => not.push(format!("{} does not enable previews", r.name)),
            Eligibility::Unlabelled { label } => not.push(format!(
                "{} previews only pull requests labelled `{label}`",
                r.name
            )),
        }
    }
    let alive = live
        .as_ref()
        .filter(|l| matches!(l.state.as_str(), "awake" | "sleeping"));

    if pr.action == "closed" {
        let Some(l) = alive else {
            return Ok(format!(
                "{slug}: pull request #{n} has no preview to delete"
            ));
        };
        let how = if pr.merged {
            "merged"
        } else {
            "closed without merging"
        };
        let why = format!("pull request #{n} {how}: deleting the preview");
        mark_deleting(tx, l.id, l.environment_id, &why).await?;
        handled.deleting.push(l.id);
        return Ok(format!("{slug}: {why}"));
    }
    if pr.from_fork {
        return Ok(format!(
            "{slug}: pull request #{n} comes from a fork; previews build only branches of the repository itself (a fork's code would run with the project's build credentials and staging's variables)"
        ));
    }
    if eligible.is_empty() {
        if let Some(l) = alive {
            let why = format!(
                "no service previews pull request #{n} any more ({}): deleting the preview",
                not.join(", ")
            );
            mark_deleting(tx, l.id, l.environment_id, &why).await?;
            handled.deleting.push(l.id);
            return Ok(format!("{slug}: {why}"));
        }
        let why = if rows.is_empty() {
            format!("no service of {slug} builds {url}")
        } else {
            not.join(", ")
        };
        return Ok(format!("{slug}: no preview for pull request #{n}: {why}"));
    }
    if live.as_ref().is_some_and(|l| l.state == "deleting") {
        return Ok(format!(
            "{slug}: the previous preview of pull request #{n} is still being deleted; push again once it is gone"
        ));
    }
    let ttl = eligible.iter().filter_map(|(_, p)| p.ttl_hours).min();
    let sleep = eligible
        .iter()
        .filter_map(|(_, p)| p.sleep_after_minutes)
        .min();
    let names: Vec<String> = eligible.iter().map(|(r, _)| r.name.clone()).collect();
    let (preview, environment, previous_services, created) = match alive {
        Some(l) => {
            let Some(environment) = l.environment_id else {
                // Its environment was removed under it: finish the preview; the next event of
                // the pull request makes a new one.
                let why = format!("pull request #{n}'s environment is gone: deleting the preview");
                mark_deleting(tx, l.id, None, &why).await?;
                handled.deleting.push(l.id);
                return Ok(format!("{slug}: {why}"));
            };
            (l.id, environment, l.services.clone(), false)
        }
        None => {
            let namespace = namespace_for(namespace_prefix, &slug, &env_name);
            if let Err(e) = validate_environment(&namespace, &env_name) {
                return Ok(format!("{slug}: no preview: {}", e.message()));
            }
            let env = sqlx::query_scalar!(
                "INSERT INTO environments (project_id, name, namespace) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING RETURNING id",
                project,
                env_name,
                namespace
            )
            .fetch_optional(&mut *tx)
            .await?;
            let Some(env) = env else {
                return Ok(format!(
                    "{slug}: an environment {env_name} (or namespace {namespace}) exists and is not a preview's; previews never take one over"
                ));
            };
            let id = sqlx::query_scalar!(
                "INSERT INTO previews (project_id, environment_id, environment, namespace, repository, pr_number, head_sha, head_ref, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'awake') RETURNING id",
                project,
                env,
                env_name,
                namespace,
                url,
                n as i32,
                pr.head_sha,
                pr.head_ref
            )
            .fetch_one(&mut *tx)
            .await?;
            (id, env, Vec::new(), true)
        }
    };
    // Variables: staging's, copied once per service (a preview's own overrides stay).
    let staging = sqlx::query_scalar!(
        "SELECT id FROM environments WHERE project_id = $1 AND name = 'staging'",
        project
    )
    .fetch_optional(&mut *tx)
    .await?;
    let mut copied = Vec::new();
    for (r, _) in &eligible {
        if previous_services.contains(&r.name) {
            continue;
        }
        let Some(staging) = staging else { continue };
        let c = crate::platform::env::copy_between(secrets, tx, r.id, staging, environment).await?;
        if c.copied > 0 || !c.left_out.is_empty() {
            let left = if c.left_out.is_empty() {
                String::new()
            } else {
                format!(" (left out: {})", c.left_out.join(", "))
            };
            copied.push(format!("{}: {} from staging{left}", r.name, c.copied));
        }
    }
    // What to build: everything on a new head (or a reopened pull request), else only services
    // the pull request newly previews (a label added).
    let new_head = live.as_ref().is_none_or(|l| l.head_sha != pr.head_sha)
        || matches!(pr.action.as_str(), "opened" | "reopened");
    let to_build: Vec<_> = eligible
        .iter()
        .filter(|(r, _)| new_head || created || !previous_services.contains(&r.name))
        .collect();
    let mut services = previous_services.clone();
    for name in &names {
        if !services.contains(name) {
            services.push(name.clone());
        }
    }
    sqlx::query!(
        "UPDATE previews SET head_sha = $2, head_ref = $3, services = $4, ttl_hours = $5, sleep_after_minutes = $6,
                state = CASE WHEN $7 THEN 'awake' ELSE state END,
                touched_at = CASE WHEN $7 THEN now() ELSE touched_at END,
                slept_at = CASE WHEN $7 THEN NULL ELSE slept_at END
         WHERE id = $1",
        preview,
        pr.head_sha,
        pr.head_ref,
        &services,
        ttl.map(|h| h as i32),
        sleep.map(|m| m as i32),
        !to_build.is_empty()
    )
    .execute(&mut *tx)
    .await?;
    let short = &pr.head_sha[..12];
    if to_build.is_empty() {
        return Ok(format!(
            "{slug}: {env_name} already previews {short} for {}",
            names.join(", ")
        ));
    }
    for (r, _) in &to_build {
        handled.builds.push(Start {
            service_id: r.id,
            environment_id: environment,
            spec_revision: r.current_revision,
            repository: url.to_owned(),
            git_ref: pr.head_sha.clone(),
        });
    }
    let built: Vec<&str> = to_build.iter().map(|(r, _)| r.name.as_str()).collect();
    let mut message = format!(
        "{} {short} ({}): building {}",
        if created {
            "created for"
        } else {
            "rebuilding at"
        },
        pr.action,
        built.join(", ")
    );
    if created {
        message.push_str(&if copied.is_empty() {
            "; no variables copied (staging has none for these services)".to_owned()
        } else {
            format!("; variables copied: {}", copied.join(", "))
        });
    }
    event(&mut *tx, preview, &message).await?;
    Ok(format!("{slug}: {env_name} {message}"))
}

/// Deletes the previews a delivery marked, right away, on this replica (when it is connected to
/// a cluster): the scan would otherwise do it within `previews.scan_secs`.
pub(crate) fn delete_soon(engine: &Engine, previews: Vec<i64>) {
    if previews.is_empty() || engine.kube.get().is_none() {
        return;
    }
    let engine = engine.clone();
    tokio::spawn(async move {
        for id in previews {
            if let Err(e) = finish_deleting(&engine, id).await {
                tracing::warn!(preview = id, error = %e, "deleting a preview failed; the scan retries");
            }
        }
    });
}

/// Why the cluster part of an action on a preview failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the cluster refused: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("this server is not connected to a cluster")]
    NotConnected,
    /// A deployment of the preview is still being driven: deleting now would let its driver
    /// recreate what was deleted. It was asked to stop; the next scan deletes.
    #[error("a deployment of the preview is still in progress; deleting once it has stopped")]
    Busy,
}

/// Takes the preview for this replica if it is in `state` and no other replica holds it.
async fn claim(engine: &Engine, preview: i64, state: PreviewState) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE previews SET busy_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND state = $2 AND (busy_until IS NULL OR busy_until < now())",
        preview,
        state.as_str(),
        BUSY_SECS
    )
    .execute(&engine.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

struct Target {
    project_id: Uuid,
    slug: String,
    environment_id: Option<Uuid>,
    environment: String,
    namespace: String,
}

async fn target(engine: &Engine, preview: i64) -> sqlx::Result<Target> {
    sqlx::query_as!(
        Target,
        "SELECT p.project_id, pr.slug, p.environment_id, p.environment, p.namespace
         FROM previews p JOIN projects pr ON pr.id = p.project_id WHERE p.id = $1",
        preview
    )
    .fetch_one(&engine.pool)
    .await
}

/// Deletes what a `deleting` preview created: its running build Jobs, its namespace (only when
/// it is this project's), its environment row (its deployments, builds, variables and domains go
/// with it), and says so in an event. Returns false when another replica holds it.
#[tracing::instrument(skip(engine))]
pub async fn finish_deleting(engine: &Engine, preview: i64) -> Result<bool, ClusterError> {
    if !claim(engine, preview, PreviewState::Deleting).await? {
        return Ok(false);
    }
    match delete_claimed(engine, preview).await {
        Ok(()) => Ok(true),
        Err(e) => {
            // Let the next scan (on any replica) try again at once rather than after the hold.
            sqlx::query!(
                "UPDATE previews SET busy_until = NULL WHERE id = $1",
                preview
            )
            .execute(&engine.pool)
            .await?;
            Err(e)
        }
    }
}

async fn delete_claimed(engine: &Engine, preview: i64) -> Result<(), ClusterError> {
    let t = target(engine, preview).await?;
    let client = engine
        .cluster(&t.environment)
        .map_err(|_| ClusterError::NotConnected)?;
    let background = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let mut said = Vec::new();
    if let Some(env) = t.environment_id {
        let driven = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM deployments WHERE environment_id = $1 AND state = 'in_progress') AS "driven!""#,
            env
        )
        .fetch_one(&engine.pool)
        .await?;
        if driven {
            return Err(ClusterError::Busy);
        }
        // Builds still running: their Jobs go now (their rows go with the environment).
        let jobs = sqlx::query_scalar!(
            r#"SELECT job_name AS "job_name!" FROM builds WHERE environment_id = $1 AND state = 'running' AND job_name IS NOT NULL"#,
            env
        )
        .fetch_all(&engine.pool)
        .await?;
        let api: Api<Job> = Api::namespaced(
            client.clone(),
            &crate::pipeline::job::build_namespace(&engine.settings.pipeline, &t.slug),
        );
        for job in &jobs {
            match api.delete(job, &background).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !jobs.is_empty() {
            said.push(format!("{} running build(s) stopped", jobs.len()));
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get_opt(&t.namespace).await? {
        Some(ns) => {
            match crate::deploy::tenancy::ownership(
                &t.namespace,
                ns.metadata.labels.as_ref(),
                t.project_id,
            ) {
                Ok(()) => {
                    match namespaces.delete(&t.namespace, &background).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => return Err(e.into()),
                    }
                    said.push(format!("namespace {} deleted", t.namespace));
                }
                Err(refusal) => said.push(format!("{refusal}; left alone")),
            }
        }
        None => said.push(format!("namespace {} was already gone", t.namespace)),
    }
    let mut tx = engine.pool.begin().await?;
    if let Some(env) = t.environment_id {
        let stopped: i64 = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM deployments WHERE environment_id = $1"#,
            env
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM environments WHERE id = $1", env)
            .execute(&mut *tx)
            .await?;
        said.push(format!(
            "environment {} and its {stopped} deployment(s) removed, hostnames released",
            t.environment
        ));
    }
    sqlx::query!(
        "UPDATE previews SET state = 'deleted', deleted_at = now(), environment_id = NULL, busy_until = NULL WHERE id = $1",
        preview
    )
    .execute(&mut *tx)
    .await?;
    event(&mut *tx, preview, &format!("deleted: {}", said.join("; "))).await?;
    tx.commit().await?;
    metrics::counter!("enclii_previews_deleted_total").increment(1);
    tracing::info!(preview, namespace = %t.namespace, "preview deleted");
    Ok(())
}

/// Sets every Deployment of the preview's namespace (Enclii's) to `replicas`.
#[tracing::instrument(skip(client))]
async fn scale(
    client: &kube::Client,
    namespace: &str,
    replicas: u32,
) -> Result<usize, kube::Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let managed = format!(
        "{}={}",
        enclii_spec::render::MANAGED_BY.0,
        enclii_spec::render::MANAGED_BY.1
    );
    let list = api.list(&ListParams::default().labels(&managed)).await?;
    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let mut n = 0;
    for d in list.items {
        let Some(name) = d.metadata.name else {
            continue;
        };
        api.patch(&name, &params, &Patch::Merge(&patch)).await?;
        n += 1;
    }
    Ok(n)
}

/// Scales an awake preview to zero.
#[tracing::instrument(skip(engine, verdict))]
async fn put_to_sleep(
    engine: &Engine,
    preview: i64,
    verdict: &idle::Verdict,
) -> Result<bool, ClusterError> {
    if !claim(engine, preview, PreviewState::Awake).await? {
        return Ok(false);
    }
    let t = target(engine, preview).await?;
    let client = engine
        .cluster(&t.environment)
        .map_err(|_| ClusterError::NotConnected)?;
    let result = scale(&client, &t.namespace, 0).await;
    let mut tx = engine.pool.begin().await?;
    match result {
        Ok(n) => {
            sqlx::query!(
                "UPDATE previews SET state = 'sleeping', slept_at = now(), busy_until = NULL WHERE id = $1",
                preview
            )
            .execute(&mut *tx)
            .await?;
            event(&mut *tx, preview, &format!("{verdict} ({n} Deployment(s))")).await?;
            tx.commit().await?;
            metrics::counter!("enclii_previews_slept_total").increment(1);
            Ok(true)
        }
        Err(e) => {
            sqlx::query!(
                "UPDATE previews SET busy_until = NULL WHERE id = $1",
                preview
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Err(e.into())
        }
    }
}

/// Every replica's scan: each `previews.scan_secs`.
pub async fn watch(engine: Engine) {
    let every = Duration::from_secs(engine.settings.previews.scan_secs.max(1));
    let mut stopping = engine.stopping.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.changed() => return,
        }
        if engine.pool.is_closed() || *stopping.borrow() {
            return;
        }
        if let Err(e) = scan(&engine, Utc::now()).await {
            tracing::warn!(error = %e, "the preview scan failed; trying again later");
        }
    }
}

/// What one scan did.
#[derive(Debug, Default, PartialEq)]
pub struct Scanned {
    pub slept: usize,
    pub deleted: usize,
}

/// One pass: every live preview judged at `now` (tests pass a later one instead of waiting).
#[tracing::instrument(skip(engine))]
pub async fn scan(engine: &Engine, now: DateTime<Utc>) -> Result<Scanned, ClusterError> {
    let rows = sqlx::query!(
        "SELECT id, state, namespace, touched_at, ttl_hours, sleep_after_minutes FROM previews
         WHERE state <> 'deleted' AND (busy_until IS NULL OR busy_until < now()) ORDER BY id"
    )
    .fetch_all(&engine.pool)
    .await?;
    let mut out = Scanned::default();
    for r in rows {
        let Some(state) = PreviewState::parse(&r.state) else {
            continue;
        };
        let mut facts = idle::Facts {
            state,
            now,
            touched_at: r.touched_at,
            ttl_hours: r.ttl_hours,
            sleep_after_minutes: r.sleep_after_minutes,
            traffic: None,
        };
        let mut verdict = idle::decide(&facts);
        if let idle::Verdict::Measure { window_minutes } = verdict {
            facts.traffic = Some(traffic(engine, &r.namespace, window_minutes).await);
            verdict = idle::decide(&facts);
        }
        let acted = match &verdict {
            idle::Verdict::Keep | idle::Verdict::Measure { .. } => continue,
            idle::Verdict::Sleep { .. } => {
                let slept = put_to_sleep(engine, r.id, &verdict).await;
                slept.map(|done| {
                    out.slept += usize::from(done);
                })
            }
            idle::Verdict::Delete(cause) => {
                if matches!(cause, idle::Cause::Expired { .. }) {
                    let mut tx = engine.pool.begin().await?;
                    let environment = sqlx::query_scalar!(
                        "SELECT environment_id FROM previews WHERE id = $1 AND state = $2 FOR UPDATE",
                        r.id,
                        state.as_str()
                    )
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(environment) = environment else {
                        continue;
                    };
                    mark_deleting(&mut tx, r.id, environment, &verdict.to_string()).await?;
                    tx.commit().await?;
                }
                finish_deleting(engine, r.id).await.map(|done| {
                    out.deleted += usize::from(done);
                })
            }
        };
        if let Err(e) = acted {
            tracing::warn!(preview = r.id, error = %e, "acting on a preview failed; the next scan retries");
        }
    }
    Ok(out)
}

/// Requests to a preview's namespace over the last `minutes`.
async fn traffic(engine: &Engine, namespace: &str, minutes: i32) -> idle::Traffic {
    let Some(prometheus) = engine.prometheus.get() else {
        return idle::Traffic::Unmonitored;
    };
    let query = engine
        .settings
        .previews
        .request_count_query
        .replace("{namespace}", namespace)
        .replace("{window}", &format!("{minutes}m"));
    match prometheus.instant(&query).await {
        Ok(v) => idle::Traffic::Requests(v.unwrap_or(0.0)),
        Err(e) => {
            tracing::warn!(namespace, error = %e, "cannot read a preview's requests; it stays awake");
            idle::Traffic::Unreadable
        }
    }
}

async fn live_id(
    engine: &Engine,
    project: &crate::platform::ProjectRef,
    number: u32,
) -> crate::Result<(i64, PreviewState)> {
    let row = sqlx::query!(
        "SELECT id, state FROM previews WHERE project_id = $1 AND pr_number = $2 AND state <> 'deleted'",
        project.id,
        number.min(i32::MAX as u32) as i32
    )
    .fetch_optional(&engine.pool)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "project `{}` has no preview of pull request #{number}",
            project.slug
        ))
    })?;
    Ok((
        row.id,
        PreviewState::parse(&row.state).unwrap_or(PreviewState::Deleting),
    ))
}

fn cluster_failure(e: ClusterError) -> crate::Error {
    match e {
        ClusterError::Db(e) => e.into(),
        ClusterError::NotConnected => ApiError::Unavailable {
            message: "this server is not connected to a cluster".into(),
        }
        .into(),
        ClusterError::Busy => ApiError::conflict(
            "a deployment of the preview is still in progress: it was asked to stop, and the preview is deleted once it has",
        )
        .into(),
        ClusterError::Kube(e) => {
            tracing::warn!(error = %e, "the cluster refused a preview action");
            ApiError::Unavailable {
                message: "the cluster did not carry it out; try again".into(),
            }
            .into()
        }
    }
}

/// Wakes a sleeping preview (developer): its Deployments back to one replica, its idle and TTL
/// clocks restarted.
#[tracing::instrument(skip(engine, caller))]
pub async fn wake(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    number: u32,
) -> crate::Result<Preview> {
    let project = project_access(&engine.pool, caller, project, Action::Deploy).await?;
    let (id, state) = live_id(engine, &project, number).await?;
    match state {
        PreviewState::Sleeping => {}
        PreviewState::Awake => return get(engine, &project, id).await,
        _ => {
            return Err(ApiError::conflict(format!(
                "the preview of pull request #{number} is being deleted"
            ))
            .into());
        }
    }
    if !claim(engine, id, PreviewState::Sleeping).await? {
        return Err(ApiError::conflict(
            "another replica is acting on this preview right now; try again in a moment",
        )
        .into());
    }
    let t = target(engine, id).await?;
    let client = engine.cluster(&t.environment)?;
    let scaled = scale(&client, &t.namespace, REPLICAS).await;
    let mut tx = engine.pool.begin().await?;
    match scaled {
        Ok(n) => {
            sqlx::query!(
                "UPDATE previews SET state = 'awake', touched_at = now(), slept_at = NULL, busy_until = NULL WHERE id = $1",
                id
            )
            .execute(&mut *tx)
            .await?;
            let who = caller.map(|c| c.display_name.as_str()).unwrap_or("someone");
            event(
                &mut *tx,
                id,
                &format!("woken by {who} ({n} Deployment(s) back to {REPLICAS} replica)"),
            )
            .await?;
            audit::record(
                &mut *tx,
                caller,
                audit::Event::new("preview.wake")
                    .target("preview", environment_name(number))
                    .project(project.id),
            )
            .await?;
            tx.commit().await?;
        }
        Err(e) => {
            sqlx::query!("UPDATE previews SET busy_until = NULL WHERE id = $1", id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Err(cluster_failure(e.into()));
        }
    }
    get(engine, &project, id).await
}

/// Deletes a preview now (developer), as closing its pull request would.
#[tracing::instrument(skip(engine, caller))]
pub async fn delete(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    number: u32,
) -> crate::Result<Preview> {
    let project = project_access(&engine.pool, caller, project, Action::Deploy).await?;
    let (id, _) = live_id(engine, &project, number).await?;
    let mut tx = engine.pool.begin().await?;
    let environment = sqlx::query_scalar!(
        "SELECT environment_id FROM previews WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    let who = caller.map(|c| c.display_name.as_str()).unwrap_or("someone");
    mark_deleting(&mut tx, id, environment, &format!("deleted by {who}")).await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("preview.delete")
            .target("preview", environment_name(number))
            .project(project.id),
    )
    .await?;
    tx.commit().await?;
    if engine.kube.get().is_some()
        && let Err(e) = finish_deleting(engine, id).await
    {
        tracing::warn!(preview = id, error = %e, "deleting a preview failed; the scan retries");
    }
    get(engine, &project, id).await
}

/// A project's previews, newest first (viewer): live ones and the last deleted ones.
pub async fn list(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
) -> crate::Result<Vec<Preview>> {
    let project = project_access(&engine.pool, caller, project, Action::ViewProject).await?;
    let ids = sqlx::query_scalar!(
        "SELECT id FROM previews WHERE project_id = $1 ORDER BY (state = 'deleted'), id DESC LIMIT 50",
        project.id
    )
    .fetch_all(&engine.pool)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(get(engine, &project, id).await?);
    }
    Ok(out)
}

async fn get(
    engine: &Engine,
    project: &crate::platform::ProjectRef,
    id: i64,
) -> crate::Result<Preview> {
    let r = sqlx::query!(
        "SELECT pr_number, environment, environment_id, namespace, repository, head_sha, head_ref, state, services,
                created_at, touched_at, ttl_hours, sleep_after_minutes
         FROM previews WHERE id = $1 AND project_id = $2",
        id,
        project.id
    )
    .fetch_one(&engine.pool)
    .await?;
    let events = sqlx::query!(
        "SELECT at, message FROM preview_events WHERE preview_id = $1 ORDER BY id DESC LIMIT 20",
        id
    )
    .fetch_all(&engine.pool)
    .await?;
    let deployments = sqlx::query!(
        r#"SELECT DISTINCT ON (s.name) s.name, d.id, d.state FROM deployments d JOIN services s ON s.id = d.service_id
           WHERE d.environment_id = $1 ORDER BY s.name, d.id DESC"#,
        r.environment_id
    )
    .fetch_all(&engine.pool)
    .await?;
    let state = PreviewState::parse(&r.state).unwrap_or(PreviewState::Deleting);
    let suffix = engine.settings.domains.generated_suffix.as_deref();
    let services = r
        .services
        .iter()
        .map(|name| {
            let d = deployments.iter().find(|d| &d.name == name);
            PreviewService {
                name: name.clone(),
                url: suffix.filter(|_| state != PreviewState::Deleted).map(|s| {
                    format!(
                        "https://{}",
                        crate::platform::domains::generated_hostname(name, &r.namespace, s)
                    )
                }),
                deployment_id: d.map(|d| d.id),
                deployment_state: d.map(|d| d.state.clone()),
            }
        })
        .collect();
    Ok(Preview {
        pr_number: r.pr_number,
        environment: r.environment,
        repository: r.repository,
        head_sha: r.head_sha,
        head_ref: r.head_ref,
        state,
        services,
        created_at: r.created_at,
        touched_at: r.touched_at,
        ttl_hours: r.ttl_hours,
        sleep_after_minutes: r.sleep_after_minutes,
        last_event: events
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_default(),
        events: events
            .into_iter()
            .map(|e| PreviewEvent {
                at: e.at,
                message: e.message,
            })
            .collect(),
    })
}

/// Whether an environment is a live preview's, and so deploys as one (one replica, no autoscaler,
/// only the platform's hostname, one step).
pub(crate) async fn is_preview(
    db: impl sqlx::PgExecutor<'_>,
    environment: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM previews WHERE environment_id = $1) AS "x!""#,
        environment
    )
    .fetch_one(db)
    .await
}

/// The spec of a release as a preview deploys it: one replica, no autoscaler, and only the
/// platform's own hostname for it (none when the platform has no `domains.generated_suffix`):
/// the spec's domains are production's, and a pull request must never route them. Scheduled jobs
/// are left out: with staging's variables, a preview's copy would run staging's work a second
/// time (its release command still runs: the pull request's code may need it to start).
pub fn as_preview(spec: &mut enclii_spec::model::Spec, generated: Option<&str>) {
    spec.runtime.replicas = REPLICAS;
    spec.autoscaling = None;
    spec.jobs.clear();
    spec.domains = generated
        .map(|h| {
            vec![enclii_spec::model::Domain {
                domain: h.to_owned(),
                tls: true,
                tls_issuer: None,
            }]
        })
        .unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn previews(label: Option<&str>, enabled: bool) -> Previews {
        Previews {
            enabled,
            label: label.map(str::to_owned),
            ttl_hours: None,
            sleep_after_minutes: None,
        }
    }

    #[test]
    fn a_service_previews_only_when_it_opts_in_and_the_label_is_there() {
        let labels = vec!["bug".to_owned(), "preview".to_owned()];
        assert_eq!(eligibility(None, &labels), Eligibility::NotOptedIn);
        assert_eq!(
            eligibility(Some(&previews(None, false)), &labels),
            Eligibility::NotOptedIn
        );
        assert_eq!(
            eligibility(Some(&previews(None, true)), &[]),
            Eligibility::Yes
        );
        assert_eq!(
            eligibility(Some(&previews(Some("preview"), true)), &labels),
            Eligibility::Yes
        );
        assert_eq!(
            eligibility(Some(&previews(Some("deploy-me"), true)), &labels),
            Eligibility::Unlabelled {
                label: "deploy-me".into()
            }
        );
        // Labels match exactly, as GitHub names them.
        assert_eq!(
            eligibility(Some(&previews(Some("Preview"), true)), &labels),
            Eligibility::Unlabelled {
                label: "Preview".into()
            }
        );
    }

    #[test]
    fn preview_environments_are_short_and_reserved() {
        assert_eq!(environment_name(7), "pr-7");
        assert_eq!(environment_name(MAX_PR).len(), 11);
        assert!(is_preview_name("pr-12"));
        for not in ["pr-", "pr-1a", "production", "pr12", "pr--1"] {
            assert!(!is_preview_name(not), "{not}");
        }
        // The longest project and pull request number still make a namespace Kubernetes takes.
        let ns = namespace_for("", &"a".repeat(40), &environment_name(MAX_PR));
        assert!(validate_environment(&ns, &environment_name(MAX_PR)).is_ok());
    }

    #[test]
    fn a_preview_routes_only_the_platforms_hostname_with_one_replica() {
        let mut file = enclii_spec::parse(
            "apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  build:\n    type: dockerfile\n  runtime:\n    port: 8080\n    replicas: 3\n  domains:\n    - domain: app.example.com\n  autoscaling:\n    enabled: true\n    minReplicas: 3\n    maxReplicas: 9\n    targetCPUUtilizationPercentage: 70\n  jobs:\n    - name: nightly\n      schedule: \"@daily\"\n      command: [./report]\n",
        )
        .unwrap();
        as_preview(
            &mut file.service.spec,
            Some("web.shop--pr-4.preview.example.net"),
        );
        let spec = &file.service.spec;
        assert_eq!(spec.runtime.replicas, 1);
        assert!(spec.autoscaling.is_none());
        assert!(spec.jobs.is_empty(), "no scheduled jobs in a preview");
        let hosts: Vec<&str> = spec.domains.iter().map(|d| d.domain.as_str()).collect();
        assert_eq!(hosts, ["web.shop--pr-4.preview.example.net"]);
        as_preview(&mut file.service.spec, None);
        assert!(file.service.spec.domains.is_empty());
    }
}
