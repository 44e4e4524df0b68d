//! Browser sign-in with OpenID Connect against Plinto: authorization code flow with PKCE (S256),
//! `state`, `nonce` and the `iss` response parameter checked; the ID token verified by the
//! `openidconnect` crate (signature, iss, aud, exp, nonce) plus its `at_hash`. Tokens from the
//! provider never leave the server: the browser only ever holds the session cookie.
//!
//! The provider is discovered lazily (`{issuer}/.well-known/openid-configuration`) and the result
//! kept, so that Switchyard starts even while the provider is down.
//!
//! A sign-in is bound to the browser that started it: [`Oidc::begin`] hands out a secret for a
//! short-lived cookie ([`BROWSER_COOKIE`]) and keeps its hash with the attempt, and
//! [`Oidc::finish`] completes the attempt only for a callback carrying that cookie. Without the
//! binding, anyone could send a victim's browser to the callback of a sign-in they started
//! themselves and have it signed in as them (login CSRF), working in their account.
//!
//! Only an email the provider marked verified (`email_verified`) is believed (see [`super::users`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use enclii_api::ApiError;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::sync::RwLock;
use url::{Position, Url};
use uuid::Uuid;

use super::jwt::JwtVerifier;
use super::{sessions, users};
use crate::config::OidcSettings;

/// The client as discovery configures it: authorization endpoint set, token and userinfo endpoints
/// as the provider advertised them.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How long a sign-in may take between the redirect to the provider and the callback.
const LOGIN_WINDOW_MINUTES: i32 = 10;

/// The cookie that binds a sign-in to its browser; it lives as long as the attempt.
pub const BROWSER_COOKIE: &str = "enclii_login";
pub const BROWSER_COOKIE_MAX_AGE_SECS: u32 = LOGIN_WINDOW_MINUTES as u32 * 60;

pub struct Oidc {
    settings: OidcSettings,
    /// Where sign-ins may return to: paths of this origin only (see [`return_path`]).
    public_url: Url,
    redirect_uri: String,
    http: openidconnect::reqwest::Client,
    discovered: RwLock<Option<Arc<Discovered>>>,
}

pub struct Discovered {
    metadata: CoreProviderMetadata,
    /// RP-initiated logout, when the provider offers it.
    pub end_session_endpoint: Option<String>,
    /// RFC 9207: the provider promises `iss` on every authorization response.
    iss_parameter_supported: bool,
    pub jwt: JwtVerifier,
}

/// Why a callback did not sign anyone in. Messages are for the person at the browser.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    #[error("this sign-in link is unknown, used or expired; start again")]
    UnknownState,
    #[error(
        "this sign-in was started in another browser, or this browser did not keep its sign-in \
         cookie; start again from this browser, with cookies allowed for this site"
    )]
    OtherBrowser,
    #[error("the answer came from an unexpected identity provider")]
    WrongIssuer,
    #[error("the identity provider's answer could not be verified")]
    Verification,
    #[error("the identity provider cannot be reached right now")]
    Unavailable,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

pub struct SignedIn {
    pub user_id: Uuid,
    pub display_name: String,
    pub session_secret: String,
    pub return_to: String,
}

/// A sign-in under way: send the browser to `provider_url` with `browser_secret` in its
/// [`BROWSER_COOKIE`].
pub struct Started {
    pub provider_url: String,
    pub browser_secret: String,
}

pub struct Callback<'a> {
    /// The [`BROWSER_COOKIE`] the callback request carried.
    pub browser: Option<&'a str>,
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    pub iss: Option<&'a str>,
    pub error: Option<&'a str>,
    pub error_description: Option<&'a str>,
}

impl Oidc {
    pub fn new(settings: OidcSettings, public_url: &str) -> Result<Self, String> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would let a provider bounce our requests elsewhere (SSRF).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let parsed = Url::parse(public_url)
            .map_err(|e| format!("public_url {public_url:?} is not a URL: {e}"))?;
        Ok(Self {
            settings,
            public_url: parsed,
            // As configured, not as parsed: the provider compares it to its list character by character.
            redirect_uri: format!("{}/auth/callback", public_url.trim_end_matches('/')),
            http,
            discovered: RwLock::new(None),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    /// The provider's metadata and keys, fetched on first use and kept.
    pub async fn discovered(&self) -> Result<Arc<Discovered>, LoginError> {
        if let Some(d) = self.discovered.read().await.as_ref() {
            return Ok(d.clone());
        }
        let mut slot = self.discovered.write().await;
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let issuer =
            IssuerUrl::new(self.settings.issuer.clone()).map_err(|_| LoginError::Unavailable)?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http).await.map_err(|e| {
            tracing::warn!(error = %e, issuer = %self.settings.issuer, "OpenID discovery failed");
            LoginError::Unavailable
        })?;
        // Two fields the core metadata type does not carry, read from the same document.
        let body = self
            .http
            .get(format!(
                "{}/.well-known/openid-configuration",
                self.settings.issuer.trim_end_matches('/')
            ))
            .send()
            .await
            .map_err(|_| LoginError::Unavailable)?
            .bytes()
            .await
            .map_err(|_| LoginError::Unavailable)?;
        let raw: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| LoginError::Unavailable)?;
        let jwt = JwtVerifier::new(
            &self.settings.issuer,
            &self.settings.api_audience,
            metadata.jwks_uri().as_str(),
            self.http.clone(),
            Duration::from_secs(self.settings.jwks_min_refresh_secs),
        );
        let discovered = Arc::new(Discovered {
            end_session_endpoint: raw["end_session_endpoint"].as_str().map(str::to_owned),
            iss_parameter_supported: raw["authorization_response_iss_parameter_supported"]
                .as_bool()
                .unwrap_or(false),
            metadata,
            jwt,
        });
        *slot = Some(discovered.clone());
        Ok(discovered)
    }

