//! A service's Spec tab: the current YAML, every revision with its diff, and an editor that
//! validates or imports a new revision, showing each problem under the line it is on.

use enclii_api::{ApiError, Diagnostic, SpecRevision};
use leptos::prelude::*;

use super::services::{ImportService, ValidateSpec, spec_revisions};
use crate::components::state::ApiErrorPanel;

#[component]
pub fn SpecPanel(project: String, service: String) -> impl IntoView {
    let key = (project.clone(), service.clone());
    let revisions = Resource::new(move || key.clone(), |(p, s)| spec_revisions(p, s, None));
    // Held here, above the refetched part, so that an import's outcome outlives the re-render it
    // causes.
    let checked = RwSignal::new(None::<(String, Vec<Diagnostic>)>);
    let message = RwSignal::new(None::<(bool, String)>);
    view! {
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading the spec…"</p> }>
            {move || {
                let project = project.clone();
                revisions
                    .get()
                    .map(|r| match r {
                        Err(e) => view! { <ApiErrorPanel error=e /> }.into_any(),
                        Ok(list) => {
                            view! { <Spec project list checked message on_import=move || revisions.refetch() /> }.into_any()
                        }
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Spec(
    project: String,
    list: Vec<SpecRevision>,
    /// What was last checked, and what the server said about it.
    checked: RwSignal<Option<(String, Vec<Diagnostic>)>>,
    message: RwSignal<Option<(bool, String)>>,
    on_import: impl Fn() + Send + Sync + Clone + 'static,
) -> impl IntoView {
    let current = list.first().cloned();
    let text = RwSignal::new(
        current
            .as_ref()
            .map(|c| c.source.clone())
            .unwrap_or_default(),
    );
    let validate = ServerAction::<ValidateSpec>::new();
    let import = ServerAction::<ImportService>::new();
    Effect::new(move |_| {
        if let Some(r) = validate.value().get() {
            let source = text.get_untracked();
            match r {
                Ok(d) => {
                    let errors = d.iter().filter(|d| d.is_error()).count();
                    message.set(Some((
                        errors == 0,
                        if d.is_empty() {
                            "The spec is valid.".into()
                        } else {
                            format!("{errors} error(s), {} warning(s).", d.len() - errors)
                        },
                    )));
                    checked.set(Some((source, d)));
                }
                Err(e) => {
                    message.set(Some((false, e.to_string())));
                    checked.set(None);
                }
            }
        }
    });
    Effect::new(move |_| {
        if let Some(r) = import.value().get() {
            let source = text.get_untracked();
            match r {
                Ok(o) => {
                    message.set(Some((
                        true,
                        if o.changed {
                            format!("Imported as revision {}.", o.revision)
                        } else {
                            format!("Identical to revision {}: nothing changed.", o.revision)
                        },
                    )));
                    checked.set(Some((source, o.warnings)));
                    if o.changed {
                        on_import();
                    }
                }
                Err(ApiError::Invalid {
                    message: m,
                    diagnostics,
                }) => {
                    message.set(Some((false, format!("Not imported: {m}."))));
                    checked.set(Some((source, diagnostics)));
                }
                Err(e) => {
                    message.set(Some((false, e.to_string())));
                    checked.set(None);
                }
            }
        }
    });
    let busy = move || validate.pending().get() || import.pending().get();
    view! {
        <section aria-label="Current spec" class="mb-6">
            <h2 class="mb-2 text-base font-semibold">
                {current.as_ref().map(|c| format!("Revision {} · imported {}{}", c.revision, crate::components::time::minute(&c.created_at), c.created_by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default()))}
            </h2>
            <Source text=current.as_ref().map(|c| c.source.clone()).unwrap_or_default() diagnostics=vec![] testid="current-spec" />
        </section>
        <section aria-label="Edit and import" class="mb-6">
            <h2 class="mb-2 text-base font-semibold">"Edit and import"</h2>
            <label for="spec-editor" class="sr-only">"Spec YAML"</label>
            <textarea
                id="spec-editor"
                spellcheck="false"
                rows="16"
                class="w-full rounded-xl border border-slate-300 bg-white p-3 font-mono text-xs leading-5 dark:border-slate-700 dark:bg-slate-900"
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
            ></textarea>
            <div class="mt-2 flex flex-wrap items-center gap-3">
                <button
                    type="button"
                    class="rounded-lg border border-slate-300 px-3 py-1.5 text-sm font-medium hover:bg-slate-100 focus:outline-none focus:ring-2 focus:ring-indigo-400 dark:border-slate-700 dark:hover:bg-slate-800"
                    disabled=busy
                    on:click=move |_| {
                        validate.dispatch(ValidateSpec { spec: text.get_untracked() });
                    }
                >
                    "Validate"
                </button>
                <button
                    type="button"
                    class="rounded-lg bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-400"
                    disabled=busy
                    on:click={
                        let project = project.clone();
                        move |_| {
                            import.dispatch(ImportService { spec: text.get_untracked(), project: Some(project.clone()) });
                        }
                    }
                >
                    "Import as a new revision"
                </button>
                <span role="status" data-testid="spec-message" class=move || match message.get() {
                    Some((true, _)) => "text-sm text-emerald-700 dark:text-emerald-300",
                    _ => "text-sm text-red-700 dark:text-red-300",
                }>
                    {move || message.get().map(|(_, m)| m)}
                </span>
            </div>
            {move || {
                checked
                    .get()
                    .filter(|(_, d)| !d.is_empty())
                    .map(|(source, diagnostics)| {
                        view! {
                            <div class="mt-3">
                                <Source text=source diagnostics testid="checked-spec" />
                            </div>
                        }
                    })
            }}
        </section>
        <section aria-label="Revisions" class="mb-6">
            <h2 class="mb-2 text-base font-semibold">"Revision history"</h2>
            <ul class="space-y-2" data-testid="revisions">
                {list.into_iter().map(|r| view! { <Revision revision=r /> }).collect_view()}
            </ul>
        </section>
    }
}

/// The YAML with line numbers; each diagnostic is shown under its line, a caret at its column.
#[component]
fn Source(text: String, diagnostics: Vec<Diagnostic>, testid: &'static str) -> impl IntoView {
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let width = lines.len().to_string().len();
    view! {
        <pre data-testid=testid class="max-h-[32rem] overflow-auto rounded-xl bg-slate-950 p-3 font-mono text-xs leading-5 text-slate-100">
            {lines
                .into_iter()
                .enumerate()
                .map(|(i, line)| {
                    let n = i + 1;
                    let here: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.pos.line == n).collect();
                    let marked = !here.is_empty();
                    let notes = here
                        .into_iter()
                        .map(|d| {
                            let caret = format!("{}^ ", " ".repeat(width + 2 + d.pos.col.saturating_sub(1)));
                            let tone = if d.is_error() { "text-red-300" } else { "text-amber-300" };
                            let kind = if d.is_error() { "error" } else { "warning" };
                            view! {
                                <span data-testid="diagnostic" data-line=n.to_string() data-col=d.pos.col.to_string() class=format!("block {tone}")>
                                    {format!("{caret}{kind}: {}", d.message)}
                                </span>
                            }
                        })
                        .collect_view();
                    view! {
                        <span class=if marked { "block bg-red-950/60" } else { "block" }>
                            <span class="select-none text-slate-500">{format!("{n:>width$}  ")}</span>
                            {line}
                        </span>
                        {notes}
                    }
                })
                .collect_view()}
            {diagnostics
                .iter()
                .filter(|d| d.pos.line == 0)
                .map(|d| view! { <span data-testid="diagnostic" data-line="0" class="block text-red-300">{format!("error: {}", d.message)}</span> })
                .collect_view()}
        </pre>
    }
}

#[component]
fn Revision(revision: SpecRevision) -> impl IntoView {
    let summary = format!(
        "Revision {} · {}{}",
        revision.revision,
        crate::components::time::minute(&revision.created_at),
        revision
            .created_by
            .as_ref()
            .map(|b| format!(" · {b}"))
            .unwrap_or_default()
    );
    view! {
        <li class="rounded-xl border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
            <details>
                <summary class="cursor-pointer px-4 py-2 text-sm font-medium">{summary}</summary>
                <pre class="overflow-auto border-t border-slate-200 p-3 font-mono text-xs leading-5 dark:border-slate-800">
                    {match revision.diff {
                        None => view! { <span class="text-slate-500">"The first revision."</span> }.into_any(),
                        Some(diff) => diff
                            .lines()
                            .map(|l| {
                                let tone = if l.starts_with("+++") || l.starts_with("---") {
                                    "text-slate-500"
                                } else if l.starts_with('+') {
                                    "bg-emerald-100 text-emerald-900 dark:bg-emerald-950 dark:text-emerald-200"
                                } else if l.starts_with('-') {
                                    "bg-red-100 text-red-900 dark:bg-red-950 dark:text-red-200"
                                } else if l.starts_with("@@") {
                                    "text-indigo-600 dark:text-indigo-300"
                                } else {
                                    ""
                                };
                                view! { <span class=format!("block {tone}")>{l.to_owned()}</span> }
                            })
                            .collect_view()
                            .into_any(),
                    }}
                </pre>
            </details>
        </li>
    }
}
