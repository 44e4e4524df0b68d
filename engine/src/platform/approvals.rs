//! Approvals: an environment may require N approvals from members of a given role (or higher)
//! before a deployment to it proceeds. Such a deployment is recorded `awaiting_approval`, which no
//! worker claims, so nothing of it reaches the cluster until it is approved.
//!
//! Two transitions, each in one function, so that whatever must happen at them (notifications)
//! has one place to go: [`enter`] (a requested deployment starts waiting) and [`leave`] (approved:
//! it becomes `pending` and goes through the freeze check and the queue; rejected: it ends
//! `rejected`; superseded by a newer request). Who may decide, and what the decisions add up to,
//! are the pure [`eligible`] and [`tally`], tested over their tables below.
//!
//! Rollbacks need no approval: they restore a release that already ran, and they are the way out
//! of an incident, when waiting for an approver is the wrong trade.

use enclii_api::{ApiError, DeploymentState, DeploymentSummary, Role};
use sqlx::PgPool;
use uuid::Uuid;

use super::project_access;
use crate::audit;
use crate::auth::{Action, Caller};

/// What an environment requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub required: u32,
    /// The weakest role that may approve.
    pub approver_role: Role,
}

/// Someone deciding on a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approver {
    pub user: Uuid,
    /// Their role on the project (platform admins may have none).
    pub role: Option<Role>,
    pub platform_admin: bool,
}

/// Why a decision is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("you requested this deployment: another member must approve or reject it")]
    OwnDeployment,
    #[error(
        "deciding on deployments to this environment needs {} {need} or higher; you are {}",
        article(*need),
        have.map(|r| format!("{} {r}", article(r))).unwrap_or_else(|| "not a member".into())
    )]
    RoleTooLow { need: Role, have: Option<Role> },
    #[error("you already decided on this deployment; each approver counts once")]
    AlreadyDecided,
    #[error("the deployment is {0}, not awaiting approval")]
    NotAwaiting(DeploymentState),
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Admin | Role::Owner => "an",
        Role::Viewer | Role::Developer => "a",
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::OwnDeployment | Refusal::RoleTooLow { .. } => {
                ApiError::forbidden(r.to_string())
            }
            Refusal::AlreadyDecided | Refusal::NotAwaiting(_) => ApiError::conflict(r.to_string()),
        }
    }
}

/// Whether `who` may approve or reject a deployment `requester` asked for. Nobody decides on
/// their own request, platform admins included; a deployment the system requested (a build) has
/// no requester.
pub fn eligible(policy: Policy, requester: Option<Uuid>, who: Approver) -> Result<(), Refusal> {
    if requester == Some(who.user) {
        return Err(Refusal::OwnDeployment);
    }
    if who.platform_admin || who.role.is_some_and(|r| r >= policy.approver_role) {
        return Ok(());
    }
    Err(Refusal::RoleTooLow {
        need: policy.approver_role,
        have: who.role,
    })
}

/// What the decisions add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    Waiting {
        approvals: u32,
        required: u32,
    },
    Approved,
    /// One rejection is enough to end it.
    Rejected,
}

/// The decisions so far, one per approver (`true`: approved) — the table's key makes them one
/// each; `approvers` counts distinct people all the same.
pub fn tally(policy: Policy, decisions: &[(Uuid, bool)]) -> Tally {
    if decisions.iter().any(|(_, approved)| !approved) {
        return Tally::Rejected;
    }
    let mut approvers: Vec<Uuid> = decisions.iter().map(|(u, _)| *u).collect();
    approvers.sort();
    approvers.dedup();
    let approvals = approvers.len() as u32;
    if approvals >= policy.required {
        Tally::Approved
    } else {
        Tally::Waiting {
            approvals,
            required: policy.required,
        }
    }
}

fn waiting_reason(policy: Policy, approvals: u32) -> String {
    format!(
        "awaiting approval: {approvals} of {} from {} {} or higher",
        policy.required,
        article(policy.approver_role),
        policy.approver_role
    )
}

