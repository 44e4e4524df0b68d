//! Services: importing specs, listing services, and a service's spec revisions.

use enclii_api::Json;
use enclii_api::{ApiError, ImportOutcome, Page, ServiceSummary, SpecRevision};
use leptos::prelude::*;

/// Imports a spec file (the YAML text). `project` may be omitted when the spec names its project.
/// Importing an identical file changes nothing and says so; a changed one returns the diff.
#[server(endpoint = "services/import", input = Json, output = Json)]
pub async fn import_service(
    spec: String,
    project: Option<String>,
) -> Result<ImportOutcome, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::services::import(
        &engine.pool,
        &engine.settings.status,
        caller.as_ref(),
        project.as_deref(),
        &spec,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// A project's services by name, a page at a time.
#[server(endpoint = "services/list", input = Json, output = Json)]
pub async fn list_services(
    project: String,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<Page<ServiceSummary>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::services::list(
        &engine.pool,
        caller.as_ref(),
        &project,
        cursor.as_deref(),
        limit,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// A service's spec revisions, newest first, with diffs: all of them, or the newest `limit`.
#[server(endpoint = "services/revisions", input = Json, output = Json)]
pub async fn spec_revisions(
    project: String,
    service: String,
    limit: Option<u32>,
) -> Result<Vec<SpecRevision>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::services::revisions(
        &engine.pool,
        caller.as_ref(),
        &project,
        &service,
        limit,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// Sets an environment variable of a service in an environment: a plain `value`, a `secret`
/// (encrypted at rest, never listed), or a reference to a key of an existing Kubernetes Secret.
#[server(endpoint = "env/set", input = Json, output = Json)]
#[allow(clippy::too_many_arguments)]
pub async fn set_env(
    project: String,
    service: String,
    environment: String,
    name: String,
    value: Option<String>,
    secret: Option<bool>,
    secret_ref: Option<(String, String)>,
) -> Result<enclii_api::EnvVar, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    use switchyard_engine::platform::env::Value;
    let value = match (value, secret_ref) {
        (Some(v), None) if secret == Some(true) => Value::Secret(v),
        (Some(v), None) => Value::Plain(v),
        (None, Some((name, key))) => Value::SecretRef { name, key },
        _ => {
            return Err(ApiError::invalid(
                "give either `value` (with `secret: true` to encrypt it) or `secret_ref`",
            ));
        }
    };
    switchyard_engine::platform::env::set(
        &engine,
        caller.as_ref(),
        &project,
        &service,
        &environment,
        &name,
        value,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// The variables of a service in an environment; secret values are masked.
#[server(endpoint = "env/list", input = Json, output = Json)]
pub async fn list_env(
    project: String,
    service: String,
    environment: String,
) -> Result<Vec<enclii_api::EnvVar>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::env::list(
        &engine,
        caller.as_ref(),
        &project,
        &service,
        &environment,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// Removes a variable.
#[server(endpoint = "env/unset", input = Json, output = Json)]
pub async fn unset_env(
    project: String,
    service: String,
    environment: String,
    name: String,
) -> Result<(), ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::env::unset(
        &engine,
        caller.as_ref(),
        &project,
        &service,
        &environment,
        &name,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// A secret's value (admins; audited).
#[server(endpoint = "env/reveal", input = Json, output = Json)]
pub async fn reveal_env(
    project: String,
    service: String,
    environment: String,
    name: String,
) -> Result<String, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::env::reveal(
        &engine,
        caller.as_ref(),
        &project,
        &service,
        &environment,
        &name,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// Live replica counts and the running release of a service, per environment, from the cluster.
#[server(endpoint = "services/status", input = Json, output = Json)]
pub async fn service_status(
    project: String,
    service: String,
) -> Result<Vec<enclii_api::ServiceStatus>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::services::status(&engine, caller.as_ref(), &project, &service)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Checks a spec without importing it: every error and warning with its line and column.
#[server(endpoint = "services/validate", input = Json, output = Json)]
pub async fn validate_spec(spec: String) -> Result<Vec<enclii_api::Diagnostic>, ApiError> {
    let (_engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::services::validate(caller.as_ref(), &spec)
        .map_err(switchyard_engine::Error::into_api)
}

/// Request rate, error rate and p95 latency of a service in an environment over the last hour.
#[server(endpoint = "services/metrics", input = Json, output = Json)]
pub async fn service_metrics(
    project: String,
    service: String,
    environment: String,
) -> Result<enclii_api::ServiceMetrics, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::metrics::service(
        &engine,
        caller.as_ref(),
        &project,
        &service,
        &environment,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}
