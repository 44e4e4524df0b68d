//! Which wasm modules each lazily loaded page needs, for the `<link rel=preload>` tags leptos adds
//! to a response that rendered one (so a deep landing fetches its chunks with the page, not after
//! the main module asks for them).
//!
//! Read from the split loader (`pkg/__wasm_split.<hash>.js`), which is what the browser runs, not
//! from the manifest cargo-leptos writes beside it: cargo-leptos 0.3.7 renames that manifest's
//! entries by text replacement (`chunk_160` becomes `chunk_16.<hash>0`, a file that does not exist:
//! 404s in the browser). Provided per request (`http::router`'s context) until the landing packs
//! are ready (`landing_packs.rs`); the shell's `SplitPreloads` hands it to leptos. The same pages
//! are what the packs are made of.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use leptos::WasmSplitManifest;
use leptos::prelude::{ArcStoredValue, LeptosOptions};

/// A `--split` build's lazily loaded pages, as its loader declares them.
pub struct SplitBuild {
    /// The directory of the site's modules.
    pub pkg: PathBuf,
    /// Each page's modules (file stems), dependencies first: see [`from_loader`].
    pub pages: HashMap<String, Vec<String>>,
    loader: String,
    pkg_url: String,
}

/// The site's split build, or `None` when it was not built with `--split`.
pub fn load(options: &LeptosOptions) -> Option<SplitBuild> {
    let pkg = Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    let loader = std::fs::read_dir(&pkg)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|name| name.starts_with("__wasm_split.") && name.ends_with(".js"))?;
    let js = std::fs::read_to_string(pkg.join(&loader)).ok()?;
    let pages = from_loader(&js);
    if pages.is_empty() {
        tracing::warn!(%loader, "the split loader names no page; no chunk preloads");
        return None;
    }
    Some(SplitBuild {
        pkg,
        pages,
        loader,
        pkg_url: format!("/{}", options.site_pkg_dir),
    })
}

impl SplitBuild {
    /// What leptos reads to add a `<link rel=preload>` per module of the lazy pages a response
    /// rendered; with `modules: false`, none (the split loader's own preload stays).
    pub fn preloads(&self, modules: bool) -> WasmSplitManifest {
        let pages = if modules {
            self.pages.clone()
        } else {
            HashMap::new()
        };
        WasmSplitManifest(ArcStoredValue::new((
            self.pkg_url.clone(),
            pages,
            self.loader.clone(),
        )))
    }
}

/// For each page's loader (`__wasm_split_load_<page>`), keyed `<page>` as leptos registers it: the
/// modules (file stems) it fetches, its dependencies' first.
///
/// The loader declares each module as `const <name> = makeLoad(new URL("./<stem>.wasm", …),
/// [<dependency names>])`, a page's as `export const __wasm_split_load_<page> =
/// wrapAsyncCb(makeLoad(…))`.
pub fn from_loader(js: &str) -> HashMap<String, Vec<String>> {
    let mut modules: HashMap<&str, (&str, Vec<&str>)> = HashMap::new();
    for line in js.lines() {
        let line = line.trim_start();
        let Some(rest) = line
            .strip_prefix("export const ")
            .or_else(|| line.strip_prefix("const "))
        else {
            continue;
        };
        let Some((name, rest)) = rest.split_once(" = ") else {
            continue;
        };
        let Some((_, rest)) = rest.split_once("makeLoad(new URL(\"./") else {
            continue;
        };
        let Some((stem, rest)) = rest
            .split_once('"')
            .and_then(|(file, rest)| Some((file.strip_suffix(".wasm")?, rest)))
        else {
            continue;
        };
        let deps = rest
            .split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(list, _)| {
                list.split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        modules.insert(name, (stem, deps));
    }
    fn walk<'a>(
        name: &'a str,
        modules: &HashMap<&'a str, (&'a str, Vec<&'a str>)>,
        seen: &mut HashSet<&'a str>,
        out: &mut Vec<String>,
    ) {
        let Some((stem, deps)) = modules.get(name) else {
            return;
        };
        if !seen.insert(name) {
            return;
        }
        for dep in deps {
            walk(dep, modules, seen, out);
        }
        out.push((*stem).to_string());
    }
    modules
        .keys()
        .filter_map(|name| Some((*name, name.strip_prefix("__wasm_split_load_")?)))
        .map(|(name, page)| {
            let mut stems = Vec::new();
            walk(name, &modules, &mut HashSet::new(), &mut stems);
            (page.to_string(), stems)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::from_loader;

    #[test]
    fn each_page_needs_its_module_and_every_chunk_it_waits_for() {
        // The shape wasm-split writes (abridged), with chunk names that prefix one another.
        let js = r#"import { initSync } from "./switchyard.abc.js";
function makeLoad(fetchOpts, deps) { /* … */ }
const __chunk_16 = makeLoad(new URL("./chunk_16.AAA.wasm", import.meta.url), []);
const __chunk_160 = makeLoad(new URL("./chunk_160.BBB.wasm", import.meta.url), [__chunk_16]);
const __chunk_17 = makeLoad(new URL("./chunk_17.CCC.wasm", import.meta.url), []);
export const __wasm_split_load___status_route_view_1 = wrapAsyncCb(makeLoad(new URL("./split___status_route_view_1.DDD.wasm", import.meta.url), [__chunk_160, __chunk_17]));
export const __wasm_split_load___projects_route_view_2 = wrapAsyncCb(makeLoad(new URL("./split___projects_route_view_2.EEE.wasm", import.meta.url), [__chunk_16]));
"#;
        let pages = from_loader(js);
        assert_eq!(pages.len(), 2);
        assert_eq!(
            pages["__status_route_view_1"],
            [
                "chunk_16.AAA",
                "chunk_160.BBB",
                "chunk_17.CCC",
                "split___status_route_view_1.DDD"
            ]
        );
        assert_eq!(
            pages["__projects_route_view_2"],
            ["chunk_16.AAA", "split___projects_route_view_2.EEE"]
        );
    }

    #[test]
    fn anything_else_names_no_page() {
        assert!(from_loader("").is_empty());
        assert!(from_loader("export const x = 1;\nconst y = makeLoad(undefined, []);").is_empty());
    }
}
