//! The HTTP surface: the dashboard and its server functions, health, metrics and static files,
//! under one stack of cross-cutting layers.

pub mod api_errors;
pub mod auth;
pub mod events;
pub mod health;
pub mod landing_packs;
pub mod logs;
pub mod metrics;
pub mod registry;
pub mod split_preloads;
pub mod static_files;
pub mod streaming;
pub mod webhooks;

use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use leptos::prelude::{LeptosOptions, provide_context};
use leptos_axum::{LeptosRoutes, generate_route_list};
use switchyard_app::{App, shell};
use switchyard_engine::Engine;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The router's state; leptos reads its options from it, handlers their `Engine`.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub engine: Engine,
}

pub fn router(engine: Engine, leptos_options: LeptosOptions) -> Router {
    let http = engine.settings.http.clone();
    let hsts = !engine.settings.is_loopback_http();
    let state = AppState {
        leptos_options,
        engine,
    };
    let state_for_layers = state.engine.clone();
    let files = static_files::hydration_files(&state.leptos_options);
    let split = split_preloads::load(&state.leptos_options);
    let packs = split.as_ref().map(|split| {
        let main = files.wasm.rsplit('/').next().unwrap_or_default();
        landing_packs::LandingPacks::start(&split.pkg, &split.pages, main)
    });
    // Per-module preloads until the packs are ready; none after, when each page's pack brings its
    // modules (the loader's own preload stays).
    let preloads = split
        .as_ref()
        .map(|s| (s.preloads(true), s.preloads(false)));
    let pack_url = packs.clone().map(|packs| {
        let keep_main = packs.carries_main();
        switchyard_app::components::landing::LandingPackUrl {
            urls: std::sync::Arc::new(move |page| packs.urls(page)),
            keep_main,
        }
    });
    let context = {
        let engine = state.engine.clone();
        let packs = packs.clone();
        // Called once per request: the caller cache must never outlive it.
        move || {
            provide_context(engine.clone());
            provide_context(switchyard_app::api::CallerCache::default());
            provide_context(files.clone());
            if let Some((modules, none)) = &preloads {
                let packed = packs.as_ref().is_some_and(|p| p.is_ready());
                let preloads = if packed { none } else { modules };
                provide_context(switchyard_app::PreloadsFromLoader(preloads.clone()));
            }
            if let Some(pack_url) = &pack_url {
                provide_context(pack_url.clone());
            }
        }
    };
    let app_shell = {
        let options = state.leptos_options.clone();
        move || shell(options.clone())
    };

    // One guard for every stream (pod logs, live events, build logs): one bound per caller.
    let streams = streaming::Streams::new(state.engine.clone());
    let router = Router::new()
        .merge(health::routes())
        .merge(auth::routes())
        .merge(streams.guard(logs::routes()))
        .merge(streams.guard(events::routes()))
        .merge(streams.guard(webhooks::routes(
            state.engine.settings.pipeline.webhook_max_bytes,
        )))
        .merge(metrics::routes())
        .merge(registry::routes())
        .nest_service("/pkg", static_files::pkg(&state.leptos_options))
        .merge(packs.map(|p| p.routes()).unwrap_or_default())
        .leptos_routes_with_context(&state, generate_route_list(App), context.clone(), app_shell)
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .with_state(state);

    // Router::layer wraps what came before it, so the last layer added is the outermost:
    // request id → trace span → metrics → security headers → compression → timeout → body limit.
    let router = router
        .layer(RequestBodyLimitLayer::new(http.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(http.request_timeout_secs),
        ))
        .layer(axum::middleware::from_fn(api_errors::set_status))
        .layer(axum::middleware::from_fn_with_state(
            state_for_layers.clone(),
            auth::same_origin,
        ))
        // Pages are compressed on the fly, so speed wins over ratio: at the default level brotli
        // cost 60 % of the page throughput and ~2 MB of encoder state per connection (measured:
        // 2,567 vs 6,725 pages/s, RSS 78 MB). Static assets come precompressed at full strength.
        .layer(CompressionLayer::new().quality(tower_http::CompressionLevel::Fastest));
    let x_request_id = HeaderName::from_static("x-request-id");
    with_security_headers(router, hsts)
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let request_id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            // The path only: query strings are never logged, whatever they carry.
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

/// Headers every response carries unless a handler set its own.
fn with_security_headers(router: Router, hsts: bool) -> Router {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    // Pages set their own policy, which admits their inline scripts by the response's nonce
    // (`switchyard_app::page_csp`); nothing else the server sends runs an inline script.
    // Everything is same-origin (no development reload socket: the site is built and served,
    // never watched).
    const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
        style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
        object-src 'none'; base-uri 'self'; frame-ancestors 'none'";
    let router = router
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(
            header::REFERRER_POLICY,
            "strict-origin-when-cross-origin",
        ))
        .layer(set(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(set(
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ));
    if hsts {
        router.layer(set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ))
    } else {
        router
    }
}
