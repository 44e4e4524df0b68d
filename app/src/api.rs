//! The JSON API's shared edge: how every server function learns who is calling. Server functions
//! live with the pages that use them (`pages/*.rs`); each begins with [`caller`].

use enclii_api::Json;
use enclii_api::{ApiError, WhoAmI};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
pub use ssr::*;

#[cfg(feature = "ssr")]
mod ssr {
    use enclii_api::ApiError;
    use leptos::prelude::*;
    use switchyard_engine::Engine;
    use switchyard_engine::auth::{self, Caller};

    /// The caller of one request, looked up once: a page's resources each call a server
    /// function, and each would otherwise check the credential against the database again. The
    /// server provides a fresh one per request (never shared between requests).
    #[derive(Clone, Default)]
    pub struct CallerCache(std::sync::Arc<tokio::sync::OnceCell<Option<Caller>>>);

    /// The engine and the caller of the current request (None: anonymous). A credential that is
    /// present but invalid is an error, never a silent downgrade to anonymous.
    pub async fn caller() -> Result<(Engine, Option<Caller>), ApiError> {
        let engine = use_context::<Engine>().ok_or_else(|| {
            tracing::error!("server function called without the engine in context");
            ApiError::internal()
        })?;
        let parts = use_context::<http::request::Parts>().ok_or_else(ApiError::internal)?;
        let lookup = || async {
            // Behind the ingress, the client its forwarded header names (`http.trusted_proxies`),
            // as sign-in limits see it: audit records name the client, not the proxy.
            let peer = parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip());
            let client_addr = auth::rate::request_client(
                peer,
                &parts.headers,
                &engine.settings.http.trusted_proxies,
            );
            auth::from_headers(&engine, &parts.headers, client_addr)
                .await
                .map_err(switchyard_engine::Error::into_api)
        };
        let caller = match use_context::<CallerCache>() {
            Some(cache) => cache.0.get_or_try_init(lookup).await?.clone(),
            None => lookup().await?,
        };
        Ok((engine, caller))
    }

    /// A cookie's value from the request headers.
    pub fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
        let values = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        auth::sessions::cookie_value(values, name)
    }
}

/// Who the request is authenticated as.
#[server(endpoint = "whoami", input = Json, output = Json)]
pub async fn whoami() -> Result<WhoAmI, ApiError> {
    let (engine, caller) = caller().await?;
    let caller = caller.ok_or_else(ApiError::unauthenticated)?;
    Ok(WhoAmI {
        display_name: caller.display_name,
        email: caller.email,
        platform_admin: caller.platform_admin,
        via: caller.via.name().to_owned(),
        cluster_label: engine.settings.cluster.label.clone(),
    })
}