    fn client(&self, d: &Discovered) -> Result<Client, LoginError> {
        let client = CoreClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose_secret().to_owned())),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.redirect_uri.clone()).map_err(|_| LoginError::Verification)?,
        );
        Ok(client)
    }

    /// Starts a sign-in: records the attempt, to come back to `return_to` when it is a path of this
    /// site (else to `/`).
    pub async fn begin(
        &self,
        pool: &PgPool,
        return_to: Option<&str>,
    ) -> Result<Started, LoginError> {
        let return_to = return_to
            .and_then(|r| return_path(&self.public_url, r))
            .unwrap_or_else(|| "/".to_owned());
        let d = self.discovered().await?;
        let client = self.client(&d)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let browser_secret = sessions::random_secret();
        sqlx::query!(
            r#"INSERT INTO oidc_logins (state_hash, pkce_verifier, nonce, return_to, browser_hash)
               VALUES ($1, $2, $3, $4, $5)"#,
            sessions::hash(state.secret()),
            verifier.secret(),
            nonce.secret(),
            return_to,
            sessions::hash(&browser_secret)
        )
        .execute(pool)
        .await?;
        Ok(Started {
            provider_url: url.to_string(),
            browser_secret,
        })
    }

    /// Completes a sign-in from the provider's callback: checks everything, then starts a session.
    pub async fn finish(
        &self,
        pool: &PgPool,
        callback: Callback<'_>,
        session_hours: u32,
        addr: Option<std::net::IpAddr>,
        user_agent: Option<&str>,
    ) -> Result<SignedIn, LoginError> {
        if let Some(error) = callback.error {
            return Err(LoginError::Provider(
                callback.error_description.unwrap_or(error).to_owned(),
            ));
        }
        let (Some(state), Some(code)) = (callback.state, callback.code) else {
            return Err(LoginError::UnknownState);
        };
        // Consumed whatever happens next: a state is good for one callback only.
        let attempt = sqlx::query!(
            r#"DELETE FROM oidc_logins WHERE state_hash = $1 AND created_at > now() - make_interval(mins => $2)
               RETURNING pkce_verifier, nonce, return_to, browser_hash"#,
            sessions::hash(state),
            LOGIN_WINDOW_MINUTES
        )
        .fetch_optional(pool)
        .await?
        .ok_or(LoginError::UnknownState)?;
        // The hashes are compared, not the secrets: timing tells nothing about the secret.
        if callback.browser.map(sessions::hash) != Some(attempt.browser_hash) {
            return Err(LoginError::OtherBrowser);
        }
        let d = self.discovered().await?;
        match callback.iss {
            Some(iss) if iss != self.settings.issuer => return Err(LoginError::WrongIssuer),
            None if d.iss_parameter_supported => return Err(LoginError::WrongIssuer),
            _ => {}
        }
        let client = self.client(&d)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|_| LoginError::Verification)?
            .set_pkce_verifier(PkceCodeVerifier::new(attempt.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                tracing::info!(error = %e, "authorization code exchange failed");
                LoginError::Verification
            })?;
        let id_token = tokens.id_token().ok_or(LoginError::Verification)?;
        let verifier = client.id_token_verifier();
        let nonce = Nonce::new(attempt.nonce);
        let claims = id_token.claims(&verifier, &nonce).map_err(|e| {
            tracing::info!(error = %e, "ID token verification failed");
            LoginError::Verification
        })?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|_| LoginError::Verification)?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|_| LoginError::Verification)?;
            let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key)
                .map_err(|_| LoginError::Verification)?;
            if actual != *expected {
                return Err(LoginError::Verification);
            }
        }
        // Roles travel in Plinto's access token; it is checked like any bearer before it is believed.
        let roles = match d.jwt.verify(tokens.access_token().secret()).await {
            Ok(access) => access.roles,
            Err(_) => Vec::new(),
        };
        let subject = claims.subject().as_str();
        // An unverified address is anyone's to type; it is not believed, nor kept (`users`).
        let email = claims
            .email()
            .filter(|_| claims.email_verified() == Some(true))
            .map(|e| e.as_str().to_owned());
        let display_name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned())
            .or_else(|| claims.preferred_username().map(|u| u.as_str().to_owned()))
            .or_else(|| email.clone())
            .unwrap_or_else(|| subject.to_owned());
        let platform_admin = self.is_platform_admin(email.as_deref(), &roles);
        let user_id = users::upsert(
            pool,
            &users::Identity {
                issuer: &self.settings.issuer,
                subject,
                email: email.as_deref(),
                display_name: &display_name,
                platform_admin,
            },
        )
        .await?;
        let session_secret =
            sessions::create(pool, user_id, session_hours, addr, user_agent).await?;
        Ok(SignedIn {
            user_id,
            display_name,
            session_secret,
            return_to: attempt.return_to,
        })
    }

    /// By the access token's roles, or by a configured email: `verified_email` must be one the
    /// provider verified, since an unverified claim is anyone's to make.
    pub fn is_platform_admin(&self, verified_email: Option<&str>, roles: &[String]) -> bool {
        verified_email.is_some_and(|e| {
            self.settings
                .platform_admin_emails
                .iter()
                .any(|a| a.eq_ignore_ascii_case(e))
        }) || roles
            .iter()
            .any(|r| *r == self.settings.platform_admin_role)
    }
}

