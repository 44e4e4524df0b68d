//! Plinto access tokens as bearers: RS256 JWTs checked against the provider's published keys.
//!
//! Never trusts the token's own `alg` (only RS256 is accepted), checks `iss`, `aud`, `exp` and `nbf`,
//! and accepts only tokens whose `type` is `access` (Plinto signs refresh tokens with the same key).
//! Keys are cached by `kid`; an unknown `kid` refetches the key set, at most once per interval, so
//! that a key rotation is picked up without letting junk tokens hammer the provider.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

#[derive(Debug, Clone, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    /// Plinto's token type: `access`, `refresh`, …
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub email: Option<String>,
    /// Only a JSON `true` counts: anything else (absent, `false`, a string) leaves `email`
    /// unverified, and a token is not refused for the shape of a claim it need not carry.
    #[serde(default, deserialize_with = "only_true")]
    pub email_verified: bool,
    pub name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub tid: Option<String>,
    pub org: Option<String>,
}

impl AccessClaims {
    /// The token's email, if the token itself says the provider verified it.
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }
}

fn only_true<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(serde_json::Value::deserialize(d)? == serde_json::Value::Bool(true))
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JwtError {
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("only RS256-signed tokens are accepted")]
    Algorithm,
    #[error("the token was signed with a key the provider does not publish")]
    UnknownKey,
    #[error("the token is expired or not yet valid")]
    Expired,
    #[error("the token was issued by another issuer")]
    Issuer,
    #[error("the token is meant for another audience")]
    Audience,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("only access tokens are accepted as bearers (this is a {0} token)")]
    NotAccess(String),
    #[error("the identity provider's keys cannot be fetched")]
    KeysUnavailable,
}

pub struct JwtVerifier {
    issuer: String,
    audience: String,
    jwks_uri: String,
    http: openidconnect::reqwest::Client,
    min_refresh: Duration,
    keys: RwLock<Keys>,
}

struct Keys {
    set: JwkSet,
    fetched_at: Option<Instant>,
}

impl JwtVerifier {
    pub fn new(
        issuer: &str,
        audience: &str,
        jwks_uri: &str,
        http: openidconnect::reqwest::Client,
        min_refresh: Duration,
    ) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks_uri: jwks_uri.to_owned(),
            http,
            min_refresh,
            keys: RwLock::new(Keys {
                set: JwkSet { keys: Vec::new() },
                fetched_at: None,
            }),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<AccessClaims, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(JwtError::Algorithm);
        }
        let jwk = match self.key(header.kid.as_deref()).await {
            Some(jwk) => jwk,
            None => {
                self.refresh_if_due().await?;
                self.key(header.kid.as_deref())
                    .await
                    .ok_or(JwtError::UnknownKey)?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| JwtError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature | K::ImmatureSignature => JwtError::Expired,
                K::InvalidIssuer => JwtError::Issuer,
                K::InvalidAudience => JwtError::Audience,
                K::InvalidSignature => JwtError::Signature,
                K::InvalidAlgorithm => JwtError::Algorithm,
                _ => JwtError::Malformed,
            }
        })?;
        match data.claims.kind.as_deref() {
            Some("access") => Ok(data.claims),
            other => Err(JwtError::NotAccess(other.unwrap_or("untyped").to_owned())),
        }
    }

    /// The key for `kid`; without a `kid`, the only key of a single-key set.
    async fn key(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.read().await;
        match kid {
            Some(kid) => keys.set.find(kid).cloned(),
            None if keys.set.keys.len() == 1 => keys.set.keys.first().cloned(),
            None => None,
        }
    }

    async fn refresh_if_due(&self) -> Result<(), JwtError> {
        let mut keys = self.keys.write().await;
        if keys
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.min_refresh)
        {
            return Ok(());
        }
        keys.fetched_at = Some(Instant::now());
        let response = self.http.get(&self.jwks_uri).send().await.map_err(|e| {
            tracing::warn!(error = %e, "fetching the provider's JWKS failed");
            JwtError::KeysUnavailable
        })?;
        let body = response
            .bytes()
            .await
            .map_err(|_| JwtError::KeysUnavailable)?;
        keys.set = serde_json::from_slice::<JwkSet>(&body).map_err(|e| {
            tracing::warn!(error = %e, "the provider's JWKS is not a key set");
            JwtError::KeysUnavailable
        })?;
        tracing::info!(
            keys = keys.set.keys.len(),
            "refreshed the provider's signing keys"
        );
        Ok(())
    }
}
