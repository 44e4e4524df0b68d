//! The service page's variables and secrets: listed masked, set (plain or secret), removed after a
//! confirmation, and revealed to admins one at a time (audited; the value is shown on the page only,
//! never kept in browser storage).

use enclii_api::{ApiError, EnvVar};
use leptos::prelude::*;

use super::service::{StatusResource, chosen_environment};
use super::services::{RevealEnv, SetEnv, UnsetEnv, list_env};
use crate::components::environment::{EnvironmentSelect, follow_pick};
use crate::components::state::confirm;

/// The panel's server state. The tab makes it outside the Suspense the panel renders in (made
/// inside, the variables would be fetched once per server render pass of that Suspense). Until
/// the user picks an environment, the variables are those of the default one of the environments
/// `status` names.
#[derive(Clone, Copy)]
pub struct EnvState {
    set: ServerAction<SetEnv>,
    unset: ServerAction<UnsetEnv>,
    picked: RwSignal<Option<String>>,
    vars: Resource<Result<Vec<EnvVar>, ApiError>>,
}

impl EnvState {
    pub fn new(project: String, service: String, status: StatusResource) -> Self {
        let set = ServerAction::<SetEnv>::new();
        let unset = ServerAction::<UnsetEnv>::new();
        let picked = RwSignal::new(None::<String>);
        let vars = Resource::new(
            move || {
                (
                    project.clone(),
                    service.clone(),
                    picked.get(),
                    set.version().get(),
                    unset.version().get(),
                )
            },
            move |(p, s, picked, _, _)| async move {
                list_env(p, s, chosen_environment(picked, status).await?).await
            },
        );
        Self {
            set,
            unset,
            picked,
            vars,
        }
    }
}

