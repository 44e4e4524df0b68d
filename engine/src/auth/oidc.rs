//! Browser sign-in with OpenID Connect against Plinto: authorization code flow with PKCE (S256),
//! `state`, `nonce` and the `iss` response parameter checked; the ID token verified by the
//! `openidconnect` crate (signature, iss, aud, exp, nonce) plus its `at_hash`. Tokens from the
//! provider never leave the server: the browser only ever holds the session cookie.
//!
//! The provider is discovered lazily (`{issuer}/.well-known/openid-configuration`) and the result
//! kept, so that Switchyard starts even while the provider is down.

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

pub struct Oidc {
    settings: OidcSettings,
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

pub struct Callback<'a> {
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
        Ok(Self {
            settings,
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

    /// Starts a sign-in: records the attempt and returns the provider URL to send the browser to.
    pub async fn begin(&self, pool: &PgPool, return_to: &str) -> Result<String, LoginError> {
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
        sqlx::query!(
            "INSERT INTO oidc_logins (state_hash, pkce_verifier, nonce, return_to) VALUES ($1, $2, $3, $4)",
            sessions::hash(state.secret()),
            verifier.secret(),
            nonce.secret(),
            return_to
        )
        .execute(pool)
        .await?;
        Ok(url.to_string())
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
               RETURNING pkce_verifier, nonce, return_to"#,
            sessions::hash(state),
            LOGIN_WINDOW_MINUTES
        )
        .fetch_optional(pool)
        .await?
        .ok_or(LoginError::UnknownState)?;
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
        let email = claims.email().map(|e| e.as_str().to_owned());
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

    pub fn is_platform_admin(&self, email: Option<&str>, roles: &[String]) -> bool {
        email.is_some_and(|e| {
            self.settings
                .platform_admin_emails
                .iter()
                .any(|a| a.eq_ignore_ascii_case(e))
        }) || roles
            .iter()
            .any(|r| *r == self.settings.platform_admin_role)
    }
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
