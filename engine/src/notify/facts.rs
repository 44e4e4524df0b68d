//! What each state change tells: the events recorded by the deploy driver, the build worker, the
//! webhook receiver, the scheduled jobs' watcher and the status prober, each inside the transaction
//! of its change. The wording is built by plain functions of plain inputs (tested below); the
//! async functions only read the names the wording needs.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::policy::Alert;
use super::{Event, EventKind, Facts, bounded, record};

/// The event a deployment's new state announces; `None` for states nobody needs to hear about
/// (superseded: the newer deployment that replaced it announces itself).
pub fn deployment_kind(state: &str) -> Option<EventKind> {
    match state {
        "in_progress" => Some(EventKind::DeploymentStarted),
        "succeeded" => Some(EventKind::DeploymentSucceeded),
        "failed" => Some(EventKind::DeploymentFailed),
        "rolled_back" => Some(EventKind::DeploymentRolledBack),
        // Ended by a person: aborted by hand, or rejected by an approver (the reason says which).
        "aborted" | "rejected" => Some(EventKind::DeploymentAborted),
        "awaiting_approval" => Some(EventKind::DeploymentAwaitingApproval),
        _ => None,
    }
}

/// A deployment as its event describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: i64,
    pub project: String,
    pub service: String,
    pub environment: String,
    pub strategy: String,
    pub image: String,
    /// The evidence of the step that withdrew a canary (weight, error rate, requests, limit).
    pub withdrawn: Option<Value>,
}

/// The measured figures of an automatic rollback, in words: "at the 10% step: 4.10% errors over
/// 230 requests (limit 2%)".
pub fn measured(evidence: &Value) -> Option<String> {
    let weight = evidence.get("weight")?.as_i64()?;
    let rate = evidence.get("error_rate_percent").and_then(Value::as_f64);
    let requests = evidence.get("requests").and_then(Value::as_f64);
    let limit = evidence.get("threshold_percent").and_then(Value::as_f64);
    Some(match (rate, requests) {
        (Some(rate), Some(requests)) => {
            let mut s =
                format!("at the {weight}% step: {rate:.2}% errors over {requests:.0} requests");
            if let Some(limit) = limit {
                s.push_str(&format!(" (limit {limit}%)"));
            }
            s
        }
        _ => format!("at the {weight}% step"),
    })
}

pub fn deployment_facts(kind: EventKind, d: &Deployment, reason: &str) -> Facts {
    let what = if d.strategy == "rollback" {
        "rollback"
    } else {
        "deployment"
    };
    let outcome = match kind {
        EventKind::DeploymentStarted => format!("started ({})", d.strategy),
        EventKind::DeploymentSucceeded => "succeeded: the new release serves all traffic".into(),
        EventKind::DeploymentFailed => "failed".into(),
        EventKind::DeploymentRolledBack => "rolled back automatically".into(),
        EventKind::DeploymentAborted => "aborted".into(),
        EventKind::DeploymentAwaitingApproval => "awaits approval".into(),
        other => other.as_str().into(),
    };
    let mut details = BTreeMap::from([
        ("deployment_id".to_owned(), json!(d.id)),
        ("strategy".to_owned(), json!(d.strategy)),
        ("image".to_owned(), json!(d.image)),
    ]);
    let mut reason = bounded(reason);
    if kind == EventKind::DeploymentRolledBack {
        if let Some(evidence) = &d.withdrawn {
            for key in [
                "weight",
                "error_rate_percent",
                "requests",
                "threshold_percent",
            ] {
                if let Some(v) = evidence.get(key).filter(|v| !v.is_null()) {
                    details.insert(key.to_owned(), v.clone());
                }
            }
            if let Some(m) = measured(evidence) {
                reason = if reason.is_empty() {
                    format!("Measured {m}")
                } else {
                    format!("{reason}. Measured {m}")
                };
            }
        }
    }
    Facts {
        project: d.project.clone(),
        service: Some(d.service.clone()),
        environment: Some(d.environment.clone()),
        title: format!(
            "{}: {what} #{} to {} {outcome}",
            d.service, d.id, d.environment
        ),
        reason,
        link: format!("/projects/{}/deployments/{}", d.project, d.id),
        details,
    }
}

