//! A project's services, and one service: live replica counts per environment (Kubernetes watches
//! pushed as server-sent events), its recent deployments, and its pod logs live (follow, pause,
//! filter).

use enclii_api::{DeploymentSummary, ServiceStatus, ServiceSummary};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::deployment::state_tone;
use super::deployments::list_deployments;
use super::services::{list_services, service_status};
use crate::components::environment::{EnvironmentSelect, default_environment, follow_pick};
#[cfg(feature = "hydrate")]
use crate::components::state::urlencode;
use crate::components::state::{ApiErrorPanel, EmptyState, PageLinks};

/// `/projects/:project`: the project's services with the newest deployment per environment.
#[component]
pub fn ProjectPage() -> impl IntoView {
    let params = use_params_map();
    let query = leptos_router::hooks::use_query_map();
    let project = move || params.read().get("project").unwrap_or_default();
    // Fifty services a page, read on the server by name (keyset): `?cursor=` is the last one seen.
    let services = Resource::new(
        move || (project(), query.with(|q| q.get("cursor"))),
        |(p, cursor)| list_services(p, cursor, Some(50)),
    );
    let deliveries = Resource::new(project, |p| super::builds::list_deliveries(p, Some(20)));
    let details = Resource::new(project, super::projects::get_project);
    view! {
        <Title text=project() />
        <div class="mb-6">
            <p class="text-sm text-slate-500"><a class="hover:underline" href="/projects">"Projects"</a></p>
            <h1 class="text-2xl font-semibold tracking-tight">{project}</h1>
        </div>
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading services…"</p> }>
            {move || {
                services
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(page) if page.items.is_empty() => {
                            view! {
                                <EmptyState
                                    title="No services yet"
                                    hint="Import a service spec to add one."
                                    command="enclii service create --file service.yaml"
                                />
                            }
                                .into_any()
                        }
                        Ok(page) => view! {
                            <ServiceTable services=page.items />
                            <PageLinks next=page.next label="Next services →" />
                        }
                            .into_any(),
                    })
            }}
            <section aria-label="Environments" class="mt-8">
                <h2 class="mb-2 text-base font-semibold">"Environments"</h2>
                {move || {
                    details
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                            Ok(details) => {
                                let envs = details.environments;
                                view! {
                                    <ul class="grid gap-2 sm:grid-cols-3" data-testid="environments">
                                        {envs.into_iter().map(|e| view! {
                                            <li class="rounded-xl border border-slate-200 bg-white p-3 text-sm dark:border-slate-800 dark:bg-slate-900">
                                                <p class="font-medium">{e.name.clone()}</p>
                                                <p class="text-xs text-slate-500">{format!("namespace {} · cluster {}", e.namespace, e.cluster)}</p>
                                                <p class="text-xs text-slate-500">{e.deploy_branch.map(|b| format!("deploys pushes to {b}")).unwrap_or_default()}</p>
                                            </li>
                                        }).collect_view()}
                                    </ul>
                                    <p class="mt-1 text-xs text-slate-500">"Add one: " <code>"enclii project add-environment NAME --branch BRANCH"</code></p>
                                }
                                    .into_any()
                            }
                        })
                }}
            </section>
        </Suspense>
        <super::previews::PreviewsPanel project=project() />
        // Members have their own page (`members.rs`): their forms and actions were the largest part
        // of this page's wasm, which every landing here downloaded to look at the services.
        <section aria-label="Members" class="mt-8">
            <h2 class="mb-2 text-base font-semibold">"Members and roles"</h2>
            <a class="text-sm font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=move || format!("/projects/{}/members", project())>
                "Manage who may deploy, reveal secrets and administer this project →"
            </a>
        </section>
        <section aria-label="Notifications" class="mt-8">
            <h2 class="mb-2 text-base font-semibold">"Notifications"</h2>
            <a class="text-sm font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=move || format!("/projects/{}/notifications", project())>
                "Send deployments, rollbacks, failed builds and outages to Slack, Discord, a webhook or email →"
            </a>
        </section>
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading deliveries…"</p> }>
            <section aria-label="Webhook deliveries" class="mt-8">
                <h2 class="mb-2 text-base font-semibold">"Webhook deliveries"</h2>
                {move || {
                    deliveries
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                            Ok(list) => view! { <super::builds::Deliveries list /> }.into_any(),
                        })
                }}
            </section>
        </Suspense>
    }
}

