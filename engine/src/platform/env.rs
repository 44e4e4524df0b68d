//! Environment variables and secrets per service and environment: plain values, secrets encrypted
//! at rest (AES-256-GCM, `crate::crypto`), and references to Kubernetes Secrets that Enclii never
//! reads. Listing masks secrets; revealing one needs an admin and is audited.

use enclii_api::{ApiError, EnvVar};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::project_access;
use crate::auth::{Action, Caller};
use crate::{Engine, audit};

pub enum Value {
    Plain(String),
    Secret(String),
    SecretRef { name: String, key: String },
}

struct Ids {
    project: Uuid,
    service: Uuid,
    environment: Uuid,
}

async fn ids(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: &str,
    action: Action,
) -> crate::Result<Ids> {
    let p = project_access(&engine.pool, caller, project, action).await?;
    let row = super::locate(&engine.pool, &p, service, environment).await?;
    Ok(Ids {
        project: p.id,
        service: row.service_id,
        environment: row.environment_id,
    })
}

/// The associated data that binds a ciphertext to its row.
fn aad(ids: &Ids, name: &str) -> String {
    format!("{}/{}/{name}", ids.service, ids.environment)
}

#[allow(clippy::too_many_arguments)]
pub async fn set(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: &str,
    name: &str,
    value: Value,
) -> crate::Result<EnvVar> {
    let ids = ids(
        engine,
        caller,
        project,
        service,
        environment,
        Action::ManageEnv,
    )
    .await?;
    if !enclii_spec::rules::is_env_name(name) {
        return Err(ApiError::invalid(format!("`{name}` is not a valid variable name (letters, digits, '_', '-', '.'; not starting with a digit)")).into());
    }
    let who = caller.map(|c| c.user_id);
    let (kind, plain, nonce, ct, ref_name, ref_key) = match value {
        Value::Plain(v) => ("plain", Some(v), None, None, None, None),
        Value::Secret(v) => {
            let sealer = engine
                .secrets
                .as_ref()
                .ok_or_else(|| ApiError::Unavailable {
                    message:
                        "secret values cannot be stored: the server has no secrets.key configured"
                            .into(),
                })?;
            let (nonce, ct) = sealer.seal(&v, &aad(&ids, name));
            ("secret", None, Some(nonce), Some(ct), None, None)
        }
        Value::SecretRef { name: n, key: k } => ("secret_ref", None, None, None, Some(n), Some(k)),
    };
    let mut tx = engine.pool.begin().await?;
    sqlx::query!(
        r#"INSERT INTO env_vars (service_id, environment_id, name, kind, value, ciphertext, nonce, ref_name, ref_key, updated_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (service_id, environment_id, name) DO UPDATE SET kind = EXCLUDED.kind, value = EXCLUDED.value,
               ciphertext = EXCLUDED.ciphertext, nonce = EXCLUDED.nonce, ref_name = EXCLUDED.ref_name, ref_key = EXCLUDED.ref_key,
               updated_by = EXCLUDED.updated_by, updated_at = now()"#,
        ids.service,
        ids.environment,
        name,
        kind,
        plain,
        ct,
        nonce,
        ref_name,
        ref_key,
        who
    )
    .execute(&mut *tx)
    .await?;
    // The audit names the variable and its kind, never its value.
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("env.set")
            .target("env", format!("{service}/{environment}/{name}"))
            .project(ids.project)
            .details(serde_json::json!({ "kind": kind })),
    )
    .await?;
    tx.commit().await?;
    list(engine, caller, project, service, environment)
        .await?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ApiError::internal().into())
}