/// Records the event of deployment `id` entering `state` (nothing for states without one), in the
/// transaction that wrote the state.
pub async fn deployment(
    conn: &mut PgConnection,
    id: i64,
    state: &str,
    reason: &str,
) -> sqlx::Result<()> {
    let Some(kind) = deployment_kind(state) else {
        return Ok(());
    };
    let r = sqlx::query!(
        r#"SELECT p.id AS project_id, p.slug, s.name AS service, e.name AS environment, d.strategy,
                  r.image_ref,
                  (SELECT st.evidence FROM deployment_steps st
                    WHERE st.deployment_id = d.id AND st.kind = 'withdraw'
                    ORDER BY st.seq DESC LIMIT 1) AS withdrawn
           FROM deployments d
           JOIN services s ON s.id = d.service_id
           JOIN projects p ON p.id = s.project_id
           JOIN environments e ON e.id = d.environment_id
           JOIN releases r ON r.id = d.release_id
           WHERE d.id = $1"#,
        id
    )
    .fetch_one(&mut *conn)
    .await?;
    let d = Deployment {
        id,
        project: r.slug,
        service: r.service,
        environment: r.environment,
        strategy: r.strategy,
        image: r.image_ref,
        withdrawn: r.withdrawn,
    };
    let facts = deployment_facts(kind, &d, reason);
    record(
        conn,
        &Event {
            kind,
            project_id: r.project_id,
            facts,
        },
        None,
    )
    .await?;
    Ok(())
}

/// Records that build `id` failed, in the transaction that wrote it.
pub async fn build_failed(conn: &mut PgConnection, id: i64, reason: &str) -> sqlx::Result<()> {
    let r = sqlx::query!(
        r#"SELECT p.id AS project_id, p.slug, s.name AS service, e.name AS environment, b.git_ref
           FROM builds b
           JOIN services s ON s.id = b.service_id
           JOIN projects p ON p.id = s.project_id
           JOIN environments e ON e.id = b.environment_id
           WHERE b.id = $1"#,
        id
    )
    .fetch_one(&mut *conn)
    .await?;
    let short: String = r.git_ref.chars().take(12).collect();
    let facts = Facts {
        project: r.slug.clone(),
        service: Some(r.service.clone()),
        environment: Some(r.environment),
        title: format!("{}: build #{id} of {short} failed", r.service),
        reason: bounded(reason),
        link: format!("/projects/{}/services/{}/builds", r.slug, r.service),
        details: BTreeMap::from([
            ("build_id".to_owned(), json!(id)),
            ("git_ref".to_owned(), json!(r.git_ref)),
        ]),
    };
    record(
        conn,
        &Event {
            kind: EventKind::BuildFailed,
            project_id: r.project_id,
            facts,
        },
        None,
    )
    .await?;
    Ok(())
}

/// Records that a delivery naming one of the project's repositories was rejected. The repository
/// and reason come from an unauthenticated request: clipped by the caller, escaped by each format.
pub async fn webhook_rejected(
    conn: &mut PgConnection,
    project_id: Uuid,
    delivery: &str,
    repository: &str,
    reason: &str,
) -> sqlx::Result<()> {
    let slug = sqlx::query_scalar!("SELECT slug FROM projects WHERE id = $1", project_id)
        .fetch_one(&mut *conn)
        .await?;
    let facts = Facts {
        project: slug.clone(),
        service: None,
        environment: None,
        title: format!("A GitHub delivery for {repository} was rejected"),
        reason: bounded(reason),
        link: format!("/projects/{slug}"),
        details: BTreeMap::from([
            ("delivery_id".to_owned(), json!(delivery)),
            ("repository".to_owned(), json!(repository)),
        ]),
    };
    record(
        conn,
        &Event {
            kind: EventKind::WebhookRejected,
            project_id,
            facts,
        },
        None,
    )
    .await?;
    Ok(())
}

