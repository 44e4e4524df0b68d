//! A project's members and their roles: add by email, change a role, remove (with confirmation).
//! The server decides who may do what (admins manage members; only owners grant admin or owner;
//! the last owner stays) and its refusals are shown as they come.

use enclii_api::{Member, Role};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::projects::{RemoveMember, SetMember, list_members};
use crate::components::state::{ApiErrorPanel, confirm};

const ROLES: [Role; 4] = [Role::Viewer, Role::Developer, Role::Admin, Role::Owner];

/// `/projects/:project/members`.
#[component]
pub fn MembersPage() -> impl IntoView {
    let params = use_params_map();
    let project = move || params.read().get("project").unwrap_or_default();
    view! {
        <Title text=move || format!("Members of {}", project()) />
        <div class="mb-2">
            <p class="text-sm text-slate-500">
                <a class="hover:underline" href="/projects">"Projects"</a>
                " / "
                <a class="hover:underline" href=move || format!("/projects/{}", project())>{project}</a>
            </p>
            <h1 class="text-2xl font-semibold tracking-tight">"Members"</h1>
        </div>
        {move || view! { <MembersPanel project=project() /> }}
    }
}

#[component]
pub fn MembersPanel(project: String) -> impl IntoView {
    let p = project.clone();
    let members = Resource::new(move || p.clone(), list_members);
    let set = ServerAction::<SetMember>::new();
    let remove = ServerAction::<RemoveMember>::new();
    Effect::new(move |_| {
        let changed =
            matches!(set.value().get(), Some(Ok(_))) || matches!(remove.value().get(), Some(Ok(_)));
        if changed {
            members.refetch();
        }
    });
    let error = move || {
        let e = match (set.value().get(), remove.value().get()) {
            (Some(Err(e)), _) | (_, Some(Err(e))) => Some(e.to_string()),
            _ => None,
        };
        e.map(|e| view! { <p role="alert" class="mt-2 text-sm text-red-700 dark:text-red-300">{e}</p> })
    };
    let email = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Developer);
    let add_project = project.clone();
    view! {
        <section id="members" aria-label="Members" class="mt-8">
            <h2 class="mb-2 text-base font-semibold">"Members and roles"</h2>
            <p class="mb-3 text-xs text-slate-500">
                "Viewers read; developers import specs, deploy and set variables; admins also reveal secrets and manage members and domains; owners also grant admin and delete the project."
            </p>
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading members…"</p> }>
                {move || {
                    let project = project.clone();
                    members
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                            Ok(list) => view! { <MemberTable project list set remove /> }.into_any(),
                        })
                }}
            </Suspense>
            {error}
            <form
                class="mt-3 flex flex-wrap items-end gap-2"
                on:submit=move |ev| {
                    ev.prevent_default();
                    let address = email.get_untracked().trim().to_owned();
                    if !address.is_empty() {
                        set.dispatch(SetMember { project: add_project.clone(), email: address, role: role.get_untracked() });
                        email.set(String::new());
                    }
                }
            >
                <label class="text-sm">
                    <span class="block text-slate-500">"Email"</span>
                    <input
                        type="email"
                        required
                        placeholder="teammate@example.com"
                        class="rounded-lg border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900"
                        prop:value=move || email.get()
                        on:input=move |ev| email.set(event_target_value(&ev))
                    />
                </label>
                <label class="text-sm">
                    <span class="block text-slate-500">"Role"</span>
                    <select
                        class="rounded-lg border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900"
                        on:change=move |ev| {
                            if let Some(r) = Role::parse(&event_target_value(&ev)) {
                                role.set(r);
                            }
                        }
                    >
                        {ROLES.iter().map(|r| view! { <option value=r.as_str() selected=*r == Role::Developer>{r.as_str()}</option> }).collect_view()}
                    </select>
                </label>
                <button type="submit" class="rounded-lg bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-400">
                    "Add member"
                </button>
            </form>
            <p class="mt-1 text-xs text-slate-500">"People are added by the email they sign in with; they must have signed in once."</p>
        </section>
    }
}

#[component]
fn MemberTable(
    project: String,
    list: Vec<Member>,
    set: ServerAction<SetMember>,
    remove: ServerAction<RemoveMember>,
) -> impl IntoView {
    view! {
        <div class="overflow-x-auto">
            <table class="w-full text-left text-sm" data-testid="members">
                <thead>
                    <tr class="text-slate-500">
                        <th class="py-2">"Member"</th>
                        <th>"Role"</th>
                        <th>"Since"</th>
                        <th><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {list
                        .into_iter()
                        .map(|m| {
                            let email = m.email.clone().unwrap_or_default();
                            let (p1, e1) = (project.clone(), email.clone());
                            let (p2, e2) = (project.clone(), email.clone());
                            let current = m.role;
                            view! {
                                <tr class="border-t border-slate-200 dark:border-slate-800">
                                    <td class="py-2">
                                        <span class="font-medium">{m.display_name.clone()}</span>
                                        <p class="text-xs text-slate-500">{email.clone()}</p>
                                    </td>
                                    <td>
                                        <select
                                            aria-label=format!("Role of {}", m.display_name)
                                            class="rounded-lg border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900"
                                            on:change=move |ev| {
                                                if let Some(r) = Role::parse(&event_target_value(&ev)) {
                                                    set.dispatch(SetMember { project: p1.clone(), email: e1.clone(), role: r });
                                                }
                                            }
                                        >
                                            {ROLES.iter().map(|r| view! { <option value=r.as_str() selected=*r == current>{r.as_str()}</option> }).collect_view()}
                                        </select>
                                    </td>
                                    <td class="whitespace-nowrap">{crate::components::time::day(&m.since)}</td>
                                    <td class="text-right">
                                        <button
                                            type="button"
                                            class="rounded-lg border border-red-300 px-2 py-1 text-xs text-red-700 hover:bg-red-50 dark:border-red-800 dark:text-red-300 dark:hover:bg-red-950"
                                            on:click=move |_| {
                                                if confirm(&format!("Remove {} from {}?", e2, p2)) {
                                                    remove.dispatch(RemoveMember { project: p2.clone(), email: e2.clone() });
                                                }
                                            }
                                        >
                                            "Remove"
                                        </button>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
