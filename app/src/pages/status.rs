//! The public status page (no sign-in): each monitored endpoint and deployed service's health
//! check, its current state and 90 days of uptime bars, from the probes the server stores.

use enclii_api::Json;
use enclii_api::{ApiError, StatusOverview, StatusTarget};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::layout::PageHeader;
use crate::components::state::{ApiErrorPanel, EmptyState};

/// The status page's content. Public on purpose: it shows names, states and uptime, never URLs or
/// internal addresses. A credential sent along must still be valid.
#[server(endpoint = "status", input = Json, output = Json)]
pub async fn get_status() -> Result<StatusOverview, ApiError> {
    let (engine, _public) = crate::api::caller().await?;
    switchyard_engine::monitor::overview(&engine.pool)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// The status page's headline only (public, as the page): what the dashboard's overview shows.
#[server(endpoint = "status/headline", input = Json, output = Json)]
pub async fn get_status_headline() -> Result<enclii_api::StatusHeadline, ApiError> {
    let (engine, _public) = crate::api::caller().await?;
    switchyard_engine::monitor::headline(&engine.pool)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Lists a project's monitoring targets and health checks on the public status page, or stops
/// listing them (project admin). Off by default: only a listed project's targets are probed.
#[server(endpoint = "status/publish", input = Json, output = Json)]
pub async fn publish_status(project: String, public: bool) -> Result<(), ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::monitor::set_public(&engine.pool, caller.as_ref(), &project, public)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

#[component]
pub fn StatusPage() -> impl IntoView {
    let overview = Resource::new(|| (), |_| get_status());
    view! {
        <Title text="Status" />
        <PageHeader title="Status" subtitle="Health of every monitored endpoint and service, probed continuously." />
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || {
                overview
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(o) if o.targets.is_empty() => {
                            view! {
                                <EmptyState
                                    title="No monitored services"
                                    hint="Import a spec with monitoring targets (such as status-page.yaml), or deploy a service with a health check, to see its probes here."
                                    command="enclii service create --file status-page.yaml"
                                />
                            }
                                .into_any()
                        }
                        Ok(o) => view! { <Board overview=o /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Board(overview: StatusOverview) -> impl IntoView {
    let (headline, tone) = match overview.overall.as_str() {
        "operational" => ("All systems operational", "bg-emerald-600"),
        "degraded" => ("Some systems are down", "bg-amber-500"),
        "outage" => ("Major outage", "bg-red-600"),
        _ => ("Waiting for the first probes", "bg-slate-500"),
    };
    let first_day = overview.first_day;
    let days = overview.days;
    view! {
        <p data-testid="overall" data-state=overview.overall.clone() class=format!("mb-6 rounded-xl px-4 py-3 font-medium text-white {tone}")>
            {headline}
        </p>
        <ul class="space-y-4" data-testid="targets">
            {overview
                .targets
                .into_iter()
                .map(|t| view! { <TargetRow target=t first_day days /> })
                .collect_view()}
        </ul>
        <p class="mt-4 text-xs text-slate-500">{format!("Bars: one per day for {days} days, oldest left (UTC). Grey: no probes that day.")}</p>
    }
}

#[component]
fn TargetRow(target: StatusTarget, first_day: chrono::NaiveDate, days: u32) -> impl IntoView {
    let badge = match target.state.as_str() {
        "up" => "bg-emerald-100 text-emerald-800 dark:bg-emerald-950 dark:text-emerald-200",
        "down" => "bg-red-100 text-red-800 dark:bg-red-950 dark:text-red-200",
        _ => "bg-slate-100 text-slate-700 dark:bg-slate-800 dark:text-slate-300",
    };
    let uptime = target
        .uptime
        .map(|u| format!("{:.2}% uptime", u * 100.0))
        .unwrap_or_else(|| "no probes yet".into());
    let last = match (target.checked_at, target.latency_ms) {
        (Some(at), Some(ms)) => format!(
            "checked {} UTC, {ms} ms",
            crate::components::time::clock(&at)
        ),
        _ => String::new(),
    };
    // 3 units per bar plus 1 of gap: 90 bars in 360 units, scaled to the width.
    let width = days * 4;
    view! {
        <li data-testid="target" data-state=target.state.clone() class="rounded-xl border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
            <div class="flex flex-wrap items-baseline justify-between gap-2">
                <div>
                    <span class="font-medium">{target.name.clone()}</span>
                    <span class="ml-2 text-xs text-slate-500">{if target.kind == "service" { "health check" } else { "endpoint" }}</span>
                </div>
                <div class="flex items-center gap-3 text-sm">
                    <span class="text-slate-500">{uptime.clone()}</span>
                    <span class=format!("rounded-full px-2 py-0.5 text-xs font-medium {badge}")>{target.state.clone()}</span>
                </div>
            </div>
            <svg viewBox=format!("0 0 {width} 24") preserveAspectRatio="none" class="mt-3 h-6 w-full" role="img"
                aria-label=format!("{}: {uptime} over {days} days", target.name)>
                {target
                    .daily
                    .iter()
                    .enumerate()
                    .map(|(i, (ok, total))| {
                        let day = first_day + chrono::Days::new(i as u64);
                        let (fill, text) = if *total == 0 {
                            ("fill-slate-200 dark:fill-slate-700", format!("{day}: no probes"))
                        } else {
                            let share = f64::from(*ok) / f64::from(*total);
                            let fill = if share >= 0.999 {
                                "fill-emerald-500"
                            } else if share >= 0.95 {
                                "fill-amber-400"
                            } else {
                                "fill-red-500"
                            };
                            (fill, format!("{day}: {:.2}% of {total} probes succeeded", share * 100.0))
                        };
                        view! {
                            <rect x=(i * 4).to_string() y="0" width="3" height="24" rx="0.5" class=fill>
                                <title>{text}</title>
                            </rect>
                        }
                    })
                    .collect_view()}
            </svg>
            <p class="mt-1 text-xs text-slate-500">
                {last}
                {(!target.detail.is_empty()).then(|| format!(" · {}", target.detail))}
            </p>
        </li>
    }
}