/// Longer than any page of ours needs; a longer `return_to` is not a page of ours.
const MAX_RETURN_PATH: usize = 2048;

/// Where a sign-in may send the browser back to: the path (with query and fragment) of this site
/// that `requested` names, or `None`.
///
/// Browsers drop tabs and newlines inside URLs and read `\` as `/`, so any of them, even
/// percent-encoded (the next reader may decode once more), can turn `/\t/evil.example` into
/// `//evil.example`, another site; such input is refused, not cleaned up. The rest is resolved
/// against the public URL by the WHATWG parser browsers follow (`url`) and must keep this origin
/// and not come out as `//…` (`/.//evil.example` normalises to that).
pub fn return_path(public_url: &Url, requested: &str) -> Option<String> {
    /// Layers of percent-encoding looked through; a value encoded deeper is nobody's page.
    const MAX_LAYERS: usize = 3;
    if requested.len() > MAX_RETURN_PATH {
        return None;
    }
    let mut layer = Cow::Borrowed(requested);
    for layers in 0.. {
        let hostile = !layer.starts_with('/')
            || layer.starts_with("//")
            || layer.chars().any(|c| c.is_control() || c == '\\');
        if hostile {
            return None;
        }
        let decoded = percent_encoding::percent_decode_str(&layer)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == layer {
            break;
        }
        if layers == MAX_LAYERS {
            return None;
        }
        layer = Cow::Owned(decoded);
    }
    let target = public_url.join(requested).ok()?;
    if target.origin() != public_url.origin() {
        return None;
    }
    let path = &target[Position::BeforePath..];
    (!path.starts_with("//")).then(|| path.to_owned())
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Unavailable => ApiError::Unavailable {
                message: e.to_string(),
            },
            LoginError::Db(e) => {
                tracing::error!(error = %e, "database error during sign-in");
                ApiError::internal()
            }
            other => ApiError::Unauthenticated {
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ins_return_only_to_paths_of_this_site() {
        let site = Url::parse("https://enclii.example").unwrap();
        for (requested, expected) in [
            ("/", "/"),
            ("/projects?x=1", "/projects?x=1"),
            (
                "/projects/shop/services/api/logs#end",
                "/projects/shop/services/api/logs#end",
            ),
            ("/projects/a b", "/projects/a%20b"),
            ("/projects/a%20b", "/projects/a%20b"),
            ("/search?q=a%26b", "/search?q=a%26b"),
            ("/@evil.example", "/@evil.example"),
            ("/projects/../status", "/status"),
        ] {
            assert_eq!(
                return_path(&site, requested).as_deref(),
                Some(expected),
                "{requested:?}"
            );
        }
    }

    #[test]
    fn hostile_return_targets_are_refused() {
        let site = Url::parse("https://enclii.example").unwrap();
        let too_long = format!("/{}", "a".repeat(MAX_RETURN_PATH));
        for requested in [
            "",
            "projects",
            "evil.example",
            " /projects",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\\/evil.example",
            "https://evil.example/",
            "https://enclii.example.evil.example/",
            "http://enclii.example/",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            // Tabs and line breaks, which browsers drop from URLs (and CR/LF would split headers).
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: enclii_session=planted",
            "/projects\r\nLocation: https://evil.example",
            "/\u{0}/evil.example",
            "/\u{7f}",
            "/\u{85}",
            // The same, percent-encoded once or twice, in either case.
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%0D%0ASet-Cookie:%20enclii_session=planted",
            "/%2F/evil.example",
            "/%2f/evil.example",
            "/%2F%2Fevil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%5c/evil.example",
            "/%2509/evil.example",
            "/%252F/evil.example",
            "/%25252F/evil.example",
            "/%%32%46/evil.example",
            "/%00",
            // Normalised by the URL parser into `//evil.example`.
            "/.//evil.example",
            "/projects/..//evil.example",
            "/%2e//evil.example",
            &too_long,
        ] {
            assert_eq!(return_path(&site, requested), None, "{requested:?}");
        }
    }
}