/// Records a scheduled job's failed run or missed schedule (`missed`), once per finding: called
/// only when the finding was new.
pub async fn job(
    conn: &mut PgConnection,
    service_id: Uuid,
    environment_id: Uuid,
    job: &str,
    missed: bool,
    detail: &str,
) -> sqlx::Result<()> {
    let r = sqlx::query!(
        r#"SELECT p.id AS project_id, p.slug, s.name AS service, e.name AS environment
           FROM services s JOIN projects p ON p.id = s.project_id, environments e
           WHERE s.id = $1 AND e.id = $2"#,
        service_id,
        environment_id
    )
    .fetch_one(&mut *conn)
    .await?;
    let (kind, what) = if missed {
        (EventKind::JobMissed, "missed its schedule")
    } else {
        (EventKind::JobFailed, "failed")
    };
    let facts = Facts {
        project: r.slug.clone(),
        service: Some(r.service.clone()),
        environment: Some(r.environment.clone()),
        title: format!(
            "{}: scheduled job {job} in {} {what}",
            r.service, r.environment
        ),
        reason: bounded(detail),
        link: format!("/projects/{}/services/{}/jobs", r.slug, r.service),
        details: BTreeMap::from([("job".to_owned(), json!(job))]),
    };
    record(
        conn,
        &Event {
            kind,
            project_id: r.project_id,
            facts,
        },
        None,
    )
    .await?;
    Ok(())
}

/// The project a status target belongs to: keys are `target:<project>/<service>/<name>` or
/// `service:<project>/<service>/<environment>`.
pub fn target_place(key: &str) -> Option<(&str, &str, Option<&str>)> {
    let (kind, rest) = key.split_once(':')?;
    let mut parts = rest.splitn(3, '/');
    let (project, service, last) = (parts.next()?, parts.next()?, parts.next()?);
    match kind {
        "service" => Some((project, service, Some(last))),
        "target" => Some((project, service, None)),
        _ => None,
    }
}

/// Records a status target going unhealthy or recovering, in the transaction of its probe.
pub async fn status(
    conn: &mut PgConnection,
    key: &str,
    name: &str,
    alert: Alert,
    detail: &str,
) -> sqlx::Result<()> {
    let Some((project, service, environment)) = target_place(key) else {
        return Ok(());
    };
    let Some(project_id) = sqlx::query_scalar!("SELECT id FROM projects WHERE slug = $1", project)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(());
    };
    let (kind, what) = match alert {
        Alert::Unhealthy => (EventKind::ServiceUnhealthy, "is unhealthy"),
        Alert::Recovered => (EventKind::ServiceRecovered, "recovered"),
    };
    let facts = Facts {
        project: project.to_owned(),
        service: Some(service.to_owned()),
        environment: environment.map(str::to_owned),
        title: format!("{name} {what}"),
        reason: bounded(detail),
        link: format!("/projects/{project}/services/{service}"),
        details: BTreeMap::from([("target".to_owned(), json!(key))]),
    };
    record(
        conn,
        &Event {
            kind,
            project_id,
            facts,
        },
        None,
    )
    .await?;
    Ok(())
}

