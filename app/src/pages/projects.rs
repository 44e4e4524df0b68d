//! Projects: the list and creation.

use enclii_api::Json;
use enclii_api::{ApiError, Project};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::layout::PageHeader;
use crate::components::state::{ApiErrorPanel, EmptyState};

/// The caller's projects (every project, for platform admins), by name.
#[server(endpoint = "projects/list", input = Json, output = Json)]
pub async fn list_projects() -> Result<Vec<Project>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::projects::list(&engine.pool, caller.as_ref())
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// One project, with its environments.
#[server(endpoint = "projects/get", input = Json, output = Json)]
pub async fn get_project(project: String) -> Result<Project, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::projects::get(&engine.pool, caller.as_ref(), &project)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Creates a project with `production` and `staging` environments; the caller becomes its owner.
#[server(endpoint = "projects/create", input = Json, output = Json)]
pub async fn create_project(
    slug: String,
    description: Option<String>,
) -> Result<Project, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::projects::create(
        &engine.pool,
        &engine.settings.cluster.namespace_prefix,
        caller.as_ref(),
        &slug,
        description.as_deref().unwrap_or(""),
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

#[component]
pub fn ProjectsPage() -> impl IntoView {
    let projects = Resource::new(|| (), |_| list_projects());
    view! {
        <Title text="Projects" />
        <PageHeader title="Projects" />
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading projects…"</p> }>
            {move || {
                projects
                    .get()
                    .map(|result| match result {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(list) if list.is_empty() => {
                            view! {
                                <EmptyState
                                    title="No projects yet"
                                    hint="A project groups services and their environments (production and staging)."
                                    command="enclii project create my-project"
                                />
                            }
                                .into_any()
                        }
                        Ok(list) => view! { <ProjectList projects=list /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn ProjectList(projects: Vec<Project>) -> impl IntoView {
    view! {
        <ul class="grid gap-4 sm:grid-cols-2 lg:grid-cols-3" data-testid="project-list">
            {projects
                .into_iter()
                .map(|p| {
                    let envs = p.environments.iter().map(|e| e.name.clone()).collect::<Vec<_>>().join(" · ");
                    view! {
                        <li class="rounded-xl border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
                            <h2 class="font-semibold">
                                <a class="text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/projects/{}", p.slug)>{p.slug.clone()}</a>
                            </h2>
                            <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">{p.description.clone()}</p>
                            <p class="mt-3 text-xs text-slate-500">
                                {format!("{} services · {envs}", p.service_count)}
                            </p>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

/// Adds an environment (its own namespace; pushes to `deploy_branch` deploy there).
#[server(endpoint = "environments/create", input = Json, output = Json)]
pub async fn create_environment(
    project: String,
    name: String,
    deploy_branch: Option<String>,
) -> Result<enclii_api::Environment, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::projects::create_environment(
        &engine.pool,
        &engine.settings.cluster.namespace_prefix,
        caller.as_ref(),
        &project,
        &name,
        deploy_branch.as_deref(),
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// A project's members and their roles.
#[server(endpoint = "members/list", input = Json, output = Json)]
pub async fn list_members(project: String) -> Result<Vec<enclii_api::Member>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::members::list(&engine.pool, caller.as_ref(), &project)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Adds a member or changes their role (admin; only owners grant admin or owner).
#[server(endpoint = "members/set", input = Json, output = Json)]
pub async fn set_member(
    project: String,
    email: String,
    role: enclii_api::Role,
) -> Result<enclii_api::Member, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::members::set(&engine.pool, caller.as_ref(), &project, &email, role)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Removes a member (admin; only owners remove admins; the last owner stays).
#[server(endpoint = "members/remove", input = Json, output = Json)]
pub async fn remove_member(project: String, email: String) -> Result<(), ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::members::remove(&engine.pool, caller.as_ref(), &project, &email)
        .await
        .map_err(switchyard_engine::Error::into_api)
}
