//! One event, four formats: a Slack incoming-webhook message, a Discord webhook message, a generic
//! webhook's body (signed per Standard Webhooks by the worker), and an email. Pure: the same
//! [`Facts`] always render the same bytes, which is what the delivery log and the tests rely on.
//!
//! Every text a tenant or a stranger influences (a reason, a repository name from a rejected
//! webhook) is escaped for the format: Slack's `<!channel>` and link syntax, Discord's mentions
//! (none are parsed), an email header's line breaks.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{EventKind, Facts};

/// The absolute dashboard URL of the event's page.
pub fn link(public_url: &str, facts: &Facts) -> String {
    format!("{}{}", public_url.trim_end_matches('/'), facts.link)
}

/// Where it happened, as "project / service / environment".
fn place(facts: &Facts) -> String {
    let mut parts = vec![facts.project.as_str()];
    parts.extend(facts.service.as_deref());
    parts.extend(facts.environment.as_deref());
    parts.join(" / ")
}

/// Slack's control characters in message text (its documented escaping: `&`, `<`, `>`); without
/// it `<!channel>` in a reason would ping a whole channel and `<http://x|y>` would disguise a link.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn mark(kind: EventKind) -> &'static str {
    match kind {
        EventKind::DeploymentSucceeded | EventKind::ServiceRecovered => "✅",
        EventKind::DeploymentStarted => "🚀",
        EventKind::DeploymentAwaitingApproval => "⏸️",
        EventKind::DeploymentAborted => "⏹️",
        EventKind::Test => "🔔",
        EventKind::Digest => "📋",
        k if k.is_problem() => "🔴",
        _ => "ℹ️",
    }
}

pub fn slack(kind: EventKind, facts: &Facts, public_url: &str) -> Value {
    let title = slack_escape(&facts.title);
    let url = link(public_url, facts);
    let mut text = format!("{} *<{}|{}>*", mark(kind), url.replace('|', "%7C"), title);
    if !facts.reason.is_empty() {
        text.push('\n');
        text.push_str(&slack_escape(&facts.reason));
    }
    json!({
        // The notification's own text (phones, screen readers); blocks are what the channel shows.
        "text": format!("{} {}", mark(kind), title),
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": text } },
            { "type": "context", "elements": [
                { "type": "mrkdwn", "text": format!("{} · `{}`", slack_escape(&place(facts)), kind) }
            ] }
        ]
    })
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

pub fn discord(kind: EventKind, facts: &Facts, public_url: &str, at: DateTime<Utc>) -> Value {
    let color = match kind {
        EventKind::DeploymentSucceeded | EventKind::ServiceRecovered => 0x16a34a,
        k if k.is_problem() => 0xdc2626,
        _ => 0x64748b,
    };
    let mut fields =
        vec![json!({ "name": "Project", "value": cut(&facts.project, 1024), "inline": true })];
    if let Some(s) = &facts.service {
        fields.push(json!({ "name": "Service", "value": cut(s, 1024), "inline": true }));
    }
    if let Some(e) = &facts.environment {
        fields.push(json!({ "name": "Environment", "value": cut(e, 1024), "inline": true }));
    }
    json!({
        // Nothing in a message may ping anyone, whatever its text says.
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            "title": cut(&format!("{} {}", mark(kind), facts.title), 256),
            "url": link(public_url, facts),
            "description": cut(&facts.reason, 4096),
            "color": color,
            "fields": fields,
            "footer": { "text": kind.as_str() },
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }]
    })
}

/// The generic webhook's body, in the Standard Webhooks shape (`type`, `timestamp`, `data`).
pub fn webhook(
    event_id: &str,
    kind: EventKind,
    facts: &Facts,
    public_url: &str,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "type": kind.as_str(),
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": {
            "id": event_id,
            "project": facts.project,
            "service": facts.service,
            "environment": facts.environment,
            "title": facts.title,
            "reason": facts.reason,
            "url": link(public_url, facts),
            "details": facts.details,
        }
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
}

