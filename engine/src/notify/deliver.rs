//! The delivery worker: sends what the outbox holds, on its own time.
//!
//! Each replica runs one. A delivery is claimed with `FOR UPDATE SKIP LOCKED` and leased to one
//! claim (a token per claim, see [`crate::leases`]); every write about it is fenced by that lease,
//! so a replica that stalled past its lease cannot overwrite what its successor recorded. A replica
//! killed while sending leaves its deliveries leased until the lease ends; another then sends them
//! with the same `webhook-id` (and email `Message-ID`), which is what receivers deduplicate by: the
//! only window in which a receiver can see a message twice is a crash between its answer and our
//! record of it, and then it can tell.
//!
//! Before a first attempt, the destination's rate limit is consulted under the destination's row
//! lock ([`policy::admit`]); what is over it is held, and when the window ends the held events
//! (and the one that found the window open) go out as one digest. Retries are not counted against
//! the limit: they are bounded by their backoff.
//!
//! Nothing here is awaited by a deployment: the deploy driver only writes rows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use uuid::Uuid;

use super::policy::{self, Admission, Attempt, Next, RateLimit, Retries, Window};
use super::{DestinationKind, EventKind, Facts, facts, render};
use crate::Engine;
use crate::config::{NotificationSettings, SmtpSecurity, SmtpSettings};

/// Deliveries claimed at once.
const BATCH: i64 = 8;
/// Sent at once: each may hold a pooled connection (its destination's row lock), and the pool is
/// shared with the deploy driver, which must never wait for notifications.
const CONCURRENT: usize = 4;

/// Claims and sends deliveries until the replica stops.
pub async fn run(engine: Engine, replica: String) {
    let settings = engine.settings.notifications.clone();
    let http = match http_client(&settings) {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(%error, "notifications: could not build the HTTP client; not delivering");
            return;
        }
    };
    let mut stopping = engine.stopping.subscribe();
    let mut swept_at: Option<std::time::Instant> = None;
    loop {
        if engine.pool.is_closed() || *stopping.borrow() {
            return;
        }
        if swept_at.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            if let Err(error) = sweep(&engine.pool, settings.retention_days).await {
                tracing::warn!(%error, "notifications: could not delete old events");
            }
            swept_at = Some(std::time::Instant::now());
        }
        let token = crate::leases::claim_token(&replica);
        match claim(&engine.pool, &token, &settings).await {
            Ok(batch) if !batch.is_empty() => {
                let full = batch.len() as i64 == BATCH;
                futures::stream::iter(batch)
                    .for_each_concurrent(CONCURRENT, |claimed| {
                        let (engine, http, token) = (&engine, &http, token.as_str());
                        async move {
                            if let Err(error) = process(engine, http, token, claimed).await {
                                tracing::warn!(%error, "notifications: a delivery could not be recorded; it returns when its lease ends");
                            }
                        }
                    })
                    .await;
                if full {
                    continue;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "notifications: claiming deliveries failed; retrying shortly");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        // New events wake it at once (`events::run` hears the outbox's channel); the timeout
        // catches retries and held deliveries coming due, and a lost wake-up.
        tokio::select! {
            _ = tokio::time::timeout(Duration::from_secs(1), engine.outbox_wake.notified()) => {}
            _ = stopping.changed() => {}
        }
    }
}

/// The client every webhook goes through: no redirects, no proxy, and (unless private destinations
/// are allowed) only public addresses at every connection, as the status prober's.
pub fn http_client(settings: &NotificationSettings) -> reqwest::Result<reqwest::Client> {
    crate::monitor::outbound_client(
        settings.allow_private_destinations,
        Duration::from_millis(settings.timeout_ms),
        "enclii-notifications/1",
    )
    .timeout(Duration::from_millis(settings.timeout_ms))
    .build()
}

#[derive(Debug)]
struct Claimed {
    id: i64,
    event_id: Uuid,
    destination_id: Uuid,
    state: String,
    attempts: i32,
    kind: String,
}

