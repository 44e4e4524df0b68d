//! A service's jobs beside its pods: one-off runs of a command from the running release
//! (`enclii run`; table `job_runs`), and the visibility of its scheduled jobs (the CronJobs its
//! releases render): last run, next run, and whether one needs attention (its last run failed, or
//! no run succeeded within two of its intervals), each such finding recorded once in `job_events`
//! for notifications to send.

use chrono::{DateTime, Utc};
use enclii_api::{ApiError, JobRun, RunSummary, ScheduledJobStatus};
use enclii_spec::cron::{Minute, Schedule};
use enclii_spec::render::{self, LABEL_JOB, LABEL_SERVICE, Target};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use super::{locate, project_access};
use crate::auth::{Action, Caller};
use crate::deploy::task;
use crate::{Engine, audit};

/// A one-off run may take this long before the cluster stops it.
pub const RUN_TIMEOUT_SECS: u32 = 3600;
const MAX_ARGS: usize = 64;
const MAX_ARG_BYTES: usize = 4096;

/// The release a service runs in an environment: its newest succeeded deployment.
struct Running {
    deployment: i64,
    service_id: uuid::Uuid,
    environment_id: uuid::Uuid,
    namespace: String,
    image: String,
    release: String,
    file: enclii_spec::SpecFile,
    finished_at: Option<DateTime<Utc>>,
}

async fn running(
    engine: &Engine,
    project: &super::ProjectRef,
    service: &str,
    environment: &str,
) -> crate::Result<Option<Running>> {
    let placement = locate(&engine.pool, project, service, environment).await?;
    let row = sqlx::query!(
        r#"SELECT d.id, d.finished_at, r.id AS release_id, r.image_ref, r.image_digest, sr.source
           FROM deployments d JOIN releases r ON r.id = d.release_id
                JOIN spec_revisions sr ON sr.service_id = r.service_id AND sr.revision = r.spec_revision
           WHERE d.service_id = $1 AND d.environment_id = $2 AND d.state = 'succeeded'
           ORDER BY d.finished_at DESC NULLS LAST, d.id DESC LIMIT 1"#,
        placement.service_id,
        placement.environment_id
    )
    .fetch_optional(&engine.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let file = enclii_spec::parse(&row.source).map_err(|_| {
        ApiError::invalid("the running release's spec no longer parses; deploy a new release")
    })?;
    Ok(Some(Running {
        deployment: row.id,
        service_id: placement.service_id,
        environment_id: placement.environment_id,
        namespace: placement.namespace,
        image: crate::deploy::worker::pinned_image(&row.image_ref, row.image_digest.as_deref()),
        release: row.release_id.to_string(),
        file,
        finished_at: row.finished_at,
    }))
}

fn target<'a>(
    project: &'a str,
    environment: &'a str,
    running: &'a Running,
    engine: &Engine,
) -> Target<'a> {
    Target {
        project,
        environment,
        namespace: &running.namespace,
        image: &running.image,
        release: &running.release,
        gateway: None,
        progress_deadline_secs: engine.settings.cluster.progress_deadline_secs,
    }
}