pub fn email(kind: EventKind, facts: &Facts, public_url: &str) -> Email {
    // A header is one line: a reason or title with a line break must not add headers.
    let subject: String = format!("[Enclii] {}", facts.title)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut text = format!("{}\n\n", facts.title);
    if !facts.reason.is_empty() {
        text.push_str(&format!("Why: {}\n", facts.reason));
    }
    text.push_str(&format!("Where: {}\n", place(facts)));
    text.push_str(&format!("Event: {kind}\n"));
    text.push_str(&format!(
        "\nOpen it in Enclii: {}\n",
        link(public_url, facts)
    ));
    Email {
        subject: cut(&subject, 200),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            project: "acme".into(),
            service: Some("api".into()),
            environment: Some("production".into()),
            title: "api: deployment #42 to production rolled back".into(),
            reason: "error rate 4.10% over 230 requests at the 10% step (limit 2%)".into(),
            link: "/projects/acme/deployments/42".into(),
            details: [("deployment_id".to_owned(), json!(42))].into(),
        }
    }

    const URL: &str = "https://app.enclii.io/";

    #[test]
    fn slack_messages_link_the_dashboard_and_say_where_and_why() {
        let m = slack(EventKind::DeploymentRolledBack, &facts(), URL);
        let text = m["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(text.contains("<https://app.enclii.io/projects/acme/deployments/42|api: deployment #42 to production rolled back>"), "{text}");
        assert!(text.contains("error rate 4.10% over 230 requests"));
        let context = m["blocks"][1]["elements"][0]["text"].as_str().unwrap();
        assert_eq!(
            context,
            "acme / api / production · `deployment.rolled_back`"
        );
        assert!(m["text"].as_str().unwrap().contains("rolled back"));
    }

    #[test]
    fn slack_control_sequences_in_a_reason_are_escaped() {
        let mut f = facts();
        f.reason = "<!channel> see <http://evil|the dashboard> & more".into();
        let m = slack(EventKind::WebhookRejected, &f, URL);
        let text = m["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(text.contains("&lt;!channel&gt; see &lt;http://evil|the dashboard&gt; &amp; more"));
    }

    #[test]
    fn discord_messages_ping_nobody_and_are_cut_to_discords_limits() {
        let mut f = facts();
        f.reason = "@everyone ".repeat(1000);
        let m = discord(
            EventKind::DeploymentFailed,
            &f,
            URL,
            DateTime::from_timestamp(0, 0).unwrap(),
        );
        assert_eq!(m["allowed_mentions"]["parse"], json!([]));
        let embed = &m["embeds"][0];
        assert_eq!(embed["description"].as_str().unwrap().chars().count(), 4096);
        assert_eq!(
            embed["url"],
            "https://app.enclii.io/projects/acme/deployments/42"
        );
        assert_eq!(embed["color"], 0xdc2626);
        assert_eq!(embed["fields"][2]["value"], "production");
        assert_eq!(embed["timestamp"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn webhook_bodies_follow_the_standard_webhooks_shape() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let m = webhook("evt_1", EventKind::DeploymentRolledBack, &facts(), URL, at);
        assert_eq!(m["type"], "deployment.rolled_back");
        assert_eq!(m["timestamp"], "2027-01-15T08:00:00.000Z");
        assert_eq!(m["data"]["id"], "evt_1");
        assert_eq!(m["data"]["details"]["deployment_id"], 42);
        assert_eq!(
            m["data"]["url"],
            "https://app.enclii.io/projects/acme/deployments/42"
        );
    }

    #[test]
    fn an_email_subject_is_one_line_whatever_the_title_holds() {
        let mut f = facts();
        f.title = "api\r\nBcc: victim@example.com".into();
        let e = email(EventKind::BuildFailed, &f, URL);
        assert_eq!(e.subject, "[Enclii] api  Bcc: victim@example.com");
        assert!(
            e.text
                .contains("Open it in Enclii: https://app.enclii.io/projects/acme/deployments/42")
        );
        assert!(e.text.contains("Why: error rate"));
    }
}