async fn claim(
    pool: &PgPool,
    token: &str,
    settings: &NotificationSettings,
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as!(
        Claimed,
        r#"UPDATE notification_deliveries SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
           WHERE id IN (SELECT id FROM notification_deliveries
                        WHERE state IN ('pending', 'held') AND next_attempt_at <= now()
                          AND (lease_until IS NULL OR lease_until < now())
                        ORDER BY next_attempt_at, id
                        FOR UPDATE SKIP LOCKED LIMIT $3)
           RETURNING id, event_id, destination_id, state, attempts,
                     (SELECT kind FROM notification_events e WHERE e.id = event_id) AS "kind!""#,
        token,
        settings.lease_secs.max(5) as f64,
        BATCH
    )
    .fetch_all(pool)
    .await
}

/// What is sent, once admitted: the delivery's own event, or a digest standing for several.
struct Outgoing {
    delivery: i64,
    event_id: Uuid,
    kind: EventKind,
    facts: Facts,
    occurred_at: DateTime<Utc>,
}

#[tracing::instrument(skip_all, fields(delivery = claimed.id, destination = %claimed.destination_id))]
async fn process(
    engine: &Engine,
    http: &reqwest::Client,
    token: &str,
    claimed: Claimed,
) -> sqlx::Result<()> {
    let settings = &engine.settings.notifications;
    // A digest was admitted when it was made (a crash before its first attempt must not fold it
    // into another digest); every other first attempt asks the rate limit.
    let outgoing = if claimed.attempts == 0 && claimed.kind != EventKind::Digest.as_str() {
        match admit(engine, token, &claimed).await? {
            Some(o) => o,
            None => return Ok(()),
        }
    } else {
        let e = sqlx::query!(
            "SELECT kind, facts, occurred_at FROM notification_events WHERE id = $1",
            claimed.event_id
        )
        .fetch_one(&engine.pool)
        .await?;
        Outgoing {
            delivery: claimed.id,
            event_id: claimed.event_id,
            kind: EventKind::parse(&e.kind).unwrap_or(EventKind::Test),
            facts: serde_json::from_value(e.facts).unwrap_or_default(),
            occurred_at: e.occurred_at,
        }
    };
    let Some(destination) = load_destination(engine, claimed.destination_id).await? else {
        return Ok(());
    };
    let (attempt, status, error) = match destination.open(engine) {
        Ok(open) => send(engine, http, &open, &outgoing).await,
        Err(why) => (Attempt::Permanent, None, Some(why)),
    };
    record_attempt(
        engine, token, &outgoing, &claimed, attempt, status, error, settings,
    )
    .await
}

