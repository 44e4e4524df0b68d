//! A deep landing's wasm modules in one download: the `<head>` script that fetches the page's pack
//! (served by `switchyard_server::http::landing_packs`, which says why) and answers the split
//! loader's fetches of those modules from it.

use std::sync::Arc;

use leptos::prelude::*;

/// Provided per request by the server: the URL of the pack of a lazily loaded page (named as leptos
/// names it when it renders that page), when one is served.
#[derive(Clone)]
pub struct LandingPackUrl(pub Arc<dyn Fn(&str) -> Option<String> + Send + Sync>);

/// Placed in each lazily loaded page's view, which has just told leptos its name: on the server,
/// puts the pack's script into the response's `<head>` (through leptos_meta, as leptos adds its own
/// preloads). Renders nothing in the page itself, on either side.
#[component]
pub fn LandingPack() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        let url = use_context::<LandingPackUrl>()
            .zip(use_context::<leptos::PrefetchLazyFn>())
            .and_then(|(packs, rendered)| {
                let rendered = rendered.0.try_read_value()?;
                rendered.iter().find_map(|page| (packs.0)(page))
            });
        if let Some(url) = url {
            let _ = view! { <leptos_meta::Script>{script(&url)}</leptos_meta::Script> }.to_html();
        }
    }
}

/// Fetches the pack at once (from the `<head>`, long before the split loader asks for a module) and
/// wraps `fetch`: a same-origin `chunk_*`/`split_*` wasm module found in the pack is answered from
/// it (once: a later fetch of it goes to the network); anything else, or everything if the pack
/// fails, goes to the network as before. Layout of a pack: see `landing_packs::pack`.
pub fn script(url: &str) -> String {
    let url = serde_json::to_string(url).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"(function(){{
var pack=fetch({url}).then(function(r){{if(!r.ok)throw new Error("landing pack: "+r.status);return r.arrayBuffer()}}).then(function(buf){{
var n=new DataView(buf).getUint32(0,true),at=4+n,parts=new Map();
JSON.parse(new TextDecoder().decode(new Uint8Array(buf,4,n))).forEach(function(e){{parts.set(e[0],[at,e[1]]);at+=e[1]}});
return{{buf:buf,parts:parts}}}});
pack.catch(function(){{}});
var real=window.fetch;
window.fetch=function(input,init){{
var url=typeof input==="string"||input instanceof URL?new URL(input,location.href):null;
var name=url&&url.origin===location.origin&&/\/(chunk|split)_[^\/]*\.wasm$/.test(url.pathname)?url.pathname.slice(url.pathname.lastIndexOf("/")+1):null;
if(!name)return real.apply(window,arguments);
var network=function(){{return real.call(window,input,init)}};
return pack.then(function(p){{var part=p.parts.get(name);if(!part)return network();p.parts.delete(name);
return new Response(p.buf.slice(part[0],part[0]+part[1]),{{headers:{{"content-type":"application/wasm"}}}})}},network)}};
}})();"#
    )
}
