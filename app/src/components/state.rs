//! Empty states and error panels: every list says what to do when it has nothing to show.

use leptos::prelude::*;

/// Shown where a list is empty: what is missing and the next step to take.
#[component]
pub fn EmptyState(
    title: &'static str,
    hint: &'static str,
    #[prop(optional)] command: Option<&'static str>,
) -> impl IntoView {
    view! {
        <section class="rounded-xl border border-dashed border-slate-300 bg-white p-8 text-center dark:border-slate-700 dark:bg-slate-900">
            <h2 class="text-base font-semibold">{title}</h2>
            <p class="mt-2 text-sm text-slate-600 dark:text-slate-400">{hint}</p>
            {command
                .map(|c| {
                    view! {
                        <pre class="mt-4 inline-block rounded-lg bg-slate-900 px-4 py-2 text-left font-mono text-sm text-slate-100">
                            <code>{c}</code>
                        </pre>
                    }
                })}
        </section>
    }
}

/// The fallback of the app's error boundary: the messages are the user-facing ones from typed
/// errors, never internal causes.
#[component]
pub fn ErrorPanel(errors: ArcRwSignal<Errors>) -> impl IntoView {
    view! {
        <section role="alert" class="rounded-xl border border-red-300 bg-red-50 p-6 text-red-900 dark:border-red-800 dark:bg-red-950 dark:text-red-100">
            <h2 class="font-semibold">"Something went wrong"</h2>
            <ul class="mt-2 list-disc pl-5 text-sm">
                {move || {
                    errors
                        .get()
                        .into_iter()
                        .map(|(_, e)| view! { <li>{e.to_string()}</li> })
                        .collect_view()
                }}
            </ul>
        </section>
    }
}

/// An API error as the user should read it; a sign-in prompt when the request was anonymous.
#[component]
pub fn ApiErrorPanel(error: enclii_api::ApiError) -> impl IntoView {
    if let enclii_api::ApiError::Unauthenticated { .. } = error {
        return view! {
            <EmptyState title="Sign in to continue" hint="Your projects appear here once you have signed in." />
        }
        .into_any();
    }
    view! {
        <section role="alert" class="rounded-xl border border-red-300 bg-red-50 p-6 text-red-900 dark:border-red-800 dark:bg-red-950 dark:text-red-100">
            <h2 class="font-semibold">"Something went wrong"</h2>
            <p class="mt-2 text-sm">{error.to_string()}</p>
        </section>
    }
    .into_any()
}