#[component]
pub fn EnvironmentPanel(
    project: String,
    service: String,
    environments: Vec<String>,
    state: EnvState,
) -> impl IntoView {
    let EnvState {
        set,
        unset,
        picked,
        vars,
    } = state;
    let environment = follow_pick(picked, &environments);
    let reveal = ServerAction::<RevealEnv>::new();
    let name = RwSignal::new(String::new());
    let value = RwSignal::new(String::new());
    let secret = RwSignal::new(true);
    let revealed = RwSignal::new(None::<(String, String)>);
    // A revealed value belongs to the environment it was read in.
    Effect::new(move |_| {
        environment.track();
        revealed.set(None);
    });
    // Which variable the pending reveal is for (an action forgets its input once it completes).
    let revealing = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        if let Some(Ok(v)) = reveal.value().get() {
            if let Some(n) = revealing.get_untracked() {
                revealed.set(Some((n, v)));
            }
        }
    });
    let error = move || {
        let e = match (set.value().get(), unset.value().get(), reveal.value().get()) {
            (Some(Err(e)), _, _) | (_, Some(Err(e)), _) | (_, _, Some(Err(e))) => {
                Some(e.to_string())
            }
            _ => None,
        };
        e.map(|e| view! { <p role="alert" class="mt-2 text-sm text-red-700 dark:text-red-300">{e}</p> })
    };
    let (p2, s2) = (project.clone(), service.clone());
    view! {
        <section aria-label="Variables and secrets" class="mb-6">
            <div class="mb-2 flex flex-wrap items-center gap-3">
                <h2 class="text-base font-semibold">"Variables and secrets"</h2>
                <EnvironmentSelect label="Variables of environment" environments selected=environment />
            </div>
            <form
                class="mb-3 flex flex-wrap items-end gap-2"
                on:submit=move |ev| {
                    ev.prevent_default();
                    set.dispatch(SetEnv {
                        project: p2.clone(),
                        service: s2.clone(),
                        environment: environment.get_untracked(),
                        name: name.get_untracked(),
                        value: Some(value.get_untracked()),
                        secret: Some(secret.get_untracked()),
                        secret_ref: None,
                    });
                }
            >
                <label class="text-sm">
                    <span class="block text-slate-600 dark:text-slate-400">"Name"</span>
                    <input required class="rounded-lg border border-slate-300 bg-white px-2 py-1 font-mono dark:border-slate-700 dark:bg-slate-900" placeholder="API_KEY" on:input=move |ev| name.set(event_target_value(&ev)) />
                </label>
                <label class="text-sm">
                    <span class="block text-slate-600 dark:text-slate-400">"Value"</span>
                    <input required type="password" autocomplete="off" class="rounded-lg border border-slate-300 bg-white px-2 py-1 dark:border-slate-700 dark:bg-slate-900" on:input=move |ev| value.set(event_target_value(&ev)) />
                </label>
                <label class="flex items-center gap-1 text-sm">
                    <input type="checkbox" checked=true on:change=move |ev| secret.set(event_target_checked(&ev)) />
                    "Secret"
                </label>
                <button type="submit" class="rounded-lg bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-indigo-500">"Set variable"</button>
            </form>
            {error}
            <Suspense fallback=|| ()>
                {move || {
                    let (project, service) = (project.clone(), service.clone());
                    vars.get().map(|r| match r {
                        Err(e) => view! { <crate::components::state::ApiErrorPanel error=e /> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="text-sm text-slate-500">"No variables in this environment yet. Values reach the pods at the next deployment."</p> }.into_any(),
                        Ok(list) => view! { <EnvTable list project service environment unset reveal revealed revealing /> }.into_any(),
                    })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn EnvTable(
    list: Vec<EnvVar>,
    project: String,
    service: String,
    environment: RwSignal<String>,
    unset: ServerAction<UnsetEnv>,
    reveal: ServerAction<RevealEnv>,
    revealed: RwSignal<Option<(String, String)>>,
    revealing: RwSignal<Option<String>>,
) -> impl IntoView {
    view! {
        <table class="w-full text-left text-sm" data-testid="env">
            <thead>
                <tr class="text-slate-500">
                    <th class="py-1">"Name"</th>
                    <th>"Value"</th>
                    <th><span class="sr-only">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {list.into_iter().map(|v| {
                    let (p1, s1, n1) = (project.clone(), service.clone(), v.name.clone());
                    let (p2, s2, n2) = (project.clone(), service.clone(), v.name.clone());
                    let n3 = v.name.clone();
                    let shown = v.value.clone().or_else(|| v.secret_ref.clone().map(|(s, k)| format!("secret {s}/{k}"))).unwrap_or_else(|| "••••••••".into());
                    let masked = v.masked;
                    view! {
                        <tr class="border-t border-slate-200 dark:border-slate-800">
                            <td class="py-1 font-mono">{v.name.clone()}</td>
                            <td class="font-mono">
                                {move || match revealed.get() {
                                    Some((n, value)) if n == n3 => value,
                                    _ => shown.clone(),
                                }}
                            </td>
                            <td class="space-x-2 text-right">
                                {masked.then(|| view! {
                                    <button type="button" class="text-xs text-indigo-700 hover:underline dark:text-indigo-300"
                                        on:click=move |_| {
                                            if confirm("Reveal this secret? The reveal is recorded in the activity log.") {
                                                revealing.set(Some(n1.clone()));
                                                reveal.dispatch(RevealEnv { project: p1.clone(), service: s1.clone(), environment: environment.get_untracked(), name: n1.clone() });
                                            }
                                        }
                                    >"Reveal"</button>
                                })}
                                <button type="button" class="text-xs text-red-700 hover:underline dark:text-red-300"
                                    on:click=move |_| {
                                        if confirm("Remove this variable? Pods lose it at the next deployment.") {
                                            unset.dispatch(UnsetEnv { project: p2.clone(), service: s2.clone(), environment: environment.get_untracked(), name: n2.clone() });
                                        }
                                    }
                                >"Remove"</button>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}
