//! Builds and webhook deliveries: the continuous-deployment pipeline's server functions, and the
//! project's deliveries panel (every delivery and what came of it).

use enclii_api::Json;
use enclii_api::{ApiError, BuildSummary, Delivery, Page, Repository};
use leptos::prelude::*;

use super::deployment::state_tone;

/// Queues a build of the service's repository (its branch, or `git_ref`); it deploys to
/// `environment` when it succeeds.
#[server(endpoint = "builds/create", input = Json, output = Json)]
pub async fn create_build(
    project: String,
    service: String,
    environment: String,
    git_ref: Option<String>,
) -> Result<BuildSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::pipeline::build(
        &engine.pool,
        caller.as_ref(),
        &project,
        &service,
        &environment,
        git_ref.as_deref(),
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// A project's builds (optionally one service's), newest first.
#[server(endpoint = "builds/list", input = Json, output = Json)]
pub async fn list_builds(
    project: String,
    service: Option<String>,
    cursor: Option<i64>,
    limit: Option<u32>,
) -> Result<Page<BuildSummary>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::pipeline::builds(
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

/// Cancels a queued build, or stops a running one.
#[server(endpoint = "builds/cancel", input = Json, output = Json)]
pub async fn cancel_build(project: String, id: i64) -> Result<BuildSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::pipeline::cancel(&engine.pool, caller.as_ref(), &project, id)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// A project's GitHub webhook deliveries, newest first, with the builds each started.
#[server(endpoint = "deliveries/list", input = Json, output = Json)]
pub async fn list_deliveries(
    project: String,
    limit: Option<u32>,
) -> Result<Vec<Delivery>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::pipeline::deliveries(&engine.pool, caller.as_ref(), &project, limit)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Connects a repository to a project (or gives it a new webhook secret); the secret is shown once.
#[server(endpoint = "repositories/connect", input = Json, output = Json)]
pub async fn connect_repository(project: String, url: String) -> Result<Repository, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::pipeline::connect(&engine, caller.as_ref(), &project, &url)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// The repositories connected to a project.
#[server(endpoint = "repositories/list", input = Json, output = Json)]
pub async fn list_repositories(project: String) -> Result<Vec<Repository>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::pipeline::repositories(&engine, caller.as_ref(), &project)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Every delivery and its outcome: received, ignored and why, the builds it started and how they
/// and their deployments ended.
#[component]
pub fn Deliveries(list: Vec<Delivery>) -> impl IntoView {
    if list.is_empty() {
        return view! {
            <p class="text-sm text-slate-500">
                "No webhook deliveries yet. Connect a repository (" <code>"enclii repos connect URL"</code>
                ") and add the webhook it prints in GitHub."
            </p>
        }
        .into_any();
    }
    view! {
        <div class="overflow-x-auto">
            <table class="w-full text-left text-sm" data-testid="deliveries">
                <thead>
                    <tr class="text-slate-500">
                        <th class="py-2">"Received"</th>
                        <th>"Event"</th>
                        <th>"Outcome"</th>
                        <th>"Builds"</th>
                    </tr>
                </thead>
                <tbody>
                    {list
                        .into_iter()
                        .map(|d| {
                            let tone = match d.outcome.as_str() {
                                "accepted" => state_tone("succeeded"),
                                "rejected" => state_tone("failed"),
                                _ => state_tone(""),
                            };
                            view! {
                                <tr class="border-t border-slate-200 align-top dark:border-slate-800">
                                    <td class="whitespace-nowrap py-2">{crate::components::time::second(&d.received_at)}</td>
                                    <td>
                                        {format!("{} {}", d.event, d.git_ref.clone().unwrap_or_default())}
                                        <p class="font-mono text-xs text-slate-500">{d.commit.clone().map(|c| c.chars().take(12).collect::<String>()).unwrap_or_default()}</p>
                                    </td>
                                    <td>
                                        <span class=format!("rounded-full px-2 py-0.5 text-xs {tone}")>{d.outcome.clone()}</span>
                                        <p class="text-xs text-slate-500">{d.reason.clone()}</p>
                                    </td>
                                    <td class="text-xs">
                                        {d.builds.into_iter().map(|b| view! {
                                            <p>
                                                {format!("#{} {}: build {}", b.build, b.service, b.state)}
                                                {b.deployment_id.map(|id| format!(", deployment #{id} {}", b.deployment_state.unwrap_or_default()))}
                                            </p>
                                        }).collect_view()}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
