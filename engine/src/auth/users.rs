//! Users, keyed by (issuer, subject) as the identity provider asserts them.
//!
//! An email is kept only when the provider verified it (`email_verified`): anyone can type any
//! address into an unverified claim, and an address names people to the members page and to the
//! platform admin list. Addresses are not unique (two accounts may verify the same one);
//! `email_verified_at` records when this account first presented its address verified, so that an
//! address resolves to the account that verified it first ([`crate::platform::members`]).
//!
//! `signed_in_at` is when Plinto last vouched for the user: written here, and only here, on a
//! browser sign-in or when a verified Plinto access token brings a changed profile. API tokens
//! work only while it is recent ([`crate::auth::tokens`]), so a user disabled at Plinto loses
//! them; touching it on mere activity would keep their tokens alive without Plinto.

use sqlx::PgPool;
use uuid::Uuid;

pub struct Identity<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    /// The user's email only if the provider verified it; `None` forgets a stored one.
    pub email: Option<&'a str>,
    pub display_name: &'a str,
    pub platform_admin: bool,
}

/// Creates the user on first sight, refreshes their profile afterwards; returns their id.
pub async fn upsert(pool: &PgPool, who: &Identity<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO users (issuer, subject, email, email_verified_at, display_name, platform_admin)
           VALUES ($1, $2, $3, CASE WHEN $3::text IS NULL THEN NULL ELSE now() END, $4, $5)
           ON CONFLICT (issuer, subject) DO UPDATE
             SET email = EXCLUDED.email,
                 email_verified_at = CASE WHEN lower(users.email) = lower(EXCLUDED.email)
                                          THEN users.email_verified_at
                                          ELSE EXCLUDED.email_verified_at END,
                 display_name = EXCLUDED.display_name,
                 platform_admin = EXCLUDED.platform_admin, signed_in_at = now()
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

/// A user as stored.
pub struct Stored {
    pub id: Uuid,
    /// Verified when it was stored.
    pub email: Option<String>,
    pub display_name: String,
    pub platform_admin: bool,
}

impl Stored {
    /// Whether the stored profile already says what `who` says: bearer tokens resolve on every
    /// request, and a write per request would make every read a write.
    pub fn is_current(&self, who: &Identity<'_>) -> bool {
        self.email.as_deref() == who.email
            && self.display_name == who.display_name
            && self.platform_admin == who.platform_admin
    }
}

pub async fn find(pool: &PgPool, issuer: &str, subject: &str) -> sqlx::Result<Option<Stored>> {
    sqlx::query_as!(
        Stored,
        "SELECT id, email, display_name, platform_admin FROM users WHERE issuer = $1 AND subject = $2",
        issuer,
        subject
    )
    .fetch_optional(pool)
    .await
}
