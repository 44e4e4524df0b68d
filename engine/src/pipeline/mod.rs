//! Continuous deployment: GitHub webhook deliveries become builds in a durable queue; the build
//! worker (`builder.rs`) runs each as a Kubernetes Job and hands the image to a deployment.
//!
//! A delivery is acknowledged only after its record and its builds are committed in one
//! transaction, so a server killed at any moment after the acknowledgement loses nothing, and
//! GitHub's retries of an unacknowledged one are recognised by `X-GitHub-Delivery`. A signed body
//! captured and replayed under a new delivery id is recognised by its SHA-256 and not acted on.
//! Rejected deliveries (anyone can send them) are recorded bounded: clipped, at most so many a
//! minute, and only the newest kept per project (`record_rejected`).

pub mod builder;
pub mod github;
pub mod job;
pub mod registry;

use enclii_api::{ApiError, BuildSummary, Delivery, DeliveryBuild, Page, Repository};
use serde_json::json;
use sqlx::PgPool;

use crate::auth::{Action, Caller};
use crate::platform::services::normalize_repository;
use crate::platform::{keyset_page, page_limit, project_access};
use crate::{Engine, audit};

pub const CHANNEL: &str = "enclii_builds";

/// A delivery as it arrived.
pub struct Incoming<'a> {
    pub event: Option<&'a str>,
    pub delivery: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// The HTTP answer for GitHub (and for the person reading "Recent Deliveries" there).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

fn answer(status: u16, outcome: &str, message: impl Into<String>) -> Answer {
    Answer {
        status,
        body: json!({ "outcome": outcome, "message": message.into() }),
    }
}

struct Record<'a> {
    delivery: &'a str,
    event: &'a str,
    repository: Option<&'a str>,
    git_ref: Option<&'a str>,
    commit: Option<&'a str>,
    project: Option<uuid::Uuid>,
    outcome: &'a str,
    reason: &'a str,
    /// The body's SHA-256, for verified deliveries only.
    payload_sha256: Option<&'a [u8]>,
}

