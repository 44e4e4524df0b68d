//! Switchyard as the registry's token service, so that a build can push only to its own
//! repository.
//!
//! A shared push credential in every build would let one tenant's Dockerfile overwrite another
//! tenant's images. Instead each build gets a credential of its own (`build-{id}` and a random
//! password, only its hash stored, valid while the build runs), mounted as the Docker config of
//! its Job. The registry (CNCF distribution, `auth.token`) sends BuildKit here with the scopes it
//! needs; [`permitted`] grants push and pull on the build's own repository and pull on its
//! project's others, nothing else, in a short-lived ES256 token the registry verifies against
//! [`Issuer::jwks`]. The protocol is distribution's token authentication
//! (<https://distribution.github.io/distribution/spec/auth/token/>).

use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Engine;
use crate::config::RegistryTokenSettings;

/// The account name of a build's credential.
pub fn build_account(id: i64) -> String {
    format!("build-{id}")
}

fn parse_account(account: &str) -> Option<i64> {
    account
        .strip_prefix("build-")?
        .parse()
        .ok()
        .filter(|id| *id > 0)
}

/// A build's registry credential: the password goes into its Job's Secret, the hash into its row.
pub struct Credential {
    pub password: String,
    pub hash: Vec<u8>,
}

pub fn mint() -> Credential {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = Sha256::digest(password.as_bytes()).to_vec();
    Credential { password, hash }
}

