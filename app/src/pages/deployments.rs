//! Deployments: requesting one and the history.

use enclii_api::{ApiError, DeploymentSummary, Page};
use leptos::prelude::*;
use leptos_meta::Title;
use server_fn::codec::Json;

use crate::components::layout::PageHeader;
use crate::components::state::EmptyState;

/// Deploys a service to an environment: `image` as a new release, or the latest release.
#[server(endpoint = "deployments/create", input = Json, output = Json)]
pub async fn deploy(
    project: String,
    service: String,
    environment: String,
    image: Option<String>,
) -> Result<DeploymentSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    let request = switchyard_engine::platform::deployments::Request {
        project: &project,
        service: &service,
        environment: &environment,
        image: image.as_deref(),
    };
    switchyard_engine::platform::deployments::create(&engine.pool, caller.as_ref(), request)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Rolls back to an earlier release (`release` id, or the one that ran before the current one).
#[server(endpoint = "deployments/rollback", input = Json, output = Json)]
pub async fn rollback(
    project: String,
    service: String,
    environment: String,
    release: Option<String>,
) -> Result<DeploymentSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::deployments::rollback(
        &engine.pool,
        caller.as_ref(),
        &project,
        &service,
        &environment,
        release.as_deref(),
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// A project's deployments (optionally of one service), newest first.
#[server(endpoint = "deployments/list", input = Json, output = Json)]
pub async fn list_deployments(
    project: String,
    service: Option<String>,
    cursor: Option<i64>,
    limit: Option<u32>,
) -> Result<Page<DeploymentSummary>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::deployments::list(
        &engine.pool,
        caller.as_ref(),
        &project,
        service.as_deref(),
        cursor,
        limit,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

#[component]
pub fn DeploymentsPage() -> impl IntoView {
    view! {
        <Title text="Deployments" />
        <PageHeader title="Deployments" />
        <EmptyState
            title="No deployments yet"
            hint="Deploy a service to an environment; its canary rollout appears here."
            command="enclii deploy --service my-service --env production"
        />
    }
}
