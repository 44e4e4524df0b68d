//! Releases (an image of a service at a spec revision) and deployments (a release rolled out to an
//! environment). Recording a deployment here is the start of a rollout; driving it to a terminal
//! state is the Kubernetes engine's work.

use enclii_api::{
    ApiError, ApprovalDecision, ApprovalStatus, CanaryAnalysis, DeploymentDetail, DeploymentState,
    DeploymentStep, DeploymentSummary, Page, PromotionOrigin, Role,
};
use sqlx::PgPool;

use super::{page_limit, project_access};
use crate::audit;
use crate::auth::{Action, Caller};

pub struct Request<'a> {
    pub project: &'a str,
    pub service: &'a str,
    pub environment: &'a str,
    /// Deploy this image as a new release; without it, the service's latest release is deployed.
    pub image: Option<&'a str>,
    /// The platform's registry (`pipeline.registry`): an image under it must be in the project's
    /// own path, so no project deploys (or reads through its pods) another project's builds.
    pub registry: &'a str,
}

pub async fn create(
    pool: &PgPool,
    caller: Option<&Caller>,
    req: Request<'_>,
) -> crate::Result<DeploymentSummary> {
    let project = project_access(pool, caller, req.project, Action::Deploy).await?;
    if let Some(image) = req.image {
        validate_image(image)?;
        image_in_project(image, req.registry, &project.slug)?;
    }
    let mut tx = pool.begin().await?;
    let service = sqlx::query!(
        r#"SELECT s.id, s.current_revision, r.spec AS "spec?"
           FROM services s LEFT JOIN spec_revisions r ON r.service_id = s.id AND r.revision = s.current_revision
           WHERE s.project_id = $1 AND s.name = $2"#,
        project.id,
        req.service
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("project `{}` has no service `{}`", project.slug, req.service)))?;
    let environment = sqlx::query!(
        "SELECT id FROM environments WHERE project_id = $1 AND name = $2",
        project.id,
        req.environment
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(environment) = environment else {
        let names: Vec<String> = sqlx::query_scalar!(
            "SELECT name FROM environments WHERE project_id = $1 ORDER BY name",
            project.id
        )
        .fetch_all(&mut *tx)
        .await?;
        return Err(ApiError::not_found(format!(
            "project `{}` has no environment `{}`; it has: {}",
            project.slug,
            req.environment,
            names.join(", ")
        ))
        .into());
    };
    let who = caller.map(|c| c.user_id);
    let release = match req.image {
        Some(image) => {
            let digest = image.split_once("@").map(|(_, d)| d.to_owned());
            sqlx::query!(
                r#"INSERT INTO releases (service_id, spec_revision, image_ref, image_digest, created_by)
                   VALUES ($1, $2, $3, $4, $5) RETURNING id, image_ref, spec_revision"#,
                service.id,
                service.current_revision,
                image,
                digest,
                who
            )
            .fetch_one(&mut *tx)
            .await
            .map(|r| (r.id, r.image_ref, r.spec_revision))?
        }
        None => sqlx::query!(
            // Never a pull request's preview build: that is unmerged code.
            "SELECT id, image_ref, spec_revision FROM releases WHERE service_id = $1 AND NOT built_for_preview
             ORDER BY created_at DESC, id DESC LIMIT 1",
            service.id
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| (r.id, r.image_ref, r.spec_revision))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "service `{}` has no release yet: pass an image (`--image REF`), or push to its repository so that Enclii builds one",
                req.service
            ))
        })?,
    };
    let strategy = service
        .spec
        .as_ref()
        .and_then(|s| s.pointer("/spec/rollout/strategy"))
        .and_then(|s| s.as_str())
        .unwrap_or("canary")
        .to_owned();
    let target = Target {
        project: &project,
        service_id: service.id,
        service: req.service,
        environment_id: environment.id,
        environment: req.environment,
    };
    let summary = insert(
        &mut tx,
        caller,
        &target,
        release,
        &strategy,
        Origin::Requested,
    )
    .await?;
    tx.commit().await?;
    Ok(summary)
}

