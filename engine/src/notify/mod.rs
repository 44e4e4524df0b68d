//! Notifications: telling a project's people when something happens, reliably and without spam.
//!
//! - The **outbox** ([`record`]): a state change writes its event in the same transaction as the
//!   change itself (a deployment's terminal state, a build's failure, a scheduled job's finding, a
//!   status alert), together with one delivery row per destination that subscribes to it. A
//!   change that commits has its notifications; one that rolls back has none; a crash in between
//!   loses nothing, because there is no in between.
//! - The **delivery worker** ([`deliver`]) sends what is due, on its own time: nothing the deploy
//!   driver does waits for a receiver, and a receiver's failure is recorded on its delivery, never
//!   on the deployment.
//! - **Decisions** ([`policy`]): retries' backoff, the per-destination rate limit that holds back
//!   a burst and sends it as one digest, and when a destination counts as failing, as plain
//!   functions tested over their tables.
//! - **Formats** ([`render`]): Slack, Discord, a generic webhook signed per Standard Webhooks, and
//!   email, each from the same [`Facts`].
//! - **Destinations** ([`destinations`]): what project admins manage, their URLs and signing
//!   secrets sealed like other secrets.

pub mod deliver;
pub mod destinations;
pub mod facts;
pub mod policy;
pub mod render;

use std::collections::BTreeMap;

pub use enclii_api::{DeliveryState, DestinationKind, EventKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The channel the outbox notifies on commit, so that an idle worker sends at once.
pub const CHANNEL: &str = "enclii_notifications";

/// What happened, where and why: stored with the event, rendered for each destination.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Facts {
    /// The project's slug.
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// What happened, in one line: "api: deployment #42 to production rolled back".
    pub title: String,
    /// Why, in words (the deployment's reason, the build's failure); bounded by [`bounded`].
    #[serde(default)]
    pub reason: String,
    /// The dashboard page that shows it, as a path (`/projects/acme/deployments/42`).
    pub link: String,
    /// Machine-readable particulars for the generic webhook (`deployment_id`, `error_rate_percent`…).
    #[serde(default)]
    pub details: BTreeMap<String, serde_json::Value>,
}

/// An event about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub project_id: Uuid,
    pub facts: Facts,
}

/// The most of a reason a message carries.
pub const REASON_LIMIT: usize = 600;

/// The first line of `text`, at most [`REASON_LIMIT`] characters (cut on a character boundary).
/// Only the first: what follows a failed release command's reason is its log tail, the tenant's
/// own output, which may print anything (a connection string) and belongs on the dashboard.
pub fn bounded(text: &str) -> String {
    let mut out = text.lines().next().unwrap_or_default().to_owned();
    if out.chars().count() > REASON_LIMIT {
        out = out.chars().take(REASON_LIMIT - 1).collect();
        out.push('…');
    }
    out
}

/// Writes `event` to the outbox and queues a delivery for every destination of its project that
/// subscribes to its kind (and its environment, when the destination names environments), in the
/// caller's transaction: call it inside the transaction that makes the change it reports.
/// `only` limits it to one destination (the test button's sample). Returns the event's id.
pub async fn record(
    conn: &mut sqlx::PgConnection,
    event: &Event,
    only: Option<Uuid>,
) -> sqlx::Result<Uuid> {
    let facts = serde_json::to_value(&event.facts).expect("facts serialize to JSON");
    let id = sqlx::query_scalar!(
        "INSERT INTO notification_events (project_id, kind, environment, facts)
         VALUES ($1, $2, $3, $4) RETURNING id",
        event.project_id,
        event.kind.as_str(),
        event.facts.environment,
        facts
    )
    .fetch_one(&mut *conn)
    .await?;
    let queued = sqlx::query!(
        "INSERT INTO notification_deliveries (event_id, destination_id)
         SELECT $1, d.id FROM notification_destinations d
         WHERE d.project_id = $2
           AND ($3::uuid IS NULL OR d.id = $3)
           AND ($3::uuid IS NOT NULL OR $4 = ANY (d.events))
           AND ($3::uuid IS NOT NULL OR d.environments IS NULL OR $5 = ANY (d.environments))",
        id,
        event.project_id,
        only,
        event.kind.as_str(),
        event.facts.environment
    )
    .execute(&mut *conn)
    .await?;
    if queued.rows_affected() > 0 {
        // Delivered to listeners when the transaction commits, never before.
        sqlx::query!("SELECT pg_notify('enclii_notifications', '')")
            .execute(&mut *conn)
            .await?;
    }
    metrics::counter!("enclii_notification_events_total", "kind" => event.kind.as_str())
        .increment(1);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_to_their_first_line_and_a_bounded_length() {
        assert_eq!(
            bounded("release command exited with 3\nDATABASE_URL=postgres://u:p@db"),
            "release command exited with 3"
        );
        let long = "é".repeat(REASON_LIMIT + 10);
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), REASON_LIMIT);
        assert!(cut.ends_with('…'));
    }
}
