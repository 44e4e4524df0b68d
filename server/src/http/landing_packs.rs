//! One download per landing for the wasm modules of the page it lands on.
//!
//! A `--split` build cuts the dashboard into many small modules (a page's own and the chunks it
//! shares with other pages), and a deep landing fetched each one separately: each compressed
//! alone, without the others' repeated type and import sections to refer back to. Here the modules
//! of each lazily loaded page are packed into one response and compressed together at start-up
//! (measured: 5–28 KB less per landing). Each page also has a pack led by the main module, for a
//! first visit (another ~9 KB less than the main module apart). The page's `<head>` carries a small
//! script (`switchyard_app::components::landing`) that fetches the right pack and answers the
//! split loader's fetches of those modules from it; client-side navigation afterwards still
//! fetches modules one by one, each cached under its own hashed name.
//!
//! In an optimised build (cargo-leptos `--release --precompress`: `.br` files beside the modules)
//! the packs are compressed once, on a background thread, and pages name them once they are ready
//! (until then, pages preload modules one by one as before). In a
//! development build a pack is put together on each request, uncompressed (the response
//! compression layer handles it like any other file there), so that the development server and the
//! end-to-end suite load pages exactly as production does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The packs, shared between the thread that compresses them and the handlers.
#[derive(Clone)]
pub struct LandingPacks {
    /// The split loader's content hash (`dev` in a development build): part of each pack's URL,
    /// so that the URL changes whenever any module in it does.
    build: Arc<str>,
    pkg: Arc<Path>,
    /// Each page's modules (file stems), dependencies first.
    pages: Arc<HashMap<String, Vec<String>>>,
    /// Optimised builds: the main module's file name, which a first visit's pack also carries.
    main: Option<Arc<str>>,
    /// Optimised builds: each page's packs (without, with the main module), brotli-compressed,
    /// once all are.
    compressed: Option<Arc<OnceLock<HashMap<(String, bool), Bytes>>>>,
}

/// A page's packs, for the script that fetches them (`switchyard_app::components::landing`).
pub use switchyard_app::components::landing::PackUrls;

impl LandingPacks {
    /// Serves a pack for each page of the `--split` build in `pkg` (`pages` as
    /// `split_preloads::from_loader` reads them), and in an optimised build starts compressing them.
    /// `main`: the main module's file name (`<output name>.<hash>.wasm`).
    pub fn start(pkg: &Path, pages: &HashMap<String, Vec<String>>, main: &str) -> Self {
        let optimised = std::fs::read_dir(pkg)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find_map(|name| {
                let hash = name.strip_prefix("__wasm_split.")?.strip_suffix(".js.br")?;
                Some(Arc::<str>::from(hash))
            });
        let packs = Self {
            build: optimised.clone().unwrap_or_else(|| "dev".into()),
            pkg: pkg.into(),
            pages: Arc::new(pages.clone()),
            main: optimised.as_ref().map(|_| Arc::from(main)),
            compressed: optimised.map(|_| Arc::default()),
        };
        if let Some(ready) = packs.compressed.clone() {
            let (pkg, pages, main) = (packs.pkg.clone(), packs.pages.clone(), packs.main.clone());
            let started = std::thread::Builder::new()
                .name("landing-packs".into())
                .spawn(move || {
                    let began = Instant::now();
                    match compress_all(&pkg, &pages, main.as_deref()) {
                        Ok(packs) => {
                            let bytes: usize = packs.values().map(Bytes::len).sum();
                            tracing::info!(
                                pages = packs.len(),
                                bytes,
                                ms = began.elapsed().as_millis() as u64,
                                "landing packs ready"
                            );
                            let _ = ready.set(packs);
                        }
                        // The pages still work: their modules are fetched one by one.
                        Err(error) => tracing::warn!(%error, "no landing packs"),
                    }
                });
            if let Err(error) = started {
                tracing::warn!(%error, "no landing packs");
            }
        }
        packs
    }

    /// True when a first visit's packs carry the main module (an optimised build).
    pub fn carries_main(&self) -> bool {
        self.main.is_some()
    }

    /// True when pages name their packs (in an optimised build, once all are compressed).
    pub fn is_ready(&self) -> bool {
        self.compressed.as_ref().is_none_or(|c| c.get().is_some())
    }

