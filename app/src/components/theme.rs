//! Light and dark mode. The choice lives in a plain preference cookie (not a secret), so the server
//! renders the right theme and the page never flashes.

use leptos::prelude::*;

pub const COOKIE: &str = "enclii_theme";

/// Runs before first paint: with no saved choice, follow the operating system.
pub const NO_FLASH_SCRIPT: &str = "(function(){var d=document.documentElement;\
if(document.cookie.indexOf('enclii_theme=')<0&&window.matchMedia('(prefers-color-scheme: dark)').matches)\
{d.classList.add('dark');}})();";

/// The saved choice, read from the request's cookies while rendering on the server.
pub fn dark_from_request() -> bool {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .and_then(|parts| {
                parts
                    .headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .find_map(|v| {
                        v.to_str().ok()?.split(';').find_map(|pair| {
                            let (k, v) = pair.trim().split_once('=')?;
                            (k == COOKIE).then(|| v == "dark")
                        })
                    })
            })
            .unwrap_or(false)
    }
    #[cfg(not(feature = "ssr"))]
    {
        false
    }
}

#[component]
pub fn ThemeToggle() -> impl IntoView {
    // Starts from what the server rendered; only the browser can know the OS preference.
    let (dark, set_dark) = signal(false);
    Effect::new(move |_| set_dark.set(is_dark_now()));
    let toggle = move |_| {
        let next = !dark.get_untracked();
        apply(next);
        set_dark.set(next);
    };
    view! {
        <button
            type="button"
            on:click=toggle
            aria-pressed=move || dark.get().to_string()
            aria-label="Dark mode"
            title="Toggle dark mode"
            class="rounded-lg p-2 text-slate-600 hover:bg-slate-100 focus-visible:outline focus-visible:outline-2 focus-visible:outline-indigo-500 dark:text-slate-300 dark:hover:bg-slate-800"
        >
            <span aria-hidden="true">{move || if dark.get() { "☾" } else { "☀" }}</span>
        </button>
    }
}

#[cfg(feature = "hydrate")]
fn html() -> Option<web_sys::Element> {
    web_sys::window()?.document()?.document_element()
}

#[cfg(feature = "hydrate")]
fn is_dark_now() -> bool {
    html()
        .map(|h| h.class_list().contains("dark"))
        .unwrap_or(false)
}

#[cfg(feature = "hydrate")]
fn apply(dark: bool) {
    use wasm_bindgen::JsCast;
    if let Some(h) = html() {
        let _ = h.class_list().toggle_with_force("dark", dark);
    }
    let doc = web_sys::window().and_then(|w| w.document());
    if let Some(doc) = doc.and_then(|d| d.dyn_into::<web_sys::HtmlDocument>().ok()) {
        let value = if dark { "dark" } else { "light" };
        let _ = doc.set_cookie(&format!(
            "{COOKIE}={value}; Path=/; Max-Age=31536000; SameSite=Lax"
        ));
    }
}

#[cfg(not(feature = "hydrate"))]
fn is_dark_now() -> bool {
    false
}

#[cfg(not(feature = "hydrate"))]
fn apply(_dark: bool) {}
