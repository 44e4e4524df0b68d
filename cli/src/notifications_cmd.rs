//! `enclii notifications list|add|remove|test|log`: a project's notification destinations.

use std::io::Read;
use std::time::{Duration, Instant};

use clap::Subcommand;
use enclii_api::{
    DeliveryState, Destination, DestinationCreated, DestinationKind, EventKind, NewDestination,
    NotificationDelivery, paths,
};
use serde_json::json;

use crate::client::Failure;
use crate::commands::Context;
use crate::output::{self, Format};

#[derive(Subcommand)]
pub enum NotificationsCommand {
    /// The project's destinations, and whether each is failing.
    List,
    /// Adds a destination. Slack, Discord and webhook destinations take a URL (better from standard
    /// input: `--url -`, so that it stays out of the shell's history); email takes recipients.
    Add {
        name: String,
        #[arg(long, value_parser = parse_kind)]
        kind: DestinationKind,
        /// The webhook URL, or `-` to read it from standard input.
        #[arg(long)]
        url: Option<String>,
        /// Email recipients, comma-separated.
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// Event types, comma-separated (default: all): deployment.started, deployment.succeeded,
        /// deployment.failed, deployment.rolled_back, deployment.aborted,
        /// deployment.awaiting_approval, build.failed, webhook.rejected, job.failed, job.missed,
        /// service.unhealthy, service.recovered.
        #[arg(long, value_delimiter = ',', value_parser = parse_event)]
        events: Vec<EventKind>,
        /// Environments, comma-separated (default: all).
        #[arg(long = "env", value_delimiter = ',')]
        environments: Vec<String>,
    },
    /// Removes a destination.
    Remove { name: String },
    /// Sends a sample message; with `--wait`, waits for its delivery and says how it went.
    Test {
        name: String,
        #[arg(long)]
        wait: bool,
    },
    /// A destination's deliveries, newest first: event, state, attempts, last answer.
    Log {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

fn parse_kind(s: &str) -> Result<DestinationKind, String> {
    DestinationKind::parse(s)
        .ok_or_else(|| format!("`{s}` is not slack, discord, webhook or email"))
}

fn parse_event(s: &str) -> Result<EventKind, String> {
    EventKind::parse(s)
        .filter(|e| EventKind::SUBSCRIBABLE.contains(e))
        .ok_or_else(|| {
            format!("`{s}` is not an event type (see `enclii notifications add --help`)")
        })
}

pub fn run(ctx: &Context, command: NotificationsCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    match command {
        NotificationsCommand::List => {
            let list: Vec<Destination> =
                client.call(paths::NOTIFICATIONS_LIST, &json!({"project": project}))?;
            match ctx.output {
                Format::Json => output::json(&list),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|d| {
                            vec![
                                d.name.clone(),
                                d.kind.to_string(),
                                d.target.clone(),
                                if d.events.len() == EventKind::SUBSCRIBABLE.len() {
                                    "all".into()
                                } else {
                                    d.events
                                        .iter()
                                        .map(|e| e.as_str())
                                        .collect::<Vec<_>>()
                                        .join(",")
                                },
                                d.environments
                                    .as_ref()
                                    .map(|e| e.join(","))
                                    .unwrap_or_else(|| "all".into()),
                                if d.failing {
                                    format!("failing ({} in a row)", d.consecutive_failures)
                                } else {
                                    "ok".into()
                                },
                            ]
                        })
                        .collect();
                    output::table(
                        &["NAME", "KIND", "TARGET", "EVENTS", "ENVS", "STATE"],
                        &rows,
                    );
                }
            }
        }
        NotificationsCommand::Add {
            name,
            kind,
            url,
            to,
            events,
            environments,
        } => {
            let url = match url.as_deref() {
                Some("-") => {
                    let mut text = String::new();
                    std::io::stdin().read_to_string(&mut text).map_err(|e| {
                        Failure::new(2, format!("cannot read the URL from standard input: {e}"))
                    })?;
                    Some(text.trim().to_owned())
                }
                other => other.map(str::to_owned),
            };
            let created: DestinationCreated = client.call(
                paths::NOTIFICATIONS_ADD,
                &json!({"project": project, "destination": NewDestination {
                    name, kind, url, recipients: to, events, environments,
                }}),
            )?;
            match ctx.output {
                Format::Json => output::json(&created),
                Format::Table => {
                    println!(
                        "added {} ({}, {})",
                        created.destination.name,
                        created.destination.kind,
                        created.destination.target
                    );
                    if let Some(secret) = &created.signing_secret {
                        println!(
                            "signing secret (shown once; verify `webhook-signature` per Standard Webhooks with it):"
                        );
                        println!("{secret}");
                    }
                }
            }
        }
        NotificationsCommand::Remove { name } => {
            let () = client.call(
                paths::NOTIFICATIONS_REMOVE,
                &json!({"project": project, "name": name}),
            )?;
            println!("removed {name}");
        }
        NotificationsCommand::Test { name, wait } => {
            let event: String = client.call(
                paths::NOTIFICATIONS_TEST,
                &json!({"project": project, "name": name}),
            )?;
            if !wait {
                println!(
                    "queued test event {event}; `enclii notifications log {name}` shows its delivery"
                );
                return Ok(());
            }
            let started = Instant::now();
            loop {
                let log: Vec<NotificationDelivery> = client.call(
                    paths::NOTIFICATIONS_LOG,
                    &json!({"project": project, "name": name, "limit": 50}),
                )?;
                let mine = log.iter().find(|d| d.event_id == event);
                match mine.map(|d| d.state) {
                    Some(DeliveryState::Delivered) => {
                        println!("delivered to {name}");
                        return Ok(());
                    }
                    Some(DeliveryState::Failed) => {
                        let d = mine.expect("matched above");
                        return Err(Failure::new(
                            1,
                            format!(
                                "not delivered to {name}: {}",
                                d.last_error.clone().unwrap_or_else(|| "refused".into())
                            ),
                        ));
                    }
                    state => {
                        if started.elapsed() > Duration::from_secs(60) {
                            let why =
                                mine.and_then(|d| d.last_error.clone()).unwrap_or_else(|| {
                                    format!(
                                        "still {}",
                                        state.map(|s| s.as_str()).unwrap_or("queued")
                                    )
                                });
                            return Err(Failure::new(
                                124,
                                format!("not delivered to {name} within 60 s: {why}"),
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
        }
        NotificationsCommand::Log { name, limit } => {
            let log: Vec<NotificationDelivery> = client.call(
                paths::NOTIFICATIONS_LOG,
                &json!({"project": project, "name": name, "limit": limit}),
            )?;
            match ctx.output {
                Format::Json => output::json(&log),
                Format::Table => {
                    let rows: Vec<Vec<String>> = log
                        .iter()
                        .map(|d| {
                            vec![
                                d.occurred_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                                d.event.to_string(),
                                d.state.to_string(),
                                d.attempts.to_string(),
                                format!(
                                    "{} {}",
                                    d.last_status.map(|s| s.to_string()).unwrap_or_default(),
                                    d.last_error.clone().unwrap_or_default()
                                )
                                .trim()
                                .to_owned(),
                                d.summary.clone(),
                            ]
                        })
                        .collect();
                    output::table(
                        &[
                            "WHEN",
                            "EVENT",
                            "STATE",
                            "ATTEMPTS",
                            "LAST ANSWER",
                            "SUMMARY",
                        ],
                        &rows,
                    );
                }
            }
        }
    }
    Ok(())
}
