//! Enclii API tokens: random secrets shown once, stored only as a SHA-256, with scopes, expiry,
//! last use and revocation.
//!
//! A token is a long-lived stand-in for its user, so two platform limits bound it (issue #18,
//! finding 12): it lives at most `session.api_token_max_days` (asked for without an expiry, it
//! gets that one; asked for longer, it is refused; and any older token stops, whatever it was
//! created with), and it works only while its user has signed in through Plinto within
//! `session.api_token_sign_in_within_days` ([`super::users`]' `signed_in_at`): Plinto is where a
//! user is disabled, and a disabled user cannot sign in, so their tokens stop within that window.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Caller, Via};
use crate::config::SessionSettings;
use enclii_api::ApiError;

/// Every Enclii token starts with this, so that secret scanners and people can recognise one.
pub const PREFIX: &str = "ency_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

/// A new token's one and only plaintext appearance.
pub struct Created {
    pub id: Uuid,
    pub token: String,
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub async fn create(
    pool: &PgPool,
    user_id: Uuid,
    name: &str,
    scopes: &[Scope],
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<Created> {
    let token = generate();
    let scopes: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    let id = sqlx::query_scalar!(
        r#"INSERT INTO api_tokens (user_id, name, prefix, secret_hash, scopes, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"#,
        user_id,
        name,
        &token[..PREFIX.len() + 6],
        hash(&token),
        &scopes,
        expires_at,
    )
    .fetch_one(pool)
    .await?;
    Ok(Created { id, token })
}

/// Days as Postgres' `make_interval` takes them (settings are validated to at most 3650).
fn days(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The caller a token stands for, if it is valid: known, not revoked, not expired, younger than
/// the platform's maximum lifetime, and its user signed in through Plinto recently. Refusals are
/// 401s that say what to do; a token of the wrong shape is simply unknown.
pub async fn verify(pool: &PgPool, limits: &SessionSettings, token: &str) -> crate::Result<Caller> {
    let unknown = || -> crate::Error {
        ApiError::Unauthenticated {
            message: "this API token is unknown, expired or revoked".into(),
        }
        .into()
    };
    if !token.starts_with(PREFIX) {
        return Err(unknown());
    }
    // Last use is kept to the minute: a write per request would make every read a write. One
    // statement, as for sessions: the lookup and the touch were two round trips per request. A
    // token refused for its user's stale sign-in is not touched: it was not used.
    let row = sqlx::query!(
        r#"WITH live AS (
               SELECT t.id, t.scopes, u.id AS user_id, u.display_name, u.email, u.platform_admin,
                      u.signed_in_at > now() - make_interval(days => $3) AS vouched
               FROM api_tokens t JOIN users u ON u.id = t.user_id
               WHERE t.secret_hash = $1 AND t.revoked_at IS NULL
                 AND (t.expires_at IS NULL OR t.expires_at > now())
                 AND t.created_at > now() - make_interval(days => $2)),
           touched AS (
               UPDATE api_tokens SET last_used_at = now()
               WHERE id = (SELECT id FROM live WHERE vouched)
                 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'))
           SELECT id AS "id!", scopes AS "scopes!", user_id AS "user_id!", display_name AS "display_name!",
                  email, platform_admin AS "platform_admin!", vouched AS "vouched!"
           FROM live"#,
        hash(token),
        days(limits.api_token_max_days),
        days(limits.api_token_sign_in_within_days),
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Err(unknown());
    };
    if !row.vouched {
        return Err(ApiError::Unauthenticated {
            message: format!(
                "this API token's user has not signed in to Enclii through Plinto in the last {} \
                 days; sign in to the dashboard again and the token works again",
                limits.api_token_sign_in_within_days
            ),
        }
        .into());
    }
    Ok(Caller {
        user_id: row.user_id,
        display_name: row.display_name,
        email: row.email,
        platform_admin: row.platform_admin,
        via: Via::ApiToken {
            token_id: row.id,
            write: row.scopes.iter().any(|s| s == "write"),
        },
        client_addr: None,
        projects: Default::default(),
    })
}

/// Revokes one of `user_id`'s tokens; false when there was no such live token.
pub async fn revoke(pool: &PgPool, user_id: Uuid, token_id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        token_id,
        user_id
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_url_safe() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 43);
        assert!(
            a[PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn only_the_hash_is_kept_and_it_is_stable() {
        assert_eq!(hash("ency_x"), hash("ency_x"));
        assert_ne!(hash("ency_x"), hash("ency_y"));
        assert_eq!(hash("ency_x").len(), 32);
    }
}

/// Dashboard operations on the caller's own tokens.
pub mod manage {
    use chrono::Duration;
    use enclii_api::{ApiError, ApiToken, CreatedToken};
    use sqlx::PgPool;
    use uuid::Uuid;

    use super::Scope;
    use crate::audit;
    use crate::auth::{self, Action, Caller, Via};
    use crate::config::SessionSettings;

    fn session_user(caller: Option<&Caller>) -> crate::Result<&Caller> {
        auth::authorize(caller, Action::ManageOwnTokens, None)?;
        let caller = caller.ok_or_else(ApiError::unauthenticated)?;
        // A token must not mint tokens: that would outlive its own expiry and revocation.
        if !matches!(caller.via, Via::Session) {
            return Err(ApiError::forbidden(
                "API tokens are managed from a signed-in dashboard session",
            )
            .into());
        }
        Ok(caller)
    }

    /// A token for the caller. Without `expires_in_days` it lives the platform's maximum
    /// (`limits.api_token_max_days`; its `expires_at` in the answer says when); asked for longer,
    /// it is refused rather than quietly shortened, so that automation learns its real lifetime.
    pub async fn create(
        pool: &PgPool,
        limits: &SessionSettings,
        caller: Option<&Caller>,
        name: &str,
        write: bool,
        expires_in_days: Option<u32>,
    ) -> crate::Result<CreatedToken> {
        let who = session_user(caller)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(ApiError::invalid("give the token a name of 1 to 100 characters").into());
        }
        let scopes: &[Scope] = if write {
            &[Scope::Read, Scope::Write]
        } else {
            &[Scope::Read]
        };
        let max = limits.api_token_max_days;
        let days = match expires_in_days {
            None => max,
            Some(d) if d > max => {
                return Err(ApiError::invalid(format!(
                    "API tokens live at most {max} days on this server; ask for {max} or fewer \
                     (or leave the expiry out to get {max}) and make a new token when it runs out"
                ))
                .into());
            }
            Some(d) => d.max(1),
        };
        let expires_at = chrono::Utc::now() + Duration::days(i64::from(days));
        let created = super::create(pool, who.user_id, name, scopes, Some(expires_at)).await?;
        audit::record(
            pool,
            caller,
            audit::Event::new("token.create")
                .target("api_token", created.id.to_string())
                .details(serde_json::json!({ "name": name, "write": write })),
        )
        .await?;
        let token = list(pool, caller)
            .await?
            .into_iter()
            .find(|t| t.id == created.id.to_string())
            .ok_or_else(ApiError::internal)?;
        Ok(CreatedToken {
            token,
            secret: created.token,
        })
    }

    pub async fn list(pool: &PgPool, caller: Option<&Caller>) -> crate::Result<Vec<ApiToken>> {
        let who = session_user(caller)?;
        let rows = sqlx::query!(
            "SELECT id, name, prefix, scopes, created_at, expires_at, last_used_at, revoked_at
             FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC",
            who.user_id
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ApiToken {
                id: r.id.to_string(),
                name: r.name,
                prefix: r.prefix,
                scopes: r.scopes,
                created_at: r.created_at,
                expires_at: r.expires_at,
                last_used_at: r.last_used_at,
                revoked_at: r.revoked_at,
            })
            .collect())
    }

    pub async fn revoke(pool: &PgPool, caller: Option<&Caller>, id: &str) -> crate::Result<()> {
        let who = session_user(caller)?;
        let id = Uuid::parse_str(id).map_err(|_| ApiError::invalid("not a token id"))?;
        if !super::revoke(pool, who.user_id, id).await? {
            return Err(ApiError::not_found("no such live token of yours").into());
        }
        audit::record(
            pool,
            caller,
            audit::Event::new("token.revoke").target("api_token", id.to_string()),
        )
        .await?;
        Ok(())
    }
}
