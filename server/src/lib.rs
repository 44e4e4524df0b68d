//! Wiring only: configuration in, a served router out. Behaviour lives in `switchyard-engine`
//! (platform) and `switchyard-app` (pages and server functions).

pub mod bootstrap;
pub mod http;
pub mod telemetry;

use std::future::{Future, IntoFuture};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use leptos::prelude::LeptosOptions;
use switchyard_engine::{Engine, Settings, db};

/// A built application: its router and the engine behind it (tests use the pool directly).
pub struct Switchyard {
    pub router: Router,
    pub engine: Engine,
}

/// Connects to the database, applies migrations and assembles the router.
pub async fn build(settings: Settings) -> anyhow::Result<Switchyard> {
    let pool = db::connect(&settings.database)
        .await
        .context("Failed to open the database pool")?;
    build_with_pool(settings, pool).await
}

/// As [`build`], on a pool the caller opened (tests get theirs from `#[sqlx::test]`).
pub async fn build_with_pool(settings: Settings, pool: sqlx::PgPool) -> anyhow::Result<Switchyard> {
    if settings.database.migrate {
        db::migrate(&pool)
            .await
            .context("Failed to migrate the database")?;
    }
    let engine = Engine::new(pool, settings).map_err(anyhow::Error::msg)?;
    // Expired sessions and abandoned sign-ins are swept hourly, off the request path.
    let sweeper = engine.pool.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            if let Err(error) = switchyard_engine::auth::sessions::sweep(&sweeper).await {
                tracing::warn!(%error, "session sweep failed");
            }
        }
    });
    tokio::spawn(switchyard_engine::events::run(
        engine.pool.clone(),
        engine.deployment_events.clone(),
        engine.outbox_wake.clone(),
    ));
    start_cluster(&engine).await?;
    if let Some(url) = engine.settings.canary.prometheus_url.clone() {
        let _ = engine.prometheus.set(std::sync::Arc::new(
            switchyard_engine::deploy::analysis::Prometheus::new(&url),
        ));
    }
    if engine.settings.notifications.worker {
        let replica = format!("{}-{}", hostname(), std::process::id());
        tokio::spawn(switchyard_engine::notify::deliver::run(
            engine.clone(),
            replica,
        ));
    }
    if engine.settings.status.prober {
        tokio::spawn(switchyard_engine::monitor::run(engine.clone()));
    }
    let leptos_options = leptos_options(&engine.settings);
    let router = http::router(engine.clone(), leptos_options);
    Ok(Switchyard { router, engine })
}

/// Connects to the configured cluster and starts this replica's deployment and build workers.
async fn start_cluster(engine: &Engine) -> anyhow::Result<()> {
    let settings = &engine.settings.cluster;
    if !settings.worker {
        return Ok(());
    }
    let clusters = switchyard_engine::deploy::connect_all(settings)
        .await
        .map_err(anyhow::Error::msg)?;
    let _ = engine.kube.set(clusters.clone());
    let replica = format!("{}-{}", hostname(), std::process::id());
    if engine.settings.pipeline.worker {
        tokio::spawn(switchyard_engine::pipeline::builder::run(
            engine.clone(),
            clusters.clone(),
            replica.clone(),
        ));
    }
    tokio::spawn(switchyard_engine::deploy::worker::run(
        engine.clone(),
        clusters,
        replica,
    ));
    // Scheduled jobs' failed runs and missed schedules, recorded without anyone looking.
    tokio::spawn(switchyard_engine::platform::jobs::watch(engine.clone()));
    // Previews: idle ones slept, expired and closed ones deleted (safe on every replica).
    tokio::spawn(switchyard_engine::previews::watch(engine.clone()));
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "switchyard".into())
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Switchyard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY, a response written in two parts (headers, then a file body) waits for
    // the client's delayed ACK: measured here as 40 ms per static asset.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    // Connection info lets handlers (and the audit log) see the client's address.
    let service = app
        .router
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Graceful, but bounded: a stream whose client never goes away (a live log, an event stream
    // held by a stuck browser) would otherwise keep the process up until the orchestrator kills
    // it, and a rolling upgrade would wait for it.
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let engine = app.engine.clone();
    let shutdown = async move {
        shutdown.await;
        // First the work this replica drives: its workers stop claiming and its drivers release
        // their leases, so another replica resumes each deployment and build at once rather than
        // after the lease expires (`switchyard_engine::leases`). HTTP drains meanwhile.
        engine.stop_work();
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(listener, service).with_graceful_shutdown(shutdown);
    let deadline = async move {
        if stopping_rx.await.is_err() {
            // The server ended on its own; `select!` below takes that branch.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server.into_future() => result.context("HTTP server failed")?,
        () = deadline => tracing::warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "connections still open after the shutdown grace period; closing them"
        ),
    }
    // Releasing a lease is one statement; a driver that cannot reach the database within this
    // keeps its lease until it expires, and the next claim resumes it then.
    if tokio::time::timeout(HANDOVER_GRACE, app.engine.work_stopped())
        .await
        .is_err()
    {
        tracing::warn!("some work did not hand over in time; its leases expire instead");
    }
    // Connections held by background work (LISTEN) are dropped with the process.
    if tokio::time::timeout(Duration::from_secs(5), app.engine.pool.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still in use at shutdown; closing them");
    }
    tracing::info!("switchyard stopped");
    Ok(())
}

/// How long in-flight requests and streams may finish after SIGTERM: within Kubernetes' default
/// termination grace period (30 s), so the process exits on its own before it is killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// How long the workers and drivers may take to hand their leases over after SIGTERM.
pub const HANDOVER_GRACE: Duration = Duration::from_secs(5);

/// Resolves on SIGINT or SIGTERM; in-flight requests then finish before the process exits.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; draining connections");
}

/// Leptos' site options, from our settings rather than its own environment variables, so the binary
/// runs the same whether cargo-leptos started it or not.
pub fn leptos_options(settings: &Settings) -> LeptosOptions {
    // cargo-leptos writes hash.txt beside the binary when it built the site with hashed file names.
    let hash_files = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("hash.txt").exists()))
        .unwrap_or(false);
    LeptosOptions::builder()
        .output_name(option_env!("LEPTOS_OUTPUT_NAME").unwrap_or("switchyard"))
        .site_root(settings.site.root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(settings.listen)
        .hash_files(hash_files)
        .build()
}
