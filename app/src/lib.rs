//! The Switchyard dashboard: the HTML shell, the routes, the pages and their server functions.
//!
//! Built twice: with `ssr` into the server (rendering and server-function bodies) and with `hydrate`
//! into the wasm bundle. Server-only code sits behind `#[cfg(feature = "ssr")]`.

// Leptos views are nested types; the live deployment page's is deep enough that the release build
// of the wasm bundle needs more than the default 128 levels to lay it out.
#![recursion_limit = "256"]

use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::SsrMode;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

pub mod api;
pub mod components;
pub mod pages;

use components::layout::Layout;
use pages::{
    activity::ActivityPage, deployments::DeploymentsPage, not_found::NotFound,
    overview::OverviewPage, projects::ProjectsPage, settings::SettingsPage, status::StatusPage,
};

/// The document around the app. Rendered on the server only; never hydrated.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let dark = components::theme::dark_from_request();
    view! {
        <!DOCTYPE html>
        <html lang="en" class:dark=dark>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                // Follow the system theme until the user picks one, before first paint.
                <script>{components::theme::NO_FLASH_SCRIPT}</script>
                <HashedStylesheet options=options.clone() id="leptos" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body class="h-full bg-slate-50 text-slate-900 antialiased dark:bg-slate-950 dark:text-slate-100">
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title formatter=|page: String| {
            if page.is_empty() { "Enclii".to_string() } else { format!("{page} · Enclii") }
        } />
        <Router>
            <Layout>
                // Pages behind sign-in render whole (SsrMode::Async), so that a missing session can
                // still answer with a redirect to the sign-in page.
                <Routes fallback=|| view! { <NotFound /> }>
                    <Route path=path!("/") view=OverviewPage />
                    <Route path=path!("/projects") view=ProjectsPage ssr=SsrMode::Async />
                    <Route path=path!("/deployments") view=DeploymentsPage ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project") view=pages::service::ProjectPage ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/services/:service") view=pages::service::ServicePage ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/services/:service/:tab") view=pages::service::ServicePage ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/deployments/:id") view=pages::deployment::DeploymentPage ssr=SsrMode::Async />
                    <Route path=path!("/activity") view=ActivityPage ssr=SsrMode::Async />
                    <Route path=path!("/settings") view=SettingsPage ssr=SsrMode::Async />
                    <Route path=path!("/status") view=StatusPage />
                </Routes>
            </Layout>
        </Router>
    }
}
