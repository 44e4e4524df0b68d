//! Browser sessions: a random id in an HttpOnly cookie, only its SHA-256 in the database.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Caller, Via};

/// The cookie's name.
pub const COOKIE: &str = "enclii_session";

/// A cookie's value from the request's `Cookie` header values (empty values count as absent).
pub fn cookie_value<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<String> {
    headers.into_iter().find_map(|v| {
        cookie::Cookie::split_parse(v)
            .flatten()
            .find(|c| c.name() == name && !c.value().is_empty())
            .map(|c| c.value().to_owned())
    })
}

pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts a session; the returned secret goes into the cookie and nowhere else.
pub async fn create(
    pool: &PgPool,
    user_id: Uuid,
    hours: u32,
    addr: Option<IpAddr>,
    user_agent: Option<&str>,
) -> sqlx::Result<String> {
    let secret = random_secret();
    sqlx::query!(
        r#"INSERT INTO sessions (id_hash, user_id, expires_at, client_addr, user_agent)
           VALUES ($1, $2, now() + make_interval(hours => $3), $4::text::inet, $5)"#,
        hash(&secret),
        user_id,
        hours as i32,
        addr.map(|a| a.to_string()),
        user_agent.map(|u| u.chars().take(256).collect::<String>()),
    )
    .execute(pool)
    .await?;
    Ok(secret)
}

/// The caller behind a session cookie, if the session is live.
pub async fn resolve(pool: &PgPool, secret: &str) -> sqlx::Result<Option<Caller>> {
    let row = sqlx::query!(
        // `last_seen_at` is touched at most once a minute: a page makes several calls, and a write
        // per call would cost more than the rest of the lookup.
        r#"WITH live AS (
               SELECT s.id_hash, s.last_seen_at, u.id, u.display_name, u.email, u.platform_admin
               FROM sessions s JOIN users u ON u.id = s.user_id
               WHERE s.id_hash = $1 AND s.expires_at > now()),
           touched AS (
               UPDATE sessions SET last_seen_at = now()
               WHERE id_hash = $1 AND last_seen_at < now() - interval '1 minute'
                 AND EXISTS (SELECT 1 FROM live))
           SELECT id AS "id!", display_name AS "display_name!", email, platform_admin AS "platform_admin!" FROM live"#,
        hash(secret)
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Caller {
        user_id: r.id,
        display_name: r.display_name,
        email: r.email,
        platform_admin: r.platform_admin,
        via: Via::Session,
        client_addr: None,
        projects: Default::default(),
    }))
}

pub async fn end(pool: &PgPool, secret: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!("DELETE FROM sessions WHERE id_hash = $1", hash(secret))
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes expired sessions and abandoned sign-in attempts.
pub async fn sweep(pool: &PgPool) -> sqlx::Result<u64> {
    let a = sqlx::query!("DELETE FROM sessions WHERE expires_at < now()")
        .execute(pool)
        .await?
        .rows_affected();
    let b =
        sqlx::query!("DELETE FROM oidc_logins WHERE created_at < now() - interval '10 minutes'")
            .execute(pool)
            .await?
            .rows_affected();
    Ok(a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name_across_headers() {
        let headers = [
            "enclii_theme=dark; other=1",
            "x_enclii_session=evil; enclii_session=abc",
        ];
        assert_eq!(cookie_value(headers, COOKIE).as_deref(), Some("abc"));
        assert_eq!(
            cookie_value(headers, "enclii_theme").as_deref(),
            Some("dark")
        );
        assert_eq!(
            cookie_value(["enclii_session="], COOKIE),
            None,
            "an emptied cookie is no session"
        );
        assert_eq!(cookie_value([], COOKIE), None);
    }
}
