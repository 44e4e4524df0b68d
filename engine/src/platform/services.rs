//! Services and their spec revisions. Importing keeps every revision as written, refuses invalid
//! specs with every problem located, does nothing for an identical file, and shows a readable diff
//! for a changed one.

use enclii_api::{ApiError, ImportOutcome, Page, ServiceSummary, SpecRevision};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::{page_limit, project_access};
use crate::audit;
use crate::auth::{Action, Caller};

/// `status` bounds the spec's monitoring targets (`monitor::check_spec_targets`).
pub async fn import(
    pool: &PgPool,
    status: &crate::config::StatusSettings,
    caller: Option<&Caller>,
    project: Option<&str>,
    source: &str,
) -> crate::Result<ImportOutcome> {
    if caller.is_none() {
        return Err(ApiError::unauthenticated().into());
    }
    let file = enclii_spec::parse(source).map_err(|diagnostics| {
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        ApiError::Invalid {
            message: format!(
                "the spec has {errors} error{}",
                if errors == 1 { "" } else { "s" }
            ),
            diagnostics: diagnostics.into_iter().map(wire).collect(),
        }
    })?;
    let meta = &file.service.metadata;
    let slug = match (project, meta.project.as_deref()) {
        (Some(given), Some(named)) if given != named => {
            return Err(ApiError::invalid(format!(
                "the spec belongs to project `{named}`, not `{given}`"
            ))
            .into());
        }
        (Some(slug), _) | (None, Some(slug)) => slug,
        (None, None) => {
            return Err(ApiError::invalid(
                "the spec names no `metadata.project`; say which project to import it into",
            )
            .into());
        }
    };
    let project = project_access(pool, caller, slug, Action::ImportSpec).await?;
    // Before the transaction: it may wait on DNS.
    crate::monitor::check_spec_targets(status, &file.service).await?;
    let name = meta.name.as_str();
    let digest = hex(&Sha256::digest(source.as_bytes()));

    let mut tx = pool.begin().await?;
    // Serialises concurrent imports of one service, so revisions are numbered without gaps.
    let created = sqlx::query!(
        "INSERT INTO services (project_id, name) VALUES ($1, $2) ON CONFLICT (project_id, name) DO NOTHING",
        project.id,
        name
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let service = sqlx::query!(
        "SELECT id, current_revision FROM services WHERE project_id = $1 AND name = $2 FOR UPDATE",
        project.id,
        name
    )
    .fetch_one(&mut *tx)
    .await?;
    let previous = sqlx::query!(
        "SELECT source, source_sha256 FROM spec_revisions WHERE service_id = $1 AND revision = $2",
        service.id,
        service.current_revision
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(prev) = &previous {
        if prev.source_sha256 == digest {
            tx.rollback().await?;
            return Ok(ImportOutcome {
                project: project.slug,
                service: name.to_owned(),
                revision: service.current_revision,
                created: false,
                changed: false,
                diff: None,
                warnings: file.warnings.into_iter().map(wire).collect(),
            });
        }
    }
    crate::monitor::check_project_targets(&mut tx, status, project.id, name, &file.service).await?;
    let revision = service.current_revision + 1;
    let spec_json = serde_json::to_value(&file.service).map_err(|e| {
        tracing::error!(error = %e, "spec did not serialize");
        ApiError::internal()
    })?;
    let extras: Vec<serde_json::Value> =
        file.extra_objects.iter().map(|o| o.body.clone()).collect();
    let who = caller.map(|c| c.user_id);
    sqlx::query!(
        r#"INSERT INTO spec_revisions (service_id, revision, source, source_sha256, spec, extra_objects, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        service.id,
        revision,
        source,
        digest,
        spec_json,
        serde_json::Value::Array(extras),
        who
    )
    .execute(&mut *tx)
    .await?;
    let git = file.service.spec.build.source.as_ref().map(|s| &s.git);
    sqlx::query!(
        r#"UPDATE services SET current_revision = $2, description = $3, git_repository = $4, git_branch = $5,
                  git_path = $6, auto_deploy = $7, updated_at = now()
           WHERE id = $1"#,
        service.id,
        revision,
        meta.description.clone().unwrap_or_default(),
        git.map(|g| normalize_repository(&g.repository)),
        git.map(|g| g.branch.clone()),
        git.and_then(|g| g.path.clone()),
        git.is_some_and(|g| g.auto_deploy),
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new(if created {
            "service.create"
        } else {
            "service.import"
        })
        .target("service", format!("{}/{name}", project.slug))
        .project(project.id)
        .details(serde_json::json!({ "revision": revision })),
    )
    .await?;
    tx.commit().await?;
    // After the commit: the diff is CPU work on caller-sized input, and the service's row lock
    // must not wait on it (other imports and deploys of the service queue behind that lock).
    let diff = previous
        .as_ref()
        .map(|p| unified_diff(&p.source, source, revision - 1, revision));
    Ok(ImportOutcome {
        project: project.slug,
        service: name.to_owned(),
        revision,
        created,
        changed: true,
        diff,
        warnings: file.warnings.into_iter().map(wire).collect(),
    })
}

/// Checks a spec without importing it (any signed-in caller): every error and warning, located.
pub fn validate(
    caller: Option<&Caller>,
    source: &str,
) -> crate::Result<Vec<enclii_api::Diagnostic>> {
    if caller.is_none() {
        return Err(ApiError::unauthenticated().into());
    }
    Ok(match enclii_spec::parse(source) {
        Ok(file) => file.warnings.into_iter().map(wire).collect(),
        Err(diagnostics) => diagnostics.into_iter().map(wire).collect(),
    })
}

/// Services of a project by name, `limit` at a time after `cursor` (a service name).
pub async fn list(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> crate::Result<Page<ServiceSummary>> {
    let project = project_access(pool, caller, project, Action::ViewProject).await?;
    let limit = page_limit(limit);
    // One row per service and environment, the service's columns repeated: building a JSON array
    // per service in PostgreSQL and parsing it here cost more (0.52 vs 0.32 ms for a page of 50).
    let rows = sqlx::query!(
        r#"SELECT s.name, s.description, s.current_revision, s.auto_deploy, s.git_repository, s.git_branch, s.updated_at,
                  x.id AS "deployment_id?", x.environment AS "environment?", x.state AS "state?",
                  x.state_reason AS "state_reason?", x.strategy AS "strategy?", x.image AS "image?",
                  x.spec_revision AS "spec_revision?", x.created_at AS "deployed_at?", x.finished_at AS "finished_at?"
           FROM (SELECT * FROM services
                 WHERE project_id = $1 AND name > COALESCE($2, '')
                 ORDER BY name LIMIT $3) s
                -- The newest deployment per environment: one index probe each
                -- (deployments_latest), however long the history.
                LEFT JOIN LATERAL (
                    SELECT dep.id, e.name AS environment, dep.state, dep.state_reason, dep.strategy,
                           r.image_ref AS image, r.spec_revision, dep.created_at, dep.finished_at
                    FROM environments e
                         JOIN LATERAL (SELECT * FROM deployments d
                                       WHERE d.service_id = s.id AND d.environment_id = e.id
                                       ORDER BY d.id DESC LIMIT 1) dep ON true
                         JOIN releases r ON r.id = dep.release_id
                    WHERE e.project_id = s.project_id) x ON true
           ORDER BY s.name, x.environment"#,
        project.id,
        cursor,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let mut items: Vec<ServiceSummary> = Vec::new();
    for r in rows {
        if items.last().is_none_or(|s| s.name != r.name) {
            items.push(ServiceSummary {
                project: project.slug.clone(),
                name: r.name.clone(),
                description: r.description,
                revision: r.current_revision,
                auto_deploy: r.auto_deploy,
                git_repository: r.git_repository,
                git_branch: r.git_branch,
                updated_at: r.updated_at,
                latest: Vec::new(),
            });
        }
        // A service never deployed has one row, its deployment columns all null.
        let (
            Some(id),
            Some(environment),
            Some(state),
            Some(strategy),
            Some(image_ref),
            Some(spec_revision),
            Some(created_at),
        ) = (
            r.deployment_id,
            r.environment,
            r.state,
            r.strategy,
            r.image,
            r.spec_revision,
            r.deployed_at,
        )
        else {
            continue;
        };
        if let Some(service) = items.last_mut() {
            service.latest.push(
                super::deployments::SummaryRow {
                    id,
                    project: project.slug.clone(),
                    service: r.name,
                    environment,
                    state,
                    state_reason: r.state_reason,
                    strategy,
                    image_ref,
                    spec_revision,
                    created_at,
                    finished_at: r.finished_at,
                }
                .into(),
            );
        }
    }
    Ok(crate::platform::keyset_page(items, limit, |s| {
        s.name.clone()
    }))
}

/// The revisions of a service's spec, newest first, each with its diff to the one before: every
/// one, or the newest `limit` (the overview shows one; diffing the whole history for it would be
/// waste).
pub async fn revisions(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    limit: Option<u32>,
) -> crate::Result<Vec<SpecRevision>> {
    let project = project_access(pool, caller, project, Action::ViewProject).await?;
    // One more than asked for: the oldest one shown needs the one before it for its diff.
    let fetch = limit.map(|l| i64::from(l) + 1);
    let mut rows = sqlx::query!(
        r#"SELECT r.revision, r.created_at, r.source, u.display_name AS "created_by?"
           FROM spec_revisions r JOIN services s ON s.id = r.service_id
                LEFT JOIN users u ON u.id = r.created_by
           WHERE s.project_id = $1 AND s.name = $2
           ORDER BY r.revision DESC
           LIMIT $3"#,
        project.id,
        service,
        fetch
    )
    .fetch_all(pool)
    .await?;
    rows.reverse();
    if rows.is_empty() {
        return Err(ApiError::not_found(format!(
            "project `{}` has no service `{service}`",
            project.slug
        ))
        .into());
    }
    let mut out: Vec<SpecRevision> = Vec::with_capacity(rows.len());
    let mut before: Option<&str> = None;
    for r in &rows {
        out.push(SpecRevision {
            revision: r.revision,
            created_at: r.created_at,
            created_by: r.created_by.clone(),
            source: r.source.clone(),
            diff: before.map(|b| unified_diff(b, &r.source, r.revision - 1, r.revision)),
        });
        before = Some(&r.source);
    }
    out.reverse();
    if let Some(limit) = limit {
        out.truncate(limit as usize);
    }
    Ok(out)
}

/// A spec diagnostic in its wire form.
fn wire(d: enclii_spec::Diagnostic) -> enclii_api::Diagnostic {
    enclii_api::Diagnostic {
        severity: match d.severity {
            enclii_spec::Severity::Error => enclii_api::Severity::Error,
            enclii_spec::Severity::Warning => enclii_api::Severity::Warning,
        },
        pos: enclii_api::Pos {
            line: d.pos.line,
            col: d.pos.col,
        },
        message: d.message,
    }
}

/// Specs larger than this together are not line-diffed: a request body may be megabytes, and the
/// diff (and its rendering on the revisions page) grows with it.
const DIFF_MAX_BYTES: usize = 256 * 1024;

/// How long one diff may search for the smallest set of changes. Myers' algorithm is quadratic in
/// the worst case (two unrelated files); past this it settles for a larger, still correct, diff.
const DIFF_TIMEOUT: Duration = Duration::from_millis(200);

/// A unified diff with three lines of context, headed by the two revision numbers; for specs too
/// large to diff, the headers and a line saying so.
pub fn unified_diff(old: &str, new: &str, old_rev: i32, new_rev: i32) -> String {
    let (old_name, new_name) = (format!("revision {old_rev}"), format!("revision {new_rev}"));
    if old.len() + new.len() > DIFF_MAX_BYTES {
        return format!(
            "--- {old_name}\n+++ {new_name}\n# too large to diff (over {} KiB together); compare \
             the two revisions' sources instead\n",
            DIFF_MAX_BYTES / 1024
        );
    }
    similar::TextDiff::configure()
        .timeout(DIFF_TIMEOUT)
        .diff_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&old_name, &new_name)
        .to_string()
}

/// One spelling per repository, so that a webhook's URL finds the services that build from it:
/// `git@github.com:Org/Repo.git`, `https://github.com/org/repo/` and `…/repo.git` are the same.
pub fn normalize_repository(url: &str) -> String {
    let url = url.trim();
    let rest = if let Some(scp) = url.strip_prefix("git@") {
        scp.replacen(':', "/", 1)
    } else {
        url.trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_start_matches("ssh://git@")
            .to_owned()
    };
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix(".git").unwrap_or(rest);
    format!("https://{}", rest.to_ascii_lowercase())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_normalise_to_one_spelling() {
        let want = "https://github.com/madfam-io/enclii";
        for url in [
            "https://github.com/madfam-io/enclii",
            "https://github.com/madfam-io/enclii.git",
            "https://github.com/Madfam-IO/Enclii/",
            "git@github.com:madfam-io/enclii.git",
            "ssh://git@github.com/madfam-io/enclii",
        ] {
            assert_eq!(normalize_repository(url), want, "{url}");
        }
    }

    #[test]
    fn specs_too_large_to_diff_say_so_instead() {
        let old = "a: 1\n".repeat(40_000);
        let new = "b: 2\n".repeat(40_000);
        let d = unified_diff(&old, &new, 1, 2);
        assert!(d.starts_with("--- revision 1\n+++ revision 2\n"), "{d}");
        assert!(d.contains("too large to diff"), "{d}");
        assert!(d.len() < 300, "no line diff: {} bytes", d.len());
    }

    /// Two unrelated specs just under the size limit: the worst case of the line diff, bounded by
    /// its timeout (without one this took over three seconds in a debug build, all of it inside the
    /// import's transaction).
    #[test]
    fn a_worst_case_diff_is_bounded_in_time() {
        let lines =
            |tag: &str| -> String { (0..7_000).map(|i| format!("{tag}{i:08}: x\n")).collect() };
        let (old, new) = (lines("old"), lines("new"));
        assert!(old.len() + new.len() <= DIFF_MAX_BYTES);
        let started = std::time::Instant::now();
        let d = unified_diff(&old, &new, 1, 2);
        let took = started.elapsed();
        assert!(d.contains("-old00000000: x\n") && d.contains("+new00006999: x\n"));
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }

    #[test]
    fn diffs_show_changed_lines_with_revision_headers() {
        let d = unified_diff("a: 1\nb: 2\n", "a: 1\nb: 3\n", 1, 2);
        assert!(d.starts_with("--- revision 1\n+++ revision 2\n"), "{d}");
        assert!(d.contains("-b: 2\n+b: 3\n"), "{d}");
    }
}

/// The live status of a service in every environment of its project (viewer).
pub async fn status(
    engine: &crate::Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
) -> crate::Result<Vec<enclii_api::ServiceStatus>> {
    let project = project_access(&engine.pool, caller, project, Action::ViewProject).await?;
    let envs = sqlx::query!(
        "SELECT e.name, e.namespace FROM environments e JOIN services s ON s.project_id = e.project_id
         WHERE e.project_id = $1 AND s.name = $2 ORDER BY e.name",
        project.id,
        service
    )
    .fetch_all(&engine.pool)
    .await?;
    if envs.is_empty() {
        return Err(ApiError::not_found(format!(
            "project `{}` has no service `{service}`",
            project.slug
        ))
        .into());
    }
    let mut out = Vec::with_capacity(envs.len());
    for e in envs {
        let client = engine.cluster(&e.name)?;
        out.push(
            crate::deploy::status::read(client, &e.name, &e.namespace, service)
                .await
                .map_err(|message| ApiError::Unavailable { message })?,
        );
    }
    Ok(out)
}

/// Where a service runs in each environment of its project (viewer): the clients and namespaces a
/// live status page watches.
pub async fn placements(
    engine: &crate::Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
) -> crate::Result<Vec<(kube::Client, String)>> {
    let project = project_access(&engine.pool, caller, project, Action::ViewProject).await?;
    let envs = sqlx::query!(
        "SELECT e.name, e.namespace FROM environments e JOIN services s ON s.project_id = e.project_id
         WHERE e.project_id = $1 AND s.name = $2 ORDER BY e.name",
        project.id,
        service
    )
    .fetch_all(&engine.pool)
    .await?;
    if envs.is_empty() {
        return Err(ApiError::not_found(format!(
            "project `{}` has no service `{service}`",
            project.slug
        ))
        .into());
    }
    let mut out = Vec::with_capacity(envs.len());
    for e in envs {
        out.push((engine.cluster(&e.name)?, e.namespace));
    }
    Ok(out)
}
