//! Custom domains added to a service after its spec: a TXT record proves control of the name, then
//! the next deployment routes it (the driver adds verified domains to the rendered Ingress, with
//! TLS from the same issuer rules as spec domains).

use enclii_api::{ApiError, Domain};
use sqlx::PgPool;
use uuid::Uuid;

use super::{locate, project_access};
use crate::auth::{Action, Caller};
use crate::{Engine, audit};

/// Lowercase letters, digits and hyphens in labels of 1–63, at least two labels, 253 at most.
pub fn valid_hostname(h: &str) -> bool {
    h.len() <= 253
        && h.split('.').count() >= 2
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

pub fn txt_name(hostname: &str) -> String {
    format!("_enclii-challenge.{hostname}")
}

pub fn txt_value(token: &str) -> String {
    format!("enclii-verify={token}")
}

struct Row {
    hostname: String,
    service: String,
    environment: String,
    tls: bool,
    tls_issuer: Option<String>,
    verification_token: String,
    verified_at: Option<chrono::DateTime<chrono::Utc>>,
    last_checked_at: Option<chrono::DateTime<chrono::Utc>>,
    last_check_error: Option<String>,
}

fn to_api(engine: &Engine, r: Row) -> Domain {
    Domain {
        txt_name: txt_name(&r.hostname),
        txt_value: txt_value(&r.verification_token),
        verified: r.verified_at.is_some(),
        hostname: r.hostname,
        service: r.service,
        environment: r.environment,
        tls: r.tls,
        tls_issuer: r.tls_issuer,
        verified_at: r.verified_at,
        last_checked_at: r.last_checked_at,
        last_check_error: r.last_check_error,
        cname_target: engine.settings.domains.cname_target.clone(),
    }
}

async fn rows(pool: &PgPool, project: Uuid, hostname: Option<&str>) -> sqlx::Result<Vec<Row>> {
    sqlx::query_as!(
        Row,
        r#"SELECT d.hostname, s.name AS service, e.name AS environment, d.tls, d.tls_issuer, d.verification_token,
                  d.verified_at, d.last_checked_at, d.last_check_error
           FROM domains d JOIN services s ON s.id = d.service_id JOIN environments e ON e.id = d.environment_id
           WHERE s.project_id = $1 AND ($2::text IS NULL OR d.hostname = $2)
           ORDER BY d.hostname"#,
        project,
        hostname
    )
    .fetch_all(pool)
    .await
}

/// Adds a custom domain (admin). It is routed once verified.
#[allow(clippy::too_many_arguments)]
pub async fn add(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: &str,
    hostname: &str,
    tls: Option<bool>,
    tls_issuer: Option<&str>,
) -> crate::Result<Domain> {
    let project = project_access(&engine.pool, caller, project, Action::ManageDomains).await?;
    let hostname = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
    if !valid_hostname(&hostname) {
        return Err(ApiError::invalid(format!(
            "`{hostname}` is not a hostname such as app.example.com (lowercase letters, digits and hyphens, dot-separated)"
        ))
        .into());
    }
    if let Some(issuer) = tls_issuer {
        if issuer.is_empty()
            || issuer.len() > 63
            || !issuer
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(ApiError::invalid(format!(
                "`{issuer}` is not a ClusterIssuer name (or `cloudflare`)"
            ))
            .into());
        }
    }
    let mut tx = engine.pool.begin().await?;
    let placement = locate(&mut *tx, &project, service, environment).await?;
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|_| ApiError::Unavailable {
        message: "no randomness available".into(),
    })?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    // Pending elsewhere is fine (only proof of control claims a name); verified elsewhere, or
    // already in this project, is not.
    let taken = sqlx::query!(
        r#"SELECT (s.project_id = $2) AS "ours!", d.verified_at IS NOT NULL AS "verified!"
           FROM domains d JOIN services s ON s.id = d.service_id
           WHERE d.hostname = $1 AND (s.project_id = $2 OR d.verified_at IS NOT NULL)
           LIMIT 1"#,
        hostname,
        project.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(t) = taken {
        let why = if t.ours {
            "is already added to this project"
        } else {
            "is verified by another project"
        };
        return Err(ApiError::conflict(format!("{hostname} {why}")).into());
    }
    sqlx::query!(
        "INSERT INTO domains (service_id, environment_id, hostname, tls, tls_issuer, verification_token)
         VALUES ($1, $2, $3, $4, $5, $6)",
        placement.service_id,
        placement.environment_id,
        hostname,
        tls.unwrap_or(true),
        tls_issuer,
        token
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("domain.add")
            .target("domain", hostname.clone())
            .project(project.id)
            .details(serde_json::json!({ "service": service, "environment": environment })),
    )
    .await?;
    tx.commit().await?;
    let row = rows(&engine.pool, project.id, Some(&hostname))
        .await?
        .remove(0);
    Ok(to_api(engine, row))
}

