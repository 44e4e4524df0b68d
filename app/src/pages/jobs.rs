//! A service's jobs: one-off runs of a command from its running release (`enclii run`) and its
//! scheduled jobs' last and next runs (the service page's Jobs tab, `enclii jobs list`).

use enclii_api::Json;
use enclii_api::{ApiError, RunSummary, ScheduledJobStatus};
use leptos::prelude::*;

use super::deployment::state_tone;

/// Runs `command` as a Job from the service's running release in `environment`, with its
/// variables and secrets; follow it with `GET /api/runs/{project}/{id}/logs?follow=true`.
#[server(endpoint = "runs/create", input = Json, output = Json)]
pub async fn create_run(
    project: String,
    service: String,
    environment: String,
    command: Vec<String>,
) -> Result<RunSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::jobs::start_run(
        &engine,
        caller.as_ref(),
        &project,
        &service,
        &environment,
        &command,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// A one-off run: running, or how it ended (with its exit code).
#[server(endpoint = "runs/get", input = Json, output = Json)]
pub async fn get_run(project: String, id: i64) -> Result<RunSummary, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::jobs::get_run(&engine, caller.as_ref(), &project, id)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// The service's scheduled jobs in each environment (or one): schedule, last run, next run, and
/// what needs attention (a failed run, a missed schedule).
#[server(endpoint = "jobs/list", input = Json, output = Json)]
pub async fn list_jobs(
    project: String,
    service: String,
    environment: Option<String>,
) -> Result<Vec<ScheduledJobStatus>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::jobs::list(
        &engine,
        caller.as_ref(),
        &project,
        &service,
        environment.as_deref(),
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// The Jobs tab: each scheduled job with its last run (result, duration, log tail) and next run;
/// a failed run or a missed schedule stands out.
#[component]
pub fn JobsTab(project: String, service: String) -> impl IntoView {
    let jobs = Resource::new(
        move || (project.clone(), service.clone()),
        |(p, s)| list_jobs(p, s, None),
    );
    view! {
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || {
                jobs.get()
                    .map(|r| match r {
                        Err(e) => view! { <crate::components::state::ApiErrorPanel error=e /> }.into_any(),
                        Ok(list) if list.is_empty() => view! {
                            <crate::components::state::EmptyState
                                title="No scheduled jobs"
                                hint="List them under `spec.jobs` (name, schedule, command) and deploy; run a command once with"
                                command="enclii run --service NAME --env production -- CMD ARGS…"
                            />
                        }
                            .into_any(),
                        Ok(list) => view! { <JobList list /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn JobList(list: Vec<ScheduledJobStatus>) -> impl IntoView {
    view! {
        <ul class="space-y-3" data-testid="jobs">
            {list
                .into_iter()
                .map(|j| {
                    let last = j.last_run.clone();
                    let attention = (!j.attention.is_empty()).then(|| {
                        view! {
                            <p role="alert" class="mt-2 rounded-lg bg-rose-50 px-3 py-2 text-sm text-rose-800 dark:bg-rose-950 dark:text-rose-200">
                                {j.attention.clone()}
                            </p>
                        }
                    });
                    view! {
                        <li class="rounded-xl border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
                            <div class="flex flex-wrap items-baseline gap-2">
                                <h3 class="font-semibold">{j.name.clone()}</h3>
                                <span class="text-xs text-slate-500">{j.environment.clone()}</span>
                                <code class="text-xs">{format!("{} ({})", j.schedule, j.timezone)}</code>
                                <code class="text-xs text-slate-500">{j.command.join(" ")}</code>
                            </div>
                            <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">
                                {format!("Next run: {}", j.next_run.clone().unwrap_or_else(|| "as the cluster schedules it".into()))}
                            </p>
                            {match last {
                                None => view! { <p class="mt-1 text-sm text-slate-500">"No run yet."</p> }.into_any(),
                                Some(run) => view! {
                                    <div class="mt-1 text-sm">
                                        <span class=format!("rounded-full px-2 py-0.5 text-xs {}", state_tone(&run.result))>{run.result.clone()}</span>
                                        " "
                                        <span class="text-slate-600 dark:text-slate-400">
                                            {format!(
                                                "{}{}",
                                                run.started_at.map(|t| format!("{} UTC", crate::components::time::minute(&t))).unwrap_or_default(),
                                                run.duration_secs.map(|d| format!(", {d:.1}s")).unwrap_or_default(),
                                            )}
                                        </span>
                                        <pre class="mt-2 max-h-48 overflow-auto rounded-lg bg-slate-900 p-2 font-mono text-xs text-slate-100">{run.log_tail.clone()}</pre>
                                    </div>
                                }
                                    .into_any(),
                            }}
                            {attention}
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}
