//! Projects and their environments. A new project gets `production` and `staging`, each with its
//! own Kubernetes namespace, and its creator as owner.

use enclii_api::{ApiError, Environment, Project, Role};
use sqlx::PgPool;

use crate::audit;
use crate::auth::{self, Action, Caller};

/// Environments every project starts with, and the branch that deploys to each automatically.
pub const DEFAULT_ENVIRONMENTS: [(&str, Option<&str>); 2] =
    [("production", Some("main")), ("staging", None)];

/// Project slugs are DNS labels short enough that `{slug}--{environment}` is still one.
pub const MAX_SLUG: usize = 40;
/// The separator between project and environment in a namespace: neither may contain it, so no
/// two (project, environment) pairs share a namespace (`a` + `b-production` and `a-b` +
/// `production` do not meet), and no tenant namespace is one of the cluster's own (`kube-system`,
/// `default`, Switchyard's), none of which contains it.
pub const SEPARATOR: &str = "--";
/// Kubernetes' limit on a namespace name (a DNS label).
pub const MAX_NAMESPACE: usize = 63;

pub fn validate_slug(slug: &str) -> Result<(), ApiError> {
    if slug.len() > MAX_SLUG {
        return Err(ApiError::invalid(format!(
            "project names are at most {MAX_SLUG} characters; `{slug}` has {}",
            slug.len()
        )));
    }
    enclii_spec::rules::dns_label(slug)
        .map_err(|why| ApiError::invalid(format!("project name {why}")))?;
    if slug.contains(SEPARATOR) {
        return Err(ApiError::invalid(format!(
            "project name `{slug}` contains `{SEPARATOR}`, which separates project and environment in namespaces"
        )));
    }
    Ok(())
}

/// The namespace of a project's environment; `prefix` is the platform's `cluster.namespace_prefix`.
pub fn namespace_for(prefix: &str, project: &str, environment: &str) -> String {
    format!("{prefix}{project}{SEPARATOR}{environment}")
}

/// An environment name, and the namespace it gives, are both valid.
pub fn validate_environment(namespace: &str, name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains(SEPARATOR);
    if !valid {
        return Err(ApiError::invalid(format!(
            "`{name}` is not an environment name: 1 to 32 lowercase letters, digits or single hyphens"
        )));
    }
    if namespace.len() > MAX_NAMESPACE {
        return Err(ApiError::invalid(format!(
            "the namespace `{namespace}` would be {} characters; Kubernetes allows {MAX_NAMESPACE}: choose a shorter environment name",
            namespace.len()
        )));
    }
    Ok(())
}

pub async fn create(
    pool: &PgPool,
    namespace_prefix: &str,
    caller: Option<&Caller>,
    slug: &str,
    description: &str,
) -> crate::Result<Project> {
    auth::authorize(caller, Action::CreateProject, None)?;
    let Some(who) = caller else {
        return Err(ApiError::unauthenticated().into());
    };
    validate_slug(slug)?;
    for (name, _) in DEFAULT_ENVIRONMENTS {
        validate_environment(&namespace_for(namespace_prefix, slug, name), name)?;
    }
    let mut tx = pool.begin().await?;
    let created = sqlx::query!(
        r#"INSERT INTO projects (slug, description, created_by) VALUES ($1, $2, $3)
           ON CONFLICT (slug) DO NOTHING RETURNING id, created_at"#,
        slug,
        description,
        who.user_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(created) = created else {
        return Err(ApiError::conflict(format!("a project named `{slug}` already exists")).into());
    };
    sqlx::query!(
        "INSERT INTO memberships (project_id, user_id, role) VALUES ($1, $2, 'owner')",
        created.id,
        who.user_id
    )
    .execute(&mut *tx)
    .await?;
    let mut environments = Vec::new();
    for (name, branch) in DEFAULT_ENVIRONMENTS {
        let namespace = namespace_for(namespace_prefix, slug, name);
        sqlx::query!(
            "INSERT INTO environments (project_id, name, namespace, deploy_branch) VALUES ($1, $2, $3, $4)",
            created.id,
            name,
            namespace,
            branch
        )
        .execute(&mut *tx)
        .await?;
        environments.push(Environment {
            name: name.to_owned(),
            namespace,
            cluster: "default".into(),
            deploy_branch: branch.map(str::to_owned),
        });
    }
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("project.create")
            .target("project", slug)
            .project(created.id),
    )
    .await?;
    tx.commit().await?;
    Ok(Project {
        slug: slug.to_owned(),
        description: description.to_owned(),
        created_at: created.created_at,
        role: Some(Role::Owner),
        environments,
        service_count: 0,
    })
}

/// The projects the caller is a member of (every project, for platform admins), by slug.
/// A project as the dashboard shows it: with its environments and how many services it has.
struct ProjectRow {
    slug: String,
    description: String,
    created_at: chrono::DateTime<chrono::Utc>,
    role: Option<String>,
    service_count: i64,
    environments: sqlx::types::Json<Vec<enclii_api::Environment>>,
}

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Self {
        Project {
            slug: r.slug,
            description: r.description,
            created_at: r.created_at,
            role: r.role.as_deref().and_then(Role::parse),
            environments: r.environments.0,
            service_count: r.service_count,
        }
    }
}