/// Starts `command` as a Job from the service's running release, with the variables and secrets
/// that release runs with. Needs the developer role (as deploying does: the command runs with the
/// service's secrets); audited with the command.
pub async fn start_run(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: &str,
    command: &[String],
) -> crate::Result<RunSummary> {
    let project = project_access(&engine.pool, caller, project, Action::Deploy).await?;
    if command.is_empty() || command[0].trim().is_empty() {
        return Err(
            ApiError::invalid("give the command to run: `enclii run … -- CMD ARGS…`").into(),
        );
    }
    if command.len() > MAX_ARGS || command.iter().any(|a| a.len() > MAX_ARG_BYTES) {
        return Err(ApiError::invalid(format!(
            "a command has at most {MAX_ARGS} arguments of at most {MAX_ARG_BYTES} bytes each"
        ))
        .into());
    }
    let client = engine.cluster(environment)?;
    let Some(running) = running(engine, &project, service, environment).await? else {
        return Err(ApiError::invalid(format!(
            "`{service}` runs no release in `{environment}` yet: deploy it first"
        ))
        .into());
    };
    let env = crate::platform::env::for_pods(
        engine,
        running.deployment,
        running.service_id,
        running.environment_id,
    )
    .await
    .map_err(|message| ApiError::Unavailable { message })?;
    let who = caller.map(|c| c.user_id);
    let mut tx = engine.pool.begin().await?;
    let row = sqlx::query!(
        r#"INSERT INTO job_runs (service_id, environment_id, deployment_id, command, job_name, state, created_by)
           VALUES ($1, $2, $3, $4, '', 'running', $5) RETURNING id, created_at"#,
        running.service_id,
        running.environment_id,
        running.deployment,
        json!(command),
        who
    )
    .fetch_one(&mut *tx)
    .await?;
    let t = target(&project.slug, environment, &running, engine);
    let manifest = render::run_job(
        &running.file,
        &t,
        &row.id.to_string(),
        command,
        RUN_TIMEOUT_SECS,
    );
    let job = manifest.name.clone();
    sqlx::query!(
        "UPDATE job_runs SET job_name = $2 WHERE id = $1",
        row.id,
        job
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("job.run")
            .target("service", service)
            .project(project.id)
            .details(json!({ "environment": environment, "command": command, "run": row.id, "deployment": running.deployment })),
    )
    .await?;
    tx.commit().await?;
    let mut manifests = vec![manifest];
    crate::deploy::env::inject(&mut manifests, service, &env);
    let state = match task::start(&client, &running.namespace, &manifests).await {
        Ok(()) => "running",
        Err(e) => {
            tracing::warn!(run = row.id, error = %e, "a one-off run could not start");
            sqlx::query!(
                "UPDATE job_runs SET state = 'failed', finished_at = now() WHERE id = $1",
                row.id
            )
            .execute(&engine.pool)
            .await?;
            return Err(ApiError::Unavailable {
                message: format!("the cluster did not start the run: {e}"),
            }
            .into());
        }
    };
    Ok(RunSummary {
        id: row.id,
        project: project.slug,
        service: service.to_owned(),
        environment: environment.to_owned(),
        command: command.to_vec(),
        job,
        state: state.to_owned(),
        exit_code: None,
        created_at: row.created_at,
        finished_at: None,
    })
}

struct RunRow {
    id: i64,
    service: String,
    environment: String,
    namespace: String,
    command: serde_json::Value,
    job_name: String,
    state: String,
    exit_code: Option<i32>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

async fn run_row(engine: &Engine, project: &super::ProjectRef, id: i64) -> crate::Result<RunRow> {
    let row = sqlx::query_as!(
        RunRow,
        r#"SELECT j.id, s.name AS service, e.name AS environment, e.namespace, j.command, j.job_name,
                  j.state, j.exit_code, j.created_at, j.finished_at
           FROM job_runs j JOIN services s ON s.id = j.service_id JOIN environments e ON e.id = j.environment_id
           WHERE j.id = $1 AND s.project_id = $2"#,
        id,
        project.id
    )
    .fetch_optional(&engine.pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("project `{}` has no run {id}", project.slug)))?;
    Ok(row)
}

/// A run and, while it runs, its state as the cluster has it now (recorded once it ended).
pub async fn get_run(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    id: i64,
) -> crate::Result<RunSummary> {
    let project = project_access(&engine.pool, caller, project, Action::ViewProject).await?;
    let mut row = run_row(engine, &project, id).await?;
    if row.state == "running" {
        let client = engine.cluster(&row.environment)?;
        if let Some(outcome) = task::ended(&client, &row.namespace, &row.job_name).await {
            let state = match &outcome {
                task::Outcome::Succeeded { .. } => "succeeded",
                task::Outcome::Failed { .. } => "failed",
                task::Outcome::TimedOut { .. } => "timed_out",
            };
            let done = sqlx::query!(
                "UPDATE job_runs SET state = $2, exit_code = $3, finished_at = now() WHERE id = $1 AND state = 'running' RETURNING finished_at",
                id,
                state,
                outcome.exit_code()
            )
            .fetch_optional(&engine.pool)
            .await?;
            row.state = state.to_owned();
            row.exit_code = Some(outcome.exit_code());
            row.finished_at = done.and_then(|d| d.finished_at).or(Some(Utc::now()));
        }
    }
    Ok(RunSummary {
        id: row.id,
        project: project.slug,
        service: row.service,
        environment: row.environment,
        command: serde_json::from_value(row.command).unwrap_or_default(),
        job: row.job_name,
        state: row.state,
        exit_code: row.exit_code,
        created_at: row.created_at,
        finished_at: row.finished_at,
    })
}

