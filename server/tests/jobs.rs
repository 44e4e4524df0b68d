//! Release commands, scheduled jobs and one-off runs on the local cluster (a real API server, Job
//! and CronJob controllers; pods played by the node simulator, which runs a task's `echo`, `sleep`
//! and `exit`: sandbox/src/task_job.rs).

mod common;

use std::time::Duration;

use common::{Cleanup, LocalCluster, TestApp, cluster_settings, namespace, user};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use kube::Api;
use serde_json::json;
use sqlx::PgPool;

const P: &str = "acme";

/// A service with `extra` under `spec:` (a release command, jobs, a rollout).
fn spec(extra: &str) -> String {
    format!(
        "apiVersion: enclii.dev/v1
kind: Service
metadata:
  name: billing
spec:
  build:
    type: dockerfile
  runtime:
    port: 8080
    healthCheck: /health
{extra}"
    )
}

const ROLLING: &str = "  rollout:\n    strategy: rolling\n";

async fn spawn(pool: &PgPool) -> (TestApp, LocalCluster, String, Cleanup, String) {
    spawn_with_worker(pool, true).await
}

async fn spawn_with_worker(
    pool: &PgPool,
    worker: bool,
) -> (TestApp, LocalCluster, String, Cleanup, String) {
    let cluster = LocalCluster::from_env().await;
    let mut settings = cluster_settings(&cluster);
    settings.cluster.worker = worker;
    settings.canary.window_secs = 6;
    settings.canary.interval_ms = 1000;
    settings.canary.inconclusive_limit = 20;
    let cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .expect("build app"),
    )
    .await;
    let ns = namespace(&app, P, "production");
    let owner = user(pool, "owner", true).await;
    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&owner.token),
            json!({"slug": P}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (app, cluster, ns, cleanup, owner.token)
}

