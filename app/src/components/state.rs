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

/// An API error as the user should read it. Without a (live) session, the user is sent to sign in
/// and brought back to this page afterwards.
#[component]
pub fn ApiErrorPanel(error: enclii_api::ApiError) -> impl IntoView {
    if let enclii_api::ApiError::Unauthenticated { .. } = error {
        let location = leptos_router::hooks::use_location();
        let path = location.pathname.get_untracked();
        let search = location.search.get_untracked();
        let search = search.trim_start_matches('?');
        let here = if search.is_empty() {
            path
        } else {
            format!("{path}?{search}")
        };
        let target = format!("/auth/login?return_to={}", urlencode(&here));
        #[cfg(feature = "ssr")]
        leptos_axum::redirect(&target);
        #[cfg(feature = "hydrate")]
        {
            let target = target.clone();
            Effect::new(move |_| {
                if let Some(w) = web_sys::window() {
                    let _ = w.location().set_href(&target);
                }
            });
        }
        return view! {
            <section class="rounded-xl border border-slate-200 bg-white p-8 text-center dark:border-slate-800 dark:bg-slate-900">
                <h2 class="text-base font-semibold">"Sign in to continue"</h2>
                <a href=target rel="external" class="mt-4 inline-block rounded-lg bg-indigo-600 px-4 py-2 text-sm font-medium text-white">"Sign in"</a>
            </section>
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

/// Asks the browser's confirmation dialog; destructive actions go through it.
/// Asks for a line of text (a reason); `None` when cancelled, or on the server.
pub fn prompt(question: &str) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.prompt_with_message(question).ok())
            .flatten()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = question;
        None
    }
}

pub fn confirm(question: &str) -> bool {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.confirm_with_message(question).ok())
            .unwrap_or(false)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = question;
        false
    }
}

/// Percent-encodes a path for use as a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The links under a server-paginated list: to the next page (the current query with `cursor`
/// replaced, so that filters carry over) and, when not on the first page, back to it.
#[component]
pub fn PageLinks(next: Option<String>, #[prop(into)] label: String) -> impl IntoView {
    let query = leptos_router::hooks::use_query_map().get_untracked();
    let first = query.get_str("cursor").is_some().then(|| {
        let mut q = query.clone();
        q.remove("cursor");
        // An empty query would leave the href empty, which is this very page: `?` is the path's.
        let href = match q.to_query_string() {
            s if s.is_empty() => "?".to_owned(),
            s => s,
        };
        view! { <a class="text-sm text-indigo-700 hover:underline dark:text-indigo-300" href=href>"← First page"</a> }
    });
    let next = next.map(|cursor| {
        let mut q = query.clone();
        q.replace("cursor", cursor);
        view! { <a class="text-sm text-indigo-700 hover:underline dark:text-indigo-300" rel="next" href=q.to_query_string()>{label}</a> }
    });
    view! { <nav aria-label="Pages" class="mt-4 flex gap-4">{first}{next}</nav> }
}
