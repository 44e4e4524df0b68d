//! A project's pull request previews (`pr-<number>` environments): the project page's Previews
//! panel and `enclii previews list|wake|delete`.

use enclii_api::{ApiError, Json, Preview, PreviewState};
use leptos::prelude::*;

use super::deployment::state_tone;
use crate::components::state::{ApiErrorPanel, EmptyState, confirm};

/// The project's previews, newest first: live ones, then the last deleted ones.
#[server(endpoint = "previews/list", input = Json, output = Json)]
pub async fn list_previews(project: String) -> Result<Vec<Preview>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::previews::list(&engine, caller.as_ref(), &project)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Wakes a sleeping preview: its Deployments back to one replica.
#[server(endpoint = "previews/wake", input = Json, output = Json)]
pub async fn wake_preview(project: String, pr: u32) -> Result<Preview, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::previews::wake(&engine, caller.as_ref(), &project, pr)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Deletes a preview now, as closing its pull request would.
#[server(endpoint = "previews/delete", input = Json, output = Json)]
pub async fn delete_preview(project: String, pr: u32) -> Result<Preview, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::previews::delete(&engine, caller.as_ref(), &project, pr)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

fn tone(state: PreviewState) -> &'static str {
    match state {
        PreviewState::Awake => state_tone("succeeded"),
        PreviewState::Sleeping => state_tone("pending"),
        PreviewState::Deleting => state_tone("running"),
        PreviewState::Deleted => state_tone("superseded"),
    }
}

/// The Previews panel: each pull request's state, URLs, commit, age and last event, with wake and
/// delete buttons.
#[component]
pub fn PreviewsPanel(project: String) -> impl IntoView {
    let wake = ServerAction::<WakePreview>::new();
    let delete = ServerAction::<DeletePreview>::new();
    let p = project.clone();
    let previews = Resource::new(
        move || (p.clone(), wake.version().get(), delete.version().get()),
        |(p, _, _)| list_previews(p),
    );
    let action_error = move || {
        let e = match (wake.value().get(), delete.value().get()) {
            (Some(Err(e)), _) | (_, Some(Err(e))) => Some(e),
            _ => None,
        };
        e.map(|e| view! { <p role="alert" class="mt-2 text-sm text-red-700 dark:text-red-300">{e.to_string()}</p> })
    };
    view! {
        <section aria-label="Previews" class="mt-8">
            <h2 class="mb-2 text-base font-semibold">"Pull request previews"</h2>
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading previews…"</p> }>
                {move || {
                    let project = project.clone();
                    previews
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                            Ok(list) if list.is_empty() => view! {
                                <EmptyState
                                    title="No previews"
                                    hint="Add `previews: {enabled: true}` to a service's spec and connect its repository: each pull request then gets its own environment, deleted when it closes."
                                    command="enclii previews list"
                                />
                            }
                                .into_any(),
                            Ok(list) => view! {
                                <ul class="space-y-3" data-testid="previews">
                                    {list.into_iter().map(|pv| {
                                        let live = matches!(pv.state, PreviewState::Awake | PreviewState::Sleeping);
                                        let sleeping = pv.state == PreviewState::Sleeping;
                                        let n = pv.pr_number.max(0) as u32;
                                        let (p1, p2) = (project.clone(), project.clone());
                                        let short = pv.head_sha.chars().take(12).collect::<String>();
                                        view! {
                                            <li class="rounded-xl border border-slate-200 bg-white p-4 text-sm dark:border-slate-800 dark:bg-slate-900">
                                                <div class="flex flex-wrap items-baseline gap-2">
                                                    <h3 class="font-semibold">{format!("#{} · {}", pv.pr_number, pv.environment)}</h3>
                                                    <span class=format!("rounded-full px-2 py-0.5 text-xs {}", tone(pv.state))>{pv.state.to_string()}</span>
                                                    <code class="text-xs">{short}</code>
                                                    <span class="text-xs text-slate-500">{pv.head_ref.clone()}</span>
                                                    <span class="text-xs text-slate-500">{format!("created {} UTC · last deploy or wake {} UTC", crate::components::time::minute(&pv.created_at), crate::components::time::minute(&pv.touched_at))}</span>
                                                </div>
                                                <ul class="mt-2 space-y-1">
                                                    {pv.services.into_iter().map(|s| view! {
                                                        <li>
                                                            <span class="font-medium">{s.name.clone()}</span>" "
                                                            {s.url.clone().filter(|_| live).map(|u| view! { <a class="text-indigo-700 hover:underline dark:text-indigo-300" href=u.clone() rel="noopener noreferrer">{u.clone()}</a> })}
                                                            " "
                                                            {s.deployment_state.clone().map(|st| view! { <span class=format!("rounded-full px-2 py-0.5 text-xs {}", state_tone(&st))>{st.clone()}</span> })}
                                                        </li>
                                                    }).collect_view()}
                                                </ul>
                                                <p class="mt-2 text-slate-600 dark:text-slate-400" data-testid="preview-last-event">{pv.last_event.clone()}</p>
                                                {live.then(|| view! {
                                                    <div class="mt-2 flex gap-2">
                                                        {sleeping.then(|| view! {
                                                            <button type="button" class="rounded-lg bg-indigo-600 px-3 py-1 text-xs font-medium text-white hover:bg-indigo-500"
                                                                on:click=move |_| { wake.dispatch(WakePreview { project: p1.clone(), pr: n }); }>
                                                                "Wake"
                                                            </button>
                                                        })}
                                                        <button type="button" class="rounded-lg border border-red-300 px-3 py-1 text-xs font-medium text-red-700 hover:bg-red-50 dark:border-red-800 dark:text-red-300"
                                                            on:click=move |_| {
                                                                if confirm(&format!("Delete the preview of pull request #{n}? Its namespace and deployments are removed.")) {
                                                                    delete.dispatch(DeletePreview { project: p2.clone(), pr: n });
                                                                }
                                                            }>
                                                            "Delete"
                                                        </button>
                                                    </div>
                                                })}
                                            </li>
                                        }
                                    }).collect_view()}
                                </ul>
                            }
                                .into_any(),
                        })
                }}
                {action_error}
            </Suspense>
        </section>
    }
}
