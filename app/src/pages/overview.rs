use enclii_api::ApiError;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::layout::PageHeader;
use crate::components::state::{ApiErrorPanel, EmptyState};
use crate::pages::deployments::recent_deployments;
use crate::pages::projects::list_projects;
use crate::pages::status::get_status_headline;

type RecentPage = Resource<Result<enclii_api::Page<enclii_api::DeploymentSummary>, ApiError>>;

/// The status page's headline, linked to it.
///
/// Its resource is made here, inside the overview's Suspense, so the server asks for the headline
/// twice per render (see `OverviewPage`); made at the page's top instead, every anonymous visit
/// would read the status tables for nothing (measured: 4,600 → 3,150 pages/s signed out).
#[component]
fn Health() -> impl IntoView {
    let status = Resource::new(|| (), |_| get_status_headline());
    view! {
        <Suspense fallback=|| "…">
            {move || status.get().map(|r| {
                let (text, tone) = match r {
                    Ok(h) if h.overall == "operational" => ("All systems operational".to_owned(), "text-emerald-700 dark:text-emerald-300"),
                    Ok(h) if h.down > 0 => (format!("{} of {} checks failing", h.down, h.targets), "text-red-700 dark:text-red-300"),
                    Ok(_) => ("No probes yet".to_owned(), "text-slate-500"),
                    Err(_) => ("Unknown".to_owned(), "text-slate-500"),
                };
                view! { <a href="/status" data-testid="health" class=format!("text-lg font-semibold hover:underline {tone}")>{text}</a> }
            })}
        </Suspense>
    }
}

/// The newest deployments across the caller's projects, and how many of them failed.
#[component]
fn Recent(recent: RecentPage) -> impl IntoView {
    view! {
        <section aria-label="Recent deployments" class="mt-6">
            <h2 class="mb-2 text-base font-semibold">"Recent deployments"</h2>
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
                {move || recent.get().map(|r| match r {
                    Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                    Ok(page) if page.items.is_empty() => view! { <p class="text-sm text-slate-500">"No deployments yet: " <code>"enclii deploy --service NAME --env production"</code></p> }.into_any(),
                    Ok(page) => {
                        let list = page.items;
                        let failed = list.iter().filter(|d| matches!(d.state.as_str(), "failed" | "rolled_back")).count();
                        view! {
                            <p class="mb-2 text-sm text-slate-600 dark:text-slate-400">{format!("{failed} of the last {} failed or rolled back.", list.len())}</p>
                            <ul class="space-y-1 text-sm" data-testid="recent-deployments">
                                {list.into_iter().take(8).map(|d| view! {
                                    <li class="flex flex-wrap items-center gap-2">
                                        <a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/projects/{}/deployments/{}", d.project, d.id)>{format!("#{}", d.id)}</a>
                                        <span>{format!("{}/{} → {}", d.project, d.service, d.environment)}</span>
                                        <span class=format!("rounded-full px-2 py-0.5 text-xs {}", crate::pages::deployment::state_tone(d.state.as_str()))>{d.state.as_str()}</span>
                                    </li>
                                }).collect_view()}
                            </ul>
                        }.into_any()
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The landing page: a welcome for visitors, the projects at a glance for signed-in users.
#[component]
pub fn OverviewPage() -> impl IntoView {
    let projects = Resource::new(|| (), |_| list_projects());
    // Created here, not in `Recent`: it renders inside the Suspense below, whose children the
    // server renders more than once, and each render made a new resource (the query ran twice).
    // Signed out, it fails at once without reading anything.
    // Eight are shown; the failure count is over the last twenty.
    let recent = Resource::new(|| (), |_| recent_deployments(None, Some(20)));
    view! {
        <Title text="Overview" />
        <PageHeader title="Overview" subtitle="Projects, recent deployments and health at a glance." />
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || {
                projects
                    .get()
                    .map(|r| match r {
                        Err(ApiError::Unauthenticated { .. }) => {
                            view! {
                                <section class="rounded-xl border border-slate-200 bg-white p-8 text-center dark:border-slate-800 dark:bg-slate-900">
                                    <h2 class="text-lg font-semibold">"Welcome to Enclii"</h2>
                                    <p class="mt-2 text-sm text-slate-600 dark:text-slate-400">
                                        "Deploy services to your own Kubernetes cluster. Sign in with your Plinto account to see your projects."
                                    </p>
                                    <a href="/auth/login"
                                    rel="external" class="mt-4 inline-block rounded-lg bg-indigo-600 px-4 py-2 text-sm font-medium text-white">
                                        "Sign in"
                                    </a>
                                </section>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(list) if list.is_empty() => {
                            view! {
                                <EmptyState
                                    title="No projects yet"
                                    hint="Create a project, then import a service spec to deploy it."
                                    command="enclii project create my-project"
                                />
                            }
                                .into_any()
                        }
                        Ok(list) => {
                            let services: i64 = list.iter().map(|p| p.service_count).sum();
                            view! {
                                <dl class="grid gap-4 sm:grid-cols-3">
                                    <div class="rounded-xl border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
                                        <dt class="text-sm text-slate-500">"Projects"</dt>
                                        <dd class="mt-1 text-2xl font-semibold">{list.len()}</dd>
                                    </div>
                                    <div class="rounded-xl border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
                                        <dt class="text-sm text-slate-500">"Services"</dt>
                                        <dd class="mt-1 text-2xl font-semibold">{services}</dd>
                                    </div>
                                    <div class="rounded-xl border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
                                        <dt class="text-sm text-slate-500">"Health"</dt>
                                        <dd class="mt-1"><Health /></dd>
                                    </div>
                                </dl>
                                <Recent recent />
                            }
                                .into_any()
                        }
                    })
            }}
        </Suspense>
    }
}
