//! A project's notification destinations (project admins): add, list, remove, send a sample, read
//! the delivery log. A webhook URL (Slack's and Discord's are their own credentials) and a generic
//! webhook's signing secret are sealed at rest with the row's id as associated data and never
//! shown again; the signing secret is shown once, in the answer that creates it.
//!
//! A URL is checked like a status page target: https, and public addresses only (the delivery
//! client checks again at every connection), unless the operator allows private ones: otherwise a
//! tenant could make Switchyard post to the cluster's or the cloud's internal endpoints.

use base64::Engine as _;
use enclii_api::{
    ApiError, DeliveryState, Destination, DestinationCreated, DestinationKind, EventKind,
    NewDestination, NotificationDelivery,
};
use serde_json::json;
use uuid::Uuid;

use super::{Event, Facts, record};
use crate::Engine;
use crate::audit;
use crate::auth::{Action, Caller};
use crate::platform::project_access;

/// Destinations a project may have.
pub const MAX_PER_PROJECT: i64 = 20;

/// Associated data of a destination's sealed URL and signing secret: a ciphertext copied onto
/// another row (or from one field to the other) does not open.
pub fn url_aad(id: Uuid) -> String {
    format!("notification-url:{id}")
}
pub fn signing_aad(id: Uuid) -> String {
    format!("notification-signing:{id}")
}

/// Checks what an admin asked for, before anything is written: the name, the URL's shape (https
/// unless private destinations are allowed), the recipients, the events (none: all).
pub fn validate(
    new: &NewDestination,
    allow_private: bool,
) -> Result<(Option<url::Url>, Vec<EventKind>), ApiError> {
    let name_ok = !new.name.is_empty()
        && new.name.len() <= 32
        && new
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !new.name.starts_with('-')
        && !new.name.ends_with('-');
    if !name_ok {
        return Err(ApiError::invalid(format!(
            "`{}` is not a destination name: use 1-32 lowercase letters, digits and dashes",
            new.name
        )));
    }
    if let Some(e) = new
        .events
        .iter()
        .find(|e| !EventKind::SUBSCRIBABLE.contains(e))
    {
        return Err(ApiError::invalid(format!(
            "`{e}` is not an event a destination can subscribe to"
        )));
    }
    let events = if new.events.is_empty() {
        EventKind::SUBSCRIBABLE.to_vec()
    } else {
        let mut e = new.events.clone();
        e.sort();
        e.dedup();
        e
    };
    match new.kind {
        DestinationKind::Email => {
            if new.url.is_some() {
                return Err(ApiError::invalid(
                    "an email destination takes recipients, not a URL",
                ));
            }
            if new.recipients.is_empty() || new.recipients.len() > 20 {
                return Err(ApiError::invalid(
                    "an email destination needs between 1 and 20 recipients",
                ));
            }
            for r in &new.recipients {
                r.parse::<lettre::Address>()
                    .map_err(|_| ApiError::invalid(format!("`{r}` is not an email address")))?;
            }
            Ok((None, events))
        }
        kind => {
            let Some(raw) = new.url.as_deref() else {
                return Err(ApiError::invalid(format!(
                    "a {kind} destination needs the webhook URL (--url)"
                )));
            };
            // Never echo the URL back: for Slack and Discord it is the credential.
            let url = url::Url::parse(raw.trim())
                .map_err(|_| ApiError::invalid(format!("the {kind} URL is not a URL")))?;
            let scheme_ok = url.scheme() == "https" || (allow_private && url.scheme() == "http");
            if !scheme_ok || url.host_str().is_none() {
                return Err(ApiError::invalid(format!(
                    "the {kind} URL must be https://…"
                )));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(ApiError::invalid(format!(
                    "the {kind} URL must not hold a user name or password"
                )));
            }
            if !new.recipients.is_empty() {
                return Err(ApiError::invalid(format!(
                    "a {kind} destination takes a URL, not recipients"
                )));
            }
            Ok((Some(url), events))
        }
    }
}

/// What the dashboard shows of where a destination goes.
pub fn target_hint(kind: DestinationKind, url: Option<&url::Url>, recipients: &[String]) -> String {
    match (kind, url) {
        (DestinationKind::Email, _) | (_, None) => recipients.join(", "),
        (_, Some(u)) => format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default()),
    }
}