/// Writes the delivery's record. A verified outcome replaces an earlier rejection of the same
/// delivery (the secret was fixed, then GitHub redelivered), never the reverse.
async fn record(db: impl sqlx::PgExecutor<'_>, r: Record<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO webhook_deliveries (delivery_id, event, repository, git_ref, commit_sha, project_id, outcome, reason, payload_sha256)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (delivery_id) DO UPDATE SET
               event = EXCLUDED.event, repository = EXCLUDED.repository, git_ref = EXCLUDED.git_ref,
               commit_sha = EXCLUDED.commit_sha, project_id = EXCLUDED.project_id, outcome = EXCLUDED.outcome,
               reason = EXCLUDED.reason, received_at = now(), payload_sha256 = EXCLUDED.payload_sha256
           WHERE webhook_deliveries.outcome = 'rejected'"#,
        r.delivery,
        r.event,
        r.repository,
        r.git_ref,
        r.commit,
        r.project,
        r.outcome,
        r.reason,
        r.payload_sha256
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records a rejected delivery, bounded: anyone can send one, so at most
/// `pipeline.rejected_deliveries_per_minute` are recorded a minute per project (or for no project),
/// and only the newest `rejected_deliveries_per_project` (`_unattributed` for no project) are kept.
/// One project's flood cannot push out another's record, nor any verified delivery.
async fn record_rejected(engine: &Engine, r: Record<'_>) -> sqlx::Result<()> {
    let settings = &engine.settings.pipeline;
    let project = r.project;
    // Counted in memory, per replica (like sign-ins): beyond the limit nothing is written at all.
    if !engine
        .rejected_deliveries
        .allow(project, std::time::Instant::now())
    {
        tracing::debug!("webhook: rejected delivery not recorded (rate limit)");
        return Ok(());
    }
    let keep = if project.is_some() {
        settings.rejected_deliveries_per_project
    } else {
        settings.rejected_deliveries_unattributed
    };
    let mut tx = engine.pool.begin().await?;
    // One writer per project at a time, so that each trim sees the others' rows (the two-key
    // form: a key space of its own).
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(1380600396, hashtext(COALESCE($1::uuid::text, '')))",
        project
    )
    .execute(&mut *tx)
    .await?;
    let (delivery, repository, reason) = (r.delivery, r.repository.unwrap_or_default(), r.reason);
    record(&mut *tx, r).await?;
    if let Some(project) = project {
        crate::notify::facts::webhook_rejected(&mut tx, project, delivery, repository, reason)
            .await?;
    }
    sqlx::query!(
        "DELETE FROM webhook_deliveries WHERE delivery_id IN (
             SELECT delivery_id FROM webhook_deliveries
             WHERE outcome = 'rejected' AND project_id IS NOT DISTINCT FROM $1
             ORDER BY received_at DESC, delivery_id DESC OFFSET $2)",
        project,
        keep.max(0)
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// How much of a rejected delivery's request-supplied text is kept.
const REJECTED_TEXT: usize = 200;

/// Handles `POST /webhooks/github`.
pub async fn receive(engine: &Engine, d: Incoming<'_>) -> crate::Result<Answer> {
    let (Some(event), Some(delivery)) = (d.event, d.delivery) else {
        return Ok(answer(
            400,
            "rejected",
            "X-GitHub-Event and X-GitHub-Delivery headers are required",
        ));
    };
    if delivery.is_empty() || delivery.len() > 100 {
        return Ok(answer(
            400,
            "rejected",
            "X-GitHub-Delivery is not a delivery id",
        ));
    }
    let payload = match github::parse(d.body) {
        Ok(p) => p,
        Err(e) => return Ok(answer(400, "rejected", e)),
    };
    let Some(url) = payload.repository.as_deref().map(normalize_repository) else {
        return Ok(answer(400, "rejected", "the payload names no repository"));
    };
    let pool = &engine.pool;
    let connected = sqlx::query!(
        "SELECT project_id, secret_ciphertext, secret_nonce FROM repositories WHERE url = $1",
        url
    )
    .fetch_all(pool)
    .await?;
    /// Unauthenticated: every request-supplied field clipped, no body, no signature.
    fn rejected<'a>(
        delivery: &'a str,
        event: &'a str,
        url: &'a str,
        payload: &'a github::Payload,
        project: Option<uuid::Uuid>,
        reason: &'a str,
    ) -> Record<'a> {
        Record {
            delivery,
            event: github::clip(event, 64),
            repository: Some(github::clip(url, REJECTED_TEXT)),
            git_ref: payload
                .git_ref
                .as_deref()
                .map(|r| github::clip(r, REJECTED_TEXT)),
            commit: payload.after.as_deref().map(|c| github::clip(c, 64)),
            project,
            outcome: "rejected",
            reason,
            payload_sha256: None,
        }
    }
    if connected.is_empty() {
        let shown = github::clip(&url, REJECTED_TEXT);
        let reason =
            format!("{shown} is not connected to any project (enclii repos connect {shown})");
        record_rejected(
            engine,
            rejected(delivery, event, &url, &payload, None, &reason),
        )
        .await?;
        return Ok(answer(404, "rejected", reason));
    }
    let Some(secrets) = engine.secrets.as_ref() else {
        return Ok(answer(
            503,
            "rejected",
            "this server has no secrets.key to read webhook secrets with",
        ));
    };
    let mut verified = Vec::new();
    for r in &connected {
        let aad = repository_aad(r.project_id, &url);
        if let Ok(secret) = secrets.open(&r.secret_nonce, &r.secret_ciphertext, &aad) {
            use secrecy::ExposeSecret;
            if github::signature_matches(secret.expose_secret().as_bytes(), d.body, d.signature) {
                verified.push(r.project_id);
            }
        }
    }
    let only_project = (connected.len() == 1).then(|| connected[0].project_id);
    if verified.is_empty() {
        let reason = if d.signature.is_none() {
            "no X-Hub-Signature-256: set the webhook's secret in GitHub"
        } else {
            "X-Hub-Signature-256 does not match the repository's webhook secret"
        };
        record_rejected(
            engine,
            rejected(delivery, event, &url, &payload, only_project, reason),
        )
        .await?;
        return Ok(answer(401, "rejected", reason));
    }

    // Authentic from here on. One transaction: the record, the builds, and the wake-up.
    let mut tx = pool.begin().await?;
    // Two copies of one delivery at once (two replicas, or a redelivery racing the original): the
    // row lock below locks nothing while the row does not exist yet, so serialise on the id first.
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext($1))", delivery)
        .execute(&mut *tx)
        .await?;
    // And on the body, for a replay under another id racing the original (the two-key form: a key
    // space of its own; the digest's first bytes are key enough).
    let digest = github::payload_digest(d.body);
    let digest_key = i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    sqlx::query!("SELECT pg_advisory_xact_lock(1464355664, $1)", digest_key)
        .execute(&mut *tx)
        .await?;
    let seen = sqlx::query_scalar!(
        "SELECT outcome FROM webhook_deliveries WHERE delivery_id = $1 FOR UPDATE",
        delivery
    )
    .fetch_optional(&mut *tx)
    .await?;
    if matches!(seen.as_deref(), Some("accepted" | "ignored")) {
        tx.commit().await?;
        return Ok(answer(
            200,
            "duplicate",
            "this delivery was already received; nothing was done again",
        ));
    }
    // Signed by the secret, but a copy of a body already acted on: a replay, whatever its id.
    // Nothing is written for it (a replayer could otherwise add rows without end); 200 so that a
    // sender retrying does not keep trying.
    let replayed = sqlx::query_scalar!(
        "SELECT delivery_id FROM webhook_deliveries
         WHERE payload_sha256 = $1 AND delivery_id <> $2 AND outcome <> 'rejected' LIMIT 1",
        &digest,
        delivery
    )
    .fetch_optional(&mut *tx)
    .await?;
    if replayed.is_some() {
        tx.commit().await?;
        tracing::warn!(
            delivery,
            "webhook: a payload already received arrived under a new delivery id; not acted on"
        );
        return Ok(answer(
            200,
            "duplicate",
            "this payload was already received under another delivery id; nothing was done again",
        ));
    }
    let mut ok = Record {
        delivery,
        event,
        repository: Some(url.as_str()),
        git_ref: payload.git_ref.as_deref(),
        commit: payload.after.as_deref(),
        project: Some(verified[0]),
        outcome: "ignored",
        reason: "",
        payload_sha256: Some(&digest),
    };
    // Previews a closed pull request marked for deletion: deleted once the record is committed.
    let mut deleting = Vec::new();
    let outcome = match event {
        "ping" => {
            ok.reason = "ping: the webhook is connected";
            record(&mut *tx, ok).await?;
            answer(200, "ignored", "pong")
        }
        "push" => {
            let push = push(&mut tx, &verified, &url, &payload).await?;
            match push {
                Err(reason) => {
                    ok.reason = &reason;
                    record(&mut *tx, ok).await?;
                    answer(200, "ignored", reason.clone())
                }
                Ok(starts) => {
                    ok.outcome = "accepted";
                    let reason = format!("{} build(s) queued", starts.len());
                    ok.reason = &reason;
                    record(&mut *tx, ok).await?;
                    let mut ids = Vec::new();
                    for s in starts {
                        ids.push(enqueue(&mut tx, &s, Some(delivery), None).await?);
                    }
                    Answer {
                        status: 202,
                        body: json!({ "outcome": "accepted", "message": reason, "builds": ids }),
                    }
                }
            }
        }
        "pull_request" => {
            let Some(pr) = payload.pull_request.as_ref() else {
                const NONE: &str = "a pull_request delivery without a pull request";
                ok.reason = NONE;
                record(&mut *tx, ok).await?;
                tx.commit().await?;
                return Ok(answer(400, "ignored", NONE));
            };
            let handled = crate::previews::pull_request(
                &mut tx,
                &engine.settings.cluster.namespace_prefix,
                engine.secrets.as_deref(),
                &verified,
                &url,
                pr,
            )
            .await?;
            ok.commit = Some(pr.head_sha.as_str());
            let pr_ref = format!("pull/{}", pr.number);
            ok.git_ref = Some(&pr_ref);
            ok.outcome = handled.outcome;
            ok.reason = &handled.reason;
            record(&mut *tx, ok).await?;
            let mut ids = Vec::new();
            for s in &handled.builds {
                ids.push(enqueue(&mut tx, s, Some(delivery), None).await?);
            }
            let status = if handled.outcome == "accepted" {
                202
            } else {
                200
            };
            deleting = handled.deleting.clone();
            Answer {
                status,
                body: json!({ "outcome": handled.outcome, "message": handled.reason, "builds": ids, "deleting": handled.deleting }),
            }
        }
        other => {
            let reason =
                format!("`{other}` events are not used; only push and pull_request (and ping)");
            ok.reason = &reason;
            record(&mut *tx, ok).await?;
            answer(200, "ignored", reason)
        }
    };
    tx.commit().await?;
    crate::previews::delete_soon(engine, deleting);
    Ok(outcome)
}

