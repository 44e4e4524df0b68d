//! Users, keyed by (issuer, subject) as the identity provider asserts them.

use sqlx::PgPool;
use uuid::Uuid;

pub struct Identity<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
    pub display_name: &'a str,
    pub platform_admin: bool,
}

/// Creates the user on first sight, refreshes their profile afterwards; returns their id.
pub async fn upsert(pool: &PgPool, who: &Identity<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO users (issuer, subject, email, display_name, platform_admin)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (issuer, subject) DO UPDATE
             SET email = EXCLUDED.email, display_name = EXCLUDED.display_name,
                 platform_admin = EXCLUDED.platform_admin, last_seen_at = now()
           RETURNING id"#,
        who.issuer,
        who.subject,
        who.email,
        who.display_name,
        who.platform_admin,
    )
    .fetch_one(pool)
    .await
}

/// Like [`upsert`], but writes only when the user is new or their profile changed: bearer tokens
/// resolve on every request, and a write per request would make every read a write.
pub async fn find_or_upsert(pool: &PgPool, who: &Identity<'_>) -> sqlx::Result<Uuid> {
    let known = sqlx::query!(
        "SELECT id, email, display_name, platform_admin FROM users WHERE issuer = $1 AND subject = $2",
        who.issuer,
        who.subject
    )
    .fetch_optional(pool)
    .await?;
    match known {
        Some(u)
            if u.email.as_deref() == who.email
                && u.display_name == who.display_name
                && u.platform_admin == who.platform_admin =>
        {
            Ok(u.id)
        }
        _ => upsert(pool, who).await,
    }
}