#[component]
fn ServiceTable(services: Vec<ServiceSummary>) -> impl IntoView {
    view! {
        <div class="overflow-x-auto">
            <table class="w-full text-left text-sm" data-testid="services">
                <thead>
                    <tr class="text-slate-500">
                        <th class="py-2">"Service"</th>
                        <th>"Spec"</th>
                        <th>"Latest deployments"</th>
                    </tr>
                </thead>
                <tbody>
                    {services
                        .into_iter()
                        .map(|s| {
                            let href = format!("/projects/{}/services/{}", s.project, s.name);
                            view! {
                                <tr class="border-t border-slate-200 dark:border-slate-800">
                                    <td class="py-2">
                                        <a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=href>{s.name.clone()}</a>
                                        <p class="text-xs text-slate-500">{s.description.clone()}</p>
                                    </td>
                                    <td>{format!("revision {}", s.revision)}</td>
                                    <td class="space-x-2">
                                        {s.latest.into_iter().map(|d| view! {
                                            <span class=format!("rounded-full px-2 py-0.5 text-xs {}", state_tone(d.state.as_str()))>
                                                {format!("{}: {}", d.environment, d.state.as_str())}
                                            </span>
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
}

/// The service page's tabs: (path segment, label).
const TABS: [(&str, &str); 9] = [
    ("overview", "Overview"),
    ("deployments", "Deployments"),
    ("builds", "Builds"),
    ("jobs", "Jobs"),
    ("logs", "Logs"),
    ("environment", "Environment"),
    ("domains", "Domains"),
    ("spec", "Spec"),
    ("settings", "Settings"),
];

/// `/projects/:project/services/:service[/:tab]`: the frame around a tab, each tab a link (so
/// tabs are bookmarkable and keyboard-reachable) and each its own lazy route (`lib.rs`), so that
/// landing on a tab downloads that tab's code and reads that tab's data only.
#[component]
pub fn ServiceFrame(
    /// The tab shown: its route says which (`lib.rs`).
    tab: &'static str,
    children: Children,
) -> impl IntoView {
    let key = service_params();
    view! {
        <Title text=move || key.get().1 />
        <div class="mb-4">
            <p class="text-sm text-slate-500">
                <a class="hover:underline" href=move || format!("/projects/{}", key.get().0)>{move || key.get().0}</a>
            </p>
            <h1 class="text-2xl font-semibold tracking-tight">{move || key.get().1}</h1>
        </div>
        <nav aria-label="Service sections" class="mb-6 -mx-1 flex gap-1 overflow-x-auto border-b border-slate-200 dark:border-slate-800">
            {TABS
                .iter()
                .map(|(id, label)| {
                    let id = *id;
                    let href = move || {
                        let (p, s) = key.get();
                        if id == "overview" {
                            format!("/projects/{p}/services/{s}")
                        } else {
                            format!("/projects/{p}/services/{s}/{id}")
                        }
                    };
                    let active = move || tab == id;
                    view! {
                        <a
                            href=href
                            aria-current=move || active().then_some("page")
                            class=move || {
                                if active() {
                                    "whitespace-nowrap border-b-2 border-indigo-600 px-3 py-2 text-sm font-medium text-indigo-700 dark:text-indigo-300"
                                } else {
                                    "whitespace-nowrap border-b-2 border-transparent px-3 py-2 text-sm text-slate-600 hover:text-slate-900 dark:text-slate-400 dark:hover:text-slate-100"
                                }
                            }
                        >
                            {*label}
                        </a>
                    }
                })
                .collect_view()}
        </nav>
        {children()}
    }
}

/// The service the route names (`:project`, `:service`). A memo, so that a tab re-renders when
/// the user follows a link to another service's same tab, and only then.
pub fn service_params() -> Memo<(String, String)> {
    let params = use_params_map();
    Memo::new(move |_| {
        let p = params.read();
        (
            p.get("project").unwrap_or_default(),
            p.get("service").unwrap_or_default(),
        )
    })
}

/// One tab's view for the service the route names, rebuilt when that changes.
fn for_service<V: IntoView + 'static>(
    render: impl Fn(String, String) -> V + Send + Sync + 'static,
) -> impl IntoView {
    let key = service_params();
    move || {
        let (project, service) = key.get();
        render(project, service)
    }
}

/// The tabs as their routes render them (`lib.rs`). Each names only its own tab, so that
/// the wasm splitter puts each tab's code in that tab's chunk.
#[component]
pub fn OverviewTabRoute() -> impl IntoView {
    for_service(|project, service| {
        // The summary needs no environments, so it is not rendered under their Suspense: what is
        // created there is created again on each of its render passes (its server calls too).
        let summary = view! { <Summary project=project.clone() service=service.clone() /> };
        let status = status_resource(project.clone(), service.clone());
        // The charts' resource is made here, outside the status's Suspense, for the same reason
        // as the summary. Until the user picks an environment it charts the default one of the
        // environments the status names, so it waits for the status.
        let picked = RwSignal::new(None::<String>);
        let metrics = Resource::new(
            {
                let key = (project.clone(), service.clone());
                move || (key.0.clone(), key.1.clone(), picked.get())
            },
            move |(p, s, picked)| async move {
                let environment = chosen_environment(picked, status).await?;
                super::services::service_metrics(p, s, environment).await
            },
        );
        let live = with_status(status, project, service, move |project, service, list| {
            let environments = environment_names(&list);
            view! {
                <LiveStatus project service initial=list />
                <Charts metrics picked environments />
            }
            .into_any()
        });
        view! { {live} {summary} }
    })
}

#[component]
pub fn DeploymentsTabRoute() -> impl IntoView {
    for_service(|project, service| view! { <DeploymentsTab project service /> })
}

#[component]
pub fn BuildsTabRoute() -> impl IntoView {
    for_service(|project, service| view! { <BuildsTab project service /> })
}

#[component]
pub fn JobsTabRoute() -> impl IntoView {
    for_service(|project, service| view! { <super::jobs::JobsTab project service /> })
}

#[component]
pub fn LogsTabRoute() -> impl IntoView {
    for_service(|project, service| {
        with_environments(project, service, |project, service, list| {
            let environments = list.into_iter().map(|s| s.environment).collect();
            view! { <Logs project service environments /> }.into_any()
        })
    })
}

#[component]
pub fn EnvironmentTabRoute() -> impl IntoView {
    for_service(|project, service| {
        let status = status_resource(project.clone(), service.clone());
        let state = super::environment::EnvState::new(project.clone(), service.clone(), status);
        with_status(status, project, service, move |project, service, list| {
            let environments = list.into_iter().map(|s| s.environment).collect();
            view! { <super::environment::EnvironmentPanel project service environments state /> }
                .into_any()
        })
    })
}

#[component]
pub fn DomainsTabRoute() -> impl IntoView {
    for_service(|project, service| {
        let state = super::domains::DomainsState::new(project.clone());
        with_environments(project, service, move |project, service, list| {
            let environments = list.into_iter().map(|s| s.environment).collect();
            view! { <super::domains::DomainsPanel project service environments state /> }.into_any()
        })
    })
}

#[component]
pub fn SpecTabRoute() -> impl IntoView {
    for_service(|project, service| view! { <super::spec::SpecPanel project service /> })
}

#[component]
pub fn SettingsTabRoute() -> impl IntoView {
    for_service(|project, service| view! { <SettingsTab project service /> })
}

/// The tabs that work per environment (overview, logs, environment, domains): the environments
/// come from the live status, which also feeds the overview.
fn with_environments(
    project: String,
    service: String,
    render: impl Fn(String, String, Vec<ServiceStatus>) -> AnyView + Send + Sync + 'static,
) -> impl IntoView {
    let status = status_resource(project.clone(), service.clone());
    with_status(status, project, service, render)
}

pub(crate) type StatusResource = Resource<Result<Vec<ServiceStatus>, enclii_api::ApiError>>;

/// The service's live status per environment.
fn status_resource(project: String, service: String) -> StatusResource {
    Resource::new(
        move || (project.clone(), service.clone()),
        |(p, s)| service_status(p, s),
    )
}

fn environment_names(list: &[ServiceStatus]) -> Vec<String> {
    list.iter().map(|s| s.environment.clone()).collect()
}

/// The environment a per-environment resource reads: the user's pick, else the default of the
/// environments the status names (so it waits for the status).
pub(crate) async fn chosen_environment(
    picked: Option<String>,
    status: StatusResource,
) -> Result<String, enclii_api::ApiError> {
    Ok(match picked {
        Some(e) => e,
        None => default_environment(&environment_names(&status.await?)),
    })
}

/// `render` once `status` is known. Whatever `render` creates is created again on each of this
/// Suspense's server render passes: a resource it makes is fetched twice. Make those outside and
/// pass them in (see `OverviewTabRoute`).
fn with_status(
    status: StatusResource,
    project: String,
    service: String,
    render: impl Fn(String, String, Vec<ServiceStatus>) -> AnyView + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || {
                let (project, service) = (project.clone(), service.clone());
                status
                    .get()
                    .map(|r| match r {
                        Err(enclii_api::ApiError::Unavailable { message }) => {
                            view! { <p class="mb-6 text-sm text-slate-500">{format!("Live status unavailable: {message}")}</p> }.into_any()
                        }
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(list) => render(project, service, list),
                    })
            }}
        </Suspense>
    }
}

/// Request rate, error rate and latency of one environment over the last hour: `metrics` of the
/// environment `picked` (the default one of `environments` until the user picks).
#[component]
fn Charts(
    metrics: Resource<Result<enclii_api::ServiceMetrics, enclii_api::ApiError>>,
    picked: RwSignal<Option<String>>,
    environments: Vec<String>,
) -> impl IntoView {
    use crate::components::chart::Sparkline;
    let environment = follow_pick(picked, &environments);
    view! {
        <section aria-label="Charts" class="mb-6">
            <div class="mb-2 flex flex-wrap items-center gap-3">
                <h2 class="text-base font-semibold">"Last hour"</h2>
                <EnvironmentSelect label="Charts of environment" environments selected=environment />
            </div>
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading charts…"</p> }>
                {move || {
                    metrics
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                            Ok(m) => view! {
                                {m.unavailable.clone().map(|u| view! { <p class="mb-2 text-sm text-slate-500">{format!("Metrics unavailable: {u}")}</p> })}
                                <div class="grid gap-3 sm:grid-cols-3" data-testid="charts">
                                    <Sparkline title="Requests" points=m.requests_per_second format=|v| format!("{v:.1} req/s") />
                                    <Sparkline title="Errors" points=m.error_ratio format=|v| format!("{:.2}%", v * 100.0) tone="text-red-500" />
                                    <Sparkline title="Latency p95" points=m.latency_p95_ms format=|v| format!("{v:.0} ms") tone="text-amber-500" />
                                </div>
                            }
                                .into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

/// The spec's revision and the service's domains.
///
/// Its resources are read under a Suspense of its own: read under the enclosing one (already
/// resolving when this renders), the server's async render deadlocked inside the reactive graph.
#[component]
fn Summary(project: String, service: String) -> impl IntoView {
    let key = (project.clone(), service.clone());
    let revisions = Resource::new(
        move || key.clone(),
        |(p, s)| super::services::spec_revisions(p, s, Some(1)),
    );
    let domains = Resource::new(move || project.clone(), super::domains::list_domains);
    view! {
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
        <div class="grid gap-3 sm:grid-cols-2">
            <section aria-label="Spec summary" class="rounded-xl border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
                <h2 class="text-sm text-slate-500">"Spec"</h2>
                {move || revisions.get().map(|r| match r {
                    Ok(list) => list.first().map(|c| view! {
                        <p class="mt-1 font-medium">{format!("Revision {}", c.revision)}</p>
                        <p class="text-xs text-slate-500">{format!("imported {}{}", crate::components::time::minute(&c.created_at), c.created_by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default())}</p>
                    }).into_any(),
                    Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                })}
            </section>
            <section aria-label="Domains summary" class="rounded-xl border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
                <h2 class="text-sm text-slate-500">"Domains"</h2>
                {move || {
                    let service = service.clone();
                    domains.get().map(|r| match r {
                        Ok(list) => {
                            let mine: Vec<_> = list.into_iter().filter(|d| d.service == service).collect();
                            if mine.is_empty() {
                                view! { <p class="mt-1 text-sm text-slate-500">"None yet: add one in the Domains tab."</p> }.into_any()
                            } else {
                                view! {
                                    <ul class="mt-1 space-y-1 text-sm">
                                        {mine.into_iter().map(|d| view! {
                                            <li>{d.hostname.clone()} " "
                                                <span class="text-xs text-slate-500">{format!("{} · {}", d.environment, if d.verified { "verified" } else { "pending verification" })}</span>
                                            </li>
                                        }).collect_view()}
                                    </ul>
                                }.into_any()
                            }
                        }
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                    })
                }}
            </section>
        </div>
        </Suspense>
    }
}

/// History with each deployment's state, and a rollback per environment.
#[component]
fn DeploymentsTab(project: String, service: String) -> impl IntoView {
    let key = (project.clone(), service.clone());
    let query = leptos_router::hooks::use_query_map();
    let deployments = Resource::new(
        move || {
            (
                key.clone(),
                query.with(|q| q.get("cursor").and_then(|c| c.parse().ok())),
            )
        },
        |((p, s), cursor)| async move { list_deployments(p, Some(s), cursor, Some(30)).await },
    );
    let rollback = ServerAction::<super::deployments::Rollback>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = rollback.value().get() {
            deployments.refetch();
        }
    });
    let gates = (project.clone(), service.clone());
    view! {
        <super::environments::EnvironmentGates project=gates.0 service=gates.1 />
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || {
                let (project, service) = (project.clone(), service.clone());
                deployments
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(page) => {
                            let mut environments: Vec<String> = page.items.iter().map(|d| d.environment.clone()).collect();
                            environments.sort();
                            environments.dedup();
                            view! {
                                <div class="mb-4 flex flex-wrap items-center gap-2">
                                    {environments.into_iter().map(|environment| {
                                        let (project, service) = (project.clone(), service.clone());
                                        let label = format!("Roll back {environment}");
                                        view! {
                                            <button
                                                type="button"
                                                class="rounded-lg border border-slate-300 px-3 py-1.5 text-sm hover:bg-slate-100 focus:outline-none focus:ring-2 focus:ring-indigo-400 dark:border-slate-700 dark:hover:bg-slate-800"
                                                on:click=move |_| {
                                                    if crate::components::state::confirm(&format!("Roll {service} in {environment} back to the release that ran before the current one?")) {
                                                        rollback.dispatch(super::deployments::Rollback {
                                                            project: project.clone(),
                                                            service: service.clone(),
                                                            environment: environment.clone(),
                                                            release: None,
                                                        });
                                                    }
                                                }
                                            >
                                                {label}
                                            </button>
                                        }
                                    }).collect_view()}
                                    {move || rollback.value().get().map(|r| match r {
                                        Ok(d) => view! { <a class="text-sm text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/projects/{}/deployments/{}", d.project, d.id)>{format!("Rollback started: deployment #{}", d.id)}</a> }.into_any(),
                                        Err(e) => view! { <span role="alert" class="text-sm text-red-700 dark:text-red-300">{e.to_string()}</span> }.into_any(),
                                    })}
                                </div>
                                <Recent list=page.items />
                                <PageLinks next=page.next label="Older deployments →" />
                            }
                                .into_any()
                        }
                    })
            }}
        </Suspense>
    }
}

#[component]
fn BuildsTab(project: String, service: String) -> impl IntoView {
    let key = (project.clone(), service.clone());
    let query = leptos_router::hooks::use_query_map();
    let builds = Resource::new(
        move || {
            (
                key.clone(),
                query.with(|q| q.get("cursor").and_then(|c| c.parse().ok())),
            )
        },
        |((p, s), cursor)| async move { super::builds::list_builds(p, Some(s), cursor, Some(20)).await },
    );
    view! {
        <BuildButton project service />
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || {
                builds
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(page) => view! {
                            <Builds list=page.items />
                            <PageLinks next=page.next label="Older builds →" />
                        }
                            .into_any(),
                    })
            }}
        </Suspense>
    }
}