/// The log of a run, for a caller allowed to view its project; with `follow`, until it ends.
/// Waits (briefly) for the run's pod to start: a run just created has none yet.
pub async fn run_logs(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    id: i64,
    follow: bool,
) -> crate::Result<impl futures::Stream<Item = String> + Send + 'static + use<>> {
    use futures::StreamExt;
    let project = project_access(&engine.pool, caller, project, Action::ViewProject).await?;
    let row = run_row(engine, &project, id).await?;
    let client = engine.cluster(&row.environment)?;
    let mut pod = None;
    for _ in 0..120 {
        pod = task::pod(&client, &row.namespace, &row.job_name)
            .await
            .filter(started);
        if pod.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let pod = pod.ok_or_else(|| ApiError::Unavailable {
        message: format!(
            "run {id} has not started within 30s (its Job is {})",
            row.job_name
        ),
    })?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, &row.namespace);
    let params = kube::api::LogParams {
        follow,
        ..Default::default()
    };
    let reader = pods
        .log_stream(pod.metadata.name.as_deref().unwrap_or_default(), &params)
        .await
        .map_err(|e| ApiError::Unavailable {
            message: format!("cannot read the run's log: {e}"),
        })?;
    // Bounded like the services' logs: a line without end costs neither memory nor the stream.
    let max = crate::deploy::logs::MAX_LINE_BYTES - 1;
    Ok(crate::deploy::logs::bounded_lines(reader, max)
        .map(|l| format!("{l}\n"))
        .boxed())
}

/// Whether the pod's container has started (running or ended): its log can be read.
fn started(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
}

/// What a scheduled job's runs say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub last_failed: bool,
    /// The scheduled minute by which a successful run was due and none came.
    pub missed_since: Option<Minute>,
}

/// Judges a scheduled job (pure). `since` is when the job was first deployed, `last_success`
/// when a run last succeeded, `last_failed` whether the newest finished run failed, `now` the
/// time, all in minutes of the schedule's wall clock. A schedule is missed when, after the later
/// of `since` and `last_success`, two scheduled times have gone by without a successful run (one
/// late run is the cluster being busy; two is the job not running). `slack` widens that for a
/// schedule whose zone the engine cannot convert to (its offset is unknown here, at most 14 h).
pub fn assess(
    schedule: &Schedule,
    since: Minute,
    last_success: Option<Minute>,
    last_failed: bool,
    now: Minute,
    slack: i64,
) -> Health {
    let base = last_success.map_or(since, |s| s.max(since));
    let missed_since = schedule
        .next_after(base)
        .and_then(|first| schedule.next_after(first))
        .filter(|second| second + slack < now);
    Health {
        last_failed,
        missed_since,
    }
}

fn minute(t: DateTime<Utc>) -> Minute {
    t.timestamp().div_euclid(60)
}

/// A schedule's wall clock: its time zone's (`None` in the spec is UTC). A zone this server's
/// time zone data does not know (the API server accepted it, so it is newer) is read as UTC, and
/// its judgement waits out the largest offset there is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Clock {
    Zone(chrono_tz::Tz),
    Unknown,
}

impl Clock {
    fn of(tz: Option<&str>) -> Self {
        match tz {
            None => Clock::Zone(chrono_tz::UTC),
            Some(name) => name.parse().map(Clock::Zone).unwrap_or(Clock::Unknown),
        }
    }

    fn known(self) -> bool {
        matches!(self, Clock::Zone(_))
    }

    /// `t` as minutes of this clock's wall time.
    fn wall(self, t: DateTime<Utc>) -> Minute {
        match self {
            Clock::Zone(tz) => t
                .with_timezone(&tz)
                .naive_local()
                .and_utc()
                .timestamp()
                .div_euclid(60),
            Clock::Unknown => minute(t),
        }
    }

    fn slack(self) -> i64 {
        if self.known() { 0 } else { 14 * 60 }
    }
}

/// Writes a wall-clock minute as `YYYY-MM-DD HH:MM`.
fn wall(m: Minute) -> String {
    let (y, mo, d) = enclii_spec::cron::civil_from_days(m.div_euclid(1440));
    let in_day = m.rem_euclid(1440);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}",
        in_day / 60,
        in_day % 60
    )
}

