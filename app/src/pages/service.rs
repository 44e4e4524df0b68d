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
#[cfg(feature = "hydrate")]
use crate::components::state::urlencode;
use crate::components::state::{ApiErrorPanel, EmptyState};

/// `/projects/:project`: the project's services with the newest deployment per environment.
#[component]
pub fn ProjectPage() -> impl IntoView {
    let params = use_params_map();
    let project = move || params.read().get("project").unwrap_or_default();
    let services = Resource::new(project, |p| list_services(p, None, None));
    let deliveries = Resource::new(project, |p| super::builds::list_deliveries(p, Some(20)));
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
                        Ok(page) => view! { <ServiceTable services=page.items /> }.into_any(),
                    })
            }}
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

/// `/projects/:project/services/:service`.
#[component]
pub fn ServicePage() -> impl IntoView {
    let params = use_params_map();
    let key = move || {
        let p = params.read();
        (
            p.get("project").unwrap_or_default(),
            p.get("service").unwrap_or_default(),
        )
    };
    let status = Resource::new(key, |(p, s)| service_status(p, s));
    let deployments = Resource::new(key, |(p, s)| async move {
        list_deployments(p, Some(s), None, Some(10)).await
    });
    let builds = Resource::new(key, |(p, s)| async move {
        super::builds::list_builds(p, Some(s), None, Some(10)).await
    });
    view! {
        <Title text=move || key().1 />
        <div class="mb-6">
            <p class="text-sm text-slate-500">
                <a class="hover:underline" href=move || format!("/projects/{}", key().0)>{move || key().0}</a>
            </p>
            <h1 class="text-2xl font-semibold tracking-tight">{move || key().1}</h1>
        </div>
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || {
                status
                    .get()
                    .map(|r| match r {
                        Err(enclii_api::ApiError::Unavailable { message }) => {
                            view! { <p class="mb-6 text-sm text-slate-500">{format!("Live status unavailable: {message}")}</p> }.into_any()
                        }
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(list) => {
                            let (project, service) = key();
                            let environments: Vec<String> = list.iter().map(|s| s.environment.clone()).collect();
                            view! {
                                <LiveStatus project=project.clone() service=service.clone() initial=list />
                                <Logs project=project.clone() service=service.clone() environments=environments.clone() />
                                <super::environment::EnvironmentPanel project=project.clone() service=service.clone() environments=environments.clone() />
                                <super::domains::DomainsPanel project service environments />
                            }
                                .into_any()
                        }
                    })
            }}
            {move || {
                deployments
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(page) => view! { <Recent list=page.items /> }.into_any(),
                    })
            }}
            {move || {
                builds
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(page) => {
                            let (project, service) = key();
                            view! {
                                <BuildButton project service />
                                <Builds list=page.items />
                            }
                                .into_any()
                        }
                    })
            }}
        </Suspense>
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
    let first = environments
        .iter()
        .find(|e| *e == "production")
        .or(environments.first())
        .cloned()
        .unwrap_or_default();
    let environment = RwSignal::new(first.clone());
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
                <label class="text-sm">
                    <span class="sr-only">"Logs of environment"</span>
                    <select
                        aria-label="Logs of environment"
                        class="rounded-lg border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900"
                        on:change=move |ev| environment.set(event_target_value(&ev))
                    >
                        {environments
                            .into_iter()
                            .map(|e| {
                                let selected = e == first;
                                view! { <option value=e.clone() selected=selected>{e.clone()}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
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