/// Under the destination's row lock: whether this delivery may go now, as itself or inside a
/// digest of what its destination holds. `None`: held, or already sent inside another's digest.
async fn admit(engine: &Engine, token: &str, claimed: &Claimed) -> sqlx::Result<Option<Outgoing>> {
    let settings = &engine.settings.notifications;
    let mut tx = engine.pool.begin().await?;
    let Some(dest) = sqlx::query!(
        r#"SELECT d.window_started_at, d.window_sent, p.slug, now() AS "now!"
           FROM notification_destinations d
           JOIN projects p ON p.id = d.project_id WHERE d.id = $1 FOR UPDATE OF d"#,
        claimed.destination_id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    // Another replica's digest may have taken this one while it waited for the lock.
    let mine = sqlx::query_scalar!(
        "SELECT state FROM notification_deliveries WHERE id = $1 AND lease_owner = $2",
        claimed.id,
        token
    )
    .fetch_optional(&mut *tx)
    .await?;
    if mine.as_deref() != Some(claimed.state.as_str()) {
        return Ok(None);
    }
    let limit = RateLimit {
        per_window: settings.per_window,
        window: Duration::from_secs(settings.window_secs),
    };
    let current = Window {
        started_at: dest.window_started_at,
        sent: dest.window_sent.max(0) as u32,
    };
    // The database's clock, the one the claim compares `next_attempt_at` with.
    match policy::admit(current, limit, dest.now) {
        Admission::Hold { until } => {
            sqlx::query!(
                "UPDATE notification_deliveries SET state = 'held', next_attempt_at = $3,
                        lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND lease_owner = $2",
                claimed.id,
                token,
                until
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            metrics::counter!("enclii_notification_deliveries_total", "outcome" => "held")
                .increment(1);
            Ok(None)
        }
        Admission::Send { window } => {
            sqlx::query!(
                "UPDATE notification_destinations SET window_started_at = $2, window_sent = $3 WHERE id = $1",
                claimed.destination_id,
                window.started_at,
                window.sent as i32
            )
            .execute(&mut *tx)
            .await?;
            // Everything this destination holds goes out now, with this one, in one message.
            let held = sqlx::query!(
                r#"SELECT d.id, e.kind, e.facts, e.occurred_at FROM notification_deliveries d
                   JOIN notification_events e ON e.id = d.event_id
                   WHERE d.destination_id = $1 AND (d.state = 'held' OR d.id = $2)
                   ORDER BY e.occurred_at, d.id"#,
                claimed.destination_id,
                claimed.id
            )
            .fetch_all(&mut *tx)
            .await?;
            if held.len() <= 1 {
                let e = sqlx::query!(
                    "SELECT kind, facts, occurred_at FROM notification_events WHERE id = $1",
                    claimed.event_id
                )
                .fetch_one(&mut *tx)
                .await?;
                // A held delivery sent on its own is pending again (for its retries).
                sqlx::query!(
                    "UPDATE notification_deliveries SET state = 'pending' WHERE id = $1",
                    claimed.id
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(Some(Outgoing {
                    delivery: claimed.id,
                    event_id: claimed.event_id,
                    kind: EventKind::parse(&e.kind).unwrap_or(EventKind::Test),
                    facts: serde_json::from_value(e.facts).unwrap_or_default(),
                    occurred_at: e.occurred_at,
                }));
            }
            let items: Vec<(EventKind, Facts)> = held
                .iter()
                .map(|h| {
                    (
                        EventKind::parse(&h.kind).unwrap_or(EventKind::Test),
                        serde_json::from_value(h.facts.clone()).unwrap_or_default(),
                    )
                })
                .collect();
            let facts = facts::digest(&dest.slug, &items, settings.window_secs.div_ceil(60));
            let project_id = sqlx::query_scalar!(
                "SELECT project_id FROM notification_destinations WHERE id = $1",
                claimed.destination_id
            )
            .fetch_one(&mut *tx)
            .await?;
            let digest_id = super::record(
                &mut tx,
                &super::Event {
                    kind: EventKind::Digest,
                    project_id,
                    facts: facts.clone(),
                },
                Some(claimed.destination_id),
            )
            .await?;
            // Taken by this claim at once: it was admitted here, and must not be admitted again.
            let digest = sqlx::query!(
                r#"UPDATE notification_deliveries SET lease_owner = $3,
                          lease_until = now() + make_interval(secs => $4)
                   WHERE event_id = $1 AND destination_id = $2
                   RETURNING id, (SELECT occurred_at FROM notification_events WHERE id = $1) AS "occurred_at!""#,
                digest_id,
                claimed.destination_id,
                token,
                settings.lease_secs.max(5) as f64
            )
            .fetch_one(&mut *tx)
            .await?;
            let ids: Vec<i64> = held.iter().map(|h| h.id).collect();
            sqlx::query!(
                "UPDATE notification_deliveries SET state = 'digested', digest_event_id = $2,
                        lease_owner = NULL, lease_until = NULL, delivered_at = NULL
                 WHERE id = ANY($1)",
                &ids,
                digest_id
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            metrics::counter!("enclii_notification_deliveries_total", "outcome" => "digested")
                .increment(ids.len() as u64);
            Ok(Some(Outgoing {
                delivery: digest.id,
                event_id: digest_id,
                kind: EventKind::Digest,
                facts,
                occurred_at: digest.occurred_at,
            }))
        }
    }
}

/// A destination as stored: its secrets still sealed.
struct Stored {
    id: Uuid,
    kind: DestinationKind,
    url_nonce: Option<Vec<u8>>,
    url_ciphertext: Option<Vec<u8>>,
    signing_nonce: Option<Vec<u8>>,
    signing_ciphertext: Option<Vec<u8>>,
    recipients: Vec<String>,
}

/// A destination ready to send to. Not `Debug`: it holds the URL and the signing secret.
enum Open {
    Http {
        kind: DestinationKind,
        url: secrecy::SecretString,
        signing: Option<secrecy::SecretString>,
    },
    Email {
        recipients: Vec<String>,
        destination: Uuid,
    },
}

impl Stored {
    fn open(&self, engine: &Engine) -> Result<Open, String> {
        if self.kind == DestinationKind::Email {
            return Ok(Open::Email {
                recipients: self.recipients.clone(),
                destination: self.id,
            });
        }
        let sealer = engine
            .secrets
            .as_ref()
            .ok_or("the server has no secrets.key configured to open the destination's URL")?;
        let (Some(n), Some(c)) = (&self.url_nonce, &self.url_ciphertext) else {
            return Err("the destination has no URL".into());
        };
        let url = sealer
            .open(n, c, &super::destinations::url_aad(self.id))
            .map_err(|e| e.to_string())?;
        let signing = match (&self.signing_nonce, &self.signing_ciphertext) {
            (Some(n), Some(c)) => Some(
                sealer
                    .open(n, c, &super::destinations::signing_aad(self.id))
                    .map_err(|e| e.to_string())?,
            ),
            _ => None,
        };
        Ok(Open::Http {
            kind: self.kind,
            url,
            signing,
        })
    }
}

async fn load_destination(engine: &Engine, id: Uuid) -> sqlx::Result<Option<Stored>> {
    let r = sqlx::query!(
        "SELECT id, kind, url_nonce, url_ciphertext, signing_nonce, signing_ciphertext, recipients
         FROM notification_destinations WHERE id = $1",
        id
    )
    .fetch_optional(&engine.pool)
    .await?;
    Ok(r.map(|r| Stored {
        id: r.id,
        kind: DestinationKind::parse(&r.kind).unwrap_or(DestinationKind::Webhook),
        url_nonce: r.url_nonce,
        url_ciphertext: r.url_ciphertext,
        signing_nonce: r.signing_nonce,
        signing_ciphertext: r.signing_ciphertext,
        recipients: r.recipients,
    }))
}

/// One attempt: how it went, the receiver's status (HTTP or SMTP code) and what went wrong, in
/// words that never hold the URL (for Slack and Discord, the URL is the credential).
#[tracing::instrument(skip_all, fields(event = %out.event_id, kind = %out.kind))]
async fn send(
    engine: &Engine,
    http: &reqwest::Client,
    destination: &Open,
    out: &Outgoing,
) -> (Attempt, Option<i32>, Option<String>) {
    let public_url = &engine.settings.public_url;
    match destination {
        Open::Http { kind, url, signing } => {
            // A literal address is dialled without resolving, so the client's resolver never sees it.
            if !engine.settings.notifications.allow_private_destinations
                && crate::monitor::literal_non_public(url.expose_secret())
            {
                return (
                    Attempt::Permanent,
                    None,
                    Some("refused: the destination is not a public address".into()),
                );
            }
            let body = match kind {
                DestinationKind::Slack => render::slack(out.kind, &out.facts, public_url),
                DestinationKind::Discord => {
                    render::discord(out.kind, &out.facts, public_url, out.occurred_at)
                }
                _ => render::webhook(
                    &out.event_id.to_string(),
                    out.kind,
                    &out.facts,
                    public_url,
                    out.occurred_at,
                ),
            };
            let body = serde_json::to_vec(&body).expect("a rendered message serializes");
            let mut request = http
                .post(url.expose_secret())
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if let Some(secret) = signing {
                let id = out.event_id.to_string();
                let at = Utc::now().timestamp();
                let signature = standardwebhooks::Webhook::new(secret.expose_secret())
                    .and_then(|w| w.sign(&id, at, &body));
                match signature {
                    Ok(signature) => {
                        request = request
                            .header(standardwebhooks::HEADER_WEBHOOK_ID, id)
                            .header(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, at.to_string())
                            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature);
                    }
                    Err(_) => {
                        return (
                            Attempt::Permanent,
                            None,
                            Some("the destination's signing secret is unusable".into()),
                        );
                    }
                }
            }
            match request.body(body).send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let code = Some(i32::from(status.as_u16()));
                    if status.is_success() {
                        return (Attempt::Delivered, code, None);
                    }
                    let text = first_bytes(response, 1024).await;
                    let said: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
                    let error = Some(format!("HTTP {status}: {said}").trim_end().to_owned());
                    let transient =
                        status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
                    if transient {
                        (Attempt::Transient { retry_after }, code, error)
                    } else {
                        (Attempt::Permanent, code, error)
                    }
                }
                Err(e) => (
                    Attempt::Transient { retry_after: None },
                    None,
                    Some(describe(&e.without_url())),
                ),
            }
        }
        Open::Email {
            recipients,
            destination,
        } => send_email(engine, recipients, *destination, out).await,
    }
}

/// The start of a response's body: a receiver may answer with an endless one.
async fn first_bytes(mut response: reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(limit);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An error and its causes in one line ("error sending request: client error (Connect): tcp
/// connect error: Connection refused"), without the URL.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

async fn send_email(
    engine: &Engine,
    recipients: &[String],
    destination: Uuid,
    out: &Outgoing,
) -> (Attempt, Option<i32>, Option<String>) {
    let settings = &engine.settings.notifications;
    let Some(smtp) = &settings.smtp else {
        return (
            Attempt::Transient { retry_after: None },
            None,
            Some("the platform has no SMTP server configured (notifications.smtp)".into()),
        );
    };
    let email = render::email(out.kind, &out.facts, &engine.settings.public_url);
    let message = (|| -> Result<lettre::Message, String> {
        let mut builder = lettre::Message::builder()
            .from(
                smtp.from
                    .parse()
                    .map_err(|e| format!("notifications.smtp.from: {e}"))?,
            )
            .subject(email.subject)
            // The same id on every attempt: a mail client shows a resent message once.
            .message_id(Some(format!("<{}.{}@enclii>", out.event_id, destination)));
        for r in recipients {
            builder = builder.to(r
                .parse()
                .map_err(|_| format!("`{r}` is not an email address"))?);
        }
        builder
            .header(ContentType::TEXT_PLAIN)
            .body(email.text)
            .map_err(|e| e.to_string())
    })();
    let message = match message {
        Ok(m) => m,
        Err(e) => return (Attempt::Permanent, None, Some(e)),
    };
    let transport = match smtp_transport(smtp, Duration::from_millis(settings.timeout_ms)) {
        Ok(t) => t,
        Err(e) => return (Attempt::Transient { retry_after: None }, None, Some(e)),
    };
    match transport.send(message).await {
        Ok(response) => (
            Attempt::Delivered,
            response.code().to_string().parse().ok(),
            None,
        ),
        Err(e) => {
            let code = e.status().and_then(|c| c.to_string().parse().ok());
            let attempt = if e.is_permanent() {
                Attempt::Permanent
            } else {
                Attempt::Transient { retry_after: None }
            };
            (attempt, code, Some(describe(&e)))
        }
    }
}

fn smtp_transport(
    smtp: &SmtpSettings,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match smtp.security {
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
            .map_err(|e| format!("notifications.smtp: {e}"))?
            .port(smtp.port.unwrap_or(465)),
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            .map_err(|e| format!("notifications.smtp: {e}"))?
            .port(smtp.port.unwrap_or(587)),
        SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port.unwrap_or(25)),
    };
    let builder = builder.timeout(Some(timeout));
    let builder = match (&smtp.username, &smtp.password) {
        (Some(user), Some(password)) => builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        )),
        _ => builder,
    };
    Ok(builder.build())
}

