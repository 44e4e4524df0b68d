//! The Switchyard dashboard: the HTML shell, the routes, the pages and their server functions.
//!
//! Built twice: with `ssr` into the server (rendering and server-function bodies) and with `hydrate`
//! into the wasm bundle. Server-only code sits behind `#[cfg(feature = "ssr")]`.

// Leptos views are nested types; the live deployment page's is deep enough that the release build
// of the wasm bundle needs more than the default 128 levels to lay it out.
#![recursion_limit = "256"]

use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{Lazy, LazyRoute, SsrMode, lazy_route, path};

pub mod api;
pub mod components;
pub mod pages;

use components::landing::LandingPack;
use components::layout::{Layout, MarkHydrated};
use pages::{not_found::NotFound, overview::OverviewPage};

/// The document around the app. Rendered on the server only; never hydrated.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let dark = components::theme::dark_from_request();
    #[cfg(feature = "ssr")]
    page_security_policy();
    let nonce = leptos::nonce::use_nonce();
    view! {
        <!DOCTYPE html>
        <html lang="en" class:dark=dark>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                // Follow the system theme until the user picks one, before first paint.
                <script nonce=nonce>{components::theme::NO_FLASH_SCRIPT}</script>
                <HashedStylesheet options=options.clone() id="leptos" />
                <AutoReload options=options.clone() />
                <components::landing::Hydration />
                <SplitPreloads />
                <MetaTags />
            </head>
            <body class="h-full bg-slate-50 text-slate-900 antialiased dark:bg-slate-950 dark:text-slate-100">
                <App />
            </body>
        </html>
    }
}

/// The page's Content-Security-Policy: inline scripts only with this response's nonce (leptos
/// gives one to each page it renders and puts it on its own inline scripts; ours take it with
/// `use_nonce`), so an injected `<script>` does not run. Other responses keep the server's
/// default policy, which allows no inline script at all (`server/src/http/mod.rs`).
#[cfg(feature = "ssr")]
fn page_security_policy() {
    if let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) && let Ok(value) = http::HeaderValue::from_str(&page_csp(&nonce))
    {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Pure, for the test.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
    )
}

/// The server's list of the wasm modules each lazy page needs (`server/src/http/split_preloads.rs`,
/// read from the split loader), provided per request.
#[derive(Clone)]
pub struct PreloadsFromLoader(pub leptos::WasmSplitManifest);

/// Gives leptos the server's preload list (not cargo-leptos's manifest, whose renamed entries point
/// at files that do not exist): the response adds a `<link rel=preload>` for each module of the
/// lazy pages it rendered (none once the landing packs are ready: `components/landing.rs`).
#[component]
fn SplitPreloads() -> impl IntoView {
    if let Some(PreloadsFromLoader(preloads)) = use_context::<PreloadsFromLoader>() {
        provide_context(preloads);
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
                // Every page but the landing one is its own wasm chunk (`cargo leptos … --split`),
                // fetched when the page is first shown, so that a first visit downloads the shell
                // and one page rather than the whole dashboard.
                <Routes fallback=|| view! { <MarkHydrated /> <LandingPack /> <NotFound /> }>
                    <Route path=path!("/") view=|| view! { <MarkHydrated /> <LandingPack /> <OverviewPage /> } />
                    <Route path=path!("/projects") view={Lazy::<ProjectsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/deployments") view={Lazy::<DeploymentsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project") view={Lazy::<ProjectRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/members") view={Lazy::<MembersRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/notifications") view={Lazy::<NotificationsRoute>::new()} ssr=SsrMode::Async />
                    // Each tab of the service page is its own chunk (the whole service page was
                    // 700 KiB on landing). Flat routes, not a parent with nested children: the nested
                    // router's generic code for the eight children cost the landing bundle 39 KB.
                    <Route path=path!("/projects/:project/services/:service") view={Lazy::<ServiceOverviewRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/services/:service/deployments") view={Lazy::<ServiceDeploymentsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/services/:service/builds") view={Lazy::<ServiceBuildsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/services/:service/jobs") view={Lazy::<ServiceJobsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/services/:service/logs") view={Lazy::<ServiceLogsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/services/:service/environment") view={Lazy::<ServiceEnvironmentRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/services/:service/domains") view={Lazy::<ServiceDomainsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/services/:service/spec") view={Lazy::<ServiceSpecRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/services/:service/settings") view={Lazy::<ServiceSettingsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/projects/:project/deployments/:id") view={Lazy::<DeploymentRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/activity") view={Lazy::<ActivityRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/settings") view={Lazy::<SettingsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/status") view={Lazy::<StatusRoute>::new()} />
                </Routes>
            </Layout>
        </Router>
    }
}

// The lazily loaded pages. Written out one by one: `#[lazy_route]` names each chunk after where it
// is written, so a macro generating them would give them all one name.

pub struct ProjectsRoute;

