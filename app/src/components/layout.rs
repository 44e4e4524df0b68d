//! The frame around every page: navigation, header, and the content area.

use leptos::prelude::*;
use leptos_router::components::A;

use super::state::ErrorPanel;
use super::theme::ThemeToggle;

const NAV: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/projects", "Projects"),
    ("/deployments", "Deployments"),
    ("/activity", "Activity"),
    ("/status", "Status"),
    ("/settings", "Settings"),
];

/// Set by the page once it has hydrated (see [`MarkHydrated`]).
#[derive(Clone, Copy)]
pub struct PageHydrated(WriteSignal<bool>);

/// Placed in each route's view: its effect runs in the browser only, after that route's view has
/// hydrated. A page loaded lazily (its own wasm chunk) hydrates after the frame around it, so the
/// frame cannot tell by itself (the e2e suite waits for `data-hydrated` before it clicks).
#[component]
pub fn MarkHydrated() -> impl IntoView {
    let hydrated = use_context::<PageHydrated>();
    Effect::new(move |_| {
        if let Some(PageHydrated(set)) = hydrated {
            set.set(true);
        }
    });
}

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    provide_context(PageHydrated(set_hydrated));
    let (menu_open, set_menu_open) = signal(false);

    view! {
        <div
            id="app"
            data-hydrated=move || hydrated.get().to_string()
            class="min-h-screen md:grid md:grid-cols-[15rem_1fr]"
        >
            <a
                href="#main"
                class="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:rounded focus:bg-white focus:px-3 focus:py-2 focus:text-slate-900"
            >
                "Skip to content"
            </a>
            <aside class="border-b border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900 md:min-h-screen md:border-b-0 md:border-r">
                <div class="flex items-center justify-between px-4 py-4">
                    <a href="/" class="flex items-center gap-2 font-semibold tracking-tight">
                        <span
                            aria-hidden="true"
                            class="grid h-8 w-8 place-items-center rounded-lg bg-indigo-600 text-white"
                        >
                            "E"
                        </span>
                        <span>"Enclii"</span>
                        <span class="text-xs font-normal text-slate-500">"Switchyard"</span>
                    </a>
                    <button
                        type="button"
                        class="rounded-lg p-2 md:hidden"
                        aria-controls="primary-nav"
                        aria-expanded=move || menu_open.get().to_string()
                        aria-label="Menu"
                        on:click=move |_| set_menu_open.update(|o| *o = !*o)
                    >
                        <span aria-hidden="true">"☰"</span>
                    </button>
                </div>
                <nav
                    id="primary-nav"
                    aria-label="Primary"
                    class="px-2 pb-4 md:block"
                    class:hidden=move || !menu_open.get()
                >
                    // Following a link closes the phone menu, as people expect.
                    <ul class="space-y-1" on:click=move |_| set_menu_open.set(false)>
                        {NAV
                            .into_iter()
                            .map(|(href, label)| {
                                view! {
                                    <li>
                                        <A
                                            href=href
                                            exact=true
                                            attr:class="block rounded-lg px-3 py-2 text-sm font-medium text-slate-700 hover:bg-slate-100 aria-[current=page]:bg-indigo-50 aria-[current=page]:text-indigo-700 dark:text-slate-300 dark:hover:bg-slate-800 dark:aria-[current=page]:bg-indigo-950 dark:aria-[current=page]:text-indigo-300"
                                        >
                                            {label}
                                        </A>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                </nav>
            </aside>
            <div class="flex min-w-0 flex-col">
                <header class="flex items-center justify-end gap-3 border-b border-slate-200 bg-white/80 px-6 py-3 backdrop-blur dark:border-slate-800 dark:bg-slate-900/80">
                    <ThemeToggle />
                    <UserMenu />
                </header>
                <main id="main" class="mx-auto w-full max-w-6xl flex-1 p-6">
                    <ErrorBoundary fallback=|errors| view! { <ErrorPanel errors /> }>
                        {children()}
                    </ErrorBoundary>
                </main>
            </div>
        </div>
    }
}

/// The signed-in user's name and a sign-out button, or a sign-in link.
#[component]
fn UserMenu() -> impl IntoView {
    let me = Resource::new(|| (), |_| crate::api::whoami());
    view! {
        <Suspense fallback=|| ()>
            {move || {
                me.get()
                    .map(|r| match r {
                        Ok(me) => {
                            view! {
                                {me.cluster_label.map(|label| view! {
                                    <span
                                        role="status"
                                        data-testid="cluster-badge"
                                        title="Deployments go to this cluster, not a production one."
                                        class="rounded-full bg-amber-100 px-3 py-1 text-xs font-semibold text-amber-900 dark:bg-amber-900 dark:text-amber-100"
                                    >
                                        {label}
                                    </span>
                                })}
                                <div class="flex items-center gap-3" data-testid="user-menu">
                                    <span class="text-sm font-medium">{me.display_name}</span>
                                    // A form POST: sign-out changes state, so it is not a link a page could trigger.
                                    <form method="post" action="/auth/logout">
                                        <button type="submit" class="rounded-lg border border-slate-300 px-3 py-1.5 text-sm hover:bg-slate-100 dark:border-slate-700 dark:hover:bg-slate-800">
                                            "Sign out"
                                        </button>
                                    </form>
                                </div>
                            }
                                .into_any()
                        }
                        Err(_) => {
                            view! {
                                <a
                                    href="/auth/login"
                                    rel="external"
                                    data-testid="user-menu"
                                    class="rounded-lg bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-indigo-500"
                                >
                                    "Sign in"
                                </a>
                            }
                                .into_any()
                        }
                    })
            }}
        </Suspense>
    }
}

/// A page's title row.
#[component]
pub fn PageHeader(
    title: &'static str,
    #[prop(optional)] subtitle: Option<&'static str>,
) -> impl IntoView {
    view! {
        <div class="mb-6">
            <h1 class="text-2xl font-semibold tracking-tight">{title}</h1>
            {subtitle.map(|s| view! { <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">{s}</p> })}
        </div>
    }
}