/// Where the service builds from, and the webhook that deploys it on push.
#[component]
fn SettingsTab(project: String, service: String) -> impl IntoView {
    let repos = Resource::new(move || project.clone(), super::builds::list_repositories);
    view! {
        <section aria-label="Continuous deployment" class="mb-6">
            <h2 class="mb-2 text-base font-semibold">"Continuous deployment"</h2>
            <p class="mb-3 text-sm text-slate-600 dark:text-slate-400">
                {format!("Pushes to the branch in {service}'s spec (build.source.git) build and deploy it when the repository is connected and GitHub sends its webhook here. The branch, path and auto-deploy are set in the Spec tab.")}
            </p>
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
                {move || {
                    repos
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                            Ok(list) if list.is_empty() => view! {
                                <p class="text-sm text-slate-500">"No repository connected: " <code>"enclii repos connect https://github.com/OWNER/REPO"</code> " prints the webhook URL and its secret."</p>
                            }.into_any(),
                            Ok(list) => view! {
                                <ul class="space-y-2 text-sm" data-testid="repositories">
                                    {list.into_iter().map(|r| view! {
                                        <li class="rounded-xl border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900">
                                            <p class="font-medium">{r.url.clone()}</p>
                                            <p class="text-xs text-slate-500">"Webhook: " <code>{r.webhook_url.clone()}</code></p>
                                        </li>
                                    }).collect_view()}
                                </ul>
                            }.into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn LiveStatus(project: String, service: String, initial: Vec<ServiceStatus>) -> impl IntoView {
    let live = RwSignal::new(initial);
    #[cfg(feature = "hydrate")]
    {
        let url = format!(
            "/api/events/status/{}/{}",
            urlencode(&project),
            urlencode(&service)
        );
        let subscription = crate::components::live::subscribe(&url, Some("status"), move |text| {
            if let Ok(list) = serde_json::from_str::<Vec<ServiceStatus>>(&text) {
                live.set(list);
            }
        });
        let held = StoredValue::new_local(subscription);
        on_cleanup(move || held.set_value(None));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (&project, &service);
    view! {
        <section aria-label="Status" class="mb-6">
            <ul class="grid gap-3 sm:grid-cols-2" data-testid="status">
                {move || {
                    live.get()
                        .into_iter()
                        .map(|s| {
                            let replicas = if s.deployed { format!("{}/{} ready", s.ready, s.desired) } else { "not deployed".to_owned() };
                            view! {
                                <li data-testid=format!("status-{}", s.environment) class="rounded-xl border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
                                    <div class="flex items-baseline justify-between">
                                        <span class="font-medium">{s.environment.clone()}</span>
                                        <span class="text-sm" data-testid="replicas">{replicas}</span>
                                    </div>
                                    <p class="mt-1 truncate font-mono text-xs text-slate-500">{s.image.clone().unwrap_or_default()}</p>
                                    <p class="text-xs text-slate-500">{s.progress.clone().unwrap_or_default()}</p>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
        </section>
    }
}

#[component]
fn Recent(list: Vec<DeploymentSummary>) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="mb-6 text-sm text-slate-500">"No deployments yet: " <code>"enclii deploy --service NAME --env production --image REF"</code></p> }.into_any();
    }
    view! {
        <section aria-label="Recent deployments" class="mb-6">
            <h2 class="mb-2 text-base font-semibold">"Recent deployments"</h2>
            <ul class="space-y-1 text-sm">
                {list
                    .into_iter()
                    .map(|d| view! {
                        <li class="flex flex-wrap items-center gap-2">
                            <a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/projects/{}/deployments/{}", d.project, d.id)>{format!("#{}", d.id)}</a>
                            <span>{d.environment.clone()}</span>
                            <span class=format!("rounded-full px-2 py-0.5 text-xs {}", state_tone(d.state.as_str()))>{d.state.as_str()}</span>
                            <span class="truncate font-mono text-xs text-slate-500">{d.image.clone()}</span>
                        </li>
                    })
                    .collect_view()}
            </ul>
        </section>
    }
    .into_any()
}

/// The most lines kept on screen.
#[cfg(feature = "hydrate")]
const MAX_LINES: usize = 1000;

/// Pod logs of one environment, live. Pause freezes the view (lines keep arriving and show on
/// resume); the filter keeps lines that contain its text.
#[component]
fn Logs(project: String, service: String, environments: Vec<String>) -> impl IntoView {
    let environment = RwSignal::new(default_environment(&environments));
    let lines = RwSignal::new(Vec::<String>::new());
    let paused = RwSignal::new(false);
    let filter = RwSignal::new(String::new());
    let shown = RwSignal::new(Vec::<String>::new());
    // What the view shows: every line while following, the last snapshot while paused.
    Effect::new(move |_| {
        let all = lines.get();
        if !paused.get() {
            shown.set(all);
        }
    });
    #[cfg(feature = "hydrate")]
    {
        let held = StoredValue::new_local(None::<crate::components::live::Subscription>);
        let (project, service) = (project.clone(), service.clone());
        Effect::new(move |_| {
            let env = environment.get();
            lines.set(Vec::new());
            let url = format!(
                "/api/logs/{}/{}/{}?follow=true&tail=200&format=sse",
                urlencode(&project),
                urlencode(&service),
                urlencode(&env)
            );
            let subscription = crate::components::live::subscribe(&url, None, move |line| {
                lines.update(|l| {
                    l.push(line);
                    if l.len() > MAX_LINES {
                        let excess = l.len() - MAX_LINES;
                        l.drain(..excess);
                    }
                });
            });
            held.set_value(subscription);
        });
        on_cleanup(move || held.set_value(None));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (&project, &service);
    view! {
        <section aria-label="Logs" class="mb-6">
            <div class="mb-2 flex flex-wrap items-center gap-3">
                <h2 class="text-base font-semibold">"Logs"</h2>
                <EnvironmentSelect label="Logs of environment" environments selected=environment />
                <button
                    type="button"
                    class="rounded-lg border border-slate-300 px-3 py-1 text-sm dark:border-slate-700"
                    aria-pressed=move || paused.get().to_string()
                    on:click=move |_| paused.update(|p| *p = !*p)
                >
                    {move || if paused.get() { "Follow" } else { "Pause" }}
                </button>
                <input
                    type="search"
                    aria-label="Filter logs"
                    placeholder="Filter"
                    class="rounded-lg border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900"
                    on:input=move |ev| filter.set(event_target_value(&ev))
                />
            </div>
            <pre data-testid="logs" class="h-80 overflow-auto rounded-xl bg-slate-950 p-3 font-mono text-xs leading-5 text-slate-100">
                {move || {
                    let f = filter.get();
                    let text: Vec<String> = shown.get().into_iter().filter(|l| f.is_empty() || l.contains(&f)).collect();
                    if text.is_empty() { "Waiting for log lines…".to_owned() } else { text.join("\n") }
                }}
            </pre>
        </section>
    }
}

/// The service's recent builds; choosing one shows its log, live while it runs.
#[component]
fn Builds(list: Vec<enclii_api::BuildSummary>) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="mb-6 text-sm text-slate-500">"No builds yet: a push to the spec's branch starts one, or " <code>"enclii build --service NAME --env production"</code></p> }.into_any();
    }
    let project = list[0].project.clone();
    let chosen = RwSignal::new(None::<i64>);
    let log = RwSignal::new(Vec::<String>::new());
    #[cfg(feature = "hydrate")]
    {
        let held = StoredValue::new_local(None::<crate::components::live::Subscription>);
        let project = project.clone();
        Effect::new(move |_| {
            let Some(id) = chosen.get() else { return };
            log.set(Vec::new());
            let url = format!(
                "/api/builds/{}/{id}/logs?follow=true&format=sse",
                urlencode(&project)
            );
            held.set_value(crate::components::live::subscribe(
                &url,
                None,
                move |line| {
                    log.update(|l| l.push(line));
                },
            ));
        });
        on_cleanup(move || held.set_value(None));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = &project;
    view! {
        <section aria-label="Builds" class="mb-6">
            <h2 class="mb-2 text-base font-semibold">"Builds"</h2>
            <ul class="space-y-1 text-sm" data-testid="builds">
                {list
                    .into_iter()
                    .map(|b| {
                        let id = b.id;
                        view! {
                            <li class="flex flex-wrap items-center gap-2">
                                <button type="button" class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" on:click=move |_| chosen.set(Some(id))>
                                    {format!("Build #{}", b.id)}
                                </button>
                                <span class=format!("rounded-full px-2 py-0.5 text-xs {}", state_tone(&b.state))>{b.state.clone()}</span>
                                <span class="font-mono text-xs text-slate-500">{b.git_ref.chars().take(12).collect::<String>()}</span>
                                <span class="text-xs text-slate-500">{b.state_reason.clone().unwrap_or_default()}</span>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            <Show when=move || chosen.get().is_some()>
                <pre data-testid="build-log" class="mt-2 h-64 overflow-auto rounded-xl bg-slate-950 p-3 font-mono text-xs leading-5 text-slate-100">
                    {move || { let l = log.get(); if l.is_empty() { "Waiting for the build's log…".to_owned() } else { l.join("\n") } }}
                </pre>
            </Show>
        </section>
    }
    .into_any()
}

/// Builds the service from its repository's branch and deploys it to production, through the same
/// pipeline a push runs.
#[component]
fn BuildButton(project: String, service: String) -> impl IntoView {
    let build = ServerAction::<super::builds::CreateBuild>::new();
    let result = move || {
        build.value().get().map(|r| match r {
            Ok(b) => view! { <span class="text-sm text-slate-600 dark:text-slate-400">{format!("Build #{} queued ({}).", b.id, b.git_ref)}</span> }.into_any(),
            Err(e) => view! { <span role="alert" class="text-sm text-red-700 dark:text-red-300">{e.to_string()}</span> }.into_any(),
        })
    };
    view! {
        <div class="mb-2 flex flex-wrap items-center gap-3">
            <button
                type="button"
                class="rounded-lg bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-400"
                on:click=move |_| {
                    build.dispatch(super::builds::CreateBuild {
                        project: project.clone(),
                        service: service.clone(),
                        environment: "production".into(),
                        git_ref: None,
                    });
                }
            >
                "Build and deploy to production"
            </button>
            {result}
        </div>
    }
}
