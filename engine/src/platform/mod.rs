//! The platform model: projects and their environments, services and their spec revisions,
//! releases and deployments. Every function takes the caller and checks the action it performs
//! against the caller's role before touching anything.

pub mod approvals;
pub mod deployments;
pub mod dns;
pub mod domains;
pub mod env;
pub mod environments;
pub mod freezes;
pub mod jobs;
pub mod members;
pub mod metrics;
pub mod projects;
pub mod services;

use enclii_api::{ApiError, Role};
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit;
use crate::auth::{self, Action, Caller};

/// A project the caller has been allowed to act on.
#[derive(Debug, Clone)]
pub struct ProjectRef {
    pub id: Uuid,
    pub slug: String,
    pub role: Option<Role>,
}

/// Loads the project by slug and checks `action` against the caller's role on it. Refusals of
/// signed-in callers are audited.
pub async fn project_access(
    pool: &PgPool,
    caller: Option<&Caller>,
    slug: &str,
    action: Action,
) -> crate::Result<ProjectRef> {
    let Some(who) = caller else {
        return Err(ApiError::unauthenticated().into());
    };
    let project = who
        .projects
        .get_or_read(slug, || async {
            let row = sqlx::query!(
                r#"SELECT p.id, p.slug, m.role AS "role?"
                   FROM projects p LEFT JOIN memberships m ON m.project_id = p.id AND m.user_id = $2
                   WHERE p.slug = $1"#,
                slug,
                who.user_id
            )
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| ProjectRef {
                id: r.id,
                slug: r.slug,
                role: r.role.as_deref().and_then(Role::parse),
            }))
        })
        .await?;
    let decision = match &project {
        Some(p) => auth::authorize(caller, action, p.role),
        None if who.platform_admin => {
            Err(ApiError::not_found(format!("there is no project `{slug}`")))
        }
        None => Err(ApiError::not_found(
            "no such project, or you are not a member of it",
        )),
    };
    match (decision, project) {
        (Ok(()), Some(project)) => Ok(project),
        (decision, project) => {
            let e = decision
                .err()
                .unwrap_or_else(|| ApiError::not_found(format!("there is no project `{slug}`")));
            let event = audit::Event::new("access.denied")
                .target("project", slug)
                .details(
                    serde_json::json!({ "action": format!("{action:?}"), "reason": e.message() }),
                );
            let event = match &project {
                Some(p) => event.project(p.id),
                None => event,
            };
            audit::record(pool, caller, event).await?;
            Err(e.into())
        }
    }
}

/// A service in one environment of its project, and the namespace it runs in there.
pub struct Placement {
    pub service_id: Uuid,
    pub environment_id: Uuid,
    pub namespace: String,
}

/// Finds `service` and `environment` of a project the caller was already allowed to act on.
pub async fn locate(
    db: impl sqlx::PgExecutor<'_>,
    project: &ProjectRef,
    service: &str,
    environment: &str,
) -> crate::Result<Placement> {
    let row = sqlx::query!(
        "SELECT s.id AS service_id, e.id AS environment_id, e.namespace FROM services s JOIN environments e ON e.project_id = s.project_id
         WHERE s.project_id = $1 AND s.name = $2 AND e.name = $3",
        project.id,
        service,
        environment
    )
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("project `{}` has no service `{service}` or no environment `{environment}`", project.slug)))?;
    Ok(Placement {
        service_id: row.service_id,
        environment_id: row.environment_id,
        namespace: row.namespace,
    })
}

/// Keyset cursors: opaque to clients, a string key to us.
pub(crate) fn page_limit(limit: Option<u32>) -> i64 {
    i64::from(limit.unwrap_or(50).clamp(1, 200))
}

/// A page from rows fetched with `limit + 1`: the extra row only says that a next page exists, and
/// the last kept row's key is the cursor for it.
pub(crate) fn keyset_page<T>(
    mut items: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> String,
) -> enclii_api::Page<T> {
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(key)
    } else {
        None
    };
    enclii_api::Page { items, next }
}