/// Every scheduled job of `service` in each environment where it runs (or only `environment`),
/// with its last and next run; failed runs and missed schedules are recorded in `job_events`.
pub async fn list(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: Option<&str>,
) -> crate::Result<Vec<ScheduledJobStatus>> {
    let project = project_access(&engine.pool, caller, project, Action::ViewProject).await?;
    let environments: Vec<String> = match environment {
        Some(e) => vec![e.to_owned()],
        None => {
            sqlx::query_scalar!(
                "SELECT name FROM environments WHERE project_id = $1 ORDER BY name",
                project.id
            )
            .fetch_all(&engine.pool)
            .await?
        }
    };
    let mut out = Vec::new();
    for env in environments {
        out.extend(statuses(engine, &project, service, &env).await?);
    }
    Ok(out)
}

/// The scheduled jobs of the release `service` runs in `env`, judged, their findings recorded.
async fn statuses(
    engine: &Engine,
    project: &super::ProjectRef,
    service: &str,
    env: &str,
) -> crate::Result<Vec<ScheduledJobStatus>> {
    // Previews run no scheduled jobs (`previews::as_preview`): nothing to judge or report missed.
    if crate::previews::is_preview_name(env) {
        return Ok(Vec::new());
    }
    let Some(running) = running(engine, project, service, env).await? else {
        return Ok(Vec::new());
    };
    if running.file.service.spec.jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let client = engine.cluster(env)?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &running.namespace);
    let listed = jobs
        .list(&ListParams::default().labels(&format!("{LABEL_SERVICE}={service}")))
        .await
        .map_err(|e| ApiError::Unavailable {
            message: format!("cannot list the jobs of {service}: {e}"),
        })?;
    let now = Utc::now();
    for spec_job in &running.file.service.spec.jobs {
        let Ok(schedule) = Schedule::parse(&spec_job.schedule) else {
            continue;
        };
        let mut runs: Vec<&Job> = listed
            .items
            .iter()
            .filter(|j| {
                j.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_JOB))
                    .is_some_and(|n| *n == spec_job.name)
            })
            .collect();
        runs.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let since = first_deployed(engine, &running, &spec_job.name)
            .await?
            .unwrap_or(now);
        let last_success = runs
            .iter()
            .filter_map(|j| j.status.as_ref()?.completion_time.as_ref().map(|t| t.0))
            .max()
            .map(timestamp);
        // A frequent job usually has a run going when it is looked at: its last run, for the
        // verdict, is the newest that ended (the running one is shown only when none has).
        let newest_ended = runs.iter().rev().find(|j| ended_as(j).is_some());
        let last_run = match newest_ended.or(runs.last()) {
            Some(j) => Some(describe(&client, &running.namespace, j).await),
            None => None,
        };
        let last_failed = last_run.as_ref().is_some_and(|r| r.result == "failed");
        let clock = Clock::of(spec_job.timezone.as_deref());
        let health = assess(
            &schedule,
            clock.wall(since),
            last_success.map(|t| clock.wall(t)),
            last_failed,
            clock.wall(now),
            clock.slack(),
        );
        let zone = spec_job.timezone.clone().unwrap_or_else(|| "UTC".into());
        let next_run = clock
            .known()
            .then(|| schedule.next_after(clock.wall(now)))
            .flatten()
            .map(|m| format!("{} {zone}", wall(m)));
        let mut attention = Vec::new();
        if let Some(run) = last_run.as_ref().filter(|_| last_failed) {
            attention.push(format!("its last run ({}) failed", run.name));
            record_event(
                engine,
                &running,
                &spec_job.name,
                "failed",
                &run.name,
                &format!(
                    "run {} of `{}` failed: {}",
                    run.name,
                    spec_job.name,
                    run.log_tail.lines().last().unwrap_or_default()
                ),
            )
            .await?;
        }
        // Every other failed run the cluster still lists is recorded too (once each: the event's
        // key is the run), so a failure followed by a success before anyone looked is not lost.
        for j in runs.iter().filter(|j| ended_as(j) == Some(false)) {
            let name = j.metadata.name.clone().unwrap_or_default();
            if last_run.as_ref().is_some_and(|r| r.name == name) {
                continue;
            }
            record_event(
                engine,
                &running,
                &spec_job.name,
                "failed",
                &name,
                &format!("run {name} of `{}` failed", spec_job.name),
            )
            .await?;
        }
        if let Some(due) = health.missed_since {
            let text = format!(
                "no run succeeded within two intervals (a run was due by {} {zone})",
                wall(due)
            );
            record_event(
                engine,
                &running,
                &spec_job.name,
                "missed",
                &wall(due),
                &text,
            )
            .await?;
            attention.push(text);
        }
        out.push(ScheduledJobStatus {
            environment: env.to_owned(),
            name: spec_job.name.clone(),
            schedule: spec_job.schedule.clone(),
            timezone: zone,
            command: spec_job.command.clone(),
            last_run,
            next_run,
            last_failed,
            missed: health.missed_since.is_some(),
            attention: attention.join("; "),
        });
    }
    Ok(out)
}