pub async fn list(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: &str,
) -> crate::Result<Vec<EnvVar>> {
    let ids = ids(
        engine,
        caller,
        project,
        service,
        environment,
        Action::ViewProject,
    )
    .await?;
    let rows = sqlx::query!(
        r#"SELECT v.name, v.kind, v.value, v.ref_name, v.ref_key, v.updated_at, u.display_name AS "updated_by?"
           FROM env_vars v LEFT JOIN users u ON u.id = v.updated_by
           WHERE v.service_id = $1 AND v.environment_id = $2 ORDER BY v.name"#,
        ids.service,
        ids.environment
    )
    .fetch_all(&engine.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| EnvVar {
            masked: r.kind == "secret",
            secret_ref: r.ref_name.zip(r.ref_key),
            name: r.name,
            kind: r.kind,
            value: r.value,
            updated_at: r.updated_at,
            updated_by: r.updated_by,
        })
        .collect())
}

pub async fn unset(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: &str,
    name: &str,
) -> crate::Result<()> {
    let ids = ids(
        engine,
        caller,
        project,
        service,
        environment,
        Action::ManageEnv,
    )
    .await?;
    let mut tx = engine.pool.begin().await?;
    let gone = sqlx::query!(
        "DELETE FROM env_vars WHERE service_id = $1 AND environment_id = $2 AND name = $3",
        ids.service,
        ids.environment,
        name
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if gone == 0 {
        return Err(ApiError::not_found(format!(
            "`{name}` is not set for {service} in {environment}"
        ))
        .into());
    }
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("env.unset")
            .target("env", format!("{service}/{environment}/{name}"))
            .project(ids.project),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A secret's value, for an admin; every reveal is in the audit log.
pub async fn reveal(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: &str,
    name: &str,
) -> crate::Result<String> {
    let ids = ids(
        engine,
        caller,
        project,
        service,
        environment,
        Action::RevealSecret,
    )
    .await?;
    let row = sqlx::query!(
        "SELECT ciphertext, nonce FROM env_vars WHERE service_id = $1 AND environment_id = $2 AND name = $3 AND kind = 'secret'",
        ids.service,
        ids.environment,
        name
    )
    .fetch_optional(&engine.pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("`{name}` is not a secret of {service} in {environment}")))?;
    let sealer = engine
        .secrets
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable {
            message: "the server has no secrets.key configured".into(),
        })?;
    let value = sealer
        .open(
            row.nonce.as_deref().unwrap_or_default(),
            row.ciphertext.as_deref().unwrap_or_default(),
            &aad(&ids, name),
        )
        .map_err(|e| {
            tracing::error!(error = %e, "a stored secret did not decrypt");
            ApiError::internal()
        })?;
    audit::record(
        &engine.pool,
        caller,
        audit::Event::new("env.reveal")
            .target("env", format!("{service}/{environment}/{name}"))
            .project(ids.project),
    )
    .await?;
    Ok(value.expose_secret().to_owned())
}

/// A stored variable, sealed as it is at rest.
struct EnvRow {
    name: String,
    kind: String,
    value: Option<String>,
    ciphertext: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    ref_name: Option<String>,
    ref_key: Option<String>,
}

