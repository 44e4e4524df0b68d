//! One deployment, live: the canary timeline (10 → 50 → 100 with the error rate measured at each
//! step), every step with its evidence, every analysis, and promote/abort while a canary runs.
//! The server renders the current record; in the browser, server-sent events replace it as the
//! driver writes (no polling).

use enclii_api::{DeploymentDetail, Stage};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::deployments::{Abort, Approve, Force, Promote, Reject, get_deployment};
use crate::components::state::{ApiErrorPanel, confirm};

#[component]
pub fn DeploymentPage() -> impl IntoView {
    let params = use_params_map();
    let key = move || {
        let p = params.read();
        (
            p.get("project").unwrap_or_default(),
            p.get("id").and_then(|i| i.parse::<i64>().ok()).unwrap_or(0),
        )
    };
    let detail = Resource::new(key, |(project, id)| get_deployment(project, id));
    view! {
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || {
                detail
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(d) => view! { <Live initial=d /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

pub fn state_tone(state: &str) -> &'static str {
    match state {
        "succeeded" => "bg-emerald-100 text-emerald-900 dark:bg-emerald-900 dark:text-emerald-100",
        "failed" | "rolled_back" | "aborted" | "rejected" => {
            "bg-red-100 text-red-900 dark:bg-red-900 dark:text-red-100"
        }
        "running" | "in_progress" => {
            "bg-indigo-100 text-indigo-900 dark:bg-indigo-900 dark:text-indigo-100"
        }
        "awaiting_approval" => "bg-amber-100 text-amber-900 dark:bg-amber-900 dark:text-amber-100",
        _ => "bg-slate-100 text-slate-800 dark:bg-slate-800 dark:text-slate-100",
    }
}

#[component]
fn Live(initial: DeploymentDetail) -> impl IntoView {
    let live = RwSignal::new(initial);
    #[cfg(feature = "hydrate")]
    {
        let (project, id) =
            live.with_untracked(|d| (d.deployment.project.clone(), d.deployment.id));
        if !live.with_untracked(|d| d.deployment.state.is_terminal()) {
            follow(&project, id, live);
        }
    }
    let promote = ServerAction::<Promote>::new();
    let abort = ServerAction::<Abort>::new();
    let action_error = move || {
        let e = match (promote.value().get(), abort.value().get()) {
            (Some(Err(e)), _) | (_, Some(Err(e))) => Some(e),
            _ => None,
        };
        e.map(|e| view! { <p role="alert" class="mt-2 text-sm text-red-700 dark:text-red-300">{e.to_string()}</p> })
    };
    let title = live.with_untracked(|d| format!("Deployment #{}", d.deployment.id));
    view! {
        <Title text=title.clone() />
        <div class="mb-6 flex flex-wrap items-start justify-between gap-4">
            <div>
                <h1 class="text-2xl font-semibold tracking-tight">{title}</h1>
                <p class="mt-1 text-sm text-slate-600 dark:text-slate-400">
                    {move || live.with(|d| format!("{}/{} to {} · {}", d.deployment.project, d.deployment.service, d.deployment.environment, d.deployment.image))}
                </p>
            </div>
            <span data-testid="deployment-state" class=move || format!("rounded-full px-3 py-1 text-sm font-medium {}", state_tone(live.with(|d| d.deployment.state.as_str())))>
                {move || live.with(|d| d.deployment.state.as_str())}
            </span>
        </div>
        {move || live.with(|d| d.deployment.state_reason.clone()).map(|r| view! { <p data-testid="deployment-reason" class="mb-4 text-sm">{r}</p> })}
        {move || live.with(|d| d.promoted_from.clone()).map(|o| view! {
            <p data-testid="promoted-from" class="mb-4 text-sm">
                "Promoted from " {o.environment.clone()} " ("
                <a class="text-indigo-700 hover:underline dark:text-indigo-300" href=move || live.with(|d| format!("/projects/{}/deployments/{}", d.deployment.project, o.deployment))>{format!("deployment #{}", o.deployment)}</a>
                "): the same release, image digest, SBOM and provenance."
            </p>
        })}
        {move || live.with(|d| d.forced.clone()).map(|f| view! { <p data-testid="forced" class="mb-4 text-sm">{format!("Forced through a freeze by {f}")}</p> })}
        <Gates live />
        <section aria-label="Canary timeline" class="mb-6">
            <ol class="grid gap-3 sm:grid-cols-3" data-testid="timeline">
                {move || live.with(|d| d.stages()).into_iter().map(|s| view! { <StageCard stage=s /> }).collect_view()}
            </ol>
            <p class="mt-2 text-xs text-slate-500">{move || live.with(|d| d.traffic_split.clone().unwrap_or_else(|| "waiting for a driver".into()))}</p>
        </section>
        <Show when=move || live.with(|d| d.is_live_canary())>
            <div class="mb-6 flex flex-wrap gap-3">
                <button
                    type="button"
                    class="rounded-lg bg-indigo-600 px-4 py-2 text-sm font-medium text-white hover:bg-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-400"
                    on:click=move |_| {
                        let (project, id) = live.with_untracked(|d| (d.deployment.project.clone(), d.deployment.id));
                        if confirm("Promote this canary to 100% now, skipping the remaining analysis?") {
                            promote.dispatch(Promote { project, id });
                        }
                    }
                >
                    "Promote to 100%"
                </button>
                <button
                    type="button"
                    class="rounded-lg border border-red-300 px-4 py-2 text-sm font-medium text-red-700 hover:bg-red-50 focus:outline-none focus:ring-2 focus:ring-red-400 dark:border-red-800 dark:text-red-300 dark:hover:bg-red-950"
                    on:click=move |_| {
                        let (project, id) = live.with_untracked(|d| (d.deployment.project.clone(), d.deployment.id));
                        if confirm("Abort this canary? Its pods are removed and the stable release serves all traffic.") {
                            abort.dispatch(Abort { project, id });
                        }
                    }
                >
                    "Abort canary"
                </button>
                {move || live.with(|d| d.requested_action.clone()).map(|a| view! { <span class="self-center text-sm text-slate-500">{format!("{a} requested; applied at the next analysis")}</span> })}
            </div>
            {action_error}
        </Show>
        <div class="grid gap-6 lg:grid-cols-2">
            <section aria-label="Steps">
                <h2 class="mb-2 text-base font-semibold">"Steps"</h2>
                <ol class="space-y-2" data-testid="steps">
                    {move || {
                        live.with(|d| d.steps.clone())
                            .into_iter()
                            .map(|s| {
                                let label = match (s.kind.as_str(), s.weight) {
                                    ("canary" | "rollout", Some(w)) => format!("{} {w}%", s.kind),
                                    ("release", _) => "release command".to_owned(),
                                    _ => s.kind.clone(),
                                };
                                view! {
                                    <li class="rounded-lg border border-slate-200 bg-white p-3 text-sm dark:border-slate-800 dark:bg-slate-900">
                                        <div class="flex items-center justify-between gap-2">
                                            <span class="font-medium">{label}</span>
                                            <span class=format!("rounded-full px-2 py-0.5 text-xs {}", state_tone(&s.state))>{s.state.clone()}</span>
                                        </div>
                                        <p class="mt-1 text-slate-600 dark:text-slate-400">{s.message.clone()}</p>
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ol>
            </section>
            <section aria-label="Analyses">
                <h2 class="mb-2 text-base font-semibold">"Canary analyses"</h2>
                <div class="overflow-x-auto">
                    <table class="w-full text-left text-sm" data-testid="analyses">
                        <thead>
                            <tr class="text-slate-500">
                                <th class="py-1">"#"</th>
                                <th>"Weight"</th>
                                <th>"Errors"</th>
                                <th>"Requests"</th>
                                <th>"Decision"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {move || {
                                live.with(|d| d.analyses.clone())
                                    .into_iter()
                                    .rev()
                                    .take(30)
                                    .map(|a| {
                                        view! {
                                            <tr class="border-t border-slate-200 dark:border-slate-800" title=a.detail.clone()>
                                                <td class="py-1">{a.run}</td>
                                                <td>{format!("{}%", a.weight)}</td>
                                                <td>{a.error_rate.map(|r| format!("{r:.2}%")).unwrap_or_else(|| "no data".into())}</td>
                                                <td>{a.requests.map(|r| format!("{r:.0}")).unwrap_or_else(|| "–".into())}</td>
                                                <td>{a.decision.clone()}</td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()
                            }}
                        </tbody>
                    </table>
                </div>
            </section>
        </div>
    }
}

/// Approvals (who decided what, and Approve / Reject while it waits) and a freeze's hold (with the
/// platform admins' Force).
#[component]
fn Gates(live: RwSignal<DeploymentDetail>) -> impl IntoView {
    let approve = ServerAction::<Approve>::new();
    let reject = ServerAction::<Reject>::new();
    let force = ServerAction::<Force>::new();
    let ids = move || live.with_untracked(|d| (d.deployment.project.clone(), d.deployment.id));
    let error = move || {
        [approve.value().get(), reject.value().get(), force.value().get()]
            .into_iter()
            .flatten()
            .find_map(|r| r.err())
            .map(|e| view! { <p role="alert" class="mt-2 text-sm text-red-700 dark:text-red-300">{e.to_string()}</p> })
    };
    let awaiting =
        move || live.with(|d| d.deployment.state == enclii_api::DeploymentState::AwaitingApproval);
    let held = move || {
        live.with(|d| {
            d.deployment.state == enclii_api::DeploymentState::Pending
                && d.held_until.is_some_and(|t| t > chrono::Utc::now())
        })
    };
    view! {
        {move || live.with(|d| d.approval.clone()).map(|a| view! {
            <section aria-label="Approvals" class="mb-6 rounded-xl border border-slate-200 p-4 text-sm dark:border-slate-800" data-testid="approvals">
                <h2 class="font-semibold">{format!("Approvals: {} of {} from {} or higher", a.decisions.iter().filter(|x| x.approved).count(), a.required, a.approver_role)}</h2>
                <p class="text-xs text-slate-500">{format!("Requested by {}", a.requested_by.clone().unwrap_or_else(|| "Enclii (a build)".into()))}</p>
                <ul class="mt-2 space-y-1">
                    {a.decisions.into_iter().map(|x| view! {
                        <li>{format!("{} {} ({}){}", if x.approved { "Approved by" } else { "Rejected by" }, x.by, x.role, if x.reason.is_empty() { String::new() } else { format!(": {}", x.reason) })}</li>
                    }).collect_view()}
                </ul>
            </section>
        })}
        <Show when=awaiting>
            <div class="mb-6 flex flex-wrap gap-3">
                <button type="button" class="rounded-lg bg-emerald-600 px-4 py-2 text-sm font-medium text-white hover:bg-emerald-500"
                    on:click=move |_| {
                        let (project, id) = ids();
                        approve.dispatch(Approve { project, id, reason: None });
                    }
                >"Approve"</button>
                <button type="button" class="rounded-lg border border-red-300 px-4 py-2 text-sm font-medium text-red-700 hover:bg-red-50 dark:border-red-800 dark:text-red-300 dark:hover:bg-red-950"
                    on:click=move |_| {
                        let (project, id) = ids();
                        if let Some(reason) = crate::components::state::prompt("Reject this deployment: why?") {
                            reject.dispatch(Reject { project, id, reason: Some(reason) });
                        }
                    }
                >"Reject"</button>
            </div>
        </Show>
        <Show when=held>
            <div class="mb-6 flex flex-wrap items-center gap-3" data-testid="held">
                <span class="text-sm">{move || live.with(|d| d.held_until.map(|t| format!("Held by a freeze window until {}; it proceeds by itself then.", crate::components::time::minute(&t))))}</span>
                <button type="button" class="rounded-lg border border-amber-400 px-3 py-1.5 text-sm hover:bg-amber-50 dark:hover:bg-amber-950"
                    on:click=move |_| {
                        let (project, id) = ids();
                        if let Some(reason) = crate::components::state::prompt("Force this deployment through the freeze (platform admins): why?") {
                            force.dispatch(Force { project, id, reason });
                        }
                    }
                >"Force through (admin)"</button>
            </div>
        </Show>
        {error}
    }
}

#[component]
fn StageCard(stage: Stage) -> impl IntoView {
    let measured = match (stage.error_rate, stage.requests) {
        (Some(e), Some(r)) => format!("{e:.2}% errors in {r:.0} requests"),
        (None, _) if stage.state == "pending" || stage.state == "skipped" => String::new(),
        _ => "no data yet".into(),
    };
    view! {
        <li
            data-testid=format!("stage-{}", stage.weight)
            data-state=stage.state
            class=format!("rounded-xl border p-4 {}", match stage.state {
                "succeeded" => "border-emerald-300 dark:border-emerald-800",
                "failed" => "border-red-300 dark:border-red-800",
                "running" => "border-indigo-400 dark:border-indigo-600",
                _ => "border-slate-200 dark:border-slate-800",
            })
        >
            <div class="flex items-baseline justify-between">
                <span class="text-xl font-semibold">{format!("{}%", stage.weight)}</span>
                <span class=format!("rounded-full px-2 py-0.5 text-xs {}", state_tone(stage.state))>{stage.state}</span>
            </div>
            <p class="mt-1 text-xs text-slate-600 dark:text-slate-400">{measured}</p>
        </li>
    }
}

/// Replaces the record with each server-sent event until the deployment ends.
#[cfg(feature = "hydrate")]
fn follow(project: &str, id: i64, live: RwSignal<DeploymentDetail>) {
    let url = format!(
        "/api/events/deployments/{}/{id}",
        crate::components::state::urlencode(project)
    );
    let held = StoredValue::new_local(None::<crate::components::live::Subscription>);
    let subscription = crate::components::live::subscribe(&url, Some("deployment"), move |text| {
        if let Ok(d) = serde_json::from_str::<DeploymentDetail>(&text) {
            let ended = d.deployment.state.is_terminal();
            live.set(d);
            if ended {
                // The stream ends here; closing keeps the browser from reconnecting.
                held.with_value(|s| {
                    if let Some(s) = s {
                        s.close()
                    }
                });
            }
        }
    });
    held.set_value(subscription);
    on_cleanup(move || held.set_value(None));
}