#[lazy_route]
impl LazyRoute for ProjectsRoute {
    fn data() -> Self {
        ProjectsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::projects::ProjectsPage /> }.into_any()
    }
}

pub struct DeploymentsRoute;

#[lazy_route]
impl LazyRoute for DeploymentsRoute {
    fn data() -> Self {
        DeploymentsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::deployments::DeploymentsPage /> }
            .into_any()
    }
}

pub struct ProjectRoute;

#[lazy_route]
impl LazyRoute for ProjectRoute {
    fn data() -> Self {
        ProjectRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::service::ProjectPage /> }.into_any()
    }
}

pub struct MembersRoute;

#[lazy_route]
impl LazyRoute for MembersRoute {
    fn data() -> Self {
        MembersRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::members::MembersPage /> }.into_any()
    }
}

pub struct NotificationsRoute;

#[lazy_route]
impl LazyRoute for NotificationsRoute {
    fn data() -> Self {
        NotificationsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::notifications::NotificationsPage /> }
            .into_any()
    }
}

pub struct ServiceOverviewRoute;

#[lazy_route]
impl LazyRoute for ServiceOverviewRoute {
    fn data() -> Self {
        ServiceOverviewRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::service::ServiceFrame tab="overview"> <pages::service::OverviewTabRoute /> </pages::service::ServiceFrame> }.into_any()
    }
}

pub struct ServiceDeploymentsRoute;

#[lazy_route]
impl LazyRoute for ServiceDeploymentsRoute {
    fn data() -> Self {
        ServiceDeploymentsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::service::ServiceFrame tab="deployments"> <pages::service::DeploymentsTabRoute /> </pages::service::ServiceFrame> }.into_any()
    }
}

pub struct ServiceBuildsRoute;

#[lazy_route]
impl LazyRoute for ServiceBuildsRoute {
    fn data() -> Self {
        ServiceBuildsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::service::ServiceFrame tab="builds"> <pages::service::BuildsTabRoute /> </pages::service::ServiceFrame> }.into_any()
    }
}

pub struct ServiceJobsRoute;

#[lazy_route]
impl LazyRoute for ServiceJobsRoute {
    fn data() -> Self {
        ServiceJobsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::service::ServiceFrame tab="jobs"> <pages::service::JobsTabRoute /> </pages::service::ServiceFrame> }.into_any()
    }
}

pub struct ServiceLogsRoute;

#[lazy_route]
impl LazyRoute for ServiceLogsRoute {
    fn data() -> Self {
        ServiceLogsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::service::ServiceFrame tab="logs"> <pages::service::LogsTabRoute /> </pages::service::ServiceFrame> }.into_any()
    }
}

pub struct ServiceEnvironmentRoute;

#[lazy_route]
impl LazyRoute for ServiceEnvironmentRoute {
    fn data() -> Self {
        ServiceEnvironmentRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::service::ServiceFrame tab="environment"> <pages::service::EnvironmentTabRoute /> </pages::service::ServiceFrame> }.into_any()
    }
}

pub struct ServiceDomainsRoute;

#[lazy_route]
impl LazyRoute for ServiceDomainsRoute {
    fn data() -> Self {
        ServiceDomainsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::service::ServiceFrame tab="domains"> <pages::service::DomainsTabRoute /> </pages::service::ServiceFrame> }.into_any()
    }
}

pub struct ServiceSpecRoute;

#[lazy_route]
impl LazyRoute for ServiceSpecRoute {
    fn data() -> Self {
        ServiceSpecRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::service::ServiceFrame tab="spec"> <pages::service::SpecTabRoute /> </pages::service::ServiceFrame> }.into_any()
    }
}

pub struct ServiceSettingsRoute;

#[lazy_route]
impl LazyRoute for ServiceSettingsRoute {
    fn data() -> Self {
        ServiceSettingsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::service::ServiceFrame tab="settings"> <pages::service::SettingsTabRoute /> </pages::service::ServiceFrame> }.into_any()
    }
}

pub struct DeploymentRoute;

#[lazy_route]
impl LazyRoute for DeploymentRoute {
    fn data() -> Self {
        DeploymentRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::deployment::DeploymentPage /> }.into_any()
    }
}

pub struct ActivityRoute;

#[lazy_route]
impl LazyRoute for ActivityRoute {
    fn data() -> Self {
        ActivityRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::activity::ActivityPage /> }.into_any()
    }
}

pub struct SettingsRoute;

#[lazy_route]
impl LazyRoute for SettingsRoute {
    fn data() -> Self {
        SettingsRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::settings::SettingsPage /> }.into_any()
    }
}

pub struct StatusRoute;

#[lazy_route]
impl LazyRoute for StatusRoute {
    fn data() -> Self {
        StatusRoute
    }
    fn view(_this: Self) -> AnyView {
        view! { <MarkHydrated /> <LandingPack /> <pages::status::StatusPage /> }.into_any()
    }
}