/// A build to queue: which service, where it deploys, what to build.
pub(crate) struct Start {
    pub(crate) service_id: uuid::Uuid,
    pub(crate) environment_id: uuid::Uuid,
    pub(crate) spec_revision: i32,
    pub(crate) repository: String,
    pub(crate) git_ref: String,
}

/// The services a push concerns, or why it concerns none.
async fn push(
    tx: &mut sqlx::PgConnection,
    projects: &[uuid::Uuid],
    url: &str,
    payload: &github::Payload,
) -> sqlx::Result<Result<Vec<Start>, String>> {
    let Some(branch) = payload.git_ref.as_deref().and_then(github::branch) else {
        return Ok(Err(format!(
            "{} is not a branch",
            payload.git_ref.as_deref().unwrap_or("the push's ref")
        )));
    };
    let after = payload.after.as_deref().unwrap_or_default();
    if payload.deleted || after.is_empty() || after.chars().all(|c| c == '0') {
        return Ok(Err(format!("branch {branch} was deleted")));
    }
    if after.len() > 64 || !after.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(Err(format!("`{after}` is not a commit id")));
    }
    // A push deploys to the environment whose `deploy_branch` is that branch, else to production.
    let services = sqlx::query!(
        r#"SELECT s.id, s.name, s.current_revision, e.id AS environment_id,
                  sr.spec #>> '{spec,build,source,git,path}' AS path
           FROM services s
                JOIN LATERAL (SELECT id FROM environments
                              WHERE project_id = s.project_id AND (deploy_branch = $3 OR name = 'production')
                              ORDER BY (deploy_branch = $3) DESC NULLS LAST, (name = 'production') DESC, name
                              LIMIT 1) e ON true
                JOIN spec_revisions sr ON sr.service_id = s.id AND sr.revision = s.current_revision
           WHERE s.project_id = ANY($1) AND s.git_repository = $2 AND s.git_branch = $3 AND s.auto_deploy
           ORDER BY s.name"#,
        projects,
        url,
        branch
    )
    .fetch_all(&mut *tx)
    .await?;
    if services.is_empty() {
        return Ok(Err(format!(
            "no service builds {branch} of {url} with autoDeploy"
        )));
    }
    let changed = payload.changed.as_deref();
    let (hit, missed): (Vec<_>, Vec<_>) = services
        .into_iter()
        .partition(|s| github::touches(s.path.as_deref(), changed));
    if hit.is_empty() {
        let paths: Vec<String> = missed
            .iter()
            .map(|s| format!("{} ({})", s.name, s.path.as_deref().unwrap_or(".")))
            .collect();
        return Ok(Err(format!(
            "the push changed nothing under the services' paths: {}",
            paths.join(", ")
        )));
    }
    Ok(Ok(hit
        .into_iter()
        .map(|s| Start {
            service_id: s.id,
            environment_id: s.environment_id,
            spec_revision: s.current_revision,
            repository: url.to_owned(),
            git_ref: after.to_owned(),
        })
        .collect()))
}

