-- Identity by verified email only, and sign-in bound to the browser that started it (issue #18).

-- `users.email` now holds only an address the provider marked verified (`email_verified`), and
-- `email_verified_at` when this account first presented it verified: an address given to the members
-- page binds to the account that verified it first. Emails stored before were never checked, so they
-- are forgotten, with the platform admin flags that may have come from them; both come back, checked,
-- at the next sign-in, which every browser needs since its session ends here.
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;
UPDATE users SET email = NULL, platform_admin = false;
ALTER TABLE users ADD CONSTRAINT users_email_verified_when
    CHECK ((email IS NULL) = (email_verified_at IS NULL));
CREATE INDEX users_by_email ON users (lower(email), email_verified_at) WHERE email IS NOT NULL;
DELETE FROM sessions;

-- A login attempt is completed only by the browser that started it: the hash of the secret in its
-- short-lived sign-in cookie. Attempts in flight have none and could not complete; they go.
DELETE FROM oidc_logins;
ALTER TABLE oidc_logins ADD COLUMN browser_hash BYTEA NOT NULL;
