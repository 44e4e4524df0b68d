//! Services: importing specs, listing services, and a service's spec revisions.

use enclii_api::{ApiError, ImportOutcome, Page, ServiceSummary, SpecRevision};
use leptos::prelude::*;
use server_fn::codec::Json;

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

/// Every spec revision of a service, newest first, with diffs.
#[server(endpoint = "services/revisions", input = Json, output = Json)]
pub async fn spec_revisions(
    project: String,
    service: String,
) -> Result<Vec<SpecRevision>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::services::revisions(
        &engine.pool,
        caller.as_ref(),
        &project,
        &service,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}
