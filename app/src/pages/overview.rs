use enclii_api::ApiError;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::layout::PageHeader;
use crate::components::state::{ApiErrorPanel, EmptyState};
use crate::pages::projects::list_projects;

/// The landing page: a welcome for visitors, the projects at a glance for signed-in users.
#[component]
pub fn OverviewPage() -> impl IntoView {
    let projects = Resource::new(|| (), |_| list_projects());
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
                                </dl>
                            }
                                .into_any()
                        }
                    })
            }}
        </Suspense>
    }
}