/// How often [`watch`] judges every scheduled job.
pub const SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Judges the scheduled jobs of every service that runs some, on every replica that drives
/// deployments, so that a failed run or a missed schedule is recorded (for notifications) without
/// anyone looking. Two replicas recording the same finding is one row (`job_events` is unique by
/// run).
pub async fn watch(engine: Engine) {
    loop {
        tokio::time::sleep(SCAN_EVERY).await;
        if engine.pool.is_closed() {
            return;
        }
        if let Err(e) = scan(&engine).await {
            tracing::warn!(error = %e, "judging scheduled jobs failed; trying again later");
        }
    }
}

/// One pass of [`watch`]: returns how many jobs needing attention it saw.
pub async fn scan(engine: &Engine) -> crate::Result<usize> {
    let rows = sqlx::query!(
        r#"SELECT DISTINCT p.id AS project_id, p.slug, s.name AS service, e.name AS environment
           FROM deployments d JOIN services s ON s.id = d.service_id JOIN projects p ON p.id = s.project_id
                JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
                JOIN spec_revisions sr ON sr.service_id = r.service_id AND sr.revision = r.spec_revision
           WHERE d.state = 'succeeded' AND jsonb_array_length(COALESCE(sr.spec -> 'spec' -> 'jobs', '[]'::jsonb)) > 0"#
    )
    .fetch_all(&engine.pool)
    .await?;
    let mut attention = 0;
    for row in rows {
        let project = super::ProjectRef {
            id: row.project_id,
            slug: row.slug,
            role: None,
        };
        match statuses(engine, &project, &row.service, &row.environment).await {
            Ok(list) => attention += list.iter().filter(|j| !j.attention.is_empty()).count(),
            Err(e) => {
                tracing::warn!(service = %row.service, environment = %row.environment, error = %e, "could not judge the scheduled jobs")
            }
        }
    }
    Ok(attention)
}

fn timestamp(t: k8s_openapi::jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// When a succeeded deployment first ran a release whose spec has the job.
async fn first_deployed(
    engine: &Engine,
    running: &Running,
    job: &str,
) -> crate::Result<Option<DateTime<Utc>>> {
    let at = sqlx::query_scalar!(
        r#"SELECT min(d.finished_at) FROM deployments d JOIN releases r ON r.id = d.release_id
             JOIN spec_revisions sr ON sr.service_id = r.service_id AND sr.revision = r.spec_revision
           WHERE d.service_id = $1 AND d.environment_id = $2 AND d.state = 'succeeded'
             AND sr.spec -> 'spec' -> 'jobs' @> jsonb_build_array(jsonb_build_object('name', $3::text))"#,
        running.service_id,
        running.environment_id,
        job
    )
    .fetch_one(&engine.pool)
    .await?;
    Ok(at.or(running.finished_at))
}

/// How a Job ended: `Some(true)` complete, `Some(false)` failed, `None` still running.
fn ended_as(job: &Job) -> Option<bool> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let holds = |kind: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == kind && c.status == "True")
    };
    if holds("Complete") {
        Some(true)
    } else if holds("Failed") {
        Some(false)
    } else {
        None
    }
}

async fn describe(client: &kube::Client, namespace: &str, job: &Job) -> JobRun {
    let name = job.metadata.name.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let holds = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == kind && c.status == "True")
    };
    let result = if holds("Complete") {
        "succeeded"
    } else if holds("Failed") {
        "failed"
    } else {
        "running"
    };
    let started_at = status.start_time.as_ref().map(|t| timestamp(t.0));
    let ended = status
        .completion_time
        .as_ref()
        .map(|t| timestamp(t.0))
        .or_else(|| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Failed" && c.status == "True")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| timestamp(t.0))
        });
    let duration_secs = match (started_at, ended) {
        (Some(s), Some(e)) => Some((e - s).num_milliseconds() as f64 / 1000.0),
        _ => None,
    };
    let log_tail = task::log_tail(client, namespace, &name)
        .await
        .unwrap_or_default();
    JobRun {
        name,
        result: result.to_owned(),
        started_at,
        duration_secs,
        log_tail,
    }
}

