//! Who belongs to a project, with which role. Admins manage developers and viewers; only owners
//! grant or take away admin and owner, and the last owner cannot leave.
//!
//! People are named by email, and an email names only an account that signed in with it verified
//! (`users.email` holds nothing else: see [`crate::auth::users`]). Addresses are not unique, so
//! an address binds to the account that verified it first, and the membership to that account's
//! (issuer, subject) from then on: an account that verifies the same address later gains nothing.
//!
//! Every change of a membership first locks the project's row ([`lock_memberships`]): two owners
//! demoting or removing each other at once each counted the other as the remaining owner, and both
//! succeeded, leaving nobody. Under the lock the changes run one after the other, the second counts
//! the owners the first left, and the caller's own role is read again (the first may have taken
//! it away).

use enclii_api::{ApiError, Member, Role};
use sqlx::PgPool;

use super::project_access;
use crate::audit;
use crate::auth::{self, Action, Caller};

pub async fn list(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
) -> crate::Result<Vec<Member>> {
    let project = project_access(pool, caller, project, Action::ViewProject).await?;
    let rows = sqlx::query!(
        r#"SELECT u.email, u.display_name, m.role, m.created_at
           FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1
           ORDER BY u.display_name"#,
        project.id
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Member {
            email: r.email,
            display_name: r.display_name,
            role: Role::parse(&r.role).unwrap_or(Role::Viewer),
            since: r.created_at,
        })
        .collect())
}

/// Gives `email` the role `role` on the project (adding them if needed). The user must have signed
/// in once with that address verified, so that their identity is known. A member with that address
/// comes first (a role change), then the account that verified it first (an addition).
pub async fn set(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    email: &str,
    role: Role,
) -> crate::Result<Member> {
    let project = project_access(pool, caller, project, Action::ManageMembers).await?;
    let mut tx = pool.begin().await?;
    let mine = lock_memberships(&mut tx, caller, project.id).await?;
    let user = sqlx::query!(
        r#"SELECT u.id, u.email, u.display_name FROM users u
           LEFT JOIN memberships m ON m.user_id = u.id AND m.project_id = $2
           WHERE lower(u.email) = lower($1)
           ORDER BY m.user_id IS NULL, u.email_verified_at, u.created_at, u.id
           LIMIT 1"#,
        email,
        project.id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "nobody has signed in to Enclii with the verified email {email} yet"
        ))
    })?;
    let current: Option<String> = sqlx::query_scalar!(
        "SELECT role FROM memberships WHERE project_id = $1 AND user_id = $2 FOR UPDATE",
        project.id,
        user.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let current = current.as_deref().and_then(Role::parse);
    if (role >= Role::Admin || current.is_some_and(|c| c >= Role::Admin)) && mine < Role::Owner {
        return Err(
            ApiError::forbidden("only owners grant or change the admin and owner roles").into(),
        );
    }
    if current == Some(Role::Owner) && role != Role::Owner {
        last_owner_guard(&mut tx, project.id).await?;
    }
    let since = sqlx::query_scalar!(
        r#"INSERT INTO memberships (project_id, user_id, role) VALUES ($1, $2, $3)
           ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role RETURNING created_at"#,
        project.id,
        user.id,
        role.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("member.set")
            .target("user", user.id.to_string())
            .project(project.id)
            .details(serde_json::json!({ "email": email, "role": role.as_str() })),
    )
    .await?;
    tx.commit().await?;
    Ok(Member {
        email: user.email,
        display_name: user.display_name,
        role,
        since,
    })
}

pub async fn remove(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    email: &str,
) -> crate::Result<()> {
    let project = project_access(pool, caller, project, Action::ManageMembers).await?;
    let mut tx = pool.begin().await?;
    let mine = lock_memberships(&mut tx, caller, project.id).await?;
    // Of members sharing an address (each verified it), the first to verify it goes first.
    let row = sqlx::query!(
        "SELECT m.user_id, m.role FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.project_id = $1 AND lower(u.email) = lower($2)
         ORDER BY u.email_verified_at, u.created_at, u.id LIMIT 1 FOR UPDATE OF m",
        project.id,
        email
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("{email} is not a member of this project")))?;
    let role = Role::parse(&row.role).unwrap_or(Role::Viewer);
    if role >= Role::Admin && mine < Role::Owner {
        return Err(ApiError::forbidden("only owners remove admins and owners").into());
    }
    if role == Role::Owner {
        last_owner_guard(&mut tx, project.id).await?;
    }
    sqlx::query!(
        "DELETE FROM memberships WHERE project_id = $1 AND user_id = $2",
        project.id,
        row.user_id
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("member.remove")
            .target("user", row.user_id.to_string())
            .project(project.id)
            .details(serde_json::json!({ "email": email })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Locks the project's memberships until the transaction ends (a row lock on the project, which
/// every membership change takes first) and returns the caller's role as it is now, refusing a
/// caller who may no longer manage members. Platform admins act as owners.
async fn lock_memberships(
    tx: &mut sqlx::PgConnection,
    caller: Option<&Caller>,
    project_id: uuid::Uuid,
) -> crate::Result<Role> {
    let who = caller.ok_or_else(ApiError::unauthenticated)?;
    let row = sqlx::query!(
        r#"SELECT m.role AS "role?"
           FROM projects p LEFT JOIN memberships m ON m.project_id = p.id AND m.user_id = $2
           WHERE p.id = $1
           FOR UPDATE OF p"#,
        project_id,
        who.user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("this project no longer exists"))?;
    if who.platform_admin {
        return Ok(Role::Owner);
    }
    let mine = row.role.as_deref().and_then(Role::parse);
    auth::authorize(caller, Action::ManageMembers, mine)?;
    Ok(mine.unwrap_or(Role::Viewer))
}

/// Called under [`lock_memberships`], so that the count cannot change before the commit.
async fn last_owner_guard(
    tx: &mut sqlx::PgConnection,
    project_id: uuid::Uuid,
) -> crate::Result<()> {
    let owners: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM memberships WHERE project_id = $1 AND role = 'owner'"#,
        project_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if owners <= 1 {
        return Err(ApiError::conflict(
            "a project keeps at least one owner; make someone else owner first",
        )
        .into());
    }
    Ok(())
}