/// Queues a build; a queued, not yet started build of the same service and environment is
/// superseded by it (only the newest commit is worth building).
pub(crate) async fn enqueue(
    tx: &mut sqlx::PgConnection,
    s: &Start,
    delivery: Option<&str>,
    who: Option<uuid::Uuid>,
) -> sqlx::Result<i64> {
    sqlx::query!(
        "UPDATE builds SET state = 'superseded', state_reason = 'a newer push was queued', finished_at = now()
         WHERE service_id = $1 AND environment_id = $2 AND state = 'queued'",
        s.service_id,
        s.environment_id
    )
    .execute(&mut *tx)
    .await?;
    let id = sqlx::query_scalar!(
        r#"INSERT INTO builds (service_id, environment_id, spec_revision, delivery_id, git_repository, git_ref, state, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7) RETURNING id"#,
        s.service_id,
        s.environment_id,
        s.spec_revision,
        delivery,
        s.repository,
        s.git_ref,
        who
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!("SELECT pg_notify('enclii_builds', $1)", id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(id)
}

/// A branch or commit as git names them: no leading `-` (it would be read as an option), no spaces
/// or quotes, no `..`.
pub fn valid_ref(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 200
        && r.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
        && !r.contains("..")
}

fn repository_aad(project: uuid::Uuid, url: &str) -> String {
    format!("repository:{project}:{url}")
}

/// Connects a repository to a project (admin), or gives it a new webhook secret. The secret is in
/// this answer only.
pub async fn connect(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    url: &str,
) -> crate::Result<Repository> {
    let project = project_access(&engine.pool, caller, project, Action::ManageMembers).await?;
    let secrets = engine
        .secrets
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable {
            message: "this server has no secrets.key: webhook secrets cannot be stored".into(),
        })?;
    let url = normalize_repository(url);
    if !url.starts_with("https://") || url.matches('/').count() < 4 {
        return Err(ApiError::invalid(format!(
            "`{url}` is not a repository URL such as https://github.com/owner/name"
        ))
        .into());
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|_| ApiError::Unavailable {
        message: "no randomness available".into(),
    })?;
    let secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let (nonce, ciphertext) = secrets.seal(&secret, &repository_aad(project.id, &url));
    let mut tx = engine.pool.begin().await?;
    let created_at = sqlx::query_scalar!(
        r#"INSERT INTO repositories (project_id, url, secret_ciphertext, secret_nonce, created_by)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (project_id, url) DO UPDATE SET secret_ciphertext = EXCLUDED.secret_ciphertext,
               secret_nonce = EXCLUDED.secret_nonce
           RETURNING created_at"#,
        project.id,
        url,
        ciphertext,
        nonce,
        caller.map(|c| c.user_id)
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("repository.connect")
            .target("repository", url.clone())
            .project(project.id),
    )
    .await?;
    tx.commit().await?;
    Ok(Repository {
        webhook_url: webhook_url(engine),
        url,
        secret: Some(secret),
        created_at,
    })
}

fn webhook_url(engine: &Engine) -> String {
    format!(
        "{}/webhooks/github",
        engine.settings.public_url.trim_end_matches('/')
    )
}

/// The repositories connected to a project (viewer); secrets are never listed.
pub async fn repositories(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
) -> crate::Result<Vec<Repository>> {
    let project = project_access(&engine.pool, caller, project, Action::ViewProject).await?;
    let rows = sqlx::query!(
        "SELECT url, created_at FROM repositories WHERE project_id = $1 ORDER BY url",
        project.id
    )
    .fetch_all(&engine.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Repository {
            url: r.url,
            webhook_url: webhook_url(engine),
            secret: None,
            created_at: r.created_at,
        })
        .collect())
}

