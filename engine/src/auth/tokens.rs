//! Enclii API tokens: random secrets shown once, stored only as a SHA-256, with scopes, expiry,
//! last use and revocation.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Caller, Via};

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

/// The caller a token stands for, if it is valid: known, not revoked, not expired.
pub async fn verify(pool: &PgPool, token: &str) -> sqlx::Result<Option<Caller>> {
    if !token.starts_with(PREFIX) {
        return Ok(None);
    }
    let row = sqlx::query!(
        r#"SELECT t.id, t.scopes, u.id AS user_id, u.display_name, u.email, u.platform_admin
           FROM api_tokens t JOIN users u ON u.id = t.user_id
           WHERE t.secret_hash = $1 AND t.revoked_at IS NULL
             AND (t.expires_at IS NULL OR t.expires_at > now())"#,
        hash(token),
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    // Last use is kept to the minute: a write per request would make every read a write.
    sqlx::query!(
        "UPDATE api_tokens SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        row.id
    )
    .execute(pool)
    .await?;
    Ok(Some(Caller {
        user_id: row.user_id,
        display_name: row.display_name,
        email: row.email,
        platform_admin: row.platform_admin,
        via: Via::ApiToken {
            token_id: row.id,
            write: row.scopes.iter().any(|s| s == "write"),
        },
        client_addr: None,
    }))
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