    /// The URLs of `page`'s packs (a key of `split_preloads::from_loader`), when pages name them.
    pub fn urls(&self, page: &str) -> Option<PackUrls> {
        if !self.is_ready() || !self.pages.contains_key(page) {
            return None;
        }
        let pack = format!("/landing/{}/{page}", self.build);
        Some(PackUrls {
            with_main: self.main.as_ref().map(|_| format!("{pack}/with-main")),
            pack,
        })
    }

    pub fn routes<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        Router::new()
            .route(
                "/landing/{build}/{page}",
                get(
                    |packs: State<Self>, UrlPath((build, page)): PagePath, headers: HeaderMap| {
                        serve(packs, build, page, false, headers)
                    },
                ),
            )
            .route(
                "/landing/{build}/{page}/with-main",
                get(
                    |packs: State<Self>, UrlPath((build, page)): PagePath, headers: HeaderMap| {
                        serve(packs, build, page, true, headers)
                    },
                ),
            )
            .with_state(self)
    }

    /// The pack, put together from the files.
    fn raw(&self, page: &str, with_main: bool) -> std::io::Result<Vec<u8>> {
        let stems = self.pages.get(page).map(Vec::as_slice).unwrap_or_default();
        read_pack(&self.pkg, stems, self.main.as_deref().filter(|_| with_main))
    }
}

type PagePath = UrlPath<(String, String)>;

async fn serve(
    State(packs): State<LandingPacks>,
    build: String,
    page: String,
    with_main: bool,
    headers: HeaderMap,
) -> Response {
    let known = build == *packs.build && packs.pages.contains_key(&page);
    if !known || (with_main && packs.main.is_none()) {
        return (StatusCode::NOT_FOUND, "no such landing pack").into_response();
    }
    let compressed = packs
        .compressed
        .as_ref()
        .and_then(|c| c.get()?.get(&(page.clone(), with_main)).cloned())
        .filter(|_| accepts_brotli(&headers));
    let (body, encoding) = match compressed {
        Some(bytes) => (bytes, Some("br")),
        None => {
            let (p, name) = (packs.clone(), page.clone());
            match tokio::task::spawn_blocking(move || p.raw(&name, with_main)).await {
                Ok(Ok(raw)) => (Bytes::from(raw), None),
                Ok(Err(error)) => {
                    tracing::warn!(%error, %page, "landing pack unreadable");
                    return (StatusCode::NOT_FOUND, "no such landing pack").into_response();
                }
                Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
    };
    let mut response = Response::new(Body::from(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // A development build's modules change under the same URL.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if packs.compressed.is_some() {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(encoding) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

/// Whether `Accept-Encoding` admits brotli (`br`, not `br;q=0`).
fn accepts_brotli(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next() == Some("br")
                && !parts.any(|q| {
                    matches!(
                        q.replace(' ', "").as_str(),
                        "q=0" | "q=0.0" | "q=0.00" | "q=0.000"
                    )
                })
        })
}

fn compress_all(
    pkg: &Path,
    pages: &HashMap<String, Vec<String>>,
    main: Option<&str>,
) -> std::io::Result<HashMap<(String, bool), Bytes>> {
    let variants = if main.is_some() {
        &[false, true][..]
    } else {
        &[false][..]
    };
    pages
        .iter()
        .flat_map(|(page, stems)| variants.iter().map(move |with| (page, stems, *with)))
        .map(|(page, stems, with_main)| {
            let raw = read_pack(pkg, stems, main.filter(|_| with_main))?;
            Ok(((page.clone(), with_main), Bytes::from(compress(&raw)?)))
        })
        .collect()
}

/// The page's modules, after the main module when `main` names it (it is instantiated first).
fn read_pack(pkg: &Path, stems: &[String], main: Option<&str>) -> std::io::Result<Vec<u8>> {
    let names = main
        .map(str::to_string)
        .into_iter()
        .chain(stems.iter().map(|stem| format!("{stem}.wasm")));
    let modules = names
        .map(|name| {
            let path: PathBuf = pkg.join(&name);
            std::fs::read(path).map(|bytes| (name, bytes))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(pack(&modules))
}

/// The pack's layout, read by the script in `switchyard_app::components::landing`: a 4-byte
/// little-endian length, a JSON index `[[file name, length], …]`, then the modules back to back in
/// the index's order.
pub fn pack(modules: &[(String, Vec<u8>)]) -> Vec<u8> {
    let index: Vec<(&str, usize)> = modules
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.len()))
        .collect();
    let index = serde_json::to_vec(&index).unwrap_or_default();
    let body: usize = modules.iter().map(|(_, bytes)| bytes.len()).sum();
    let mut out = Vec::with_capacity(4 + index.len() + body);
    out.extend_from_slice(&(index.len() as u32).to_le_bytes());
    out.extend_from_slice(&index);
    for (_, bytes) in modules {
        out.extend_from_slice(bytes);
    }
    out
}

/// The argument that makes the `switchyard` binary compress its standard input to its standard
/// output and exit (`main.rs`).
pub const COMPRESS_COMMAND: &str = "compress-landing-pack";

/// Set by the `switchyard` binary: each pack is compressed by a child process running it with
/// [`COMPRESS_COMMAND`], so that brotli's working memory at quality 11 (tens of MB per pack,
/// measured: the server's peak RSS went from 48 to 112 MiB in-process) is never the server's.
static CHILD_COMPRESSOR: OnceLock<PathBuf> = OnceLock::new();

/// Compress packs in child processes running `exe` (the server's own binary).
pub fn compress_in_child_processes(exe: PathBuf) {
    let _ = CHILD_COMPRESSOR.set(exe);
}

fn compress(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    match CHILD_COMPRESSOR.get() {
        Some(exe) => compress_in_child(exe, raw),
        None => compress_here(raw),
    }
}

fn compress_in_child(exe: &Path, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(exe)
        .arg(COMPRESS_COMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    // The child reads all of its input before it writes: no pipe can fill up while this writes.
    child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no pipe to the compressor"))?
        .write_all(raw)?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "the pack compressor exited with {}",
            output.status
        )));
    }
    Ok(output.stdout)
}