/// What a digest says about the events it holds: how many of each kind, and the first few titles.
pub fn digest(project: &str, held: &[(EventKind, Facts)], window_minutes: u64) -> Facts {
    let mut counts: BTreeMap<EventKind, usize> = BTreeMap::new();
    for (kind, _) in held {
        *counts.entry(*kind).or_default() += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(kind, n)| format!("{n} × {kind}"))
        .collect();
    const SHOWN: usize = 10;
    let mut reason = summary.join(", ");
    for (_, f) in held.iter().take(SHOWN) {
        reason.push_str(&format!("\n• {}", f.title));
    }
    if held.len() > SHOWN {
        reason.push_str(&format!("\n… and {} more", held.len() - SHOWN));
    }
    Facts {
        project: project.to_owned(),
        service: None,
        environment: None,
        title: format!(
            "{} notifications for {project} were held back (more than this destination takes in {window_minutes} min)",
            held.len()
        ),
        reason,
        link: format!("/projects/{project}/notifications"),
        details: BTreeMap::from([
            ("count".to_owned(), json!(held.len())),
            (
                "kinds".to_owned(),
                json!(
                    counts
                        .iter()
                        .map(|(k, n)| (k.as_str().to_owned(), *n))
                        .collect::<BTreeMap<_, _>>()
                ),
            ),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        Deployment {
            id: 42,
            project: "acme".into(),
            service: "api".into(),
            environment: "production".into(),
            strategy: "canary".into(),
            image: "registry/acme/api@sha256:ab".into(),
            withdrawn: None,
        }
    }

    #[test]
    fn each_deployment_state_has_its_event_and_superseded_has_none() {
        assert_eq!(
            deployment_kind("in_progress"),
            Some(EventKind::DeploymentStarted)
        );
        assert_eq!(
            deployment_kind("succeeded"),
            Some(EventKind::DeploymentSucceeded)
        );
        assert_eq!(deployment_kind("failed"), Some(EventKind::DeploymentFailed));
        assert_eq!(
            deployment_kind("rolled_back"),
            Some(EventKind::DeploymentRolledBack)
        );
        assert_eq!(
            deployment_kind("aborted"),
            Some(EventKind::DeploymentAborted)
        );
        assert_eq!(
            deployment_kind("awaiting_approval"),
            Some(EventKind::DeploymentAwaitingApproval)
        );
        assert_eq!(deployment_kind("superseded"), None);
        assert_eq!(deployment_kind("pending"), None);
    }

    #[test]
    fn an_automatic_rollback_says_what_was_measured_at_which_step() {
        let mut d = deployment();
        d.withdrawn = Some(json!({
            "weight": 10, "error_rate_percent": 4.1, "requests": 230.0, "threshold_percent": 2.0,
            "query": "sum(rate(...))"
        }));
        let f = deployment_facts(
            EventKind::DeploymentRolledBack,
            &d,
            "error rate 4.1% is above the 2% limit",
        );
        assert_eq!(
            f.title,
            "api: deployment #42 to production rolled back automatically"
        );
        assert_eq!(
            f.reason,
            "error rate 4.1% is above the 2% limit. Measured at the 10% step: 4.10% errors over 230 requests (limit 2%)"
        );
        assert_eq!(f.details["weight"], json!(10));
        assert_eq!(f.details["requests"], json!(230.0));
        assert!(!f.details.contains_key("query"));
        assert_eq!(f.link, "/projects/acme/deployments/42");
    }

    #[test]
    fn a_pod_failure_rollback_names_its_step_without_figures() {
        let mut d = deployment();
        d.withdrawn = Some(json!({ "weight": 50 }));
        let f = deployment_facts(
            EventKind::DeploymentRolledBack,
            &d,
            "the canary's pods failed",
        );
        assert_eq!(
            f.reason,
            "the canary's pods failed. Measured at the 50% step"
        );
    }

    #[test]
    fn success_is_worded_as_serving_all_traffic_and_rollbacks_are_named_so() {
        let f = deployment_facts(EventKind::DeploymentSucceeded, &deployment(), "");
        assert_eq!(
            f.title,
            "api: deployment #42 to production succeeded: the new release serves all traffic"
        );
        let mut d = deployment();
        d.strategy = "rollback".into();
        let f = deployment_facts(EventKind::DeploymentStarted, &d, "");
        assert_eq!(
            f.title,
            "api: rollback #42 to production started (rollback)"
        );
    }

    #[test]
    fn status_targets_name_their_project_service_and_environment() {
        assert_eq!(
            target_place("service:acme/api/production"),
            Some(("acme", "api", Some("production")))
        );
        assert_eq!(
            target_place("target:acme/api/home"),
            Some(("acme", "api", None))
        );
        assert_eq!(target_place("target:acme"), None);
        assert_eq!(target_place("other:acme/api/x"), None);
    }

    #[test]
    fn a_digest_counts_each_kind_and_lists_the_first_titles() {
        let f = |t: &str| Facts {
            title: t.into(),
            ..Facts::default()
        };
        let mut held = vec![(EventKind::DeploymentRolledBack, f("a")); 11];
        held.push((EventKind::BuildFailed, f("b")));
        let d = digest("acme", &held, 5);
        assert!(
            d.title
                .starts_with("12 notifications for acme were held back")
        );
        assert!(
            d.reason
                .starts_with("11 × deployment.rolled_back, 1 × build.failed")
        );
        assert_eq!(d.reason.matches("\n• ").count(), 10);
        assert!(d.reason.ends_with("… and 2 more"));
        assert_eq!(d.details["count"], json!(12));
        assert_eq!(d.details["kinds"]["build.failed"], json!(1));
    }
}