fn to_api(r: DestinationRow) -> Destination {
    Destination {
        name: r.name,
        kind: DestinationKind::parse(&r.kind).unwrap_or(DestinationKind::Webhook),
        target: r.target_hint,
        events: r
            .events
            .iter()
            .filter_map(|e| EventKind::parse(e))
            .collect(),
        environments: r.environments,
        failing: r.failing,
        consecutive_failures: r.consecutive_failures,
        created_at: r.created_at,
    }
}

struct DestinationRow {
    name: String,
    kind: String,
    target_hint: String,
    events: Vec<String>,
    environments: Option<Vec<String>>,
    failing: bool,
    consecutive_failures: i32,
    created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn list(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
) -> crate::Result<Vec<Destination>> {
    let project =
        project_access(&engine.pool, caller, project, Action::ManageNotifications).await?;
    let rows = sqlx::query_as!(
        DestinationRow,
        "SELECT name, kind, target_hint, events, environments, failing, consecutive_failures, created_at
         FROM notification_destinations WHERE project_id = $1 ORDER BY name",
        project.id
    )
    .fetch_all(&engine.pool)
    .await?;
    Ok(rows.into_iter().map(to_api).collect())
}

pub async fn add(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    new: NewDestination,
) -> crate::Result<DestinationCreated> {
    let project =
        project_access(&engine.pool, caller, project, Action::ManageNotifications).await?;
    let settings = &engine.settings.notifications;
    let (url, events) = validate(&new, settings.allow_private_destinations)?;
    if let Some(url) = &url {
        if !settings.allow_private_destinations {
            crate::monitor::check_url(url.as_str()).await.map_err(|e| {
                ApiError::invalid(format!(
                    "the {} URL is refused: {}",
                    new.kind,
                    e.to_string()
                        .replace("status page probes", "notifications go to")
                        .replace(
                            "status.allow_private_targets",
                            "notifications.allow_private_destinations"
                        )
                ))
            })?;
        }
    }
    if new.kind == DestinationKind::Email && settings.smtp.is_none() {
        return Err(ApiError::Unavailable {
            message: "email destinations need the platform's SMTP server: an operator sets notifications.smtp".into(),
        }
        .into());
    }
    let sealer = engine
        .secrets
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable {
            message: "destinations cannot be stored: the server has no secrets.key configured"
                .into(),
        })?;
    let mut environments: Vec<String> = new.environments.clone();
    environments.sort();
    environments.dedup();
    if !environments.is_empty() {
        let known: Vec<String> = sqlx::query_scalar!(
            "SELECT name FROM environments WHERE project_id = $1 AND name = ANY($2)",
            project.id,
            &environments
        )
        .fetch_all(&engine.pool)
        .await?;
        if let Some(missing) = environments.iter().find(|e| !known.contains(e)) {
            return Err(ApiError::not_found(format!(
                "project {} has no environment `{missing}`",
                project.slug
            ))
            .into());
        }
    }
    let id = Uuid::new_v4();
    let sealed_url = url.as_ref().map(|u| sealer.seal(u.as_str(), &url_aad(id)));
    let secret = (new.kind == DestinationKind::Webhook).then(|| {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the operating system's random source failed");
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    });
    let sealed_secret = secret.as_ref().map(|s| sealer.seal(s, &signing_aad(id)));
    let hint = target_hint(new.kind, url.as_ref(), &new.recipients);
    let event_names: Vec<String> = events.iter().map(|e| e.as_str().to_owned()).collect();
    let environments = (!environments.is_empty()).then_some(environments);
    let mut tx = engine.pool.begin().await?;
    // Bounded: a destination's rate limit is its own, so many destinations would multiply what a
    // project can send through the platform (its SMTP server above all).
    let count: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM notification_destinations WHERE project_id = $1"#,
        project.id
    )
    .fetch_one(&mut *tx)
    .await?;
    if count >= MAX_PER_PROJECT {
        return Err(ApiError::conflict(format!(
            "project {} has {MAX_PER_PROJECT} destinations, the most a project may have: remove one first",
            project.slug
        ))
        .into());
    }
    let row = sqlx::query_as!(
        DestinationRow,
        r#"INSERT INTO notification_destinations
               (id, project_id, name, kind, target_hint, url_nonce, url_ciphertext, signing_nonce,
                signing_ciphertext, recipients, events, environments, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (project_id, name) DO NOTHING
           RETURNING name, kind, target_hint, events, environments, failing, consecutive_failures, created_at"#,
        id,
        project.id,
        new.name,
        new.kind.as_str(),
        hint,
        sealed_url.as_ref().map(|(n, _)| n.as_slice()),
        sealed_url.as_ref().map(|(_, c)| c.as_slice()),
        sealed_secret.as_ref().map(|(n, _)| n.as_slice()),
        sealed_secret.as_ref().map(|(_, c)| c.as_slice()),
        &new.recipients,
        &event_names,
        environments.as_deref(),
        caller.map(|c| c.user_id)
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        ApiError::conflict(format!(
            "project {} already has a destination named {}",
            project.slug, new.name
        ))
    })?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("notification.add")
            .target("notification_destination", id.to_string())
            .project(project.id)
            .details(json!({ "name": new.name, "kind": new.kind.as_str(), "target": row.target_hint, "events": event_names })),
    )
    .await?;
    tx.commit().await?;
    Ok(DestinationCreated {
        destination: to_api(row),
        signing_secret: secret,
    })
}

