//! Custom domains: server functions, and the service page's panel with the DNS instructions and
//! verification state of each.

use enclii_api::Json;
use enclii_api::{ApiError, Domain};
use leptos::prelude::*;

/// Adds a custom domain to a service in an environment (admin); routed once verified.
#[server(endpoint = "domains/add", input = Json, output = Json)]
pub async fn add_domain(
    project: String,
    service: String,
    environment: String,
    hostname: String,
    tls: Option<bool>,
    tls_issuer: Option<String>,
) -> Result<Domain, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::domains::add(
        &engine,
        caller.as_ref(),
        &project,
        &service,
        &environment,
        &hostname,
        tls,
        tls_issuer.as_deref(),
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// Checks a domain's TXT record now (admin).
#[server(endpoint = "domains/verify", input = Json, output = Json)]
pub async fn verify_domain(project: String, hostname: String) -> Result<Domain, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::domains::verify(&engine, caller.as_ref(), &project, &hostname)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// A project's custom domains.
#[server(endpoint = "domains/list", input = Json, output = Json)]
pub async fn list_domains(project: String) -> Result<Vec<Domain>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::domains::list(&engine, caller.as_ref(), &project)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Removes a custom domain (admin).
#[server(endpoint = "domains/remove", input = Json, output = Json)]
pub async fn remove_domain(project: String, hostname: String) -> Result<(), ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::domains::remove(&engine, caller.as_ref(), &project, &hostname)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// The domains panel's server state. The tab makes it outside the Suspense the panel renders in
/// (made inside, the list would be fetched once per server render pass of that Suspense).
#[derive(Clone, Copy)]
pub struct DomainsState {
    add: ServerAction<AddDomain>,
    verify: ServerAction<VerifyDomain>,
    domains: Resource<Result<Vec<Domain>, ApiError>>,
}

impl DomainsState {
    pub fn new(project: String) -> Self {
        let add = ServerAction::<AddDomain>::new();
        let verify = ServerAction::<VerifyDomain>::new();
        let domains = Resource::new(
            move || (project.clone(), add.version().get(), verify.version().get()),
            |(p, _, _)| list_domains(p),
        );
        Self {
            add,
            verify,
            domains,
        }
    }
}

/// The service's custom domains with what to put in DNS, a form to add one, and Verify buttons.
#[component]
pub fn DomainsPanel(
    project: String,
    service: String,
    environments: Vec<String>,
    state: DomainsState,
) -> impl IntoView {
    let DomainsState {
        add,
        verify,
        domains,
    } = state;
    let hostname = RwSignal::new(String::new());
    let environment = RwSignal::new(environments.first().cloned().unwrap_or_default());
    let error = move || {
        let e = match (add.value().get(), verify.value().get()) {
            (Some(Err(e)), _) | (_, Some(Err(e))) => Some(e.to_string()),
            _ => None,
        };
        e.map(|e| view! { <p role="alert" class="mt-2 text-sm text-red-700 dark:text-red-300">{e}</p> })
    };
    let (p2, s2) = (project.clone(), service.clone());
    view! {
        <section aria-label="Domains" class="mb-6">
            <h2 class="mb-2 text-base font-semibold">"Custom domains"</h2>
            <form
                class="mb-3 flex flex-wrap items-end gap-2"
                on:submit=move |ev| {
                    ev.prevent_default();
                    add.dispatch(AddDomain {
                        project: p2.clone(),
                        service: s2.clone(),
                        environment: environment.get_untracked(),
                        hostname: hostname.get_untracked(),
                        tls: None,
                        tls_issuer: None,
                    });
                }
            >
                <label class="text-sm">
                    <span class="block text-slate-600 dark:text-slate-400">"Hostname"</span>
                    <input
                        required
                        class="rounded-lg border border-slate-300 bg-white px-2 py-1 dark:border-slate-700 dark:bg-slate-900"
                        placeholder="app.example.com"
                        on:input=move |ev| hostname.set(event_target_value(&ev))
                    />
                </label>
                <label class="text-sm">
                    <span class="block text-slate-600 dark:text-slate-400">"Routed in"</span>
                    <select
                        class="rounded-lg border border-slate-300 bg-white px-2 py-1 dark:border-slate-700 dark:bg-slate-900"
                        on:change=move |ev| environment.set(event_target_value(&ev))
                    >
                        {environments.iter().map(|e| view! { <option value=e.clone()>{e.clone()}</option> }).collect_view()}
                    </select>
                </label>
                <button type="submit" class="rounded-lg bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-indigo-500">"Add domain"</button>
            </form>
            {error}
            <Suspense fallback=|| ()>
                {move || {
                    let service = service.clone();
                    let project = project.clone();
                    domains
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <crate::components::state::ApiErrorPanel error=e /> }.into_any(),
                            Ok(list) => {
                                let mine: Vec<Domain> = list.into_iter().filter(|d| d.service == service).collect();
                                if mine.is_empty() {
                                    return view! { <p class="text-sm text-slate-500">"No custom domains. The spec's domains are routed without verification."</p> }.into_any();
                                }
                                view! {
                                    <ul class="space-y-2" data-testid="domains">
                                        {mine.into_iter().map(|d| {
                                            let host = d.hostname.clone();
                                            let project = project.clone();
                                            view! {
                                                <li class="rounded-lg border border-slate-200 p-3 text-sm dark:border-slate-800">
                                                    <div class="flex flex-wrap items-center justify-between gap-2">
                                                        <span class="font-medium">{format!("{} ({})", d.hostname, d.environment)}</span>
                                                        <span class=format!("rounded-full px-2 py-0.5 text-xs {}", super::deployment::state_tone(if d.verified { "succeeded" } else { "pending" }))>
                                                            {if d.verified { "verified" } else { "not verified" }}
                                                        </span>
                                                    </div>
                                                    <p class="mt-1 text-slate-600 dark:text-slate-400">"Add this TXT record, then verify:"</p>
                                                    <code class="block break-all font-mono text-xs">{format!("{}  TXT  \"{}\"", d.txt_name, d.txt_value)}</code>
                                                    {d.cname_target.map(|t| view! { <code class="block font-mono text-xs">{format!("{}  CNAME  {t}", d.hostname)}</code> })}
                                                    {d.last_check_error.map(|e| view! { <p class="mt-1 text-xs text-amber-700 dark:text-amber-300">{e}</p> })}
                                                    <button
                                                        type="button"
                                                        class="mt-2 rounded-lg border border-slate-300 px-3 py-1 text-xs dark:border-slate-700"
                                                        on:click=move |_| { verify.dispatch(VerifyDomain { project: project.clone(), hostname: host.clone() }); }
                                                    >
                                                        "Verify now"
                                                    </button>
                                                </li>
                                            }
                                        }).collect_view()}
                                    </ul>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Suspense>
        </section>
    }
}