/// Deploys a release a build just produced (the pipeline's last step), as the system: the same
/// record, audit and wake-up as a deployment a person asks for.
pub(crate) async fn for_build(
    tx: &mut sqlx::PgConnection,
    project: &super::ProjectRef,
    service_id: uuid::Uuid,
    service: &str,
    environment_id: uuid::Uuid,
    environment: &str,
    release: (uuid::Uuid, String, i32),
    strategy: &str,
) -> crate::Result<DeploymentSummary> {
    let target = Target {
        project,
        service_id,
        service,
        environment_id,
        environment,
    };
    insert(tx, None, &target, release, strategy, Origin::Requested).await
}

struct Target<'a> {
    project: &'a super::ProjectRef,
    service_id: uuid::Uuid,
    service: &'a str,
    environment_id: uuid::Uuid,
    environment: &'a str,
}

/// Where a deployment's release and variables come from.
enum Origin {
    /// Asked for (or built): the environment's variables as they are now.
    Requested,
    /// A rollback: the variables of `env_from`, the deployment that last ran the release here.
    Rollback { env_from: Option<i64> },
    /// The release deployment `from` ran in another environment, with this environment's variables.
    Promotion { from: i64, environment: String },
}

/// Records a deployment of `release` (id, image, spec revision) with its variables (a copy of the
/// environment's as they are now, or, for a rollback, of the deployment that ran the release it
/// restores), supersedes the ones that have not started, audits, and wakes a worker. It waits for
/// approval when the environment requires it, and is held while a freeze window is in force;
/// rollbacks do neither.
async fn insert(
    tx: &mut sqlx::PgConnection,
    caller: Option<&Caller>,
    t: &Target<'_>,
    release: (uuid::Uuid, String, i32),
    strategy: &str,
    origin: Origin,
) -> crate::Result<DeploymentSummary> {
    let who = caller.map(|c| c.user_id);
    // A newer deployment makes older ones that have not started pointless.
    let awaiting = sqlx::query_scalar!(
        "SELECT id FROM deployments WHERE service_id = $1 AND environment_id = $2 AND state = 'awaiting_approval'",
        t.service_id,
        t.environment_id
    )
    .fetch_all(&mut *tx)
    .await?;
    for id in awaiting {
        super::approvals::leave(&mut *tx, id, super::approvals::Exit::Superseded, caller).await?;
    }
    sqlx::query!(
        "UPDATE deployments SET state = 'superseded', finished_at = now(), state_reason = 'a newer deployment was requested'
         WHERE service_id = $1 AND environment_id = $2 AND state = 'pending'",
        t.service_id,
        t.environment_id
    )
    .execute(&mut *tx)
    .await?;
    let promoted_from = match &origin {
        Origin::Promotion { from, .. } => Some(*from),
        _ => None,
    };
    let row = sqlx::query!(
        r#"INSERT INTO deployments (service_id, environment_id, release_id, strategy, state, created_by, env_snapshot, promoted_from)
           VALUES ($1, $2, $3, $4, 'pending', $5, true, $6) RETURNING id, created_at"#,
        t.service_id,
        t.environment_id,
        release.0,
        strategy,
        who,
        promoted_from
    )
    .fetch_one(&mut *tx)
    .await?;
    match origin {
        Origin::Rollback {
            env_from: Some(from),
        } => {
            sqlx::query!(
                "INSERT INTO deployment_env (deployment_id, name, kind, value, ciphertext, nonce, ref_name, ref_key)
                 SELECT $1, name, kind, value, ciphertext, nonce, ref_name, ref_key FROM deployment_env WHERE deployment_id = $2",
                row.id,
                from
            )
            .execute(&mut *tx)
            .await?;
        }
        _ => {
            sqlx::query!(
                "INSERT INTO deployment_env (deployment_id, name, kind, value, ciphertext, nonce, ref_name, ref_key)
                 SELECT $1, name, kind, value, ciphertext, nonce, ref_name, ref_key FROM env_vars
                 WHERE service_id = $2 AND environment_id = $3",
                row.id,
                t.service_id,
                t.environment_id
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    let (action, details) = match &origin {
        Origin::Rollback { .. } => (
            "deployment.rollback",
            serde_json::json!({ "service": t.service, "environment": t.environment, "image": release.1 }),
        ),
        Origin::Promotion { from, environment } => (
            "deployment.promotion",
            serde_json::json!({ "service": t.service, "environment": t.environment, "image": release.1,
                                "release": release.0, "from_environment": environment, "from_deployment": from }),
        ),
        Origin::Requested => (
            "deployment.create",
            serde_json::json!({ "service": t.service, "environment": t.environment, "image": release.1 }),
        ),
    };
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new(action)
            .target("deployment", row.id.to_string())
            .project(t.project.id)
            .details(details),
    )
    .await?;
    let policy = sqlx::query!(
        "SELECT required_approvals, approver_role FROM environments WHERE id = $1",
        t.environment_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let rollback = strategy == "rollback";
    let (state, state_reason) = if policy.required_approvals > 0 && !rollback {
        let policy = super::approvals::Policy {
            required: policy.required_approvals as u32,
            approver_role: Role::parse(&policy.approver_role).unwrap_or(Role::Admin),
        };
        let reason = super::approvals::enter(&mut *tx, row.id, policy).await?;
        (DeploymentState::AwaitingApproval, Some(reason))
    } else {
        let held = if rollback {
            None
        } else {
            super::freezes::hold(&mut *tx, row.id, t.environment_id).await?
        };
        // A held deployment does not withdraw what runs now: it would leave the stable release
        // serving for the whole freeze for nothing. It takes its turn when the freeze ends.
        if held.is_none() {
            make_way(&mut *tx, t.service_id, t.environment_id, caller).await?;
        }
        (
            DeploymentState::Pending,
            held.as_ref().map(super::freezes::held_reason),
        )
    };
    // Wakes a worker at once (delivered at commit; workers also poll, so a lost one only delays).
    sqlx::query!(
        "SELECT pg_notify('enclii_deployments', $1)",
        row.id.to_string()
    )
    .execute(&mut *tx)
    .await?;
    Ok(DeploymentSummary {
        id: row.id,
        project: t.project.slug.clone(),
        service: t.service.to_owned(),
        environment: t.environment.to_owned(),
        state,
        state_reason,
        strategy: strategy.to_owned(),
        image: release.1,
        spec_revision: release.2,
        created_at: row.created_at,
        finished_at: None,
    })
}

/// A deployment about to be driven asks a canary in progress of the same service and environment
/// to withdraw at its driver's next tick (it starts after it). Not done for one that waits for
/// approval: a request that may be rejected does not take the running canary away.
pub(crate) async fn make_way(
    tx: &mut sqlx::PgConnection,
    service_id: uuid::Uuid,
    environment_id: uuid::Uuid,
    caller: Option<&Caller>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE deployments SET requested_action = 'supersede', requested_by = $3
         WHERE service_id = $1 AND environment_id = $2 AND state = 'in_progress' AND strategy = 'canary'",
        service_id,
        environment_id,
        caller.map(|c| c.user_id)
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Why a promotion is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PromotionRefused {
    #[error("a promotion goes from one environment to another; `{0}` is both")]
    SameEnvironment(String),
    #[error("`{service}` has never been deployed to `{from}`: there is nothing to promote")]
    NeverDeployed { service: String, from: String },
    #[error(
        "the latest deployment of `{service}` to `{from}` (#{id}) is {state}: promote a release `{from}` ran successfully (deploy it there again, or wait for it to end)"
    )]
    NotSucceeded {
        service: String,
        from: String,
        id: i64,
        state: DeploymentState,
    },
    #[error(
        "release {release} (`{image}`) has no recorded digest: a tag can move, so only a release pinned by digest is promoted (deploy `name@sha256:…`, or let Enclii build it)"
    )]
    NoDigest { release: uuid::Uuid, image: String },
}