/// Queues a build of a service's repository (a branch head or a commit) by hand (developer); it
/// deploys to `environment` when it succeeds, exactly as a push would.
pub async fn build(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: &str,
    git_ref: Option<&str>,
) -> crate::Result<BuildSummary> {
    let project = project_access(pool, caller, project, Action::Deploy).await?;
    let mut tx = pool.begin().await?;
    let placement = crate::platform::locate(&mut *tx, &project, service, environment).await?;
    let row = sqlx::query!(
        "SELECT git_repository, git_branch, current_revision FROM services WHERE id = $1",
        placement.service_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let Some(repository) = row.git_repository else {
        return Err(ApiError::invalid(format!(
            "`{service}` has no build.source.git in its spec, so there is nothing to build; deploy an image with --image"
        ))
        .into());
    };
    let git_ref = git_ref
        .map(str::to_owned)
        .or(row.git_branch)
        .unwrap_or_else(|| "main".into());
    if !valid_ref(&git_ref) {
        return Err(ApiError::invalid(format!("`{git_ref}` is not a branch or commit")).into());
    }
    let start = Start {
        service_id: placement.service_id,
        environment_id: placement.environment_id,
        spec_revision: row.current_revision,
        repository,
        git_ref,
    };
    let id = enqueue(&mut tx, &start, None, caller.map(|c| c.user_id)).await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("build.create")
            .target("build", id.to_string())
            .project(project.id)
            .details(
                json!({ "service": service, "environment": environment, "ref": start.git_ref }),
            ),
    )
    .await?;
    tx.commit().await?;
    get(pool, &project, id).await
}

