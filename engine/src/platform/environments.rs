//! An environment's deployment gates: how many approvals its deployments need and from whom
//! (`approvals.rs` carries them out), and its freeze windows (`freezes.rs`), with what they hold
//! now. Creating environments is `projects.rs`'s.

use enclii_api::{ApiError, DeploymentState, DeploymentSummary, EnvironmentPolicy, Role};
use sqlx::PgPool;

use super::project_access;
use crate::audit;
use crate::auth::{Action, Caller};

/// At most this many approvals may be required (a project needs that many eligible members).
pub const MAX_APPROVALS: i32 = 10;

/// Sets how many approvals deployments to an environment need, and the weakest role that may give
/// them (admin; audited). Deployments already waiting keep the policy they were requested under.
pub async fn set(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    environment: &str,
    approvals: Option<i32>,
    approver_role: Option<Role>,
) -> crate::Result<EnvironmentPolicy> {
    let p = project_access(pool, caller, project, Action::ManageEnvironments).await?;
    if let Some(n) = approvals {
        if !(0..=MAX_APPROVALS).contains(&n) {
            return Err(ApiError::invalid(format!(
                "an environment requires 0 to {MAX_APPROVALS} approvals, not {n}"
            ))
            .into());
        }
    }
    if approver_role.is_some_and(|r| r < Role::Developer) {
        return Err(ApiError::invalid(
            "approvers must be able to deploy: developer, admin or owner",
        )
        .into());
    }
    let mut tx = pool.begin().await?;
    let updated = sqlx::query!(
        "UPDATE environments SET required_approvals = COALESCE($3, required_approvals),
                approver_role = COALESCE($4, approver_role)
         WHERE project_id = $1 AND name = $2 RETURNING required_approvals, approver_role",
        p.id,
        environment,
        approvals,
        approver_role.map(|r| r.as_str())
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "project `{}` has no environment `{environment}`",
            p.slug
        ))
    })?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("environment.policy")
            .target("environment", environment.to_owned())
            .project(p.id)
            .details(serde_json::json!({
                "required_approvals": updated.required_approvals,
                "approver_role": updated.approver_role,
            })),
    )
    .await?;
    tx.commit().await?;
    list(pool, caller, &p.slug)
        .await?
        .into_iter()
        .find(|e| e.name == environment)
        .ok_or_else(|| ApiError::internal().into())
}

/// Every environment of a project with its gates, the freeze in force and what waits (viewer).
pub async fn list(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
) -> crate::Result<Vec<EnvironmentPolicy>> {
    let p = project_access(pool, caller, project, Action::ViewProject).await?;
    let environments = sqlx::query!(
        "SELECT id, name, namespace, required_approvals, approver_role FROM environments
         WHERE project_id = $1 ORDER BY name",
        p.id
    )
    .fetch_all(pool)
    .await?;
    let windows = super::freezes::of_project(pool, p.id).await?;
    let waiting = sqlx::query_as!(
        super::deployments::SummaryRow,
        r#"SELECT d.id, $2::text AS "project!", s.name AS service, e.name AS environment, d.state,
                  d.state_reason, d.strategy, r.image_ref, r.spec_revision, d.created_at, d.finished_at
           FROM deployments d JOIN services s ON s.id = d.service_id
                JOIN environments e ON e.id = d.environment_id JOIN releases r ON r.id = d.release_id
           WHERE e.project_id = $1
             AND (d.state = 'awaiting_approval' OR (d.state = 'pending' AND d.held_until > now()))
           ORDER BY d.id"#,
        p.id,
        p.slug
    )
    .fetch_all(pool)
    .await?;
    let waiting: Vec<DeploymentSummary> = waiting.into_iter().map(Into::into).collect();
    let now = chrono::Utc::now();
    Ok(environments
        .into_iter()
        .map(|e| {
            let own: Vec<_> = windows
                .iter()
                .filter(|(w, _)| w.environment == e.name)
                .collect();
            let decide: Vec<super::freezes::Window> =
                own.iter().filter_map(|(_, w)| w.clone()).collect();
            EnvironmentPolicy {
                active_freeze: super::freezes::frozen_at(&decide, now),
                freezes: own.into_iter().map(|(w, _)| w.clone()).collect(),
                waiting: waiting
                    .iter()
                    .filter(|d| d.environment == e.name)
                    .filter(|d| {
                        matches!(
                            d.state,
                            DeploymentState::AwaitingApproval | DeploymentState::Pending
                        )
                    })
                    .cloned()
                    .collect(),
                name: e.name,
                namespace: e.namespace,
                required_approvals: e.required_approvals,
                approver_role: Role::parse(&e.approver_role).unwrap_or(Role::Admin),
            }
        })
        .collect())
}