impl From<PromotionRefused> for ApiError {
    fn from(e: PromotionRefused) -> Self {
        ApiError::conflict(e.to_string())
    }
}

pub struct Promotion<'a> {
    pub project: &'a str,
    pub service: &'a str,
    pub from: &'a str,
    pub to: &'a str,
}

/// Deploys to `to` the exact release `from` runs: the same release row (image digest, SBOM and
/// provenance), through `to`'s own rollout (its spec's strategy, its variables, its approvals and
/// freeze windows). Refused unless the latest deployment of the service to `from` succeeded.
pub async fn promote(
    pool: &PgPool,
    caller: Option<&Caller>,
    req: Promotion<'_>,
) -> crate::Result<DeploymentSummary> {
    let project = project_access(pool, caller, req.project, Action::Deploy).await?;
    if req.from == req.to {
        return Err(ApiError::from(PromotionRefused::SameEnvironment(req.to.to_owned())).into());
    }
    let mut tx = pool.begin().await?;
    let source = super::locate(&mut *tx, &project, req.service, req.from).await?;
    let target = super::locate(&mut *tx, &project, req.service, req.to).await?;
    // Deployments that never ran (superseded before they started, rejected) say nothing about
    // what runs there.
    let latest = sqlx::query!(
        r#"SELECT d.id, d.state, r.id AS release_id, r.image_ref, r.image_digest, r.spec_revision, sr.spec
           FROM deployments d JOIN releases r ON r.id = d.release_id
                JOIN spec_revisions sr ON sr.service_id = r.service_id AND sr.revision = r.spec_revision
           WHERE d.service_id = $1 AND d.environment_id = $2 AND d.state NOT IN ('superseded', 'rejected')
           ORDER BY d.id DESC LIMIT 1"#,
        source.service_id,
        source.environment_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| PromotionRefused::NeverDeployed {
        service: req.service.to_owned(),
        from: req.from.to_owned(),
    })
    .map_err(ApiError::from)?;
    let state = DeploymentState::parse(&latest.state).unwrap_or(DeploymentState::Failed);
    if state != DeploymentState::Succeeded {
        return Err(ApiError::from(PromotionRefused::NotSucceeded {
            service: req.service.to_owned(),
            from: req.from.to_owned(),
            id: latest.id,
            state,
        })
        .into());
    }
    if latest.image_digest.is_none() && !latest.image_ref.contains("@sha256:") {
        return Err(ApiError::from(PromotionRefused::NoDigest {
            release: latest.release_id,
            image: latest.image_ref,
        })
        .into());
    }
    // The release's own spec decides its rollout, as it decides its render.
    let strategy = latest
        .spec
        .pointer("/spec/rollout/strategy")
        .and_then(|s| s.as_str())
        .unwrap_or("canary")
        .to_owned();
    let t = Target {
        project: &project,
        service_id: target.service_id,
        service: req.service,
        environment_id: target.environment_id,
        environment: req.to,
    };
    let summary = insert(
        &mut tx,
        caller,
        &t,
        (latest.release_id, latest.image_ref, latest.spec_revision),
        &strategy,
        Origin::Promotion {
            from: latest.id,
            environment: req.from.to_owned(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(summary)
}

/// Rolls back to an earlier release: `release` (an id), or the last release that succeeded in the
/// environment before the one running now. It is re-applied and watched like any rollout.
pub async fn rollback(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: &str,
    release: Option<&str>,
) -> crate::Result<DeploymentSummary> {
    let project = project_access(pool, caller, project, Action::Deploy).await?;
    let mut tx = pool.begin().await?;
    let ids = super::locate(&mut *tx, &project, service, environment).await?;
    let target_release = match release {
        Some(id) => {
            let id =
                uuid::Uuid::parse_str(id).map_err(|_| ApiError::invalid("not a release id"))?;
            // Only back to a release this environment ran: a rollback skips approvals and
            // freezes, so it must not carry a release that never passed them here.
            let found = sqlx::query!(
                r#"SELECT r.id, r.image_ref, r.spec_revision,
                          EXISTS (SELECT 1 FROM deployments d WHERE d.release_id = r.id
                                  AND d.environment_id = $3 AND d.state = 'succeeded') AS "ran_here!"
                   FROM releases r WHERE r.id = $1 AND r.service_id = $2"#,
                id,
                ids.service_id,
                ids.environment_id
            )
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| ApiError::not_found("no such release of this service"))?;
            if !found.ran_here {
                return Err(ApiError::conflict(format!(
                    "release {id} never ran successfully in {environment}: a rollback returns to a release that did; deploy this one instead (its approvals and freeze windows apply)"
                ))
                .into());
            }
            (found.id, found.image_ref, found.spec_revision)
        }
        None => {
            let ran: Vec<(uuid::Uuid, String, i32)> = sqlx::query!(
                r#"SELECT r.id, r.image_ref, r.spec_revision FROM deployments d JOIN releases r ON r.id = d.release_id
                   WHERE d.service_id = $1 AND d.environment_id = $2 AND d.state = 'succeeded' ORDER BY d.id DESC LIMIT 50"#,
                ids.service_id,
                ids.environment_id
            )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| (r.id, r.image_ref, r.spec_revision))
            .collect();
            let current = ran.first().map(|r| r.0);
            ran.into_iter()
                .find(|r| Some(r.0) != current)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "no earlier release has run in `{environment}` to roll back to"
                    ))
                })?
        }
    };
    let target = Target {
        project: &project,
        service_id: ids.service_id,
        service,
        environment_id: ids.environment_id,
        environment,
    };
    // The values the release last ran with here (a deployment from before snapshots: today's).
    let env_from = sqlx::query_scalar!(
        "SELECT id FROM deployments
         WHERE release_id = $1 AND environment_id = $2 AND state = 'succeeded' AND env_snapshot
         ORDER BY id DESC LIMIT 1",
        target_release.0,
        ids.environment_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let summary = insert(
        &mut tx,
        caller,
        &target,
        target_release,
        "rollback",
        Origin::Rollback { env_from },
    )
    .await?;
    tx.commit().await?;
    Ok(summary)
}

