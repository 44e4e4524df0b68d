//! A project's notification destinations (admins): where events go, whether each is failing, a
//! test button, and each one's delivery log. The server functions are the CLI's
//! `enclii notifications list|add|remove|test|log`.

use enclii_api::Json;
use enclii_api::{
    ApiError, Destination, DestinationCreated, DestinationKind, EventKind, NewDestination,
    NotificationDelivery,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::components::state::{ApiErrorPanel, confirm};

/// A project's destinations (admin).
#[server(endpoint = "notifications/list", input = Json, output = Json)]
pub async fn list_destinations(project: String) -> Result<Vec<Destination>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::notify::destinations::list(&engine, caller.as_ref(), &project)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Adds a destination (admin); a generic webhook's signing secret is in the answer, once.
#[server(endpoint = "notifications/add", input = Json, output = Json)]
pub async fn add_destination(
    project: String,
    destination: NewDestination,
) -> Result<DestinationCreated, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::notify::destinations::add(&engine, caller.as_ref(), &project, destination)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Removes a destination (admin); what it had not been sent yet is dropped with it.
#[server(endpoint = "notifications/remove", input = Json, output = Json)]
pub async fn remove_destination(project: String, name: String) -> Result<(), ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::notify::destinations::remove(&engine, caller.as_ref(), &project, &name)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Queues a sample message to one destination (admin); returns the event's id.
#[server(endpoint = "notifications/test", input = Json, output = Json)]
pub async fn test_destination(project: String, name: String) -> Result<String, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::notify::destinations::test(&engine, caller.as_ref(), &project, &name)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// A destination's deliveries, newest first (admin).
#[server(endpoint = "notifications/log", input = Json, output = Json)]
pub async fn destination_log(
    project: String,
    name: String,
    limit: Option<i64>,
) -> Result<Vec<NotificationDelivery>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::notify::destinations::log(
        &engine,
        caller.as_ref(),
        &project,
        &name,
        limit.unwrap_or(50),
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

const FIELD: &str = "rounded-lg border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900";

/// `/projects/:project/notifications`.
#[component]
pub fn NotificationsPage() -> impl IntoView {
    let params = use_params_map();
    let project = move || params.read().get("project").unwrap_or_default();
    view! {
        <Title text=move || format!("Notifications of {}", project()) />
        <div class="mb-2">
            <p class="text-sm text-slate-500">
                <a class="hover:underline" href="/projects">"Projects"</a>
                " / "
                <a class="hover:underline" href=move || format!("/projects/{}", project())>{project}</a>
            </p>
            <h1 class="text-2xl font-semibold tracking-tight">"Notifications"</h1>
        </div>
        {move || view! { <DestinationsPanel project=project() /> }}
    }
}

#[component]
fn DestinationsPanel(project: String) -> impl IntoView {
    let p = project.clone();
    let destinations = Resource::new(move || p.clone(), list_destinations);
    let add = ServerAction::<AddDestination>::new();
    let remove = ServerAction::<RemoveDestination>::new();
    let test = ServerAction::<TestDestination>::new();
    let shown_log = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        if matches!(add.value().get(), Some(Ok(_))) || matches!(remove.value().get(), Some(Ok(_))) {
            destinations.refetch();
        }
    });
    let error = move || {
        let e = match (add.value().get(), remove.value().get(), test.value().get()) {
            (Some(Err(e)), _, _) | (_, Some(Err(e)), _) | (_, _, Some(Err(e))) => {
                Some(e.to_string())
            }
            _ => None,
        };
        e.map(|e| view! { <p role="alert" class="mt-2 text-sm text-red-700 dark:text-red-300">{e}</p> })
    };
    let secret = move || {
        add.value().get().and_then(|r| r.ok()).and_then(|c| {
            c.signing_secret.map(|s| view! {
                <div role="status" class="mt-3 rounded-lg border border-amber-300 bg-amber-50 p-3 text-sm dark:border-amber-800 dark:bg-amber-950">
                    <p>"Signing secret of " <strong>{c.destination.name.clone()}</strong> ", shown this once (Standard Webhooks: verify " <code>"webhook-signature"</code> " with it):"</p>
                    <code data-testid="signing-secret" class="mt-1 block break-all">{s}</code>
                </div>
            })
        })
    };
    let tested = move || {
        test.value().get().and_then(|r| r.ok()).map(|id| view! {
            <p role="status" class="mt-2 text-sm text-slate-600 dark:text-slate-300">"Test queued (event " <code>{id}</code> "); its delivery shows in the log."</p>
        })
    };
    let table_project = project.clone();
    let log_project = project.clone();
    view! {
        <section aria-label="Destinations" class="mt-6">
            <p class="mb-3 text-xs text-slate-500">
                "Deployments, rollbacks, failed builds, rejected webhooks, failed or missed cron jobs and status changes, sent to Slack, Discord, a signed webhook or email. Each event is written with the change it reports and delivered with retries; a burst beyond a destination's rate limit arrives as one digest."
            </p>
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading destinations…"</p> }>
                {move || {
                    let project = table_project.clone();
                    destinations.get().map(|r| match r {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="text-sm text-slate-500">"No destinations yet: nothing is sent."</p> }.into_any(),
                        Ok(list) => view! { <DestinationTable project list remove test shown_log /> }.into_any(),
                    })
                }}
            </Suspense>
            {error}
            {tested}
            {secret}
            <AddForm project=project.clone() add />
        </section>
        {move || shown_log.get().map(|name| view! { <DeliveryLog project=log_project.clone() name /> })}
    }
}