/// The variables of a deployment (of `service` in `environment`), decrypted for its pods (the
/// deployment driver): its snapshot, taken when it was requested (see `deployments::insert`).
pub(crate) async fn for_pods(
    engine: &Engine,
    deployment: i64,
    service: Uuid,
    environment: Uuid,
) -> Result<Vec<crate::deploy::env::EnvEntry>, String> {
    use crate::deploy::env::{EnvEntry, EnvValue};
    let rows = sqlx::query_as!(
        EnvRow,
        r#"SELECT de.name AS "name!", de.kind AS "kind!", de.value, de.ciphertext, de.nonce, de.ref_name, de.ref_key
           FROM deployments d JOIN deployment_env de ON de.deployment_id = d.id
           WHERE d.id = $1 AND d.env_snapshot
           UNION ALL
           SELECT v.name, v.kind, v.value, v.ciphertext, v.nonce, v.ref_name, v.ref_key
           FROM deployments d JOIN env_vars v ON v.service_id = $2 AND v.environment_id = $3
           WHERE d.id = $1 AND NOT d.env_snapshot
           ORDER BY 1"#,
        deployment,
        service,
        environment
    )
    .fetch_all(&engine.pool)
    .await
    .map_err(|e| format!("cannot read the service's environment: {e}"))?;
    let ids = Ids {
        project: Uuid::nil(),
        service,
        environment,
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let value = match r.kind.as_str() {
            "plain" => EnvValue::Plain(r.value.unwrap_or_default()),
            "secret" => {
                let sealer = engine.secrets.as_ref().ok_or(
                    "the service has secret values but this server has no secrets.key to decrypt them",
                )?;
                let plain = sealer
                    .open(
                        r.nonce.as_deref().unwrap_or_default(),
                        r.ciphertext.as_deref().unwrap_or_default(),
                        &aad(&ids, &r.name),
                    )
                    .map_err(|_| {
                        format!(
                            "secret {} cannot be decrypted with this server's secrets.key",
                            r.name
                        )
                    })?;
                EnvValue::Secret {
                    value: plain,
                    fingerprint: r.nonce.clone().unwrap_or_default(),
                }
            }
            _ => EnvValue::Ref {
                name: r.ref_name.unwrap_or_default(),
                key: r.ref_key.unwrap_or_default(),
            },
        };
        out.push(EnvEntry {
            name: r.name,
            value,
        });
    }
    Ok(out)
}

/// What [`copy_between`] copied and what it left out (by name, never by value).
#[derive(Debug, Default)]
pub(crate) struct Copied {
    pub copied: usize,
    pub left_out: Vec<String>,
}

/// Copies a service's variables from one environment of its project to another (a new preview
/// from `staging`), unless the target already has some for the service (a preview's own
/// overrides are never replaced). Plain values as they are; secrets opened and sealed again for
/// their new row (a ciphertext is bound to its row); references to Kubernetes Secrets are left
/// out: they name Secrets of the source's namespace, which the target's namespace does not have.
pub(crate) async fn copy_between(
    secrets: Option<&crate::crypto::SecretBox>,
    tx: &mut sqlx::PgConnection,
    service: Uuid,
    from: Uuid,
    to: Uuid,
) -> sqlx::Result<Copied> {
    let mut out = Copied::default();
    let existing: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM env_vars WHERE service_id = $1 AND environment_id = $2"#,
        service,
        to
    )
    .fetch_one(&mut *tx)
    .await?;
    if existing > 0 {
        return Ok(out);
    }
    let rows = sqlx::query_as!(
        EnvRow,
        "SELECT name, kind, value, ciphertext, nonce, ref_name, ref_key FROM env_vars
         WHERE service_id = $1 AND environment_id = $2 ORDER BY name",
        service,
        from
    )
    .fetch_all(&mut *tx)
    .await?;
    let source = Ids {
        project: Uuid::nil(),
        service,
        environment: from,
    };
    let target = Ids {
        project: Uuid::nil(),
        service,
        environment: to,
    };
    for r in rows {
        let (value, ciphertext, nonce) = match r.kind.as_str() {
            "plain" => (r.value, None, None),
            "secret" => {
                let resealed = secrets.and_then(|s| {
                    let plain = s
                        .open(
                            r.nonce.as_deref().unwrap_or_default(),
                            r.ciphertext.as_deref().unwrap_or_default(),
                            &aad(&source, &r.name),
                        )
                        .ok()?;
                    Some(s.seal(plain.expose_secret(), &aad(&target, &r.name)))
                });
                match resealed {
                    Some((nonce, ct)) => (None, Some(ct), Some(nonce)),
                    None => {
                        out.left_out.push(r.name);
                        continue;
                    }
                }
            }
            _ => {
                out.left_out.push(r.name);
                continue;
            }
        };
        sqlx::query!(
            "INSERT INTO env_vars (service_id, environment_id, name, kind, value, ciphertext, nonce)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            service,
            to,
            r.name,
            r.kind,
            value,
            ciphertext,
            nonce
        )
        .execute(&mut *tx)
        .await?;
        out.copied += 1;
    }
    Ok(out)
}