async fn get(
    pool: &PgPool,
    project: &crate::platform::ProjectRef,
    id: i64,
) -> crate::Result<BuildSummary> {
    let page = list_rows(pool, project, None, Some(id), None, 1).await?;
    page.into_iter().next().ok_or_else(|| {
        ApiError::not_found(format!("project `{}` has no build #{id}", project.slug)).into()
    })
}

async fn list_rows(
    pool: &PgPool,
    project: &crate::platform::ProjectRef,
    service: Option<&str>,
    only: Option<i64>,
    cursor: Option<i64>,
    limit: i64,
) -> crate::Result<Vec<BuildSummary>> {
    let rows = sqlx::query!(
        r#"SELECT b.id, s.name AS service, e.name AS environment, b.state, b.state_reason, b.git_repository, b.git_ref,
                  b.image_ref, b.image_digest, b.sbom_ref, b.provenance_ref, b.deployment_id, b.delivery_id, b.attempts,
                  b.created_at, b.finished_at
           FROM builds b JOIN services s ON s.id = b.service_id JOIN environments e ON e.id = b.environment_id
           WHERE s.project_id = $1 AND ($2::text IS NULL OR s.name = $2)
             AND ($3::bigint IS NULL OR b.id = $3) AND b.id < COALESCE($5, 9223372036854775807)
           ORDER BY b.id DESC LIMIT $4"#,
        project.id,
        service,
        only,
        limit,
        cursor
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| BuildSummary {
            id: r.id,
            project: project.slug.clone(),
            service: r.service,
            environment: r.environment,
            state: r.state,
            state_reason: r.state_reason,
            git_repository: r.git_repository,
            git_ref: r.git_ref,
            image: r.image_ref,
            image_digest: r.image_digest,
            sbom_ref: r.sbom_ref,
            provenance_ref: r.provenance_ref,
            deployment_id: r.deployment_id,
            delivery_id: r.delivery_id,
            attempts: r.attempts,
            created_at: r.created_at,
            finished_at: r.finished_at,
        })
        .collect())
}

/// A project's builds, newest first (viewer). `cursor` is the last id seen.
pub async fn builds(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    service: Option<&str>,
    cursor: Option<i64>,
    limit: Option<u32>,
) -> crate::Result<Page<BuildSummary>> {
    let project = project_access(pool, caller, project, Action::ViewProject).await?;
    let limit = page_limit(limit);
    let items = list_rows(pool, &project, service, None, cursor, limit + 1).await?;
    Ok(keyset_page(items, limit, |b| b.id.to_string()))
}