#[component]
fn DestinationTable(
    project: String,
    list: Vec<Destination>,
    remove: ServerAction<RemoveDestination>,
    test: ServerAction<TestDestination>,
    shown_log: RwSignal<Option<String>>,
) -> impl IntoView {
    view! {
        <div class="overflow-x-auto">
            <table class="w-full text-left text-sm" data-testid="destinations">
                <thead>
                    <tr class="text-slate-500">
                        <th class="py-2">"Destination"</th>
                        <th>"Events"</th>
                        <th>"Environments"</th>
                        <th>"State"</th>
                        <th><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|d| {
                        let (p1, n1) = (project.clone(), d.name.clone());
                        let (p2, n2) = (project.clone(), d.name.clone());
                        let n3 = d.name.clone();
                        let events = if d.events.len() == EventKind::SUBSCRIBABLE.len() {
                            "all".to_owned()
                        } else {
                            d.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
                        };
                        let envs = d.environments.clone().map(|e| e.join(", ")).unwrap_or_else(|| "all".into());
                        view! {
                            <tr class="border-t border-slate-200 dark:border-slate-800">
                                <td class="py-2">
                                    <span class="font-medium">{d.name.clone()}</span>
                                    <p class="text-xs text-slate-500">{format!("{} · {}", d.kind, d.target)}</p>
                                </td>
                                <td class="text-xs">{events}</td>
                                <td class="text-xs">{envs}</td>
                                <td>
                                    {if d.failing {
                                        view! { <span class="rounded bg-red-100 px-2 py-0.5 text-xs text-red-800 dark:bg-red-950 dark:text-red-200">{format!("failing ({} in a row)", d.consecutive_failures)}</span> }.into_any()
                                    } else {
                                        view! { <span class="rounded bg-green-100 px-2 py-0.5 text-xs text-green-800 dark:bg-green-950 dark:text-green-200">"ok"</span> }.into_any()
                                    }}
                                </td>
                                <td class="whitespace-nowrap text-right">
                                    <button type="button" class="rounded-lg border border-slate-300 px-2 py-1 text-xs dark:border-slate-700"
                                        on:click=move |_| { test.dispatch(TestDestination { project: p1.clone(), name: n1.clone() }); }>
                                        "Send a test"
                                    </button>
                                    " "
                                    <button type="button" class="rounded-lg border border-slate-300 px-2 py-1 text-xs dark:border-slate-700"
                                        on:click=move |_| shown_log.set(Some(n3.clone()))>
                                        "Delivery log"
                                    </button>
                                    " "
                                    <button type="button" class="rounded-lg border border-red-300 px-2 py-1 text-xs text-red-700 dark:border-red-800 dark:text-red-300"
                                        on:click=move |_| {
                                            if confirm(&format!("Remove the destination {n2}?")) {
                                                remove.dispatch(RemoveDestination { project: p2.clone(), name: n2.clone() });
                                            }
                                        }>
                                        "Remove"
                                    </button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn AddForm(project: String, add: ServerAction<AddDestination>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let kind = RwSignal::new(DestinationKind::Slack);
    let target = RwSignal::new(String::new());
    let environments = RwSignal::new(String::new());
    let failures_only = RwSignal::new(false);
    view! {
        <form
            class="mt-4 flex flex-wrap items-end gap-2"
            on:submit=move |ev| {
                ev.prevent_default();
                let k = kind.get_untracked();
                let t = target.get_untracked().trim().to_owned();
                let (url, recipients) = if k == DestinationKind::Email {
                    (None, t.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                } else {
                    (Some(t), Vec::new())
                };
                let events = if failures_only.get_untracked() {
                    EventKind::SUBSCRIBABLE.into_iter().filter(|e| e.is_problem()).collect()
                } else {
                    Vec::new()
                };
                add.dispatch(AddDestination {
                    project: project.clone(),
                    destination: NewDestination {
                        name: name.get_untracked().trim().to_owned(),
                        kind: k,
                        url,
                        recipients,
                        events,
                        environments: environments.get_untracked().split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
                    },
                });
                target.set(String::new());
            }
        >
            <label class="text-sm">
                <span class="block text-slate-500">"Name"</span>
                <input required placeholder="ops-alerts" class=FIELD prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
            </label>
            <label class="text-sm">
                <span class="block text-slate-500">"Kind"</span>
                <select class=FIELD on:change=move |ev| {
                    if let Some(k) = DestinationKind::parse(&event_target_value(&ev)) {
                        kind.set(k);
                    }
                }>
                    {DestinationKind::ALL.iter().map(|k| view! { <option value=k.as_str()>{k.as_str()}</option> }).collect_view()}
                </select>
            </label>
            <label class="text-sm">
                <span class="block text-slate-500">{move || if kind.get() == DestinationKind::Email { "Recipients (comma-separated)" } else { "Webhook URL (kept sealed, never shown again)" }}</span>
                <input required type=move || if kind.get() == DestinationKind::Email { "text" } else { "password" } autocomplete="off" class=FIELD
                    prop:value=move || target.get() on:input=move |ev| target.set(event_target_value(&ev)) />
            </label>
            <label class="text-sm">
                <span class="block text-slate-500">"Environments (empty: all)"</span>
                <input placeholder="production" class=FIELD prop:value=move || environments.get() on:input=move |ev| environments.set(event_target_value(&ev)) />
            </label>
            <label class="flex items-center gap-1 text-sm">
                <input type="checkbox" prop:checked=move || failures_only.get() on:change=move |ev| failures_only.set(event_target_checked(&ev)) />
                "Problems only"
            </label>
            <button type="submit" class="rounded-lg bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-indigo-500">
                "Add destination"
            </button>
        </form>
    }
}

#[component]
fn DeliveryLog(project: String, name: String) -> impl IntoView {
    let key = (project, name.clone());
    let log = Resource::new(
        move || key.clone(),
        |(p, n)| destination_log(p, n, Some(50)),
    );
    view! {
        <section aria-label="Delivery log" class="mt-8">
            <h2 class="mb-2 text-base font-semibold">{format!("Delivery log of {name}")}</h2>
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading deliveries…"</p> }>
                {move || log.get().map(|r| match r {
                    Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                    Ok(list) => view! {
                        <table class="w-full text-left text-sm" data-testid="delivery-log">
                            <thead><tr class="text-slate-500"><th class="py-2">"Event"</th><th>"State"</th><th>"Attempts"</th><th>"Last answer"</th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|d| view! {
                                    <tr class="border-t border-slate-200 dark:border-slate-800">
                                        <td class="py-2"><span class="font-medium">{d.summary}</span><p class="text-xs text-slate-500">{format!("{} · {}", d.event, crate::components::time::day(&d.occurred_at))}</p></td>
                                        <td>{d.state.as_str()}</td>
                                        <td>{d.attempts}</td>
                                        <td class="text-xs">{d.last_status.map(|s| s.to_string()).unwrap_or_default()}" "{d.last_error.unwrap_or_default()}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}