/// Deployments of a project (optionally one service), newest first; `cursor` is the last id seen.
pub async fn list(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    service: Option<&str>,
    cursor: Option<i64>,
    limit: Option<u32>,
) -> crate::Result<Page<DeploymentSummary>> {
    let project = project_access(pool, caller, project, Action::ViewProject).await?;
    let limit = page_limit(limit);
    // The service is resolved first so that its deployments are read by `deployments_by_service`;
    // one query with an optional name filter was planned as a walk over the whole project's.
    let service_id = match service {
        None => None,
        Some(name) => {
            let id = sqlx::query_scalar!(
                "SELECT id FROM services WHERE project_id = $1 AND name = $2",
                project.id,
                name
            )
            .fetch_optional(pool)
            .await?;
            match id {
                Some(id) => Some(id),
                None => {
                    return Err(ApiError::not_found(format!(
                        "project `{}` has no service `{name}`",
                        project.slug
                    ))
                    .into());
                }
            }
        }
    };
    let before = cursor.unwrap_or(i64::MAX);
    let rows = match service_id {
        Some(service_id) => {
            sqlx::query_as!(
                SummaryRow,
                r#"SELECT d.id, $4::text AS "project!", s.name AS service, e.name AS environment, d.state,
                          d.state_reason, d.strategy, r.image_ref, r.spec_revision, d.created_at, d.finished_at
                   FROM deployments d JOIN services s ON s.id = d.service_id
                        JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
                   WHERE d.service_id = $1 AND d.id < $2
                   ORDER BY d.id DESC
                   LIMIT $3"#,
                service_id,
                before,
                limit + 1,
                project.slug
            )
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query_as!(
                SummaryRow,
                r#"SELECT d.id, $4::text AS "project!", s.name AS service, e.name AS environment, d.state,
                          d.state_reason, d.strategy, r.image_ref, r.spec_revision, d.created_at, d.finished_at
                   FROM deployments d JOIN services s ON s.id = d.service_id
                        JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
                   WHERE s.project_id = $1 AND d.id < $2
                   ORDER BY d.id DESC
                   LIMIT $3"#,
                project.id,
                before,
                limit + 1,
                project.slug
            )
            .fetch_all(pool)
            .await?
        }
    };
    let items = rows.into_iter().map(DeploymentSummary::from).collect();
    Ok(crate::platform::keyset_page(items, limit, |d| {
        d.id.to_string()
    }))
}