async fn record_event(
    engine: &Engine,
    running: &Running,
    job: &str,
    kind: &str,
    run_key: &str,
    detail: &str,
) -> crate::Result<()> {
    // The finding and its notification commit together (`notify`'s outbox), once per finding.
    let mut tx = engine.pool.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO job_events (service_id, environment_id, job_name, kind, run_key, detail)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        running.service_id,
        running.environment_id,
        job,
        kind,
        run_key,
        detail
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 1 {
        // Not a failed run's detail: it quotes the tenant's log, which stays on the Jobs tab.
        let reason = if kind == "missed" {
            detail.to_owned()
        } else {
            format!("run {run_key} of `{job}` failed; its log is on the Jobs tab")
        };
        crate::notify::facts::job(
            &mut tx,
            running.service_id,
            running.environment_id,
            job,
            kind == "missed",
            &reason,
        )
        .await?;
    }
    tx.commit().await?;
    if inserted.rows_affected() == 1 {
        metrics::counter!("enclii_scheduled_job_problems_total", "kind" => kind.to_owned())
            .increment(1);
        // Not the detail: it quotes the tenant's log.
        tracing::info!(job, kind, run = run_key, "a scheduled job needs attention");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_has_ended_by_its_jobs_conditions() {
        let job = |conditions: serde_json::Value| -> Job {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "j"},
                "status": {"conditions": conditions}
            }))
            .unwrap()
        };
        let cond = |t: &str, s: &str| serde_json::json!([{"type": t, "status": s}]);
        assert_eq!(ended_as(&job(cond("Complete", "True"))), Some(true));
        assert_eq!(ended_as(&job(cond("Failed", "True"))), Some(false));
        assert_eq!(ended_as(&job(cond("Failed", "False"))), None);
        assert_eq!(ended_as(&job(serde_json::json!([]))), None);
    }

    fn at(h: i64, m: i64) -> Minute {
        enclii_spec::cron::days_from_civil(2026, 12, 3) * 1440 + h * 60 + m
    }

    #[test]
    fn a_schedule_is_missed_after_two_intervals_without_a_success() {
        let hourly = Schedule::parse("0 * * * *").unwrap();
        let since = at(4, 10);
        // Due at 05:00; late at 05:30 is not yet missed, nor at 06:00 sharp.
        assert_eq!(
            assess(&hourly, since, None, false, at(5, 30), 0).missed_since,
            None
        );
        assert_eq!(
            assess(&hourly, since, None, false, at(6, 0), 0).missed_since,
            None
        );
        // At 06:01 the second run went by too.
        assert_eq!(
            assess(&hourly, since, None, false, at(6, 1), 0).missed_since,
            Some(at(6, 0))
        );
        // A success at 05:00 moves the clock: the next two are 06:00 and 07:00.
        assert_eq!(
            assess(&hourly, since, Some(at(5, 0)), false, at(6, 30), 0).missed_since,
            None
        );
        assert_eq!(
            assess(&hourly, since, Some(at(5, 0)), false, at(7, 1), 0).missed_since,
            Some(at(7, 0))
        );
        // A zone the engine cannot convert to waits out the largest offset as well.
        assert_eq!(
            assess(&hourly, since, None, false, at(6, 1), 14 * 60).missed_since,
            None
        );
        let h = assess(&hourly, since, Some(at(5, 0)), true, at(5, 1), 0);
        assert!(h.last_failed && h.missed_since.is_none());
    }

    #[test]
    fn wall_times_read_as_dates() {
        assert_eq!(wall(at(2, 5)), "2026-12-03 02:05");
        // 2026-12-03 04:17 UTC is 05:17 in Berlin (winter) and 23:17 the day before in New York.
        let t = DateTime::from_timestamp(at(4, 17) * 60, 0).unwrap();
        assert_eq!(wall(Clock::of(None).wall(t)), "2026-12-03 04:17");
        assert_eq!(
            wall(Clock::of(Some("Europe/Berlin")).wall(t)),
            "2026-12-03 05:17"
        );
        assert_eq!(
            wall(Clock::of(Some("America/New_York")).wall(t)),
            "2026-12-02 23:17"
        );
        assert!(!Clock::of(Some("Mars/Olympus_Mons")).known());
        assert_eq!(Clock::of(Some("Mars/Olympus_Mons")).slack(), 14 * 60);
    }
}
