//! The server-only platform engine. Each module owns its tables and its flows; the dashboard's
//! server functions and the server binary reach the platform only through this crate.

pub mod config;
pub mod db;

pub use config::Settings;

use std::sync::Arc;

/// What every request handler and background worker shares: the database and the settings.
#[derive(Clone)]
pub struct Engine {
    pub pool: sqlx::PgPool,
    pub settings: Arc<Settings>,
}