/// One `scope` parameter of a token request: `repository:acme/api:pull,push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// `None` for anything not of the form `type:name:actions` (a name may hold `:`, e.g. a
    /// registry port in a resource name, so the type is before the first and the actions after
    /// the last).
    pub fn parse(s: &str) -> Option<Scope> {
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Scope {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// What a build may do in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildGrant {
    /// The repository it pushes to (`acme/api`, under the platform's path if any).
    pub repository: String,
    /// Its project's repositories' common prefix (`acme/`): pull only, for base images the
    /// project built itself.
    pub project_prefix: String,
}

/// The actions of `scope` a build may have: push and pull on its own repository, pull on its
/// project's, nothing anywhere else (other projects', the platform's, the catalog). Pure.
pub fn permitted(scope: &Scope, grant: &BuildGrant) -> Vec<String> {
    if scope.kind != "repository" || scope.name.contains("..") {
        return Vec::new();
    }
    let allowed: &[&str] = if scope.name == grant.repository {
        &["pull", "push"]
    } else if scope.name.starts_with(&grant.project_prefix) {
        &["pull"]
    } else {
        &[]
    };
    let mut actions: Vec<String> = scope
        .actions
        .iter()
        .filter(|a| allowed.contains(&a.as_str()))
        .cloned()
        .collect();
    actions.sort();
    actions.dedup();
    actions
}

/// The account of the nodes' kubelets (`pipeline.registry_token.node_pull_password`).
pub const NODE_ACCOUNT: &str = "enclii-nodes";

/// What the nodes may do: pull any repository under the platform's path (`base`, empty for the
/// whole registry), nothing else. Pure.
pub fn node_permitted(scope: &Scope, base: &str) -> Vec<String> {
    let under_base = base.is_empty() || scope.name.starts_with(&format!("{base}/"));
    if scope.kind == "repository"
        && under_base
        && !scope.name.contains("..")
        && scope.actions.iter().any(|a| a == "pull")
    {
        vec!["pull".to_owned()]
    } else {
        Vec::new()
    }
}

/// Signs the registry's tokens; built once from `pipeline.registry_token.signing_key`.
pub struct Issuer {
    key: EncodingKey,
    jwk: Jwk,
    settings: RegistryTokenSettings,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("kid", &self.jwk.common.key_id)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// `Ok(None)` without a signing key; an error names the setting when the key is not an EC
    /// P-256 private key in PEM.
    pub fn from_settings(settings: &RegistryTokenSettings) -> Result<Option<Self>, String> {
        let Some(pem) = &settings.signing_key else {
            return Ok(None);
        };
        let bad = |e: jsonwebtoken::errors::Error| {
            format!(
                "pipeline.registry_token.signing_key is not an EC P-256 private key in PEM ({e})"
            )
        };
        let key = EncodingKey::from_ec_pem(pem.expose_secret().as_bytes()).map_err(bad)?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(bad)?;
        // The key id is the key's thumbprint: stable across restarts and replicas.
        jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256));
        Ok(Some(Self {
            key,
            jwk,
            settings: settings.clone(),
        }))
    }

    /// The public key, for the registry's `auth.token.jwks` file.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    fn sign(&self, subject: &str, access: Vec<Access>) -> Result<TokenResponse, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            iss: &self.settings.issuer,
            sub: subject,
            aud: &self.settings.service,
            exp: now + self.settings.ttl_secs,
            // A little slack for the registry's clock.
            nbf: now.saturating_sub(10),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = self.jwk.common.key_id.clone();
        let token = jsonwebtoken::encode(&header, &claims, &self.key).map_err(TokenError::Sign)?;
        Ok(TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: self.settings.ttl_secs,
            issued_at: chrono::DateTime::from_timestamp(now as i64, 0)
                .unwrap_or_default()
                .to_rfc3339(),
        })
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<Access>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// The token endpoint's answer (both names: clients read either).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Unknown account, wrong password, a build no longer running, or another registry's name.
    #[error("the registry credential is not valid")]
    Unauthorized,
    #[error("this Switchyard has no registry signing key (pipeline.registry_token.signing_key)")]
    NotConfigured,
    #[error("database")]
    Db(#[from] sqlx::Error),
    #[error("signing the token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// The token endpoint (`GET /registry/token`): checks a build's credential and signs what it may
/// do of what it asked for.
#[tracing::instrument(skip(engine, password, scopes), fields(scopes = scopes.len()))]
pub async fn issue(
    engine: &Engine,
    account: &str,
    password: &str,
    service: &str,
    scopes: &[String],
) -> Result<TokenResponse, TokenError> {
    let issuer = engine
        .registry_tokens
        .as_deref()
        .ok_or(TokenError::NotConfigured)?;
    if service != issuer.settings.service {
        return Err(TokenError::Unauthorized);
    }
    if account == NODE_ACCOUNT {
        let expected = issuer
            .settings
            .node_pull_password
            .as_ref()
            .ok_or(TokenError::Unauthorized)?;
        // Digests compared: equal-length values, so the comparison's time says nothing useful.
        if Sha256::digest(expected.expose_secret().as_bytes())
            != Sha256::digest(password.as_bytes())
        {
            return Err(TokenError::Unauthorized);
        }
        let (_, base) = super::job::registry_parts(&engine.settings.pipeline);
        let access = scopes
            .iter()
            .filter_map(|s| Scope::parse(s))
            .filter_map(|scope| {
                let actions = node_permitted(&scope, base);
                (!actions.is_empty()).then(|| Access {
                    kind: scope.kind,
                    name: scope.name,
                    actions,
                })
            })
            .collect();
        return issuer.sign(account, access);
    }
    let id = parse_account(account).ok_or(TokenError::Unauthorized)?;
    let hash = Sha256::digest(password.as_bytes()).to_vec();
    // Compared in the database: the hash of 32 random bytes leaks nothing through timing.
    let row = sqlx::query!(
        r#"SELECT b.image_ref, p.slug AS project
           FROM builds b JOIN services s ON s.id = b.service_id JOIN projects p ON p.id = s.project_id
           WHERE b.id = $1 AND b.state = 'running' AND b.push_credential_hash = $2"#,
        id,
        hash
    )
    .fetch_optional(&engine.pool)
    .await?
    .ok_or(TokenError::Unauthorized)?;
    let Some(image) = row.image_ref else {
        return Err(TokenError::Unauthorized);
    };
    let (_, base) = super::job::registry_parts(&engine.settings.pipeline);
    let project_prefix = if base.is_empty() {
        format!("{}/", row.project)
    } else {
        format!("{base}/{}/", row.project)
    };
    let grant = BuildGrant {
        repository: super::job::repository_of(&image).to_owned(),
        project_prefix,
    };
    let access = scopes
        .iter()
        .filter_map(|s| Scope::parse(s))
        .filter_map(|scope| {
            let actions = permitted(&scope, &grant);
            (!actions.is_empty()).then(|| Access {
                kind: scope.kind,
                name: scope.name,
                actions,
            })
        })
        .collect();
    issuer.sign(account, access)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> BuildGrant {
        BuildGrant {
            repository: "acme/api".into(),
            project_prefix: "acme/".into(),
        }
    }

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    #[test]
    fn a_build_pushes_only_to_its_own_repository() {
        let g = grant();
        assert_eq!(
            permitted(&scope("repository:acme/api:pull,push"), &g),
            ["pull", "push"]
        );
        // Its project's other repositories: pull only (base images it built).
        assert_eq!(
            permitted(&scope("repository:acme/worker:pull,push"), &g),
            ["pull"]
        );
        // Another project's, a look-alike prefix, the platform's, the catalog, deletes: nothing.
        for other in [
            "repository:other/api:pull,push",
            "repository:acme-evil/api:pull,push",
            "repository:acme/../other/api:push",
            "registry:catalog:*",
            "repository:acme/api:delete,*",
        ] {
            assert_eq!(
                permitted(&scope(other), &g),
                Vec::<String>::new(),
                "{other}"
            );
        }
    }

    #[test]
    fn the_nodes_pull_everything_of_the_platform_and_push_nothing() {
        assert_eq!(
            node_permitted(&scope("repository:acme/api:pull,push"), ""),
            ["pull"]
        );
        assert_eq!(
            node_permitted(&scope("repository:org/acme/api:pull"), "org"),
            ["pull"]
        );
        for (s, base) in [
            ("repository:acme/api:push", ""),
            ("repository:other/api:pull", "org"),
            ("repository:org-x/api:pull", "org"),
            ("registry:catalog:*", ""),
        ] {
            assert_eq!(node_permitted(&scope(s), base), Vec::<String>::new(), "{s}");
        }
    }

    #[test]
    fn scopes_parse_with_colons_in_names() {
        assert_eq!(
            scope("repository:localhost:5000/acme/api:pull"),
            Scope {
                kind: "repository".into(),
                name: "localhost:5000/acme/api".into(),
                actions: vec!["pull".into()],
            }
        );
        assert_eq!(Scope::parse("repository"), None);
        assert_eq!(Scope::parse(":x:pull"), None);
        assert_eq!(parse_account("build-12"), Some(12));
        for bad in ["build-0", "build--1", "user", "build-x"] {
            assert_eq!(parse_account(bad), None, "{bad}");
        }
    }

    #[test]
    fn credentials_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (mint(), mint());
        assert_ne!(a.password, b.password);
        assert_eq!(a.hash, Sha256::digest(a.password.as_bytes()).to_vec());
        assert!(a.password.len() >= 43);
    }

    #[test]
    fn a_bad_signing_key_names_the_setting() {
        let settings = RegistryTokenSettings {
            signing_key: Some("not a key".to_owned().into()),
            ..Default::default()
        };
        let e = Issuer::from_settings(&settings).unwrap_err();
        assert!(e.contains("pipeline.registry_token.signing_key"), "{e}");
        assert!(
            Issuer::from_settings(&RegistryTokenSettings::default())
                .unwrap()
                .is_none()
        );
    }
}
