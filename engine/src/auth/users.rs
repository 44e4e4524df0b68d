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
