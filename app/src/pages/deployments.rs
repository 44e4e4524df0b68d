//! Deployments: requesting one and the history.

use enclii_api::Json;
use enclii_api::{ApiError, DeploymentDetail, DeploymentSummary, Page};
use leptos::prelude::*;
use leptos_meta::Title;

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
        registry: &engine.settings.pipeline.registry,
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

/// One deployment with its steps and canary analyses (the live timeline reads this).
#[server(endpoint = "deployments/get", input = Json, output = Json)]
pub async fn get_deployment(project: String, id: i64) -> Result<DeploymentDetail, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::deployments::get(&engine.pool, caller.as_ref(), &project, id)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Skips a canary's remaining analysis and rolls it out to 100%.
#[server(endpoint = "deployments/promote", input = Json, output = Json)]
pub async fn promote(project: String, id: i64) -> Result<DeploymentSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::deployments::control(
        &engine.pool,
        caller.as_ref(),
        &project,
        id,
        "promote",
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// Takes a canary away; the stable release serves all traffic again.
#[server(endpoint = "deployments/abort", input = Json, output = Json)]
pub async fn abort(project: String, id: i64) -> Result<DeploymentSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::deployments::control(
        &engine.pool,
        caller.as_ref(),
        &project,
        id,
        "abort",
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// Deploys to environment `to` the exact release `from` runs successfully (same digest, SBOM and
/// provenance), through `to`'s own rollout, approvals and freeze windows.
#[server(endpoint = "promotions/create", input = Json, output = Json)]
pub async fn promote_release(
    project: String,
    service: String,
    from: String,
    to: String,
) -> Result<DeploymentSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    let promotion = switchyard_engine::platform::deployments::Promotion {
        project: &project,
        service: &service,
        from: &from,
        to: &to,
    };
    switchyard_engine::platform::deployments::promote(&engine.pool, caller.as_ref(), promotion)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Approves a deployment awaiting approval (not one's own; once per approver).
#[server(endpoint = "deployments/approve", input = Json, output = Json)]
pub async fn approve(
    project: String,
    id: i64,
    reason: Option<String>,
) -> Result<DeploymentSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::approvals::decide(
        &engine.pool,
        caller.as_ref(),
        &project,
        id,
        true,
        reason.as_deref(),
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// Rejects a deployment awaiting approval: it ends `rejected`, with the reason.
#[server(endpoint = "deployments/reject", input = Json, output = Json)]
pub async fn reject(
    project: String,
    id: i64,
    reason: Option<String>,
) -> Result<DeploymentSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::approvals::decide(
        &engine.pool,
        caller.as_ref(),
        &project,
        id,
        false,
        reason.as_deref(),
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// Lets a deployment held by a freeze window through (platform admins, with a reason; audited).
#[server(endpoint = "deployments/force", input = Json, output = Json)]
pub async fn force(
    project: String,
    id: i64,
    reason: String,
) -> Result<DeploymentSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::freezes::force(
        &engine.pool,
        caller.as_ref(),
        &project,
        id,
        &reason,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// A service's releases (images with their git commit, SBOM and provenance), newest first.
#[server(endpoint = "releases/list", input = Json, output = Json)]
pub async fn list_releases(
    project: String,
    service: String,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<Page<enclii_api::Release>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::deployments::releases(
        &engine.pool,
        caller.as_ref(),
        &project,
        &service,
        cursor.as_deref(),
        limit,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// The newest deployments across every project the caller may view, newest first.
#[server(endpoint = "deployments/recent", input = Json, output = Json)]
pub async fn recent_deployments(
    cursor: Option<i64>,
    limit: Option<u32>,
) -> Result<Page<DeploymentSummary>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::deployments::recent(&engine.pool, caller.as_ref(), cursor, limit)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

#[component]
pub fn DeploymentsPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let deployments = Resource::new(
        move || query.with(|q| q.get("cursor").and_then(|c| c.parse().ok())),
        |cursor| recent_deployments(cursor, Some(50)),
    );
    view! {
        <Title text="Deployments" />
        <PageHeader title="Deployments" subtitle="The newest rollouts across your projects." />
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || {
                deployments
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <crate::components::state::ApiErrorPanel error=e /> }.into_any(),
                        Ok(page) if page.items.is_empty() => {
                            view! {
                                <EmptyState
                                    title="No deployments yet"
                                    hint="Deploy a service to an environment; its rollout appears here."
                                    command="enclii deploy --service my-service --env production --image REF"
                                />
                            }
                                .into_any()
                        }
                        Ok(page) => view! {
                            <DeploymentTable list=page.items />
                            <crate::components::state::PageLinks next=page.next label="Older deployments →" />
                        }
                            .into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn DeploymentTable(list: Vec<DeploymentSummary>) -> impl IntoView {
    view! {
        <div class="overflow-x-auto">
            <table class="w-full text-left text-sm" data-testid="deployments">
                <thead>
                    <tr class="text-slate-500">
                        <th class="py-2">"#"</th>
                        <th>"Service"</th>
                        <th>"Environment"</th>
                        <th>"State"</th>
                        <th>"Image"</th>
                        <th>"Started"</th>
                    </tr>
                </thead>
                <tbody>
                    {list
                        .into_iter()
                        .map(|d| {
                            let tone = super::deployment::state_tone(d.state.as_str());
                            view! {
                                <tr class="border-t border-slate-200 dark:border-slate-800">
                                    <td class="py-2">
                                        <a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/projects/{}/deployments/{}", d.project, d.id)>
                                            {format!("#{}", d.id)}
                                        </a>
                                    </td>
                                    <td>{format!("{}/{}", d.project, d.service)}</td>
                                    <td>{d.environment}</td>
                                    <td>
                                        <span class=format!("rounded-full px-2 py-0.5 text-xs font-medium {tone}") title=d.state_reason.clone().unwrap_or_default()>
                                            {d.state.as_str()}
                                        </span>
                                    </td>
                                    <td class="font-mono text-xs">{d.image}</td>
                                    <td class="whitespace-nowrap">{crate::components::time::minute(&d.created_at)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