/// The newest deployments across every project the caller may view (every project for platform
/// admins), newest first; `cursor` is the last id seen. One query: the dashboard's overview and
/// deployments pages asked each project in turn before.
pub async fn recent(
    pool: &PgPool,
    caller: Option<&Caller>,
    cursor: Option<i64>,
    limit: Option<u32>,
) -> crate::Result<Page<DeploymentSummary>> {
    crate::auth::authorize(caller, Action::ListProjects, None)?;
    let Some(who) = caller else {
        return Err(ApiError::unauthenticated().into());
    };
    let limit = page_limit(limit);
    let rows = sqlx::query_as!(
        SummaryRow,
        r#"SELECT d.id, p.slug AS project, s.name AS service, e.name AS environment, d.state,
                  d.state_reason, d.strategy, r.image_ref, r.spec_revision, d.created_at, d.finished_at
           FROM deployments d JOIN services s ON s.id = d.service_id JOIN projects p ON p.id = s.project_id
                JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
           WHERE d.id < $1
             AND ($2 OR s.project_id IN (SELECT m.project_id FROM memberships m WHERE m.user_id = $3))
           ORDER BY d.id DESC
           LIMIT $4"#,
        cursor.unwrap_or(i64::MAX),
        who.platform_admin,
        who.user_id,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let items = rows.into_iter().map(DeploymentSummary::from).collect();
    Ok(crate::platform::keyset_page(items, limit, |d| {
        d.id.to_string()
    }))
}

/// A deployment as lists show it.
pub(crate) struct SummaryRow {
    pub id: i64,
    pub project: String,
    pub service: String,
    pub environment: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub strategy: String,
    pub image_ref: String,
    pub spec_revision: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<SummaryRow> for DeploymentSummary {
    fn from(r: SummaryRow) -> Self {
        DeploymentSummary {
            id: r.id,
            project: r.project,
            service: r.service,
            environment: r.environment,
            state: DeploymentState::parse(&r.state).unwrap_or(DeploymentState::Failed),
            state_reason: r.state_reason,
            strategy: r.strategy,
            image: r.image_ref,
            spec_revision: r.spec_revision,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// One deployment of a project, with its steps and canary analyses.
pub async fn get(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    id: i64,
) -> crate::Result<DeploymentDetail> {
    let project = project_access(pool, caller, project, Action::ViewProject).await?;
    let r = sqlx::query!(
        r#"SELECT d.id, s.name AS service, e.name AS environment, d.state, d.state_reason, d.strategy,
                  r.image_ref, r.spec_revision, d.created_at, d.finished_at, d.traffic_split, d.requested_action,
                  sr.spec, d.promoted_from, pe.name AS "promoted_from_environment?", d.approvals_required,
                  d.approver_role, u.display_name AS "requested_by?", d.held_until, d.force_reason,
                  fu.display_name AS "forced_by?"
           FROM deployments d JOIN services s ON s.id = d.service_id
                JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
                JOIN spec_revisions sr ON sr.service_id = r.service_id AND sr.revision = r.spec_revision
                LEFT JOIN deployments pd ON pd.id = d.promoted_from
                LEFT JOIN environments pe ON pe.id = pd.environment_id
                LEFT JOIN users u ON u.id = d.created_by
                LEFT JOIN users fu ON fu.id = d.forced_by
           WHERE d.id = $1 AND s.project_id = $2"#,
        id,
        project.id
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("project `{}` has no deployment #{id}", project.slug)))?;
    let steps = sqlx::query_as!(
        DeploymentStep,
        "SELECT seq, kind, state, weight, message, evidence, started_at, finished_at
         FROM deployment_steps WHERE deployment_id = $1 ORDER BY seq",
        id
    )
    .fetch_all(pool)
    .await?;
    let analyses = sqlx::query_as!(
        CanaryAnalysis,
        "SELECT step_seq, run, weight, error_rate, requests, decision, detail, query, measured_at
         FROM canary_analyses WHERE deployment_id = $1 ORDER BY step_seq, run",
        id
    )
    .fetch_all(pool)
    .await?;
    // The weights as the release's spec plans them (the stored spec is the typed model as JSON).
    let plan = serde_json::from_value::<enclii_spec::model::Rollout>(
        r.spec
            .pointer("/spec/rollout")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
    )
    .unwrap_or_default()
    .steps
    .iter()
    .map(|s| s.weight)
    .collect();
    let approval = match r.approver_role.as_deref().and_then(Role::parse) {
        Some(approver_role) if r.approvals_required > 0 => Some(ApprovalStatus {
            required: r.approvals_required,
            approver_role,
            requested_by: r.requested_by,
            decisions: sqlx::query!(
                "SELECT display_name, role, approved, reason, decided_at FROM deployment_approvals
                 WHERE deployment_id = $1 ORDER BY decided_at",
                id
            )
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|a| ApprovalDecision {
                by: a.display_name,
                role: a.role,
                approved: a.approved,
                reason: a.reason,
                at: a.decided_at,
            })
            .collect(),
        }),
        _ => None,
    };
    Ok(DeploymentDetail {
        deployment: DeploymentSummary {
            id: r.id,
            project: project.slug.clone(),
            service: r.service,
            environment: r.environment,
            state: DeploymentState::parse(&r.state).unwrap_or(DeploymentState::Failed),
            state_reason: r.state_reason,
            strategy: r.strategy,
            image: r.image_ref,
            spec_revision: r.spec_revision,
            created_at: r.created_at,
            finished_at: r.finished_at,
        },
        traffic_split: r.traffic_split,
        requested_action: r.requested_action,
        plan,
        steps,
        analyses,
        promoted_from: r.promoted_from.map(|deployment| PromotionOrigin {
            deployment,
            environment: r.promoted_from_environment.unwrap_or_default(),
        }),
        approval,
        // Only while it holds: afterwards the claim takes it (the column keeps the history).
        held_until: r.held_until.filter(|t| *t > chrono::Utc::now()),
        forced: match (r.forced_by, r.force_reason) {
            (Some(by), Some(why)) => Some(format!("{by}: {why}")),
            _ => None,
        },
    })
}

/// Asks the driver of a canary to skip the remaining analysis (`promote`) or to take the canary
/// away (`abort`). The driver acts on it at its next tick, on whichever replica holds the lease.
pub async fn control(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    id: i64,
    action: &str,
) -> crate::Result<DeploymentSummary> {
    let project = project_access(pool, caller, project, Action::Deploy).await?;
    if !matches!(action, "promote" | "abort") {
        return Err(ApiError::invalid(format!("`{action}` is neither promote nor abort")).into());
    }
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        r#"SELECT d.state, d.strategy, d.traffic_split FROM deployments d JOIN services s ON s.id = d.service_id
           WHERE d.id = $1 AND s.project_id = $2 FOR UPDATE OF d"#,
        id,
        project.id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("project `{}` has no deployment #{id}", project.slug)))?;
    let state = DeploymentState::parse(&row.state).unwrap_or(DeploymentState::Failed);
    if state.is_terminal() {
        return Err(ApiError::conflict(format!(
            "deployment #{id} already ended ({}); nothing to {action}",
            state.as_str()
        ))
        .into());
    }
    let is_canary = row.strategy == "canary"
        && row
            .traffic_split
            .as_deref()
            .is_none_or(enclii_api::is_canary_split);
    if !is_canary {
        return Err(ApiError::conflict(format!(
            "deployment #{id} is not a canary ({}); only canaries can be promoted or aborted",
            row.traffic_split.as_deref().unwrap_or(&row.strategy)
        ))
        .into());
    }
    let who = caller.map(|c| c.user_id);
    sqlx::query!(
        "UPDATE deployments SET requested_action = $2, requested_by = $3 WHERE id = $1",
        id,
        action,
        who
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new(if action == "promote" {
            "deployment.promote"
        } else {
            "deployment.abort"
        })
        .target("deployment", id.to_string())
        .project(project.id),
    )
    .await?;
    tx.commit().await?;
    let detail = get(pool, caller, &project.slug, id).await?;
    Ok(detail.deployment)
}

/// A service's releases, newest first (viewer); `cursor` is the last `created_at` seen.
pub async fn releases(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> crate::Result<Page<enclii_api::Release>> {
    let project = project_access(pool, caller, project, Action::ViewProject).await?;
    let cursor = match cursor {
        Some(c) => Some(
            chrono::DateTime::parse_from_rfc3339(c)
                .map_err(|_| ApiError::invalid("the cursor is not one this list gave"))?
                .with_timezone(&chrono::Utc),
        ),
        None => None,
    };
    let limit = page_limit(limit);
    let rows = sqlx::query!(
        r#"SELECT r.id, s.name AS service, r.spec_revision, r.image_ref, r.image_digest, r.git_repository, r.git_commit,
                  r.sbom_ref, r.provenance_ref, r.created_at
           FROM releases r JOIN services s ON s.id = r.service_id
           WHERE s.project_id = $1 AND s.name = $2 AND r.created_at < COALESCE($3, 'infinity'::timestamptz)
           ORDER BY r.created_at DESC, r.id DESC LIMIT $4"#,
        project.id,
        service,
        cursor,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let items = rows
        .into_iter()
        .map(|r| enclii_api::Release {
            id: r.id.to_string(),
            service: r.service,
            spec_revision: r.spec_revision,
            image: r.image_ref,
            image_digest: r.image_digest,
            git_repository: r.git_repository,
            git_commit: r.git_commit,
            sbom_ref: r.sbom_ref,
            provenance_ref: r.provenance_ref,
            created_at: r.created_at,
        })
        .collect();
    Ok(crate::platform::keyset_page(items, limit, |r| {
        r.created_at.to_rfc3339()
    }))
}

/// A container image reference: `registry/name[:tag][@sha256:…]`, without spaces or schemes.
pub fn validate_image(image: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        Err(ApiError::invalid(format!(
            "`{image}` is not an image reference: {why}"
        )))
    };
    if image.is_empty() || image.len() > 512 {
        return bad("it must be 1 to 512 characters");
    }
    if image.contains("://") || image.chars().any(|c| c.is_whitespace()) {
        return bad("write it as registry/name:tag or registry/name@sha256:digest");
    }
    if let Some((_, digest)) = image.split_once('@') {
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64
            || !hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            return bad("the digest must be sha256: followed by 64 lowercase hex digits");
        }
    }
    Ok(())
}

/// An image from the platform's registry must come from the project's own path there
/// (`{registry}/{project}/…`, where its builds push); images from anywhere else are the project's
/// own business.
pub fn image_in_project(image: &str, registry: &str, project: &str) -> Result<(), ApiError> {
    let registry = registry.trim_end_matches('/');
    if registry.is_empty() {
        return Ok(());
    }
    let Some(path) = image
        .strip_prefix(registry)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return Ok(());
    };
    match path.split_once('/') {
        Some((owner, rest)) if owner == project && !rest.is_empty() => Ok(()),
        _ => Err(ApiError::forbidden(format!(
            "`{image}` is in the platform registry outside project `{project}`'s path ({registry}/{project}/…): a project deploys only its own builds from it"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_are_checked() {
        assert!(validate_image("ghcr.io/madfam-io/enclii:1.2.3").is_ok());
        assert!(validate_image(&format!("registry.local/app@sha256:{}", "a".repeat(64))).is_ok());
        for bad in [
            "",
            "https://ghcr.io/x",
            "has space",
            "x@sha256:abc",
            &format!("x@sha256:{}", "A".repeat(64)),
        ] {
            assert!(validate_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images_from_the_platform_registry_must_be_the_projects_own() {
        let reg = "registry.enclii.io/builds";
        for ok in [
            "registry.enclii.io/builds/shop/web:abc",
            "registry.enclii.io/builds/shop/web@sha256:00",
            "ghcr.io/someone/else:1",
            "registry.enclii.io/other-path/x:1",
        ] {
            assert!(image_in_project(ok, reg, "shop").is_ok(), "{ok}");
        }
        for theirs in [
            "registry.enclii.io/builds/other/web:abc",
            "registry.enclii.io/builds/shop-2/web:1",
            "registry.enclii.io/builds/shop",
            "registry.enclii.io/builds/shop/",
        ] {
            let e = image_in_project(theirs, reg, "shop").unwrap_err();
            assert!(
                e.to_string().contains("outside project `shop`'s path"),
                "{theirs}: {e}"
            );
        }
        assert!(image_in_project("anything/at:all", "", "shop").is_ok());
    }
}
