//! Settings: the signed-in user's API tokens.

use enclii_api::Json;
use enclii_api::{ApiError, ApiToken, CreatedToken};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::layout::PageHeader;
use crate::components::state::ApiErrorPanel;

/// Creates an API token for the signed-in user. The secret is in this answer and nowhere else.
#[server(endpoint = "tokens/create", input = Json, output = Json)]
pub async fn create_api_token(
    name: String,
    write: bool,
    expires_in_days: Option<u32>,
) -> Result<CreatedToken, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::auth::tokens::manage::create(
        &engine.pool,
        &engine.settings.session,
        caller.as_ref(),
        &name,
        write,
        expires_in_days,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

/// The signed-in user's tokens, newest first (secrets are never shown again).
#[server(endpoint = "tokens/list", input = Json, output = Json)]
pub async fn list_api_tokens() -> Result<Vec<ApiToken>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::auth::tokens::manage::list(&engine.pool, caller.as_ref())
        .await
        .map_err(switchyard_engine::Error::into_api)
}

/// Revokes one of the signed-in user's tokens; it stops working at once.
#[server(endpoint = "tokens/revoke", input = Json, output = Json)]
pub async fn revoke_api_token(id: String) -> Result<(), ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::auth::tokens::manage::revoke(&engine.pool, caller.as_ref(), &id)
        .await
        .map_err(switchyard_engine::Error::into_api)
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    let create = ServerAction::<CreateApiToken>::new();
    let revoke = ServerAction::<RevokeApiToken>::new();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_api_tokens(),
    );
    let (name, set_name) = signal(String::new());
    let (write, set_write) = signal(true);

    view! {
        <Title text="Settings" />
        <PageHeader title="Settings" subtitle="API tokens for the enclii CLI and automation; members and roles per project." />
        <section class="rounded-xl border border-slate-200 bg-white p-6 dark:border-slate-800 dark:bg-slate-900">
            <h2 class="text-base font-semibold">"Create an API token"</h2>
            <form
                class="mt-4 flex flex-wrap items-end gap-4"
                on:submit=move |ev| {
                    ev.prevent_default();
                    create.dispatch(CreateApiToken { name: name.get_untracked(), write: write.get_untracked(), expires_in_days: None });
                }
            >
                <label class="flex flex-col text-sm">
                    <span class="mb-1 font-medium">"Name"</span>
                    <input
                        name="name"
                        required
                        maxlength="100"
                        class="rounded-lg border border-slate-300 bg-white px-3 py-2 dark:border-slate-700 dark:bg-slate-950"
                        prop:value=name
                        on:input=move |ev| set_name.set(event_target_value(&ev))
                    />
                </label>
                <label class="flex items-center gap-2 text-sm">
                    <input type="checkbox" name="write" prop:checked=write on:change=move |ev| set_write.set(event_target_checked(&ev)) />
                    "Allow changes (deploy, import)"
                </label>
                <button type="submit" class="rounded-lg bg-indigo-600 px-4 py-2 text-sm font-medium text-white hover:bg-indigo-500">
                    "Create token"
                </button>
            </form>
            {move || {
                create
                    .value()
                    .get()
                    .map(|result| match result {
                        Ok(created) => {
                            view! {
                                <div role="status" class="mt-4 rounded-lg border border-emerald-300 bg-emerald-50 p-4 text-sm dark:border-emerald-800 dark:bg-emerald-950">
                                    <p class="font-medium">"Copy this token now: it will not be shown again."</p>
                                    <code data-testid="new-token" class="mt-2 block break-all font-mono">{created.secret}</code>
                                </div>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                    })
            }}
        </section>
        <section class="mt-6">
            <h2 class="mb-3 text-base font-semibold">"Your tokens"</h2>
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
                {move || {
                    tokens
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                            Ok(list) if list.is_empty() => view! { <p class="text-sm text-slate-500">"No tokens yet."</p> }.into_any(),
                            Ok(list) => {
                                view! {
                                    <table class="w-full text-left text-sm">
                                        <thead>
                                            <tr class="text-slate-500">
                                                <th class="py-2">"Name"</th>
                                                <th>"Token"</th>
                                                <th>"Scopes"</th>
                                                <th>"Last used"</th>
                                                <th>"Status"</th>
                                                <th><span class="sr-only">"Actions"</span></th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {list
                                                .into_iter()
                                                .map(|t| {
                                                    let id = t.id.clone();
                                                    let live = t.revoked_at.is_none();
                                                    let label = format!("Revoke {}", t.name);
                                                    view! {
                                                        <tr class="border-t border-slate-200 dark:border-slate-800">
                                                            <td class="py-2">{t.name.clone()}</td>
                                                            <td class="font-mono">{format!("{}…", t.prefix)}</td>
                                                            <td>{t.scopes.join(", ")}</td>
                                                            <td>{t.last_used_at.map(|d| crate::components::time::minute(&d)).unwrap_or_else(|| "never".into())}</td>
                                                            <td>{if live { "active" } else { "revoked" }}</td>
                                                            <td class="text-right">
                                                                <Show when=move || live>
                                                                    {
                                                                        let id = id.clone();
                                                                        let label = label.clone();
                                                                        view! {
                                                                            <button
                                                                                type="button"
                                                                                aria-label=label
                                                                                class="rounded-lg px-3 py-1 text-red-700 hover:bg-red-50 dark:text-red-300 dark:hover:bg-red-950"
                                                                                on:click=move |_| {
                                                                                    if crate::components::state::confirm("Revoke this token? Anything using it stops working at once.") {
                                                                                        revoke.dispatch(RevokeApiToken { id: id.clone() });
                                                                                    }
                                                                                }
                                                                            >
                                                                                "Revoke"
                                                                            </button>
                                                                        }
                                                                    }
                                                                </Show>
                                                            </td>
                                                        </tr>
                                                    }
                                                })
                                                .collect_view()}
                                        </tbody>
                                    </table>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Suspense>
        </section>
        <MembersAndRoles />
    }
}

/// Members are per project: each project the caller belongs to, with their role and a link to
/// the project's members list.
#[component]
fn MembersAndRoles() -> impl IntoView {
    let projects = Resource::new(|| (), |_| super::projects::list_projects());
    view! {
        <section class="mt-6" aria-label="Members and roles">
            <h2 class="mb-3 text-base font-semibold">"Members and roles"</h2>
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
                {move || projects.get().map(|r| match r {
                    Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="text-sm text-slate-500">"You belong to no project yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <ul class="space-y-1 text-sm">
                            {list.into_iter().map(|p| view! {
                                <li>
                                    <a class="font-medium text-indigo-700 hover:underline dark:text-indigo-300" href=format!("/projects/{}/members", p.slug)>{p.slug.clone()}</a>
                                    <span class="ml-2 text-slate-500">{p.role.map(|r| format!("you are {}", r.as_str())).unwrap_or_else(|| "platform admin".into())}</span>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}