async fn destination_id(
    engine: &Engine,
    project_id: Uuid,
    project: &str,
    name: &str,
) -> crate::Result<Uuid> {
    sqlx::query_scalar!(
        "SELECT id FROM notification_destinations WHERE project_id = $1 AND name = $2",
        project_id,
        name
    )
    .fetch_optional(&engine.pool)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!("project {project} has no destination named {name}")).into()
    })
}

pub async fn remove(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    name: &str,
) -> crate::Result<()> {
    let project =
        project_access(&engine.pool, caller, project, Action::ManageNotifications).await?;
    let id = destination_id(engine, project.id, &project.slug, name).await?;
    let mut tx = engine.pool.begin().await?;
    sqlx::query!("DELETE FROM notification_destinations WHERE id = $1", id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("notification.remove")
            .target("notification_destination", id.to_string())
            .project(project.id)
            .details(json!({ "name": name })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Queues a sample message to one destination, through the outbox like any event; returns the
/// event's id (its delivery shows in the log).
pub async fn test(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    name: &str,
) -> crate::Result<String> {
    let project =
        project_access(&engine.pool, caller, project, Action::ManageNotifications).await?;
    let id = destination_id(engine, project.id, &project.slug, name).await?;
    let who = caller.map(|c| c.display_name.clone()).unwrap_or_default();
    let mut tx = engine.pool.begin().await?;
    let event = record(
        &mut tx,
        &Event {
            kind: EventKind::Test,
            project_id: project.id,
            facts: Facts {
                project: project.slug.clone(),
                title: format!("Test notification for {} from Enclii", project.slug),
                reason: format!("{who} sent this from the destination {name}: it works."),
                link: format!("/projects/{}/notifications", project.slug),
                ..Facts::default()
            },
        },
        Some(id),
    )
    .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("notification.test")
            .target("notification_destination", id.to_string())
            .project(project.id),
    )
    .await?;
    tx.commit().await?;
    Ok(event.to_string())
}

/// A destination's deliveries, newest first.
pub async fn log(
    engine: &Engine,
    caller: Option<&Caller>,
    project: &str,
    name: &str,
    limit: i64,
) -> crate::Result<Vec<NotificationDelivery>> {
    let project =
        project_access(&engine.pool, caller, project, Action::ManageNotifications).await?;
    let id = destination_id(engine, project.id, &project.slug, name).await?;
    let rows = sqlx::query!(
        r#"SELECT e.id AS event_id, e.kind, e.facts, e.environment, e.occurred_at,
                  d.state, d.attempts, d.last_status, d.last_error, d.delivered_at
           FROM notification_deliveries d JOIN notification_events e ON e.id = d.event_id
           WHERE d.destination_id = $1 ORDER BY d.id DESC LIMIT $2"#,
        id,
        limit.clamp(1, 500)
    )
    .fetch_all(&engine.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let facts: Facts = serde_json::from_value(r.facts).unwrap_or_default();
            NotificationDelivery {
                event_id: r.event_id.to_string(),
                event: EventKind::parse(&r.kind).unwrap_or(EventKind::Test),
                summary: facts.title,
                environment: r.environment,
                state: DeliveryState::parse(&r.state).unwrap_or(DeliveryState::Pending),
                attempts: r.attempts,
                last_status: r.last_status,
                last_error: r.last_error,
                occurred_at: r.occurred_at,
                delivered_at: r.delivered_at,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: DestinationKind, url: Option<&str>, recipients: &[&str]) -> NewDestination {
        NewDestination {
            name: "ops".into(),
            kind,
            url: url.map(str::to_owned),
            recipients: recipients.iter().map(|s| s.to_string()).collect(),
            events: vec![],
            environments: vec![],
        }
    }

    #[test]
    fn webhook_urls_must_be_https_without_credentials_and_are_never_echoed() {
        let secret_url = "http://hooks.slack.com/services/T000/B000/XXXXSECRET";
        let e = validate(&new(DestinationKind::Slack, Some(secret_url), &[]), false).unwrap_err();
        assert!(e.to_string().contains("must be https"), "{e}");
        assert!(!e.to_string().contains("XXXXSECRET"));
        // Allowed for loopback receivers when the operator allows private destinations.
        assert!(validate(&new(DestinationKind::Slack, Some(secret_url), &[]), true).is_ok());
        let e = validate(
            &new(
                DestinationKind::Webhook,
                Some("https://u:p@example.com/h"),
                &[],
            ),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("user name or password"));
        let e = validate(
            &new(DestinationKind::Discord, Some("not a url XXXXSECRET"), &[]),
            false,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("XXXXSECRET"));
        assert!(validate(&new(DestinationKind::Discord, None, &[]), false).is_err());
    }

    #[test]
    fn email_destinations_take_valid_addresses_only() {
        assert!(
            validate(
                &new(DestinationKind::Email, None, &["ops@example.com"]),
                false
            )
            .is_ok()
        );
        let e = validate(&new(DestinationKind::Email, None, &["ops@"]), false).unwrap_err();
        assert!(e.to_string().contains("`ops@` is not an email address"));
        assert!(validate(&new(DestinationKind::Email, None, &[]), false).is_err());
        assert!(
            validate(
                &new(
                    DestinationKind::Email,
                    Some("https://x.example"),
                    &["a@b.c"]
                ),
                false
            )
            .is_err()
        );
    }

    #[test]
    fn no_events_means_every_event_and_internal_kinds_cannot_be_subscribed_to() {
        let (_, events) = validate(
            &new(DestinationKind::Slack, Some("https://h.example/x"), &[]),
            false,
        )
        .unwrap();
        assert_eq!(events, EventKind::SUBSCRIBABLE.to_vec());
        let mut n = new(DestinationKind::Slack, Some("https://h.example/x"), &[]);
        n.events = vec![EventKind::Digest];
        assert!(validate(&n, false).is_err());
        n.events = vec![
            EventKind::DeploymentFailed,
            EventKind::BuildFailed,
            EventKind::DeploymentFailed,
        ];
        assert_eq!(
            validate(&n, false).unwrap().1,
            vec![EventKind::DeploymentFailed, EventKind::BuildFailed]
        );
    }

    #[test]
    fn names_are_slugs() {
        let mut n = new(DestinationKind::Slack, Some("https://h.example/x"), &[]);
        for bad in ["", "Ops", "-ops", "ops channel", &"a".repeat(33)] {
            n.name = bad.to_owned();
            assert!(validate(&n, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_target_shown_is_the_host_only() {
        let u = url::Url::parse("https://hooks.slack.com/services/T/B/SECRET").unwrap();
        assert_eq!(
            target_hint(DestinationKind::Slack, Some(&u), &[]),
            "https://hooks.slack.com"
        );
        assert_eq!(
            target_hint(
                DestinationKind::Email,
                None,
                &["a@b.c".into(), "d@e.f".into()]
            ),
            "a@b.c, d@e.f"
        );
    }
}
