//! Browser sign-in and sign-out: redirects to Plinto and back, the sign-in cookie that binds a
//! sign-in to its browser, and the session cookie.
//! Also the same-origin check that guards every cookie-authenticated mutation.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cookie::{Cookie, SameSite};
use enclii_api::ApiError;
use serde::Deserialize;
use switchyard_engine::Engine;
use switchyard_engine::audit;
use switchyard_engine::auth::oidc::{
    BROWSER_COOKIE, BROWSER_COOKIE_MAX_AGE_SECS, Callback, LoginError,
};
use switchyard_engine::auth::{rate, sessions};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
}

/// The client's address, when the server was started with connection info (tests may not be):
/// the peer, or the client a trusted proxy forwarded ([`rate::client_addr`]), so that clients
/// behind an ingress do not share one sign-in limit.
pub(crate) fn addr(engine: &Engine, parts: &Parts) -> Option<std::net::IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    rate::request_client(peer, &parts.headers, &engine.settings.http.trusted_proxies)
}

fn too_many() -> Response {
    page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in attempts",
        "Wait a minute, then try again.",
    )
}

async fn login(
    State(engine): State<Engine>,
    parts: Parts,
    Query(q): Query<LoginQuery>,
) -> Response {
    if let Some(ip) = addr(&engine, &parts) {
        if !engine.login_limiter.allow(ip, Instant::now()) {
            return too_many();
        }
    }
    let Some(oidc) = &engine.oidc else {
        return page(
            StatusCode::NOT_FOUND,
            "Sign-in is not configured",
            "This server accepts API tokens only.",
        );
    };
    // `begin` keeps `return_to` only if it is a path of this site (no open redirect).
    match oidc.begin(&engine.pool, q.return_to.as_deref()).await {
        Ok(started) => {
            let mut response = see_other(&started.provider_url);
            set_cookie(
                &mut response,
                login_cookie(&engine, started.browser_secret, BROWSER_COOKIE_MAX_AGE_SECS),
            );
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not start a sign-in");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable",
                &e.to_string(),
            )
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(engine): State<Engine>,
    parts: Parts,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let headers = &parts.headers;
    let ip = addr(&engine, &parts);
    if let Some(ip) = ip {
        if !engine.login_limiter.allow(ip, Instant::now()) {
            return too_many();
        }
    }
    let Some(oidc) = &engine.oidc else {
        return page(
            StatusCode::NOT_FOUND,
            "Sign-in is not configured",
            "This server accepts API tokens only.",
        );
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let browser = cookie(headers, BROWSER_COOKIE);
    let result = oidc
        .finish(
            &engine.pool,
            Callback {
                browser: browser.as_deref(),
                state: q.state.as_deref(),
                code: q.code.as_deref(),
                iss: q.iss.as_deref(),
                error: q.error.as_deref(),
                error_description: q.error_description.as_deref(),
            },
            engine.settings.session.lifetime_hours,
            ip,
            user_agent,
        )
        .await;
    // The sign-in cookie is spent with its attempt; a callback that names no known attempt (a
    // stale tab's, or a forged one) leaves it to the sign-in this browser may still have under way.
    let spent = !matches!(result, Err(LoginError::UnknownState));
    let mut response = match result {
        Ok(signed_in) => {
            // A new id at every sign-in: a session id planted before sign-in is worth nothing after.
            if let Some(old) = cookie(headers, sessions::COOKIE) {
                let _ = sessions::end(&engine.pool, &old).await;
            }
            let caller = switchyard_engine::auth::Caller {
                user_id: signed_in.user_id,
                display_name: signed_in.display_name.clone(),
                email: None,
                platform_admin: false,
                via: switchyard_engine::auth::Via::Session,
                client_addr: ip,
                projects: Default::default(),
            };
            if let Err(error) = audit::record(
                &engine.pool,
                Some(&caller),
                audit::Event::new("auth.sign_in"),
            )
            .await
            {
                tracing::error!(%error, "could not audit a sign-in");
            }
            let mut response = see_other(&signed_in.return_to);
            set_cookie(
                &mut response,
                session_cookie(
                    &engine,
                    signed_in.session_secret,
                    engine.settings.session.lifetime_hours * 3600,
                ),
            );
            response
        }
        Err(e) => {
            let event = audit::Event::new("auth.sign_in_failed")
                .details(serde_json::json!({ "reason": e.to_string() }));
            if let Err(error) = audit::record(&engine.pool, None, event).await {
                tracing::error!(%error, "could not audit a failed sign-in");
            }
            tracing::info!(error = %e, "sign-in failed");
            let status = match e {
                LoginError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                LoginError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            let message = match e {
                LoginError::Db(_) => "Something went wrong on our side.".to_owned(),
                other => other.to_string(),
            };
            page(status, "Sign-in failed", &message)
        }
    };
    if spent {
        set_cookie(&mut response, login_cookie(&engine, String::new(), 0));
    }
    response
}

async fn logout(State(engine): State<Engine>, parts: Parts) -> Response {
    let headers = &parts.headers;
    if let Some(secret) = cookie(headers, sessions::COOKIE) {
        if let Ok(Some(caller)) = sessions::resolve(&engine.pool, &secret).await {
            let caller = switchyard_engine::auth::Caller {
                client_addr: addr(&engine, &parts),
                projects: Default::default(),
                ..caller
            };
            if let Err(error) = audit::record(
                &engine.pool,
                Some(&caller),
                audit::Event::new("auth.sign_out"),
            )
            .await
            {
                tracing::error!(%error, "could not audit a sign-out");
            }
        }
        if let Err(error) = sessions::end(&engine.pool, &secret).await {
            tracing::error!(%error, "could not end a session");
        }
    }
    // With the provider's end-session endpoint, the provider's own session ends too.
    let mut target = "/".to_owned();
    if let Some(oidc) = &engine.oidc {
        if let Ok(d) = oidc.discovered().await {
            if let Some(end) = &d.end_session_endpoint {
                if let Ok(mut url) = url::Url::parse(end) {
                    url.query_pairs_mut()
                        .append_pair("client_id", oidc.client_id())
                        .append_pair(
                            "post_logout_redirect_uri",
                            &format!("{}/", engine.settings.public_url.trim_end_matches('/')),
                        );
                    target = url.to_string();
                }
            }
        }
    }
    let mut response = see_other(&target);
    set_cookie(&mut response, session_cookie(&engine, String::new(), 0));
    response
}

/// A 303 to `target`. Never a panic (axum's `Redirect` panics on a value that is not a valid
/// header): a target that is not one goes to the home page instead.
fn see_other(target: &str) -> Response {
    let location = HeaderValue::from_str(target).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn session_cookie(engine: &Engine, value: String, max_age_secs: u32) -> Cookie<'static> {
    private_cookie(engine, sessions::COOKIE, value, "/", max_age_secs)
}

/// Sent only to `/auth`, where the callback reads it. Lax, so that it comes along on the
/// provider's top-level redirect back to the callback.
fn login_cookie(engine: &Engine, value: String, max_age_secs: u32) -> Cookie<'static> {
    private_cookie(engine, BROWSER_COOKIE, value, "/auth", max_age_secs)
}

/// A cookie for the server alone: no script reads it, no other site's request carries it (but
/// top-level navigations do), and it travels only over TLS unless the site is plain http on
/// loopback (development and tests), where a Secure cookie would be dropped.
fn private_cookie(
    engine: &Engine,
    name: &'static str,
    value: String,
    path: &'static str,
    max_age_secs: u32,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(!engine.settings.is_loopback_http())
        .max_age(cookie::time::Duration::seconds(max_age_secs.into()))
        .build()
}

fn set_cookie(response: &mut Response, cookie: Cookie<'_>) {
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    sessions::cookie_value(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        name,
    )
}

/// A small self-contained HTML page for sign-in outcomes (no app shell: it may be the app that failed).
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · Enclii</title></head><body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem\">\
         <h1>{t}</h1><p>{m}</p><p><a href=\"/auth/login\">Sign in again</a> · <a href=\"/\">Back to Enclii</a></p></body></html>",
        t = esc(title),
        m = esc(message)
    );
    (status, Html(body)).into_response()
}

/// Cookie-authenticated requests that change state must come from our own pages: the browser's
/// `Sec-Fetch-Site` (or, from older browsers, `Origin`) must say same-origin. Bearer-token requests
/// carry no ambient credentials and are exempt, as are webhooks, which never read the session (their
/// credential is the signature).
pub async fn same_origin(State(engine): State<Engine>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || req.uri().path().starts_with("/webhooks/");
    let headers = req.headers();
    let has_session = cookie(headers, sessions::COOKIE).is_some();
    let has_bearer = headers.contains_key(header::AUTHORIZATION);
    if safe || !has_session || has_bearer {
        return next.run(req).await;
    }
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let ours = engine.settings.public_url.trim_end_matches('/');
    let allowed = match (site, origin) {
        (Some(site), _) => site == "same-origin",
        (None, Some(origin)) => origin == ours,
        (None, None) => false,
    };
    if allowed {
        return next.run(req).await;
    }
    let error = ApiError::forbidden(
        "cross-site request refused: changes must come from the Enclii dashboard or carry an API token",
    );
    (StatusCode::FORBIDDEN, Json(error)).into_response()
}