/// Writes how an attempt went, fenced by the claim's lease, and the destination's health.
#[allow(clippy::too_many_arguments)]
async fn record_attempt(
    engine: &Engine,
    token: &str,
    out: &Outgoing,
    claimed: &Claimed,
    attempt: Attempt,
    status: Option<i32>,
    error: Option<String>,
    settings: &NotificationSettings,
) -> sqlx::Result<()> {
    let attempts: i32 = sqlx::query_scalar!(
        "SELECT attempts FROM notification_deliveries WHERE id = $1",
        out.delivery
    )
    .fetch_optional(&engine.pool)
    .await?
    .unwrap_or(0)
        + 1;
    let retries = Retries {
        max_attempts: settings.max_attempts.max(1),
        base: Duration::from_millis(settings.retry_base_ms.max(1)),
        cap: Duration::from_secs(settings.retry_cap_secs.max(1)),
    };
    let jitter = {
        let mut b = [0u8; 1];
        let _ = getrandom::fill(&mut b);
        f64::from(b[0]) / 256.0
    };
    let next = policy::next(attempt, attempts.max(1) as u32, retries, jitter);
    let (state, wait) = match next {
        Next::Done => ("delivered", Duration::ZERO),
        Next::RetryIn(wait) => ("pending", wait),
        Next::GiveUp => ("failed", Duration::ZERO),
    };
    let error: Option<String> = error.map(|e| e.chars().take(500).collect());
    let mut tx = engine.pool.begin().await?;
    let updated = sqlx::query!(
        "UPDATE notification_deliveries SET state = $3, attempts = attempts + 1, last_status = $4,
                last_error = $5, next_attempt_at = now() + make_interval(secs => $6),
                delivered_at = CASE WHEN $3 = 'delivered' THEN now() END,
                lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_owner = $2",
        out.delivery,
        token,
        state,
        status,
        error,
        wait.as_secs_f64()
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        // The lease went to another claim while this one sent: its record stands.
        return Ok(());
    }
    if attempt == Attempt::Delivered {
        sqlx::query!(
            "UPDATE notification_destinations SET consecutive_failures = 0, failing = false WHERE id = $1",
            claimed.destination_id
        )
        .execute(&mut *tx)
        .await?;
    } else {
        let failures = sqlx::query_scalar!(
            "UPDATE notification_destinations SET consecutive_failures = consecutive_failures + 1
             WHERE id = $1 RETURNING consecutive_failures",
            claimed.destination_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
        if policy::failing(failures.max(0) as u32, settings.failing_after) {
            sqlx::query!(
                "UPDATE notification_destinations SET failing = true WHERE id = $1",
                claimed.destination_id
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    let outcome = match next {
        Next::Done => "delivered",
        Next::RetryIn(_) => "retry",
        Next::GiveUp => "failed",
    };
    metrics::counter!("enclii_notification_deliveries_total", "outcome" => outcome).increment(1);
    if next != Next::Done {
        tracing::info!(
            delivery = out.delivery,
            attempts,
            outcome,
            error = error.as_deref().unwrap_or_default(),
            "notification not delivered"
        );
    }
    Ok(())
}

/// Deletes events older than the retention with nothing left to send.
async fn sweep(pool: &PgPool, retention_days: u32) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM notification_events e
         WHERE e.occurred_at < now() - make_interval(days => $1)
           AND NOT EXISTS (SELECT 1 FROM notification_deliveries d
                           WHERE d.event_id = e.id AND d.state IN ('pending', 'held'))",
        retention_days.max(1) as i32
    )
    .execute(pool)
    .await?;
    Ok(())
}
