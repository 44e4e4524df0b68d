//! Notifications' wire types: destinations, the events they subscribe to, and their delivery log.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a destination can be told about. The name (`deployment.failed`) is the generic webhook's
/// `type` and what the CLI and the database use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "deployment.started")]
    DeploymentStarted,
    /// Only once the new release serves all of its environment's traffic.
    #[serde(rename = "deployment.succeeded")]
    DeploymentSucceeded,
    #[serde(rename = "deployment.failed")]
    DeploymentFailed,
    /// The canary was rolled back by its analysis or its pods.
    #[serde(rename = "deployment.rolled_back")]
    DeploymentRolledBack,
    #[serde(rename = "deployment.aborted")]
    DeploymentAborted,
    #[serde(rename = "deployment.awaiting_approval")]
    DeploymentAwaitingApproval,
    #[serde(rename = "build.failed")]
    BuildFailed,
    #[serde(rename = "webhook.rejected")]
    WebhookRejected,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.missed")]
    JobMissed,
    #[serde(rename = "service.unhealthy")]
    ServiceUnhealthy,
    #[serde(rename = "service.recovered")]
    ServiceRecovered,
    /// A sample sent by the test button; only to the destination tested.
    #[serde(rename = "test")]
    Test,
    /// Events held back by a destination's rate limit, in one message.
    #[serde(rename = "digest")]
    Digest,
}

impl EventKind {
    /// What a destination may subscribe to (the test and the digest are not subscribed to).
    pub const SUBSCRIBABLE: [EventKind; 12] = [
        EventKind::DeploymentStarted,
        EventKind::DeploymentSucceeded,
        EventKind::DeploymentFailed,
        EventKind::DeploymentRolledBack,
        EventKind::DeploymentAborted,
        EventKind::DeploymentAwaitingApproval,
        EventKind::BuildFailed,
        EventKind::WebhookRejected,
        EventKind::JobFailed,
        EventKind::JobMissed,
        EventKind::ServiceUnhealthy,
        EventKind::ServiceRecovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DeploymentStarted => "deployment.started",
            EventKind::DeploymentSucceeded => "deployment.succeeded",
            EventKind::DeploymentFailed => "deployment.failed",
            EventKind::DeploymentRolledBack => "deployment.rolled_back",
            EventKind::DeploymentAborted => "deployment.aborted",
            EventKind::DeploymentAwaitingApproval => "deployment.awaiting_approval",
            EventKind::BuildFailed => "build.failed",
            EventKind::WebhookRejected => "webhook.rejected",
            EventKind::JobFailed => "job.failed",
            EventKind::JobMissed => "job.missed",
            EventKind::ServiceUnhealthy => "service.unhealthy",
            EventKind::ServiceRecovered => "service.recovered",
            EventKind::Test => "test",
            EventKind::Digest => "digest",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::SUBSCRIBABLE
            .into_iter()
            .chain([EventKind::Test, EventKind::Digest])
            .find(|k| k.as_str() == s)
    }

    /// Whether it reports a problem (drawn in red, and what a digest counts as failures).
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            EventKind::DeploymentFailed
                | EventKind::DeploymentRolledBack
                | EventKind::BuildFailed
                | EventKind::WebhookRejected
                | EventKind::JobFailed
                | EventKind::JobMissed
                | EventKind::ServiceUnhealthy
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// A Slack incoming webhook URL.
    Slack,
    /// A Discord webhook URL.
    Discord,
    /// Any HTTPS endpoint, signed per Standard Webhooks.
    Webhook,
    /// Addresses, through the platform's SMTP server.
    Email,
}

impl DestinationKind {
    pub const ALL: [DestinationKind; 4] = [
        DestinationKind::Slack,
        DestinationKind::Discord,
        DestinationKind::Webhook,
        DestinationKind::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Slack => "slack",
            DestinationKind::Discord => "discord",
            DestinationKind::Webhook => "webhook",
            DestinationKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<DestinationKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for DestinationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A destination as anyone may see it again: never its URL or secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub name: String,
    pub kind: DestinationKind,
    /// Where it goes, without credentials: `https://hooks.slack.com`, or the recipients.
    pub target: String,
    pub events: Vec<EventKind>,
    /// `None`: every environment.
    pub environments: Option<Vec<String>>,
    /// Failed repeatedly, most recently; any successful delivery clears it.
    pub failing: bool,
    pub consecutive_failures: i32,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
}

/// What `notifications/add` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDestination {
    pub name: String,
    pub kind: DestinationKind,
    /// The webhook URL (Slack, Discord, generic); not for email.
    #[serde(default)]
    pub url: Option<String>,
    /// Email addresses; email only.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Empty: every event type.
    #[serde(default)]
    pub events: Vec<EventKind>,
    /// Empty: every environment.
    #[serde(default)]
    pub environments: Vec<String>,
}

/// The answer to `notifications/add`: the generic webhook's signing secret, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationCreated {
    pub destination: Destination,
    pub signing_secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting to be sent, or to be sent again after a failed attempt.
    Pending,
    /// Over the destination's rate limit: goes out in the next digest.
    Held,
    /// Went out inside a digest.
    Digested,
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Held => "held",
            DeliveryState::Digested => "digested",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Held,
            DeliveryState::Digested,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a destination's delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationDelivery {
    pub event_id: String,
    pub event: EventKind,
    /// The event's one-line summary.
    pub summary: String,
    pub environment: Option<String>,
    pub state: DeliveryState,
    pub attempts: i32,
    /// The receiver's last HTTP status (or SMTP reply code).
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    #[serde(with = "crate::timestamp")]
    pub occurred_at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    pub delivered_at: Option<DateTime<Utc>>,
}