/// Checks the domain's TXT record now (admin) and records the outcome; the answer says whether it
/// is verified and, if not, what was found instead.
pub async fn verify(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    hostname: &str,
) -> crate::Result<Domain> {
    let project = project_access(&engine.pool, caller, project, Action::ManageDomains).await?;
    let hostname = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
    let row = rows(&engine.pool, project.id, Some(&hostname))
        .await?
        .pop()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "project `{}` has no domain {hostname}",
                project.slug
            ))
        })?;
    let expected = txt_value(&row.verification_token);
    let resolver = engine
        .settings
        .domains
        .resolver
        .or_else(super::dns::system_resolver)
        .ok_or_else(|| ApiError::Unavailable {
            message: "no DNS resolver: set domains.resolver".into(),
        })?;
    let name = txt_name(&hostname);
    let error = match super::dns::txt(resolver, &name, std::time::Duration::from_secs(5)).await {
        Ok(values) if values.iter().any(|v| v.trim() == expected) => None,
        Ok(values) if values.is_empty() => Some(format!(
            "no TXT record at {name} yet (DNS changes can take a few minutes)"
        )),
        Ok(values) => Some(format!(
            "the TXT records at {name} are {values:?}, none is {expected:?}"
        )),
        Err(e) => Some(format!("looking up {name} failed: {e}")),
    };
    let mut tx = engine.pool.begin().await?;
    let updated = sqlx::query!(
        "UPDATE domains d SET last_checked_at = now(), last_check_error = $3,
                verified_at = CASE WHEN $3::text IS NULL THEN COALESCE(d.verified_at, now()) ELSE d.verified_at END
         FROM services s WHERE s.id = d.service_id AND s.project_id = $2 AND d.hostname = $1",
        hostname,
        project.id,
        error
    )
    .execute(&mut *tx)
    .await;
    match updated {
        Ok(_) => {}
        // The unique index on verified hostnames: someone else proved control first.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(ApiError::conflict(format!(
                "{hostname} was verified by another project first"
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    if error.is_none() {
        // Proof of control settles the name: other projects' pending claims go.
        sqlx::query!(
            "DELETE FROM domains d USING services s
             WHERE s.id = d.service_id AND d.hostname = $1 AND s.project_id <> $2 AND d.verified_at IS NULL",
            hostname,
            project.id
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    if error.is_none() {
        audit::record(
            &engine.pool,
            caller,
            audit::Event::new("domain.verify")
                .target("domain", hostname.clone())
                .project(project.id),
        )
        .await?;
    }
    let row = rows(&engine.pool, project.id, Some(&hostname))
        .await?
        .remove(0);
    Ok(to_api(engine, row))
}

/// Marks a domain the project added as verified without its TXT record (platform admin only):
/// `switchyard bootstrap`'s operator, a cluster administrator holding the database, owns the
/// platform's own hostnames, and the dashboard must be routed before anyone can sign in to verify
/// anything. Audited; returns whether it changed anything.
pub async fn vouch(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    hostname: &str,
) -> crate::Result<bool> {
    if !caller.is_some_and(|c| c.platform_admin) {
        return Err(ApiError::forbidden("only a platform admin may vouch for a domain").into());
    }
    let project = project_access(&engine.pool, caller, project, Action::ManageDomains).await?;
    let mut tx = engine.pool.begin().await?;
    let vouched = sqlx::query!(
        "UPDATE domains d SET verified_at = now(), last_check_error = NULL
         FROM services s
         WHERE s.id = d.service_id AND s.project_id = $1 AND d.hostname = $2 AND d.verified_at IS NULL",
        project.id,
        hostname
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if vouched {
        audit::record(
            &mut *tx,
            caller,
            audit::Event::new("domain.vouch")
                .target("domain", hostname)
                .project(project.id),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(vouched)
}

/// A project's custom domains (viewer).
pub async fn list(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
) -> crate::Result<Vec<Domain>> {
    let project = project_access(&engine.pool, caller, project, Action::ViewProject).await?;
    Ok(rows(&engine.pool, project.id, None)
        .await?
        .into_iter()
        .map(|r| to_api(engine, r))
        .collect())
}

/// Removes a custom domain (admin); the next deployment stops routing it.
pub async fn remove(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    hostname: &str,
) -> crate::Result<()> {
    let project = project_access(&engine.pool, caller, project, Action::ManageDomains).await?;
    let hostname = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
    let hostname = hostname.as_str();
    let mut tx = engine.pool.begin().await?;
    let removed = sqlx::query!(
        "DELETE FROM domains d USING services s WHERE d.service_id = s.id AND s.project_id = $1 AND d.hostname = $2",
        project.id,
        hostname
    )
    .execute(&mut *tx)
    .await?;
    if removed.rows_affected() == 0 {
        return Err(ApiError::not_found(format!(
            "project `{}` has no domain {hostname}",
            project.slug
        ))
        .into());
    }
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("domain.remove")
            .target("domain", hostname.to_owned())
            .project(project.id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Hostnames verified by any service of the project: those its specs may route.
pub(crate) async fn verified_in_project(
    pool: &PgPool,
    project: Uuid,
) -> sqlx::Result<std::collections::HashSet<String>> {
    Ok(sqlx::query_scalar!(
        "SELECT d.hostname FROM domains d JOIN services s ON s.id = d.service_id
         WHERE s.project_id = $1 AND d.verified_at IS NOT NULL",
        project
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect())
}

/// The hostname the platform gives a service in an environment under its own suffix
/// (`domains.generated_suffix`): two labels, so that no two services can ever share one.
pub fn generated_hostname(service: &str, namespace: &str, suffix: &str) -> String {
    format!("{service}.{namespace}.{}", suffix.trim_start_matches('.'))
}

/// Keeps the spec domains that may be routed (proven by the project, or the platform's own
/// hostname for this service); returns those left out, in spec order.
pub fn keep_routable(
    domains: &mut Vec<enclii_spec::model::Domain>,
    proven: &std::collections::HashSet<String>,
    generated: Option<&str>,
) -> Vec<String> {
    let mut left_out = Vec::new();
    domains.retain(|d| {
        let ok = proven.contains(&d.domain) || generated == Some(d.domain.as_str());
        if !ok {
            left_out.push(d.domain.clone());
        }
        ok
    });
    left_out
}

/// Verified custom domains of a service in an environment, as spec domains (for the render).
pub(crate) async fn routed(
    pool: &PgPool,
    service: Uuid,
    environment: Uuid,
) -> sqlx::Result<Vec<enclii_spec::model::Domain>> {
    Ok(sqlx::query!(
        "SELECT hostname, tls, tls_issuer FROM domains
         WHERE service_id = $1 AND environment_id = $2 AND verified_at IS NOT NULL ORDER BY hostname",
        service,
        environment
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| enclii_spec::model::Domain {
        domain: r.hostname,
        tls: r.tls,
        tls_issuer: r.tls_issuer,
    })
    .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_proven_and_generated_hostnames_are_routed() {
        let domain = |d: &str| enclii_spec::model::Domain {
            domain: d.into(),
            tls: true,
            tls_issuer: None,
        };
        let mut domains = vec![
            domain("app.enclii.io"),
            domain("shop.example.com"),
            domain("web.shop--production.apps.example.net"),
            domain("web.other--production.apps.example.net"),
        ];
        let proven = std::collections::HashSet::from(["shop.example.com".to_owned()]);
        let generated = generated_hostname("web", "shop--production", ".apps.example.net");
        let left = keep_routable(&mut domains, &proven, Some(&generated));
        assert_eq!(
            left,
            ["app.enclii.io", "web.other--production.apps.example.net"]
        );
        let kept: Vec<&str> = domains.iter().map(|d| d.domain.as_str()).collect();
        assert_eq!(
            kept,
            ["shop.example.com", "web.shop--production.apps.example.net"]
        );
    }

    #[test]
    fn hostnames() {
        for ok in ["app.example.com", "a.b", "x-1.example.io", "docs.enclii.io"] {
            assert!(valid_hostname(ok), "{ok}");
        }
        for bad in [
            "localhost",
            "-a.com",
            "a-.com",
            "a..com",
            "A.com",
            "a_b.com",
            "",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(!valid_hostname(bad), "{bad}");
        }
    }
}