async fn import(app: &TestApp, token: &str, spec: &str) {
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(token),
            json!({"spec": spec, "project": P}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn deploy(app: &TestApp, token: &str, image: &str) -> serde_json::Value {
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(token),
            json!({"project": P, "service": "billing", "environment": "production", "image": image}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    let id = d["id"].as_i64().unwrap();
    for _ in 0..450 {
        let (_, page) = app
            .call("/api/deployments/list", Some(token), json!({"project": P}))
            .await;
        if let Some(d) = page["items"]
            .as_array()
            .and_then(|items| items.iter().find(|d| d["id"] == id))
            .filter(|d| !matches!(d["state"].as_str(), Some("pending" | "in_progress")))
        {
            return d.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("deployment {id} did not finish within 90 s");
}

async fn steps(pool: &PgPool, id: i64) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT kind, state, message FROM deployment_steps WHERE deployment_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn kinds(steps: &[(String, String, String)]) -> Vec<(&str, &str)> {
    steps
        .iter()
        .map(|(k, s, _)| (k.as_str(), s.as_str()))
        .collect()
}

/// The release the stable Deployment runs, as its annotation says.
async fn stable_release(cluster: &LocalCluster, ns: &str) -> String {
    let api: Api<Deployment> = Api::namespaced(cluster.admin.clone(), ns);
    let d = api.get("billing").await.expect("the stable Deployment");
    d.metadata
        .annotations
        .unwrap_or_default()
        .get(enclii_spec::render::ANNOTATION_RELEASE)
        .cloned()
        .unwrap_or_default()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_release_command_that_succeeds_runs_before_the_canary_starts(pool: PgPool) {
    let (app, cluster, ns, _cleanup, token) = spawn(&pool).await;
    let release = "  release:\n    command: [sh, -c, \"echo migrating 0042; echo done\"]\n";
    import(&app, &token, &spec(release)).await;
    for (name, value, secret) in [("MODE", "fast", false), ("DB_PASSWORD", "hunter2", true)] {
        let (status, body) = app
            .call(
                "/api/env/set",
                Some(&token),
                json!({"project": P, "service": "billing", "environment": "production",
                       "name": name, "value": value, "secret": secret}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let first = deploy(&app, &token, "registry.local/acme/billing:1").await;
    assert_eq!(first["state"], "succeeded", "{first}");
    let first_id = first["id"].as_i64().unwrap();
    let first_steps = steps(&pool, first_id).await;
    assert_eq!(kinds(&first_steps)[0], ("release", "succeeded"));
    // The command ran from the release's image with the service's variables and secrets (the
    // secret through the service's Secret, never in the Job).
    let job = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(cluster.admin.clone(), &ns)
        .get(&format!("billing-release-{first_id}"))
        .await
        .expect("the release Job");
    let text = serde_json::to_string(&job).unwrap();
    assert!(!text.contains("hunter2"));
    let container = &job.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.local/acme/billing:1")
    );
    let env = container.env.clone().unwrap_or_default();
    let var = |n: &str| env.iter().find(|e| e.name == n).cloned().unwrap();
    assert_eq!(var("MODE").value.as_deref(), Some("fast"));
    let from = var("DB_PASSWORD")
        .value_from
        .unwrap()
        .secret_key_ref
        .unwrap();
    assert!(from.name.starts_with("billing-env-"), "{from:?}");
    // The second deployment is a canary: the release command runs first, then the canary steps.
    let rollout = "  rollout:\n    minRequests: 20\n    steps:\n      - weight: 50\n        pause: 300ms\n      - weight: 100\n";
    import(&app, &token, &spec(&format!("{release}{rollout}"))).await;
    let second = deploy(&app, &token, "registry.local/acme/billing:2").await;
    let id = second["id"].as_i64().unwrap();
    let s = steps(&pool, id).await;
    assert_eq!(kinds(&s)[0], ("release", "succeeded"), "{s:?}");
    assert!(
        s[0].2
            .contains("`sh -c echo migrating 0042; echo done` succeeded"),
        "{s:?}"
    );
    assert_eq!(
        kinds(&s)[1].0,
        "canary",
        "the canary starts after the release: {s:?}"
    );
    let evidence: serde_json::Value = sqlx::query_scalar(
        "SELECT evidence FROM deployment_steps WHERE deployment_id = $1 AND kind = 'release'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(evidence["exit_code"], 0);
    assert_eq!(evidence["job"], format!("billing-release-{id}"));
    assert!(
        evidence["log_tail"]
            .as_str()
            .unwrap()
            .contains("migrating 0042"),
        "{evidence}"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_release_command_that_fails_fails_the_deployment_and_stable_keeps_serving(pool: PgPool) {
    let (app, cluster, ns, _cleanup, token) = spawn(&pool).await;
    import(&app, &token, &spec(ROLLING)).await;
    let first = deploy(&app, &token, "registry.local/acme/billing:1").await;
    assert_eq!(first["state"], "succeeded", "{first}");
    let serving = stable_release(&cluster, &ns).await;
    let release = "  release:\n    command: [sh, -c, \"echo migrating 0042; echo 'error: relation invoices exists'; exit 3\"]\n";
    import(&app, &token, &spec(&format!("{ROLLING}{release}"))).await;
    let failed = deploy(&app, &token, "registry.local/acme/billing:2").await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let reason = failed["state_reason"].as_str().unwrap();
    assert!(reason.contains("failed with exit code 3"), "{reason}");
    assert!(
        reason.contains("error: relation invoices exists"),
        "{reason}"
    );
    assert!(
        reason.contains("the running release keeps serving"),
        "{reason}"
    );
    let s = steps(&pool, failed["id"].as_i64().unwrap()).await;
    assert_eq!(kinds(&s), [("release", "failed")], "nothing was applied");
    assert_eq!(stable_release(&cluster, &ns).await, serving);
    let api: Api<Deployment> = Api::namespaced(cluster.admin.clone(), &ns);
    let ready = api
        .get("billing")
        .await
        .unwrap()
        .status
        .unwrap()
        .ready_replicas;
    assert_eq!(ready, Some(1), "the stable pods still serve");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_release_command_that_runs_past_its_timeout_fails_the_deployment(pool: PgPool) {
    let (app, _cluster, _ns, _cleanup, token) = spawn(&pool).await;
    let release = "  release:\n    command: [sh, -c, \"echo waiting for the lock; sleep 60\"]\n    timeoutSeconds: 2\n";
    import(&app, &token, &spec(&format!("{ROLLING}{release}"))).await;
    let started = std::time::Instant::now();
    let failed = deploy(&app, &token, "registry.local/acme/billing:1").await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let reason = failed["state_reason"].as_str().unwrap();
    assert!(reason.contains("did not finish within 2s"), "{reason}");
    assert!(reason.contains("waiting for the lock"), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let s = steps(&pool, failed["id"].as_i64().unwrap()).await;
    assert_eq!(kinds(&s), [("release", "failed")]);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn scheduled_jobs_are_applied_as_cron_jobs_and_pruned_when_removed(pool: PgPool) {
    let (app, cluster, ns, _cleanup, token) = spawn(&pool).await;
    let jobs = "  jobs:\n    - name: invoices\n      schedule: \"0 2 * * *\"\n      timezone: Europe/Berlin\n      command: [./billing, send-invoices]\n    - name: cleanup\n      schedule: \"*/15 * * * *\"\n      command: [./billing, cleanup]\n";
    import(&app, &token, &spec(&format!("{ROLLING}{jobs}"))).await;
    let d = deploy(&app, &token, "registry.local/acme/billing:1").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let api: Api<CronJob> = Api::namespaced(cluster.admin.clone(), &ns);
    let invoices = api.get("billing-invoices").await.expect("applied");
    let spec_of = invoices.spec.unwrap();
    assert_eq!(spec_of.schedule, "0 2 * * *");
    assert_eq!(spec_of.time_zone.as_deref(), Some("Europe/Berlin"));
    api.get("billing-cleanup").await.expect("applied");
    // The second job leaves the spec: the next release prunes its CronJob.
    let one = "  jobs:\n    - name: invoices\n      schedule: \"0 3 * * *\"\n      command: [./billing, send-invoices]\n";
    import(&app, &token, &spec(&format!("{ROLLING}{one}"))).await;
    let d = deploy(&app, &token, "registry.local/acme/billing:2").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    assert_eq!(
        api.get("billing-invoices")
            .await
            .unwrap()
            .spec
            .unwrap()
            .schedule,
        "0 3 * * *"
    );
    assert!(
        api.get_opt("billing-cleanup").await.unwrap().is_none(),
        "pruned"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_failed_run_and_a_missed_schedule_show_and_are_recorded_once(pool: PgPool) {
    let (app, cluster, ns, _cleanup, token) = spawn(&pool).await;
    // The project's people hear of each finding once (`job.failed`, `job.missed`).
    let rx = common::receiver::receiver().await;
    let (status, body) = app
        .call(
            "/api/notifications/add",
            Some(&token),
            json!({"project": P, "destination": {"name": "jobs", "kind": "webhook", "url": rx.url("/jobs"), "events": ["job.failed", "job.missed"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let jobs = "  jobs:\n    - name: report\n      schedule: \"0 4 * * *\"\n      command: [sh, -c, \"echo building report; echo 'error: no such table'; exit 4\"]\n    - name: nightly\n      schedule: \"30 1 * * *\"\n      command: [./billing, nightly]\n";
    import(&app, &token, &spec(&format!("{ROLLING}{jobs}"))).await;
    let d = deploy(&app, &token, "registry.local/acme/billing:1").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let fresh = jobs_list(&app, &token).await;
    assert_eq!(fresh.as_array().unwrap().len(), 2, "{fresh}");
    assert_eq!(fresh[0]["name"], "report");
    assert_eq!(fresh[0]["attention"], "", "{fresh}");
    assert!(
        fresh[0]["next_run"]
            .as_str()
            .unwrap()
            .ends_with(" 04:00 UTC"),
        "{fresh}"
    );
    assert!(fresh[0]["last_run"].is_null());

    // A run of `report` fails (started from its CronJob's template, as the CronJob controller
    // would at 04:00).
    let crons: Api<CronJob> = Api::namespaced(cluster.admin.clone(), &ns);
    let template = crons
        .get("billing-report")
        .await
        .unwrap()
        .spec
        .unwrap()
        .job_template;
    let run = k8s_openapi::api::batch::v1::Job {
        metadata: kube::api::ObjectMeta {
            name: Some("billing-report-manual".into()),
            labels: template.metadata.and_then(|m| m.labels),
            ..Default::default()
        },
        spec: template.spec,
        ..Default::default()
    };
    Api::<k8s_openapi::api::batch::v1::Job>::namespaced(cluster.admin.clone(), &ns)
        .create(&Default::default(), &run)
        .await
        .unwrap();
    let mut seen = serde_json::Value::Null;
    for _ in 0..100 {
        seen = jobs_list(&app, &token).await;
        if seen[0]["last_run"]["result"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = &seen[0];
    assert_eq!(
        report["last_run"]["name"], "billing-report-manual",
        "{seen}"
    );
    assert_eq!(report["last_failed"], true, "{seen}");
    assert!(
        report["last_run"]["log_tail"]
            .as_str()
            .unwrap()
            .contains("error: no such table"),
        "{seen}"
    );
    assert!(
        report["attention"].as_str().unwrap().contains("failed"),
        "{seen}"
    );
    assert_eq!(seen[1]["missed"], false, "deployed just now: {seen}");

    // Deployed three days ago and never run: `nightly` missed its 01:30 twice.
    sqlx::query("UPDATE deployments SET finished_at = finished_at - interval '3 days'")
        .execute(&pool)
        .await
        .unwrap();
    // The replicas' scan records it without anyone listing the jobs.
    let attention = switchyard_engine::platform::jobs::scan(&app.engine)
        .await
        .unwrap();
    assert_eq!(attention, 2, "report failed (and missed), nightly missed");
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_events WHERE job_name = 'nightly' AND kind = 'missed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(recorded, 1);
    let later = jobs_list(&app, &token).await;
    let nightly = &later[1];
    assert_eq!(nightly["name"], "nightly");
    assert_eq!(nightly["missed"], true, "{later}");
    assert!(
        nightly["attention"]
            .as_str()
            .unwrap()
            .contains("no run succeeded within two intervals"),
        "{later}"
    );
    jobs_list(&app, &token).await;
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT job_name, kind FROM job_events ORDER BY job_name, kind")
            .fetch_all(&pool)
            .await
            .unwrap();
    // Recorded once each, however often the jobs are listed (`report` has missed too by now).
    assert!(
        events.contains(&("report".into(), "failed".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&("nightly".into(), "missed".into())),
        "{events:?}"
    );
    let mut unique = events.clone();
    unique.dedup();
    assert_eq!(unique, events);
    // Each finding reached the destination once, without the tenant's log.
    let got = rx.wait_for("/jobs", events.len()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut told: Vec<(String, String)> = rx
        .at("/jobs")
        .iter()
        .map(|c| {
            let v: serde_json::Value = serde_json::from_str(&c.body).unwrap();
            (
                v["data"]["details"]["job"].as_str().unwrap().to_owned(),
                v["type"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("job.")
                    .to_owned(),
            )
        })
        .collect();
    told.sort();
    assert_eq!(told, events, "{got:?}");
    assert!(
        rx.at("/jobs")
            .iter()
            .all(|c| !c.body.contains("no such table")),
        "a failed run's log stays on the Jobs tab"
    );

    // The service page's Jobs tab, rendered on the server, says the same.
    let owner: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    let session = switchyard_engine::auth::sessions::create(&pool, owner, 1, None, None)
        .await
        .unwrap();
    let page = app
        .client
        .get(app.url(&format!("/projects/{P}/services/billing/jobs")))
        .header("cookie", format!("enclii_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("billing-report-manual"), "{page}");
    assert!(page.contains("error: no such table"), "{page}");
    assert!(
        page.contains("no run succeeded within two intervals"),
        "{page}"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_one_off_run_streams_its_log_and_reports_its_exit_code(pool: PgPool) {
    let (app, _cluster, _ns, _cleanup, token) = spawn(&pool).await;
    import(&app, &token, &spec(ROLLING)).await;
    let d = deploy(&app, &token, "registry.local/acme/billing:1").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let (status, run) = app
        .call(
            "/api/runs/create",
            Some(&token),
            json!({"project": P, "service": "billing", "environment": "production",
                   "command": ["sh", "-c", "echo hello from the run; exit 7"]}),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    let id = run["id"].as_i64().unwrap();
    assert_eq!(run["state"], "running");
    let log = app
        .client
        .get(app.url(&format!("/api/runs/{P}/{id}/logs?follow=true")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("hello from the run"), "{log}");
    let mut ended = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, r) = app
            .call(
                "/api/runs/get",
                Some(&token),
                json!({"project": P, "id": id}),
            )
            .await;
        if r["state"] != "running" {
            ended = r;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ended["state"], "failed", "{ended}");
    assert_eq!(ended["exit_code"], 7, "{ended}");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'job.run'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);
}

async fn jobs_list(app: &TestApp, token: &str) -> serde_json::Value {
    let (status, body) = app
        .call(
            "/api/jobs/list",
            Some(token),
            json!({"project": P, "service": "billing"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A replica that takes a deployment over finds the release Job its predecessor started (named by
/// the deployment) and follows it: the command does not run a second time.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_driver_that_takes_over_follows_the_release_job_already_started(pool: PgPool) {
    let (app, cluster, ns, _cleanup, token) = spawn_with_worker(&pool, false).await;
    let release = "  release:\n    command: [sh, -c, \"echo run by whichever driver\"]\n";
    import(&app, &token, &spec(&format!("{ROLLING}{release}"))).await;
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(&token),
            json!({"project": P, "service": "billing", "environment": "production", "image": "registry.local/acme/billing:1"}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    let id = d["id"].as_i64().unwrap();
    // What the first driver had done before it went away: chosen the path, begun the release
    // step, started the Job; then its lease ran out.
    sqlx::query(
        "UPDATE deployments SET state = 'in_progress', started_at = now(), lease_owner = 'gone',
                lease_until = now() - interval '1 second',
                traffic_split = 'one step: the spec asks for a rolling update' WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO deployment_steps (deployment_id, seq, kind, state) VALUES ($1, 1, 'release', 'running')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    common::tenant_namespace(&cluster, &pool, P, &ns).await;
    let started: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "metadata": { "name": format!("billing-release-{id}") },
        "spec": { "backoffLimit": 0, "template": { "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "billing", "image": "registry.local/acme/billing:1",
                             "command": ["sh", "-c", "echo started by the first driver"] }] } } }
    }))
    .unwrap();
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(cluster.admin.clone(), &ns);
    jobs.create(&Default::default(), &started).await.unwrap();

    let taker = {
        let mut settings = cluster_settings(&cluster);
        settings.cluster.worker = true;
        settings.cluster.namespace_prefix = app.engine.settings.cluster.namespace_prefix.clone();
        common::serve_app(
            switchyard_server::build_with_pool(settings, pool.clone())
                .await
                .expect("build app"),
        )
        .await
    };
    let mut done = serde_json::Value::Null;
    for _ in 0..300 {
        let (_, page) = taker
            .call("/api/deployments/list", Some(&token), json!({"project": P}))
            .await;
        if let Some(d) = page["items"]
            .as_array()
            .and_then(|items| items.iter().find(|d| d["id"] == id))
            .filter(|d| !matches!(d["state"].as_str(), Some("pending" | "in_progress")))
        {
            done = d.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(done["state"], "succeeded", "{done}");
    let evidence: serde_json::Value = sqlx::query_scalar(
        "SELECT evidence FROM deployment_steps WHERE deployment_id = $1 AND kind = 'release'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    let log = evidence["log_tail"].as_str().unwrap();
    assert!(log.contains("started by the first driver"), "{evidence}");
    assert!(!log.contains("run by whichever driver"), "{evidence}");
    let listed = jobs.list(&Default::default()).await.unwrap().items;
    assert_eq!(listed.len(), 1, "one release Job, never a second");
    let steps = steps(&pool, id).await;
    assert_eq!(kinds(&steps)[0], ("release", "succeeded"), "{steps:?}");
    assert_eq!(
        kinds(&steps)
            .iter()
            .filter(|(k, _)| *k == "release")
            .count(),
        1,
        "the taker continued the release step: {steps:?}"
    );
}