/// Cancels a queued build at once, or asks the worker to stop a running one (developer).
pub async fn cancel(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    id: i64,
) -> crate::Result<BuildSummary> {
    let project = project_access(pool, caller, project, Action::Deploy).await?;
    let mut tx = pool.begin().await?;
    let state = sqlx::query_scalar!(
        "SELECT b.state FROM builds b JOIN services s ON s.id = b.service_id WHERE b.id = $1 AND s.project_id = $2 FOR UPDATE OF b",
        id,
        project.id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("project `{}` has no build #{id}", project.slug)))?;
    match state.as_str() {
        "queued" => {
            sqlx::query!(
                "UPDATE builds SET state = 'cancelled', state_reason = 'cancelled by hand', finished_at = now() WHERE id = $1",
                id
            )
            .execute(&mut *tx)
            .await?;
        }
        "running" => {
            sqlx::query!(
                "UPDATE builds SET cancel_requested = true WHERE id = $1",
                id
            )
            .execute(&mut *tx)
            .await?;
        }
        other => {
            return Err(ApiError::conflict(format!("build #{id} already ended ({other})")).into());
        }
    }
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("build.cancel")
            .target("build", id.to_string())
            .project(project.id),
    )
    .await?;
    tx.commit().await?;
    get(pool, &project, id).await
}

/// A project's webhook deliveries, newest first, with what each started (viewer).
pub async fn deliveries(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    limit: Option<u32>,
) -> crate::Result<Vec<Delivery>> {
    let project = project_access(pool, caller, project, Action::ViewProject).await?;
    let rows = sqlx::query!(
        r#"SELECT delivery_id, event, repository, git_ref, commit_sha, outcome, reason, received_at
           FROM webhook_deliveries WHERE project_id = $1 ORDER BY received_at DESC LIMIT $2"#,
        project.id,
        page_limit(limit)
    )
    .fetch_all(pool)
    .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.delivery_id.clone()).collect();
    let builds = sqlx::query!(
        r#"SELECT b.delivery_id AS "delivery_id!", b.id, s.name, b.state, b.deployment_id, d.state AS "deployment_state?"
           FROM builds b JOIN services s ON s.id = b.service_id LEFT JOIN deployments d ON d.id = b.deployment_id
           WHERE b.delivery_id = ANY($1) ORDER BY b.id"#,
        &ids
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Delivery {
            builds: builds
                .iter()
                .filter(|b| b.delivery_id == r.delivery_id)
                .map(|b| DeliveryBuild {
                    build: b.id,
                    service: b.name.clone(),
                    state: b.state.clone(),
                    deployment_id: b.deployment_id,
                    deployment_state: b.deployment_state.clone(),
                })
                .collect(),
            delivery_id: r.delivery_id,
            event: r.event,
            repository: r.repository,
            git_ref: r.git_ref,
            commit: r.commit_sha,
            outcome: r.outcome,
            reason: r.reason,
            received_at: r.received_at,
        })
        .collect())
}

/// A build's log (viewer): the build Job's pod, streamed.
pub async fn build_logs(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    id: i64,
    follow: bool,
) -> crate::Result<impl futures::Stream<Item = String> + Send + 'static + use<>> {
    let project = project_access(&engine.pool, caller, project, Action::ViewProject).await?;
    let row = sqlx::query!(
        r#"SELECT b.job_name, e.name AS environment FROM builds b JOIN services s ON s.id = b.service_id
           JOIN environments e ON e.id = b.environment_id WHERE b.id = $1 AND s.project_id = $2"#,
        id,
        project.id
    )
    .fetch_optional(&engine.pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("project `{}` has no build #{id}", project.slug)))?;
    let Some(job) = row.job_name else {
        return Err(ApiError::Unavailable {
            message: format!("build #{id} has not started yet"),
        }
        .into());
    };
    let client = engine.cluster(&row.environment)?;
    Ok(builder::logs(
        client,
        &job::build_namespace(&engine.settings.pipeline, &project.slug),
        &job,
        follow,
    )
    .await
    .map_err(|message| ApiError::Unavailable { message })?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn refs_cannot_be_options_or_paths_out() {
        for ok in ["main", "release/1.2", "a1b2c3", "feature-x_y"] {
            assert!(super::valid_ref(ok), "{ok}");
        }
        for bad in [
            "",
            "-upload-pack=x",
            "--x",
            "a b",
            "a'b",
            "a..b",
            "../x",
            "$(id)",
            &"a".repeat(201),
        ] {
            assert!(!super::valid_ref(bad), "{bad}");
        }
    }
}
