//! The server-only platform engine. Each module owns its tables and its flows; the dashboard's
//! server functions and the server binary reach the platform only through this crate.
//!
//! - [`auth`]: who is calling (sessions, API tokens) and what they may do (roles, [`auth::Action`]).
//! - [`platform`]: projects, environments, services and their spec revisions, releases, deployments.
//! - [`audit`]: the append-only record of every change and every refusal.
//! - [`notify`]: the outbox of events and their delivery to Slack, Discord, webhooks and email.

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod crypto;
pub mod db;
pub mod deploy;
pub mod events;
pub mod leases;
pub mod monitor;
pub mod notify;
pub mod pipeline;
pub mod platform;
pub mod previews;

pub use config::Settings;

use std::sync::Arc;

/// What every request handler and background worker shares: the database and the settings.
#[derive(Clone)]
pub struct Engine {
    pub pool: sqlx::PgPool,
    pub settings: Arc<Settings>,
    /// Sign-in through Plinto, when configured.
    pub oidc: Option<Arc<auth::oidc::Oidc>>,
    /// Limits sign-in attempts per client address.
    pub login_limiter: Arc<auth::rate::Limiter>,
    /// Limits how many rejected webhook deliveries are recorded, per project (`None`: no project).
    pub rejected_deliveries: Arc<auth::rate::Limiter<Option<uuid::Uuid>>>,
    /// Encrypts secret values at rest, when `secrets.key` is configured.
    pub secrets: Option<Arc<crypto::SecretBox>>,
    /// The Kubernetes client, once the cluster is connected (reading logs and status needs it).
    pub kube: Arc<std::sync::OnceLock<deploy::Clusters>>,
    /// Ids of deployments that changed (see [`events`]).
    pub deployment_events: tokio::sync::broadcast::Sender<i64>,
    /// Woken when the notifications outbox has something new (see [`events`], [`notify::deliver`]).
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Prometheus for the charts: `canary.prometheus_url`, or the sandbox's once it has started.
    pub prometheus: Arc<std::sync::OnceLock<Arc<deploy::analysis::Prometheus>>>,
    /// The charts of the current minute (see [`platform::metrics::ChartCache`]).
    pub charts: Arc<platform::metrics::ChartCache>,
    /// Signs builds' registry tokens, when `pipeline.registry_token.signing_key` is configured.
    pub registry_tokens: Option<Arc<pipeline::registry::Issuer>>,
    /// Turns true when this replica is told to stop: its workers stop claiming, its drivers hand
    /// their leases over (`leases::hold`) and its HTTP streams end. Every worker, driver and stream
    /// holds a receiver while it runs, so the sender closing means all of them have stopped.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Engine {
    pub fn new(pool: sqlx::PgPool, settings: Settings) -> std::result::Result<Self, String> {
        let oidc = match &settings.oidc {
            Some(o) => Some(Arc::new(auth::oidc::Oidc::new(
                o.clone(),
                &settings.public_url,
            )?)),
            None => None,
        };
        let login_limiter = Arc::new(auth::rate::Limiter::new(
            settings.session.login_attempts_per_minute,
            std::time::Duration::from_secs(60),
        ));
        let rejected_deliveries = Arc::new(auth::rate::Limiter::new(
            settings.pipeline.rejected_deliveries_per_minute,
            std::time::Duration::from_secs(60),
        ));
        let secrets = match &settings.secrets.key {
            Some(key) => Some(Arc::new(
                crypto::SecretBox::from_base64(key).map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        let registry_tokens =
            pipeline::registry::Issuer::from_settings(&settings.pipeline.registry_token)?
                .map(Arc::new);
        Ok(Self {
            pool,
            registry_tokens,
            settings: Arc::new(settings),
            oidc,
            login_limiter,
            rejected_deliveries,
            secrets,
            kube: Arc::new(std::sync::OnceLock::new()),
            deployment_events: events::channel(),
            outbox_wake: Arc::default(),
            prometheus: Arc::new(std::sync::OnceLock::new()),
            charts: Arc::default(),
            stopping: Arc::new(tokio::sync::watch::channel(false).0),
        })
    }
}

impl Engine {
    /// Tells this replica's workers to stop claiming and its drivers to hand their work over.
    pub fn stop_work(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once every worker, driver and stream of this replica has stopped (after
    /// [`stop_work`]).
    ///
    /// [`stop_work`]: Engine::stop_work
    pub async fn work_stopped(&self) {
        self.stopping.closed().await;
    }

    /// The cluster an environment deploys to; unavailable until the server has connected.
    pub fn cluster(
        &self,
        environment: &str,
    ) -> std::result::Result<kube::Client, enclii_api::ApiError> {
        self.kube
            .get()
            .map(|c| c.for_environment(environment))
            .ok_or_else(|| enclii_api::ApiError::Unavailable {
                message: "this server is not connected to a cluster".into(),
            })
    }
}

/// Failures inside the engine. Each maps to one `ApiError` at the edge; internal causes are logged
/// there and never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] enclii_api::ApiError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The client-facing error; internal causes are logged once, here, with their whole chain.
    pub fn into_api(self) -> enclii_api::ApiError {
        match self {
            Error::Api(e) => e,
            Error::Db(e) => {
                tracing::error!(error = %e, "database error");
                enclii_api::ApiError::internal()
            }
        }
    }
}
