//! Environments' deployment gates: approvals and freeze windows, their server functions, and the
//! panel that shows the freeze in force and what waits (on a service's Deployments tab).

use enclii_api::Json;
use enclii_api::{ApiError, EnvironmentPolicy, FreezeWindow, Role};
use leptos::prelude::*;

/// Every environment of a project with its approvals, freeze windows, the freeze in force and
/// the deployments waiting.
#[server(endpoint = "environments/list", input = Json, output = Json)]
pub async fn list_environments(project: String) -> Result<Vec<EnvironmentPolicy>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::environments::list(&engine.pool, caller.as_ref(), &project)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Sets how many approvals deployments to an environment need and the weakest role that gives them.
#[server(endpoint = "environments/set", input = Json, output = Json)]
pub async fn set_environment(
    project: String,
    environment: String,
    approvals: Option<i32>,
    approver_role: Option<Role>,
) -> Result<EnvironmentPolicy, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::environments::set(
        &engine.pool,
        caller.as_ref(),
        &project,
        &environment,
        approvals,
        approver_role,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// Adds a freeze window: recurring (`cron`, `duration_minutes`) or one-off (`from`, `until`).
#[server(endpoint = "freezes/add", input = Json, output = Json)]
#[allow(clippy::too_many_arguments)]
pub async fn add_freeze(
    project: String,
    environment: String,
    cron: Option<String>,
    duration_minutes: Option<i64>,
    from: Option<String>,
    until: Option<String>,
    timezone: Option<String>,
    reason: String,
) -> Result<FreezeWindow, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    // Checked after the caller: an anonymous request learns nothing from its arguments.
    caller.as_ref().ok_or_else(ApiError::unauthenticated)?;
    let instant = |t: Option<String>, name: &str| -> Result<_, ApiError> {
        t.map(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "`{name}` is an RFC 3339 time (2026-12-24T16:00:00+01:00), not `{t}`"
                    ))
                })
        })
        .transpose()
    };
    let window = switchyard_engine::platform::freezes::NewWindow {
        cron: cron.as_deref(),
        duration_minutes,
        from: instant(from, "from")?,
        until: instant(until, "until")?,
        timezone: timezone.as_deref().unwrap_or("UTC"),
        reason: &reason,
    };
    switchyard_engine::platform::freezes::add(
        &engine.pool,
        caller.as_ref(),
        &project,
        &environment,
        window,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// Removes a freeze window; what it held proceeds unless another window holds it.
#[server(endpoint = "freezes/remove", input = Json, output = Json)]
pub async fn remove_freeze(project: String, id: String) -> Result<(), ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::platform::freezes::remove(&engine.pool, caller.as_ref(), &project, &id)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// The freeze in force and the deployments waiting, per environment, with promotion between two.
#[component]
pub fn EnvironmentGates(project: String, service: String) -> impl IntoView {
    let key = project.clone();
    let environments = Resource::new(move || key.clone(), list_environments);
    let promote = ServerAction::<super::deployments::PromoteRelease>::new();
    let from = RwSignal::new("staging".to_owned());
    let to = RwSignal::new("production".to_owned());
    view! {
        <Suspense fallback=|| ()>
            {move || {
                environments
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <crate::components::state::ApiErrorPanel error=e /> }.into_any(),
                        Ok(list) => {
                            let names: Vec<String> = list.iter().map(|e| e.name.clone()).collect();
                            let (project, service) = (project.clone(), service.clone());
                            view! {
                                <section aria-label="Environments" class="mb-6 grid gap-3 sm:grid-cols-2" data-testid="environment-gates">
                                    {list.into_iter().map(|e| view! { <Gate env=e /> }).collect_view()}
                                </section>
                                <form
                                    class="mb-6 flex flex-wrap items-center gap-2 text-sm"
                                    data-testid="promote-form"
                                    on:submit=move |ev| {
                                        ev.prevent_default();
                                        promote.dispatch(super::deployments::PromoteRelease {
                                            project: project.clone(),
                                            service: service.clone(),
                                            from: from.get_untracked(),
                                            to: to.get_untracked(),
                                        });
                                    }
                                >
                                    <span>"Promote the release running in"</span>
                                    <select aria-label="from" class="rounded border border-slate-300 px-2 py-1 dark:border-slate-700 dark:bg-slate-900" on:change=move |ev| from.set(event_target_value(&ev))>
                                        {names.iter().map(|n| view! { <option value=n.clone() selected=n == "staging">{n.clone()}</option> }).collect_view()}
                                    </select>
                                    <span>"to"</span>
                                    <select aria-label="to" class="rounded border border-slate-300 px-2 py-1 dark:border-slate-700 dark:bg-slate-900" on:change=move |ev| to.set(event_target_value(&ev))>
                                        {names.iter().map(|n| view! { <option value=n.clone() selected=n == "production">{n.clone()}</option> }).collect_view()}
                                    </select>
                                    <button type="submit" class="rounded-lg bg-indigo-600 px-3 py-1.5 font-medium text-white hover:bg-indigo-500">"Promote"</button>
                                    {move || promote.value().get().map(|r| match r {
                                        Ok(d) => view! { <a class="text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/projects/{}/deployments/{}", d.project, d.id)>{format!("Promotion started: deployment #{} ({})", d.id, d.state)}</a> }.into_any(),
                                        Err(e) => view! { <span role="alert" class="text-red-700 dark:text-red-300">{e.to_string()}</span> }.into_any(),
                                    })}
                                </form>
                            }
                                .into_any()
                        }
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Gate(env: EnvironmentPolicy) -> impl IntoView {
    let approvals = if env.required_approvals > 0 {
        format!(
            "{} approval(s) from {} or higher",
            env.required_approvals, env.approver_role
        )
    } else {
        "no approvals required".to_owned()
    };
    view! {
        <div class="rounded-xl border border-slate-200 p-4 text-sm dark:border-slate-800" data-testid=format!("gate-{}", env.name)>
            <div class="flex items-baseline justify-between">
                <span class="font-semibold">{env.name.clone()}</span>
                <span class="text-xs text-slate-500">{approvals}</span>
            </div>
            {env.active_freeze.map(|f| view! {
                <p data-testid="active-freeze" class="mt-2 rounded bg-sky-50 px-2 py-1 text-sky-900 dark:bg-sky-950 dark:text-sky-100">
                    {format!("Frozen until {}: {}", crate::components::time::minute(&f.until), f.reason)}
                </p>
            })}
            <ul class="mt-2 space-y-1 text-xs text-slate-600 dark:text-slate-400">
                {env.freezes.into_iter().map(|w| view! { <li>{format!("Freeze {}: {}", w.description, w.reason)}</li> }).collect_view()}
            </ul>
            <ul class="mt-2 space-y-1" data-testid="waiting">
                {env.waiting.into_iter().map(|d| view! {
                    <li>
                        <a class="text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/projects/{}/deployments/{}", d.project, d.id)>{format!("#{} {}", d.id, d.service)}</a>
                        " "
                        <span class="text-slate-600 dark:text-slate-400">{d.state_reason.unwrap_or_else(|| d.state.to_string())}</span>
                    </li>
                }).collect_view()}
            </ul>
        </div>
    }
}
