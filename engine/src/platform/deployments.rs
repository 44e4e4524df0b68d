//! Releases (an image of a service at a spec revision) and deployments (a release rolled out to an
//! environment). Recording a deployment here is the start of a rollout; driving it to a terminal
//! state is the Kubernetes engine's work.

use enclii_api::{
    ApiError, CanaryAnalysis, DeploymentDetail, DeploymentState, DeploymentStep, DeploymentSummary,
    Page,
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
            "SELECT id, image_ref, spec_revision FROM releases WHERE service_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
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
    let summary = insert(&mut tx, caller, &target, release, &strategy, None).await?;
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
    insert(tx, None, &target, release, strategy, None).await
}

struct Target<'a> {
    project: &'a super::ProjectRef,
    service_id: uuid::Uuid,
    service: &'a str,
    environment_id: uuid::Uuid,
    environment: &'a str,
}

/// Records a pending deployment of `release` (id, image, spec revision), supersedes pending ones,
/// audits, and wakes a worker.
/// Records a deployment with its variables: a copy of the environment's as they are now, or, for
/// a rollback, of the deployment `env_from` that ran the release it restores.
async fn insert(
    tx: &mut sqlx::PgConnection,
    caller: Option<&Caller>,
    t: &Target<'_>,
    release: (uuid::Uuid, String, i32),
    strategy: &str,
    env_from: Option<i64>,
) -> crate::Result<DeploymentSummary> {
    let who = caller.map(|c| c.user_id);
    // A newer deployment makes older ones that have not started pointless.
    sqlx::query!(
        "UPDATE deployments SET state = 'superseded', finished_at = now(), state_reason = 'a newer deployment was requested'
         WHERE service_id = $1 AND environment_id = $2 AND state = 'pending'",
        t.service_id,
        t.environment_id
    )
    .execute(&mut *tx)
    .await?;
    // A canary being analysed is withdrawn at its driver's next tick; this one starts after it.
    sqlx::query!(
        "UPDATE deployments SET requested_action = 'supersede', requested_by = $3
         WHERE service_id = $1 AND environment_id = $2 AND state = 'in_progress' AND strategy = 'canary'",
        t.service_id,
        t.environment_id,
        who
    )
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query!(
        r#"INSERT INTO deployments (service_id, environment_id, release_id, strategy, state, created_by, env_snapshot)
           VALUES ($1, $2, $3, $4, 'pending', $5, true) RETURNING id, created_at"#,
        t.service_id,
        t.environment_id,
        release.0,
        strategy,
        who
    )
    .fetch_one(&mut *tx)
    .await?;
    match env_from {
        Some(from) => {
            sqlx::query!(
                "INSERT INTO deployment_env (deployment_id, name, kind, value, ciphertext, nonce, ref_name, ref_key)
                 SELECT $1, name, kind, value, ciphertext, nonce, ref_name, ref_key FROM deployment_env WHERE deployment_id = $2",
                row.id,
                from
            )
            .execute(&mut *tx)
            .await?;
        }
        None => {
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
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new(if strategy == "rollback" { "deployment.rollback" } else { "deployment.create" })
            .target("deployment", row.id.to_string())
            .project(t.project.id)
            .details(serde_json::json!({ "service": t.service, "environment": t.environment, "image": release.1 })),
    )
    .await?;
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
        state: DeploymentState::Pending,
        state_reason: None,
        strategy: strategy.to_owned(),
        image: release.1,
        spec_revision: release.2,
        created_at: row.created_at,
        finished_at: None,
    })
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
            sqlx::query!("SELECT id, image_ref, spec_revision FROM releases WHERE id = $1 AND service_id = $2", id, ids.service_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| (r.id, r.image_ref, r.spec_revision))
                .ok_or_else(|| ApiError::not_found("no such release of this service"))?
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
        env_from,
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
                  sr.spec
           FROM deployments d JOIN services s ON s.id = d.service_id
                JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
                JOIN spec_revisions sr ON sr.service_id = r.service_id AND sr.revision = r.spec_revision
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