pub async fn list(pool: &PgPool, caller: Option<&Caller>) -> crate::Result<Vec<Project>> {
    auth::authorize(caller, Action::ListProjects, None)?;
    let Some(who) = caller else {
        return Err(ApiError::unauthenticated().into());
    };
    let rows = sqlx::query_as!(
        ProjectRow,
        r#"SELECT p.slug, p.description, p.created_at, m.role AS "role?",
                  (SELECT count(*) FROM services s WHERE s.project_id = p.id) AS "service_count!",
                  COALESCE((SELECT json_agg(json_build_object('name', e.name, 'namespace', e.namespace,
                                    'cluster', e.cluster, 'deploy_branch', e.deploy_branch) ORDER BY e.name)
                            FROM environments e WHERE e.project_id = p.id), '[]') AS "environments!: sqlx::types::Json<Vec<enclii_api::Environment>>"
           FROM projects p LEFT JOIN memberships m ON m.project_id = p.id AND m.user_id = $1
           WHERE m.user_id IS NOT NULL OR $2
           ORDER BY p.slug"#,
        who.user_id,
        who.platform_admin
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Project::from).collect())
}

/// One project the caller may view (its page needs its environments, not every project's).
pub async fn get(pool: &PgPool, caller: Option<&Caller>, slug: &str) -> crate::Result<Project> {
    let project = super::project_access(pool, caller, slug, Action::ViewProject).await?;
    let row = sqlx::query_as!(
        ProjectRow,
        r#"SELECT p.slug, p.description, p.created_at, $2::text AS "role?",
                  (SELECT count(*) FROM services s WHERE s.project_id = p.id) AS "service_count!",
                  COALESCE((SELECT json_agg(json_build_object('name', e.name, 'namespace', e.namespace,
                                    'cluster', e.cluster, 'deploy_branch', e.deploy_branch) ORDER BY e.name)
                            FROM environments e WHERE e.project_id = p.id), '[]') AS "environments!: sqlx::types::Json<Vec<enclii_api::Environment>>"
           FROM projects p WHERE p.id = $1"#,
        project.id,
        project.role.map(|r| r.as_str())
    )
    .fetch_one(pool)
    .await?;
    Ok(row.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_dns_labels() {
        assert!(validate_slug("enclii-platform").is_ok());
        assert!(validate_slug("Bad_Name").is_err());
        assert!(validate_slug(&"a".repeat(41)).is_err());
        assert_eq!(namespace_for("", "shop", "production"), "shop--production");
        assert_eq!(
            namespace_for("t1-", "shop", "production"),
            "t1-shop--production"
        );
    }

    #[test]
    fn no_two_projects_share_a_namespace_and_none_is_the_clusters_own() {
        // `a` + `b-production` and `a-b` + `production`: distinct.
        assert_ne!(
            namespace_for("", "a", "b-production"),
            namespace_for("", "a-b", "production")
        );
        assert!(validate_slug("a--b").is_err());
        let ns = namespace_for("", "a", "b--c");
        assert!(validate_environment(&ns, "b--c").is_err());
        // No slug or environment gives a namespace without the separator.
        for (project, env) in [
            ("kube", "system"),
            ("enclii", "builds"),
            ("kube-node", "lease"),
        ] {
            let ns = namespace_for("", project, env);
            assert!(ns.contains(SEPARATOR), "{ns}");
            assert!(
                !["kube-system", "enclii-builds", "kube-node-lease", "default"]
                    .contains(&ns.as_str())
            );
        }
        let long = namespace_for("", &"a".repeat(40), &"e".repeat(22));
        let e = validate_environment(&long, &"e".repeat(22)).unwrap_err();
        assert!(
            e.to_string()
                .contains("64 characters; Kubernetes allows 63"),
            "{e}"
        );
    }
}

/// Adds an environment to a project (admin), with its own namespace and, optionally, the branch
/// whose pushes deploy to it.
pub async fn create_environment(
    pool: &PgPool,
    namespace_prefix: &str,
    caller: Option<&Caller>,
    project: &str,
    name: &str,
    deploy_branch: Option<&str>,
) -> crate::Result<Environment> {
    let project = super::project_access(pool, caller, project, Action::ManageEnvironments).await?;
    let namespace = namespace_for(namespace_prefix, &project.slug, name);
    validate_environment(&namespace, name)?;
    if crate::previews::is_preview_name(name) {
        return Err(ApiError::invalid(format!(
            "`{name}` is reserved for the preview of a pull request; choose another name"
        ))
        .into());
    }
    if let Some(b) = deploy_branch {
        if b.is_empty() || b.len() > 200 || b.contains(|c: char| c.is_whitespace()) {
            return Err(ApiError::invalid(format!("`{b}` is not a branch name")).into());
        }
    }
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO environments (project_id, name, namespace, deploy_branch) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        project.id,
        name,
        namespace,
        deploy_branch
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::conflict(format!(
            "project `{}` already has an environment `{name}` (or namespace {namespace} is taken)",
            project.slug
        ))
        .into());
    }
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("environment.create")
            .target("environment", name.to_owned())
            .project(project.id)
            .details(serde_json::json!({ "namespace": namespace, "deploy_branch": deploy_branch })),
    )
    .await?;
    tx.commit().await?;
    Ok(Environment {
        name: name.to_owned(),
        namespace,
        cluster: "default".into(),
        deploy_branch: deploy_branch.map(str::to_owned),
    })
}
