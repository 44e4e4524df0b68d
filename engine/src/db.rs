//! The PostgreSQL pool and the schema migrations (the `migrations/` folder at the workspace root).

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseSettings;

/// Every migration, embedded at compile time; tests hand it to `#[sqlx::test(migrator = ..)]`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    // The URL is never part of the message: it may carry a password.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Connections that stay checked out of the pool for as long as the process runs: one `LISTEN`
/// each for deployment events (`events::run`, which also wakes the notifications' delivery
/// worker), the deploy worker (`deploy::worker::run`) and the builder (`pipeline::builder::run`). A pool no larger than this starves every request (found
/// with `max_connections = 2`: each page waited 5 s for a connection, then failed), so the
/// configuration must leave room above it.
pub const LISTENER_CONNECTIONS: u32 = 3;

/// How long a pooled connection may sit unused before it is checked again when handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(30);

pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings every connection it hands out by default: one more round trip per query
        // (a page makes five to seven). A connection used within the last half minute is
        // known good; one idle longer (the database may have restarted since) is still pinged.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_WHEN_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect(settings.url.expose_secret())
        .await
        .map_err(DbError::Connect)
}

pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await.map_err(DbError::Migrate)
}

/// Readiness: the database answers a trivial query within the pool's acquire timeout.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await
        .map(|_| ())
}
