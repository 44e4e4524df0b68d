//! Activity: the audit log, newest first, filtered by project and action.

use enclii_api::Json;
use enclii_api::{ApiError, AuditEvent, Page};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::layout::PageHeader;
use crate::components::state::{ApiErrorPanel, EmptyState};

/// Audit events: a project's (its admins), or everyone's (platform admins). `action` matches an
/// action or a family (`auth` matches `auth.sign_in`, …).
#[server(endpoint = "audit/list", input = Json, output = Json)]
pub async fn list_audit(
    project: Option<String>,
    action: Option<String>,
    cursor: Option<i64>,
    limit: Option<u32>,
) -> Result<Page<AuditEvent>, ApiError> {
    let (engine, caller) = crate::api::caller().await?;
    switchyard_engine::audit::list(
        &engine.pool,
        caller.as_ref(),
        project.as_deref(),
        action.as_deref(),
        cursor,
        limit,
    )
    .await
    .map_err(switchyard_engine::Error::into_api)
}

#[component]
pub fn ActivityPage() -> impl IntoView {
    let query = use_query_map();
    let events = Resource::new(
        move || {
            (
                query.with(|q| q.get("project")),
                query.with(|q| q.get("action")),
                query.with(|q| q.get("cursor")),
            )
        },
        |(project, action, cursor)| {
            list_audit(
                project,
                action,
                cursor.and_then(|c| c.parse().ok()),
                Some(50),
            )
        },
    );
    view! {
        <Title text="Activity" />
        <PageHeader title="Activity" subtitle="Every change and every refusal: who, what, when, from where." />
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || {
                events
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(page) if page.items.is_empty() => {
                            view! { <EmptyState title="Nothing has happened yet" hint="Changes to projects, services and deployments are recorded here." /> }.into_any()
                        }
                        Ok(page) => view! { <AuditTable page /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn AuditTable(page: Page<AuditEvent>) -> impl IntoView {
    let next = page.next;
    view! {
        <div class="overflow-x-auto">
            <table class="w-full text-left text-sm">
                <thead>
                    <tr class="text-slate-500">
                        <th class="py-2">"When"</th>
                        <th>"Who"</th>
                        <th>"What"</th>
                        <th>"Target"</th>
                        <th>"Project"</th>
                        <th>"From"</th>
                    </tr>
                </thead>
                <tbody>
                    {page
                        .items
                        .into_iter()
                        .map(|e| {
                            view! {
                                <tr class="border-t border-slate-200 dark:border-slate-800">
                                    <td class="py-2 whitespace-nowrap">{crate::components::time::second(&e.occurred_at)}</td>
                                    <td>{e.actor}</td>
                                    <td class="font-mono">{e.action}</td>
                                    <td class="font-mono">{e.target.unwrap_or_default()}</td>
                                    <td>{e.project.unwrap_or_default()}</td>
                                    <td>{e.client_addr.unwrap_or_default()}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
        <crate::components::state::PageLinks next label="Older events →" />
    }
}
