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
