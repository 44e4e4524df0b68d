//! The site's compiled assets (`/pkg`: wasm, JS, CSS) served straight from disk, bypassing the
//! renderer: precompressed variants when cargo-leptos made them, and cached for a year when the file
//! names carry content hashes.

use axum::http::{HeaderValue, header};
use leptos::prelude::LeptosOptions;
use tower::ServiceBuilder;
use tower_http::services::ServeDir;
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};

pub fn pkg(options: &LeptosOptions) -> SetResponseHeader<ServeDir, HeaderValue> {
    let dir = std::path::Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    // Unhashed names change content under the same URL: make the browser revalidate them.
    let cache = if options.hash_files {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache),
        ))
        .service(ServeDir::new(dir).precompressed_br().precompressed_gzip())
}

/// The URLs of the JS and the main wasm module that hydrate a page, found as leptos'
/// `HydrationScripts` finds them: `<output name>.<hash>` from the hash file cargo-leptos writes
/// beside the binary when it hashed the file names; the plain names otherwise.
pub fn hydration_files(options: &LeptosOptions) -> switchyard_app::components::landing::SiteFiles {
    let name = options.output_name.to_string();
    let (mut js, mut wasm) = (name.clone(), name);
    let hashes = options
        .hash_files
        .then(|| std::env::current_exe().ok())
        .flatten()
        .and_then(|exe| {
            std::fs::read_to_string(exe.parent()?.join(options.hash_file.as_ref())).ok()
        });
    match hashes {
        Some(hashes) => {
            for (file, hash) in hashes.lines().filter_map(|l| l.split_once(':')) {
                match file.trim() {
                    "js" => js = format!("{js}.{}", hash.trim()),
                    "wasm" => wasm = format!("{wasm}.{}", hash.trim()),
                    _ => {}
                }
            }
        }
        // wasm-bindgen's default name, unless cargo-leptos named the output.
        None if option_env!("LEPTOS_OUTPUT_NAME").is_none() => wasm.push_str("_bg"),
        None => {}
    }
    let pkg = &options.site_pkg_dir;
    switchyard_app::components::landing::SiteFiles {
        js: format!("/{pkg}/{js}.js"),
        wasm: format!("/{pkg}/{wasm}.wasm"),
    }
}