/// The one transition into `awaiting_approval`: a deployment just recorded (`pending`, not yet
/// visible to workers: same transaction) waits for `policy`.
pub(crate) async fn enter(
    tx: &mut sqlx::PgConnection,
    id: i64,
    policy: Policy,
) -> sqlx::Result<String> {
    let reason = waiting_reason(policy, 0);
    let waiting = sqlx::query!(
        "UPDATE deployments SET state = 'awaiting_approval', approvals_required = $2, approver_role = $3, state_reason = $4
         WHERE id = $1 AND state = 'pending'",
        id,
        policy.required as i32,
        policy.approver_role.as_str(),
        reason
    )
    .execute(&mut *tx)
    .await?;
    if waiting.rows_affected() == 1 {
        crate::notify::facts::deployment(tx, id, "awaiting_approval", &reason).await?;
    }
    Ok(reason)
}

/// How a deployment stops awaiting approval.
pub(crate) enum Exit<'a> {
    Approved,
    Rejected {
        by: &'a str,
        reason: &'a str,
    },
    /// A newer deployment of the same service and environment was requested.
    Superseded,
}

/// The one transition out of `awaiting_approval`. Approved: `pending`, a canary in progress of the
/// service there is asked to make way, the freeze windows decide whether it is held, and a worker
/// is woken. Rejected and superseded: ended, with the reason.
pub(crate) async fn leave(
    tx: &mut sqlx::PgConnection,
    id: i64,
    exit: Exit<'_>,
    caller: Option<&Caller>,
) -> sqlx::Result<()> {
    match exit {
        Exit::Approved => {
            let row = sqlx::query!(
                "UPDATE deployments SET state = 'pending', state_reason = NULL
                 WHERE id = $1 AND state = 'awaiting_approval' RETURNING service_id, environment_id",
                id
            )
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(()) };
            // Held by a freeze, it does not withdraw what runs now (as a new request would not).
            if super::freezes::hold(&mut *tx, id, row.environment_id)
                .await?
                .is_none()
            {
                super::deployments::make_way(&mut *tx, row.service_id, row.environment_id, caller)
                    .await?;
            }
            sqlx::query!("SELECT pg_notify('enclii_deployments', $1)", id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        Exit::Rejected { by, reason } => {
            let said = if reason.is_empty() {
                format!("rejected by {by}")
            } else {
                format!("rejected by {by}: {reason}")
            };
            let rejected = sqlx::query!(
                "UPDATE deployments SET state = 'rejected', state_reason = $2, finished_at = now()
                 WHERE id = $1 AND state = 'awaiting_approval'",
                id,
                said
            )
            .execute(&mut *tx)
            .await?;
            if rejected.rows_affected() == 1 {
                crate::notify::facts::deployment(tx, id, "rejected", &said).await?;
            }
        }
        Exit::Superseded => {
            sqlx::query!(
                "UPDATE deployments SET state = 'superseded', finished_at = now(),
                        state_reason = 'a newer deployment was requested before this one was approved'
                 WHERE id = $1 AND state = 'awaiting_approval'",
                id
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

/// Approves (`approved`) or rejects a deployment awaiting approval, as the caller: eligible,
/// once, audited; the last approval needed sends it on, a rejection ends it.
pub async fn decide(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    id: i64,
    approved: bool,
    reason: Option<&str>,
) -> crate::Result<DeploymentSummary> {
    let project = project_access(pool, caller, project, Action::Deploy).await?;
    let Some(who) = caller else {
        return Err(ApiError::unauthenticated().into());
    };
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.len() > 1000 {
        return Err(ApiError::invalid("a reason is at most 1,000 characters").into());
    }
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        r#"SELECT d.state, d.created_by, d.approvals_required, d.approver_role
           FROM deployments d JOIN services s ON s.id = d.service_id
           WHERE d.id = $1 AND s.project_id = $2 FOR UPDATE OF d"#,
        id,
        project.id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "project `{}` has no deployment #{id}",
            project.slug
        ))
    })?;
    let state = DeploymentState::parse(&row.state).unwrap_or(DeploymentState::Failed);
    if state != DeploymentState::AwaitingApproval {
        return Err(ApiError::from(Refusal::NotAwaiting(state)).into());
    }
    let policy = Policy {
        required: row.approvals_required.max(0) as u32,
        approver_role: row
            .approver_role
            .as_deref()
            .and_then(Role::parse)
            .unwrap_or(Role::Admin),
    };
    let approver = Approver {
        user: who.user_id,
        role: project.role,
        platform_admin: who.platform_admin,
    };
    eligible(policy, row.created_by, approver).map_err(ApiError::from)?;
    let role = match project.role {
        Some(r) => r.as_str(),
        None => "platform admin",
    };
    let inserted = sqlx::query!(
        "INSERT INTO deployment_approvals (deployment_id, user_id, approved, role, display_name, reason)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        id,
        who.user_id,
        approved,
        role,
        who.display_name,
        reason
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::from(Refusal::AlreadyDecided).into());
    }
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new(if approved {
            "deployment.approve"
        } else {
            "deployment.reject"
        })
        .target("deployment", id.to_string())
        .project(project.id)
        .details(serde_json::json!({ "reason": reason, "role": role })),
    )
    .await?;
    let decisions: Vec<(Uuid, bool)> = sqlx::query!(
        "SELECT user_id, approved FROM deployment_approvals WHERE deployment_id = $1",
        id
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.user_id, r.approved))
    .collect();
    match tally(policy, &decisions) {
        Tally::Approved => leave(&mut tx, id, Exit::Approved, caller).await?,
        Tally::Rejected => {
            leave(
                &mut tx,
                id,
                Exit::Rejected {
                    by: &who.display_name,
                    reason,
                },
                caller,
            )
            .await?
        }
        Tally::Waiting { approvals, .. } => {
            sqlx::query!(
                "UPDATE deployments SET state_reason = $2 WHERE id = $1",
                id,
                waiting_reason(policy, approvals)
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(super::deployments::get(pool, caller, &project.slug, id)
        .await?
        .deployment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    const ADMINS: Policy = Policy {
        required: 2,
        approver_role: Role::Admin,
    };

    #[test]
    fn who_may_decide() {
        let requester = Some(user(1));
        let member = |n, role| Approver {
            user: user(n),
            role,
            platform_admin: false,
        };
        let cases = [
            (
                member(1, Some(Role::Owner)),
                requester,
                Some(Refusal::OwnDeployment),
            ),
            (member(2, Some(Role::Owner)), requester, None),
            (member(2, Some(Role::Admin)), requester, None),
            (
                member(2, Some(Role::Developer)),
                requester,
                Some(Refusal::RoleTooLow {
                    need: Role::Admin,
                    have: Some(Role::Developer),
                }),
            ),
            (
                member(2, Some(Role::Viewer)),
                requester,
                Some(Refusal::RoleTooLow {
                    need: Role::Admin,
                    have: Some(Role::Viewer),
                }),
            ),
            (
                Approver {
                    user: user(3),
                    role: None,
                    platform_admin: true,
                },
                requester,
                None,
            ),
            // Platform admins do not approve their own requests either.
            (
                Approver {
                    user: user(1),
                    role: None,
                    platform_admin: true,
                },
                requester,
                Some(Refusal::OwnDeployment),
            ),
            // A build's deployment has no requester: any eligible member decides.
            (member(1, Some(Role::Admin)), None, None),
        ];
        for (i, (who, requester, refused)) in cases.into_iter().enumerate() {
            assert_eq!(
                eligible(ADMINS, requester, who).err(),
                refused,
                "case {i}: {who:?}"
            );
        }
        let developers = Policy {
            required: 1,
            approver_role: Role::Developer,
        };
        assert!(eligible(developers, requester, member(2, Some(Role::Developer))).is_ok());
        assert_eq!(
            Refusal::RoleTooLow {
                need: Role::Admin,
                have: Some(Role::Developer)
            }
            .to_string(),
            "deciding on deployments to this environment needs an admin or higher; you are a developer"
        );
    }

    #[test]
    fn what_the_decisions_add_up_to() {
        let cases: [(&[(Uuid, bool)], Tally); 6] = [
            (
                &[],
                Tally::Waiting {
                    approvals: 0,
                    required: 2,
                },
            ),
            (
                &[(user(2), true)],
                Tally::Waiting {
                    approvals: 1,
                    required: 2,
                },
            ),
            // The same person twice counts once.
            (
                &[(user(2), true), (user(2), true)],
                Tally::Waiting {
                    approvals: 1,
                    required: 2,
                },
            ),
            (&[(user(2), true), (user(3), true)], Tally::Approved),
            (&[(user(2), true), (user(3), false)], Tally::Rejected),
            (&[(user(3), false)], Tally::Rejected),
        ];
        for (decisions, expected) in cases {
            assert_eq!(tally(ADMINS, decisions), expected, "{decisions:?}");
        }
    }
}