/// [`COMPRESS_COMMAND`]'s work: standard input, brotli-compressed, to standard output.
pub fn compress_stdio() -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut raw = Vec::new();
    std::io::stdin().lock().read_to_end(&mut raw)?;
    let compressed = compress_here(&raw)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&compressed)?;
    out.flush()
}

/// Brotli at its strongest, with the smallest window that holds the whole pack (so a module can
/// refer back to any before it; the largest pack is under 1 MB): the work is done once per start,
/// not per request. Not the largest window: the strongest quality's matcher takes memory in
/// proportion to it (16 MiB windows: 249 MiB of RSS).
fn compress_here(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: window_bits(raw.len()),
        size_hint: raw.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(raw.len() / 3);
    brotli::BrotliCompress(&mut &raw[..], &mut out, &params)?;
    Ok(out)
}

/// log2 of the smallest brotli window (16 bytes short of a power of two) that holds `len` bytes,
/// within brotli's 10–24.
fn window_bits(len: usize) -> i32 {
    (10..24)
        .find(|bits| (1usize << bits) - 16 >= len)
        .unwrap_or(24)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt;

    /// A pack read back the way the page's script reads it.
    fn unpack(pack: &[u8]) -> Vec<(String, Vec<u8>)> {
        let n = u32::from_le_bytes(pack[..4].try_into().unwrap()) as usize;
        let index: Vec<(String, usize)> = serde_json::from_slice(&pack[4..4 + n]).unwrap();
        let mut at = 4 + n;
        let modules = index
            .into_iter()
            .map(|(name, len)| {
                at += len;
                (name, pack[at - len..at].to_vec())
            })
            .collect();
        assert_eq!(at, pack.len(), "nothing after the last module");
        modules
    }

    #[test]
    fn a_pack_holds_each_module_whole_in_order() {
        let modules = vec![
            ("chunk_1.A.wasm".to_string(), b"\0asm first".to_vec()),
            ("chunk_10.B.wasm".to_string(), Vec::new()),
            ("split___page_1.C.wasm".to_string(), vec![7; 70_000]),
        ];
        assert_eq!(unpack(&pack(&modules)), modules);
        assert_eq!(unpack(&pack(&[])), []);
    }

    #[test]
    fn the_window_is_the_smallest_that_holds_the_pack() {
        assert_eq!(window_bits(0), 10);
        assert_eq!(window_bits(1_008), 10);
        assert_eq!(window_bits(1_009), 11);
        assert_eq!(window_bits(954_862), 20);
        assert_eq!(window_bits((1 << 20) - 15), 21);
        assert_eq!(window_bits(usize::MAX), 24);
    }

    #[test]
    fn brotli_only_when_the_client_admits_it() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            accepts_brotli(&h)
        };
        assert!(with("gzip, deflate, br, zstd"));
        assert!(with("br;q=0.5"));
        assert!(!with("gzip"));
        assert!(!with("br;q=0, gzip"));
        assert!(!with("brotli"));
        assert!(!accepts_brotli(&HeaderMap::new()));
    }

    /// A site directory with two pages' modules, optimised (`.br` files) or not.
    fn site(optimised: bool) -> (PathBuf, HashMap<String, Vec<String>>) {
        let dir = std::env::temp_dir().join(format!(
            "enclii-packs-{}-{}-{optimised}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let loader = if optimised {
            "__wasm_split.HASH.js.br"
        } else {
            "__wasm_split.js"
        };
        std::fs::write(dir.join(loader), "").unwrap();
        for (stem, fill) in [
            ("switchyard.M", 9u8),
            ("chunk_1.A", 1),
            ("split___a_1.B", 2),
            ("split___b_2.C", 3),
        ] {
            std::fs::write(dir.join(format!("{stem}.wasm")), vec![fill; 5_000]).unwrap();
        }
        let pages = HashMap::from([
            (
                "__a_1".to_string(),
                vec!["chunk_1.A".into(), "split___a_1.B".into()],
            ),
            (
                "__b_2".to_string(),
                vec!["chunk_1.A".into(), "split___b_2.C".into()],
            ),
        ]);
        (dir, pages)
    }

    async fn get(
        packs: &LandingPacks,
        url: &str,
        accept: &str,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = packs
            .clone()
            .routes::<()>()
            .oneshot(
                Request::get(url)
                    .header(header::ACCEPT_ENCODING, accept)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, body.to_vec())
    }

    #[tokio::test]
    async fn an_optimised_build_serves_each_page_its_modules_compressed_once_ready() {
        let (dir, pages) = site(true);
        let packs = LandingPacks::start(&dir, &pages, "switchyard.M.wasm");
        for _ in 0..200 {
            if packs.is_ready() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let urls = packs.urls("__a_1").expect("named once ready");
        assert_eq!(
            urls,
            PackUrls {
                pack: "/landing/HASH/__a_1".into(),
                with_main: Some("/landing/HASH/__a_1/with-main".into()),
            }
        );
        assert_eq!(packs.urls("__c_3"), None, "no such page");
        let url = urls.pack;

        let (status, headers, body) = get(&packs, &url, "gzip, br").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_ENCODING], "br");
        assert!(
            headers[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert!(
            body.len() < 1_000,
            "three runs of one byte compress to little"
        );
        let mut raw = Vec::new();
        brotli::BrotliDecompress(&mut &body[..], &mut raw).unwrap();
        let modules = unpack(&raw);
        let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["chunk_1.A.wasm", "split___a_1.B.wasm"]);
        assert_eq!(modules[1].1, vec![2; 5_000]);

        // A client without brotli gets the same pack, uncompressed here.
        let (status, headers, plain) = get(&packs, &url, "gzip").await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain, raw);

        // A first visit's pack: the main module first, then the page's.
        let (status, _, body) = get(&packs, &urls.with_main.unwrap(), "br").await;
        assert_eq!(status, StatusCode::OK);
        let mut raw = Vec::new();
        brotli::BrotliDecompress(&mut &body[..], &mut raw).unwrap();
        let names: Vec<String> = unpack(&raw).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["switchyard.M.wasm", "chunk_1.A.wasm", "split___a_1.B.wasm"]
        );

        for wrong in [
            "/landing/OLD/__a_1",
            "/landing/HASH/__c_3",
            "/landing/HASH/__c_3/with-main",
        ] {
            assert_eq!(
                get(&packs, wrong, "br").await.0,
                StatusCode::NOT_FOUND,
                "{wrong}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_development_build_packs_on_request_and_is_never_cached() {
        let (dir, pages) = site(false);
        let packs = LandingPacks::start(&dir, &pages, "switchyard.M.wasm");
        let urls = packs.urls("__b_2").expect("named at once");
        assert_eq!(
            urls.with_main, None,
            "a development build's main module is fetched alone"
        );
        let url = urls.pack;
        assert_eq!(url, "/landing/dev/__b_2");
        assert_eq!(
            get(&packs, &format!("{url}/with-main"), "br").await.0,
            StatusCode::NOT_FOUND
        );
        let (status, headers, body) = get(&packs, &url, "br").await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert_eq!(
            unpack(&body)[1],
            ("split___b_2.C.wasm".to_string(), vec![3; 5_000])
        );

        // A module gone from disk (a rebuild under way): no pack rather than a broken one.
        std::fs::remove_file(dir.join("chunk_1.A.wasm")).unwrap();
        assert_eq!(get(&packs, &url, "br").await.0, StatusCode::NOT_FOUND);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
