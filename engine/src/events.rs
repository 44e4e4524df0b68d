//! Deployment change events, for live pages. The database notifies `enclii_deployment_events` on
//! every change (triggers, so no writer can forget); one listener per process turns those into a
//! broadcast that any number of watchers subscribe to. The same connection hears the
//! notifications outbox's channel and wakes its delivery worker (a connection held for LISTEN is
//! one the pool no longer has).

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

pub const CHANNEL: &str = "enclii_deployment_events";

/// The process-wide fan-out. Slow watchers lag (and re-read the current state); they never block
/// the listener.
pub fn channel() -> broadcast::Sender<i64> {
    broadcast::channel(1024).0
}

/// Forwards notifications until the pool closes, reconnecting after failures: deployment changes
/// to `tx`, new notifications to `outbox` (`notify::deliver` waits on it).
pub async fn run(
    pool: sqlx::PgPool,
    tx: broadcast::Sender<i64>,
    outbox: std::sync::Arc<tokio::sync::Notify>,
) {
    loop {
        if pool.is_closed() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "deployment events: cannot listen; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all([CHANNEL, crate::notify::CHANNEL]).await {
            tracing::warn!(error = %e, "deployment events: LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(n) if n.channel() == crate::notify::CHANNEL => outbox.notify_one(),
                Ok(n) => {
                    if let Ok(id) = n.payload().parse::<i64>() {
                        // No receivers is fine: nobody is watching.
                        let _ = tx.send(id);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "deployment events: the listener broke; reconnecting");
                    break;
                }
            }
        }
    }
}
