//! What a page load fetches to hydrate: the hydration script (in place of leptos'
//! `HydrationScripts`), the main module's preload, and on a lazily loaded page the `<head>` script
//! that fetches the page's wasm modules in one pack (served by
//! `switchyard_server::http::landing_packs`, which says why) and answers the split loader's
//! fetches of those modules from it.

use std::sync::Arc;

use leptos::prelude::*;

/// The build's hydration files (`/pkg/<name>.<hash>.js` and `.wasm`), provided per request by the
/// server, which reads them from the build's hash file as leptos does.
#[derive(Clone, Debug)]
pub struct SiteFiles {
    pub js: String,
    pub wasm: String,
}

/// A lazily loaded page's packs, as the server serves them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackUrls {
    /// The page's modules.
    pub pack: String,
    /// Optimised builds only: the same pack led by the main module, for a browser that has not got
    /// the main module yet (compressed together: ~9 KB less than apart).
    pub with_main: Option<String>,
}

/// Provided per request by the server: the packs of a lazily loaded page (named as leptos names it
/// when it renders that page), when they are served; and whether pages keep the main module for
/// later landings (optimised builds, where packs can carry it).
#[derive(Clone)]
pub struct LandingPackUrl {
    pub urls: Arc<dyn Fn(&str) -> Option<PackUrls> + Send + Sync>,
    pub keep_main: bool,
}

/// In the shell's `<head>`: loads the JS and hydrates with the main module, as leptos'
/// `HydrationScripts` does, but without its preload of the main module, which would download that
/// module a second time on a landing whose pack carries it ([`LandingPack`] adds the preload
/// everywhere else).
#[component]
pub fn Hydration() -> impl IntoView {
    use_context::<SiteFiles>().map(|files| {
        let script = format!(
            "import({js}).then(m=>m.default({{module_or_path:{wasm}}}).then(()=>m.hydrate()));",
            js = js_string(&files.js),
            wasm = js_string(&files.wasm),
        );
        view! {
            <link rel="modulepreload" href=files.js crossorigin="anonymous" />
            <script type="module" nonce=leptos::nonce::use_nonce()>{script}</script>
        }
    })
}

/// Placed in every route's view (a lazily loaded page's has just told leptos its name). On the
/// server, adds to the response's `<head>` (through leptos_meta, as leptos adds its own preloads)
/// the main module's preload, unless the page's pack carries that module, and the pack's script on
/// a lazily loaded page. Renders nothing in the page itself, on either side.
#[component]
pub fn LandingPack() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        use leptos_meta::{Link, Script};
        let packs = use_context::<LandingPackUrl>();
        let urls = packs
            .as_ref()
            .zip(use_context::<leptos::PrefetchLazyFn>())
            .and_then(|(packs, rendered)| {
                let rendered = rendered.0.try_read_value()?;
                rendered.iter().find_map(|page| (packs.urls)(page))
            });
        let main = use_context::<SiteFiles>().map(|f| f.wasm);
        if urls.as_ref().is_none_or(|u| u.with_main.is_none())
            && let Some(main) = main.clone()
        {
            let _ = view! {
                <Link rel="preload" href=main as_="fetch" type_="application/wasm" crossorigin="anonymous" />
            }
            .to_html();
        }
        let keep_main = packs.is_some_and(|p| p.keep_main);
        let main = main.as_deref().filter(|_| keep_main);
        if urls.is_some() || main.is_some() {
            let js = script(urls.as_ref(), main);
            let _ = view! { <Script>{js}</Script> }.to_html();
        }
    }
}

/// `s` as a JavaScript string literal.
fn js_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `landing.js` for one page (`main`: the main module's path, when pages keep it). It fetches the
/// pack at once (from
/// the `<head>`, long before the split loader asks for a module) and wraps `fetch`: a same-origin
/// `chunk_*`/`split_*` module (and the main module, when the pack carries it) is answered from the
/// pack; anything else, or everything if the pack fails, goes to the network. A first visit gets
/// the pack led by the main module and keeps that module in Cache Storage, so a later landing on
/// another page fetches only that page's modules; without Cache Storage (an insecure context), or
/// when the HTTP cache has the main module, the page's pack alone. Pack layout:
/// `landing_packs::pack` in the server.
pub fn script(urls: Option<&PackUrls>, main: Option<&str>) -> String {
    let or_null = |s: Option<&str>| s.map(js_string).unwrap_or_else(|| "null".into());
    let pack = urls.map(|u| u.pack.as_str());
    let with_main = urls
        .and_then(|u| u.with_main.as_deref())
        .filter(|_| main.is_some());
    include_str!("landing.js")
        .replace("__PACK__", &or_null(pack))
        .replace("__PACK_WITH_MAIN__", &or_null(with_main))
        .replace("__MAIN__", &or_null(main))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_names_the_pages_packs_as_js_strings() {
        let dev = PackUrls {
            pack: "/landing/dev/__a_1".into(),
            with_main: None,
        };
        let dev = script(Some(&dev), None);
        assert!(
            dev.contains(r#"var PACK = "/landing/dev/__a_1", PACK_WITH_MAIN = null, MAIN = null;"#)
        );
        let optimised = PackUrls {
            pack: "/landing/H/__a_1".into(),
            with_main: Some("/landing/H/__a_1/with-main".into()),
        };
        let optimised = script(Some(&optimised), Some("/pkg/switchyard.X.wasm"));
        assert!(optimised.contains(
            r#"var PACK = "/landing/H/__a_1", PACK_WITH_MAIN = "/landing/H/__a_1/with-main", MAIN = "/pkg/switchyard.X.wasm";"#
        ));
        // A page that is not lazily loaded only keeps the main module.
        let overview = script(None, Some("/pkg/switchyard.X.wasm"));
        assert!(overview.contains(
            r#"var PACK = null, PACK_WITH_MAIN = null, MAIN = "/pkg/switchyard.X.wasm";"#
        ));
        // Nothing left to fill in, and nothing that would end the inline <script> early.
        assert!(!optimised.contains("__PACK") && !optimised.contains("__MAIN"));
        assert!(!optimised.contains("</"));
    }
}
