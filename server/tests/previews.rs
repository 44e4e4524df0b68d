//! Pull request previews against the real control plane: `pull_request` deliveries signed as
//! GitHub signs them, builds as simulated BuildKit Jobs, deployments in each preview's own
//! namespace, and the scan driven with an explicit `now` instead of waiting for minutes.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Cleanup, LocalCluster, TestApp, cluster_settings, serve_app, spawn_app, user};

use serde_json::json;
use sqlx::PgPool;
use switchyard_engine::pipeline::github::sign;

const REPO: &str = "https://github.com/madfam-io/enclii";
const SUFFIX: &str = "preview.test";

fn spec(project: &str, service: &str, repo: &str, previews: &str) -> String {
    format!(
        "apiVersion: enclii.dev/v1
kind: Service
metadata:
  name: {service}
  project: {project}
spec:
  build:
    type: dockerfile
    source:
      git:
        repository: {repo}
        branch: main
  runtime:
    port: 8080
    replicas: 2
    healthCheck: /health
  domains:
    - domain: {service}.example.com
  previews:
{previews}"
    )
}

/// A project with `specs` imported and `repo` connected; the owner's token and the webhook secret.
async fn setup(
    app: &TestApp,
    pool: &PgPool,
    owner: &str,
    project: &str,
    repo: &str,
    specs: &[String],
) -> (String, String) {
    let owner = user(pool, owner, true).await;
    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&owner.token),
            json!({"slug": project}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for spec in specs {
        let (status, body) = app
            .call(
                "/api/services/import",
                Some(&owner.token),
                json!({"spec": spec}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, r) = app
        .call(
            "/api/repositories/connect",
            Some(&owner.token),
            json!({"project": project, "url": repo}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    (owner.token, r["secret"].as_str().unwrap().to_owned())
}

/// A `pull_request` delivery's body as GitHub sends it (the fields Enclii reads, and some more).
fn pr(action: &str, number: u64, sha: &str, labels: &[&str], fork: bool) -> serde_json::Value {
    pr_of(REPO, action, number, sha, labels, fork)
}

fn pr_of(
    repo: &str,
    action: &str,
    number: u64,
    sha: &str,
    labels: &[&str],
    fork: bool,
) -> serde_json::Value {
    let labels: Vec<_> = labels.iter().map(|l| json!({"name": l})).collect();
    json!({
        "action": action, "number": number,
        "pull_request": {
            "number": number, "state": if action == "closed" { "closed" } else { "open" },
            "merged": action == "closed", "title": "Make it better",
            "labels": labels,
            "head": {"sha": sha, "ref": "feature/better", "repo": {"id": if fork { 99 } else { 1 }, "full_name": if fork { "stranger/enclii" } else { "madfam-io/enclii" }}},
            "base": {"sha": "f".repeat(40), "ref": "main", "repo": {"id": 1, "full_name": "madfam-io/enclii"}}
        },
        "repository": {"id": 1, "html_url": repo, "clone_url": format!("{repo}.git"), "full_name": "madfam-io/enclii"},
        "sender": {"login": "someone"}
    })
}

async fn deliver(
    app: &TestApp,
    id: &str,
    payload: &serde_json::Value,
    secret: &str,
) -> (u16, serde_json::Value) {
    let body = payload.to_string();
    let res = app
        .client
        .post(app.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", id)
        .header(
            "x-hub-signature-256",
            sign(secret.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

/// A server deploying to the local cluster with the platform's generated hostnames, whose own
/// background scan stays out of the way (the tests scan with an explicit `now`).
async fn spawn(pool: PgPool) -> (TestApp, LocalCluster) {
    let cluster = LocalCluster::from_env().await;
    let mut s = cluster_settings(&cluster);
    s.cluster.worker = true;
    s.domains.generated_suffix = Some(SUFFIX.into());
    s.previews.scan_secs = 3600;
    let app = switchyard_server::build_with_pool(s, pool)
        .await
        .expect("build app");
    (serve_app(app).await, cluster)
}

async fn list(app: &TestApp, token: &str, project: &str) -> Vec<serde_json::Value> {
    let (status, body) = app
        .call(
            "/api/previews/list",
            Some(token),
            json!({"project": project}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

async fn preview(app: &TestApp, token: &str, project: &str, n: i64) -> serde_json::Value {
    list(app, token, project)
        .await
        .into_iter()
        .find(|p| p["pr_number"] == n)
        .unwrap_or_else(|| panic!("no preview of #{n}"))
}

/// Polls until the preview's service has a finished deployment of `sha`; returns the preview.
async fn wait_deployed(
    app: &TestApp,
    pool: &PgPool,
    token: &str,
    project: &str,
    n: i64,
    sha: &str,
) -> serde_json::Value {
    for _ in 0..600 {
        let p = preview(app, token, project, n).await;
        let done = sqlx::query_scalar::<_, String>(
            "SELECT d.state FROM deployments d JOIN releases r ON r.id = d.release_id
             JOIN environments e ON e.id = d.environment_id JOIN projects pr ON pr.id = e.project_id
             WHERE pr.slug = $1 AND e.name = $2 AND r.git_commit = $3 ORDER BY d.id DESC LIMIT 1",
        )
        .bind(project)
        .bind(format!("pr-{n}"))
        .bind(sha)
        .fetch_optional(pool)
        .await
        .unwrap();
        match done.as_deref() {
            Some("succeeded") => return p,
            Some("pending" | "in_progress") | None => {}
            Some(other) => {
                let builds: Vec<(String, Option<String>)> =
                    sqlx::query_as("SELECT state, state_reason FROM builds ORDER BY id")
                        .fetch_all(pool)
                        .await
                        .unwrap();
                panic!("the preview's deployment ended {other}: {p} {builds:?}")
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let builds: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT state, state_reason FROM builds ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    panic!("#{n} at {sha} was not deployed: {builds:?}");
}

async fn wait_state(app: &TestApp, token: &str, project: &str, n: i64, state: &str) {
    for _ in 0..300 {
        if preview(app, token, project, n).await["state"] == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "#{n} never became {state}: {}",
        preview(app, token, project, n).await
    );
}

/// The namespace is gone, or going (the API server finishes a deletion in its own time).
async fn namespace_gone(cluster: &LocalCluster, ns: &str) -> bool {
    match cluster.object("v1", "Namespace", None, ns).await {
        None => true,
        Some(n) => {
            n["status"]["phase"] == "Terminating" || n["metadata"]["deletionTimestamp"].is_string()
        }
    }
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_pull_request_gets_a_preview_that_follows_its_commits_and_goes_when_it_closes(
    pool: PgPool,
) {
    let (app, cluster) = spawn(pool.clone()).await;
    let _cleanup = Cleanup(app.engine.settings.cluster.namespace_prefix.clone());
    let p = "shop";
    let web = spec(p, "web", REPO, "    enabled: true\n");
    let (token, secret) = setup(&app, &pool, "owner", p, REPO, std::slice::from_ref(&web)).await;
    // Production's proven domain is routed in production; a pull request must never route it.
    common::prove_domains(&pool, p, &web).await;
    // Staging's variables are copied (its secret sealed again for the preview); production's never.
    for (env, name, value, secret) in [
        ("staging", "GREETING", "hello from staging", false),
        ("staging", "API_KEY", "staging-key", true),
        ("production", "PROD_ONLY", "production-secret", true),
    ] {
        let (status, body) = app
            .call(
                "/api/env/set",
                Some(&token),
                json!({"project": p, "service": "web", "environment": env, "name": name, "value": value, "secret": secret}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let first = "1".repeat(40);
    let (status, body) = deliver(
        &app,
        "pr-opened",
        &pr("opened", 7, &first, &[], false),
        &secret,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["outcome"], "accepted");
    assert_eq!(body["builds"].as_array().unwrap().len(), 1, "{body}");
    let ns = switchyard_engine::platform::projects::namespace_for(
        &app.engine.settings.cluster.namespace_prefix,
        p,
        "pr-7",
    );
    let pv = wait_deployed(&app, &pool, &token, p, 7, &first).await;
    assert_eq!(pv["state"], "awake");
    assert_eq!(pv["environment"], "pr-7");
    let host = format!("web.{ns}.{SUFFIX}");
    assert_eq!(pv["services"][0]["url"], format!("https://{host}"));

    // Running in its own namespace, one replica, with its own Ingress for the platform's hostname
    // only (the spec's production domain is never routed from a pull request).
    let d = cluster
        .object("apps/v1", "Deployment", Some(&ns), "web")
        .await
        .expect("the preview's Deployment");
    assert_eq!(d["spec"]["replicas"], 1);
    assert!(
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with("registry.enclii.local/shop/web@sha256:")
    );
    let ingress = cluster
        .object("networking.k8s.io/v1", "Ingress", Some(&ns), "web")
        .await
        .expect("the preview's Ingress");
    let hosts: Vec<&str> = ingress["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, [host.as_str()]);
    let tenant = cluster
        .object("v1", "Namespace", None, &ns)
        .await
        .expect("the preview's namespace");
    assert!(tenant["metadata"]["labels"]["enclii.dev/project-id"].is_string());
    assert!(
        cluster
            .object(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                Some(&ns),
                switchyard_engine::deploy::tenancy::ISOLATION_POLICY
            )
            .await
            .is_some(),
        "the same isolation as every environment"
    );
    let (_, vars) = app
        .call(
            "/api/env/list",
            Some(&token),
            json!({"project": p, "service": "web", "environment": "pr-7"}),
        )
        .await;
    let names: Vec<&str> = vars
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["API_KEY", "GREETING"], "{vars}");
    let (status, revealed) = app
        .call(
            "/api/env/reveal",
            Some(&token),
            json!({"project": p, "service": "web", "environment": "pr-7", "name": "API_KEY"}),
        )
        .await;
    assert_eq!(status, 200, "{revealed}");
    assert!(revealed.to_string().contains("staging-key"), "{revealed}");

    // A new commit: rebuilt and redeployed.
    let second = "2".repeat(40);
    let (status, body) = deliver(
        &app,
        "pr-sync",
        &pr("synchronize", 7, &second, &[], false),
        &secret,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let pv = wait_deployed(&app, &pool, &token, p, 7, &second).await;
    assert_eq!(pv["head_sha"], second);
    let releases: Vec<String> = sqlx::query_scalar(
        "SELECT r.git_commit FROM deployments d JOIN releases r ON r.id = d.release_id ORDER BY d.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(releases, [first.clone(), second.clone()]);
    let strategies: Vec<String> =
        sqlx::query_scalar("SELECT strategy FROM deployments ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        strategies,
        ["rolling", "rolling"],
        "a preview has no canary"
    );

    // Closed (merged): everything it created goes, and it says so.
    let (status, body) = deliver(
        &app,
        "pr-closed",
        &pr("closed", 7, &second, &[], false),
        &secret,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("pull request #7 merged: deleting the preview"),
        "{body}"
    );
    wait_state(&app, &token, p, 7, "deleted").await;
    let pv = preview(&app, &token, p, 7).await;
    assert!(
        pv["last_event"].as_str().unwrap().starts_with("deleted: ")
            && pv["last_event"]
                .as_str()
                .unwrap()
                .contains(&format!("namespace {ns} deleted")),
        "{pv}"
    );
    assert!(
        pv["services"][0]["url"].is_null(),
        "the hostname is released"
    );
    assert!(namespace_gone(&cluster, &ns).await);
    let envs: Vec<String> = sqlx::query_scalar("SELECT name FROM environments ORDER BY name")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(envs, ["production", "staging"]);
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(running, 0, "the preview's deployments went with it");
    let (outcome, reason): (String, String) = sqlx::query_as(
        "SELECT outcome, reason FROM webhook_deliveries WHERE delivery_id = 'pr-closed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(outcome, "accepted");
    assert!(reason.contains("deleting the preview"), "{reason}");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_label_gated_spec_previews_only_labelled_pull_requests(pool: PgPool) {
    let (app, cluster) = spawn(pool.clone()).await;
    let _cleanup = Cleanup(app.engine.settings.cluster.namespace_prefix.clone());
    let p = "shop";
    let (token, secret) = setup(
        &app,
        &pool,
        "owner",
        p,
        REPO,
        &[spec(
            p,
            "web",
            REPO,
            "    enabled: true\n    label: preview\n",
        )],
    )
    .await;
    let sha = "3".repeat(40);
    let (status, body) = deliver(
        &app,
        "l-opened",
        &pr("opened", 8, &sha, &["bug"], false),
        &secret,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "ignored");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("web previews only pull requests labelled `preview`"),
        "{body}"
    );
    assert!(list(&app, &token, p).await.is_empty());

    let (status, body) = deliver(
        &app,
        "l-labeled",
        &pr("labeled", 8, &sha, &["bug", "preview"], false),
        &secret,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_deployed(&app, &pool, &token, p, 8, &sha).await;

    // The label removed: the preview goes.
    let (status, body) = deliver(
        &app,
        "l-unlabeled",
        &pr("unlabeled", 8, &sha, &["bug"], false),
        &secret,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_state(&app, &token, p, 8, "deleted").await;
    let ns = switchyard_engine::platform::projects::namespace_for(
        &app.engine.settings.cluster.namespace_prefix,
        p,
        "pr-8",
    );
    assert!(namespace_gone(&cluster, &ns).await);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn an_idle_preview_sleeps_wakes_on_request_and_expires(pool: PgPool) {
    let (app, cluster) = spawn(pool.clone()).await;
    let _cleanup = Cleanup(app.engine.settings.cluster.namespace_prefix.clone());
    let p = "shop";
    // `no-traffic`: the simulated pods of this image get no requests, so Prometheus counts none.
    let (token, secret) = setup(
        &app,
        &pool,
        "owner",
        p,
        REPO,
        &[spec(
            p,
            "web-no-traffic",
            REPO,
            "    enabled: true\n    ttlHours: 48\n    sleepAfterMinutes: 30\n",
        )],
    )
    .await;
    let sha = "4".repeat(40);
    let (status, body) = deliver(
        &app,
        "i-opened",
        &pr("opened", 9, &sha, &[], false),
        &secret,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_deployed(&app, &pool, &token, p, 9, &sha).await;
    let ns = switchyard_engine::platform::projects::namespace_for(
        &app.engine.settings.cluster.namespace_prefix,
        p,
        "pr-9",
    );
    let engine = &app.engine;
    let scan = |minutes: i64| {
        switchyard_engine::previews::scan(engine, Utc::now() + chrono::Duration::minutes(minutes))
    };

    // Not idle yet: nothing happens.
    assert_eq!(scan(10).await.unwrap(), Default::default());
    // Idle for the window: scaled to zero.
    let done = scan(31).await.unwrap();
    assert_eq!(done.slept, 1, "{done:?}");
    let pv = preview(&app, &token, p, 9).await;
    assert_eq!(pv["state"], "sleeping");
    assert!(
        pv["last_event"]
            .as_str()
            .unwrap()
            .starts_with("scaled to zero"),
        "{pv}"
    );
    let d = cluster
        .object("apps/v1", "Deployment", Some(&ns), "web-no-traffic")
        .await
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 0);
    // Asleep, a later scan leaves it so.
    assert_eq!(scan(60).await.unwrap(), Default::default());

    // Woken on request: replicas back, serving again.
    let (status, woken) = app
        .call(
            "/api/previews/wake",
            Some(&token),
            json!({"project": p, "pr": 9}),
        )
        .await;
    assert_eq!(status, 200, "{woken}");
    assert_eq!(woken["state"], "awake");
    assert!(
        woken["last_event"]
            .as_str()
            .unwrap()
            .starts_with("woken by owner"),
        "{woken}"
    );
    let mut ready = 0;
    for _ in 0..200 {
        let d = cluster
            .object("apps/v1", "Deployment", Some(&ns), "web-no-traffic")
            .await
            .unwrap();
        ready = d["status"]["readyReplicas"].as_i64().unwrap_or(0);
        if d["spec"]["replicas"] == 1 && ready == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 1, "the woken preview serves again");
    // Waking restarted its clocks: not idle 10 minutes from now.
    assert_eq!(scan(10).await.unwrap(), Default::default());

    // ttlHours after the last deploy or wake: deleted.
    let done = scan(48 * 60 + 1).await.unwrap();
    assert_eq!(done.deleted, 1, "{done:?}");
    let pv = preview(&app, &token, p, 9).await;
    assert_eq!(pv["state"], "deleted");
    let events: Vec<&str> = pv["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(events[0].starts_with("deleted: "), "{events:?}");
    assert!(
        events[1].starts_with("expired: no deploy or wake for 48h"),
        "{events:?}"
    );
    assert!(namespace_gone(&cluster, &ns).await);
}

/// No cluster needed: what a delivery may create, and where.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn previews_stay_inside_the_project_whose_repository_signed_the_delivery(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let other_repo = "https://github.com/stranger/app";
    let (a_token, a_secret) = setup(
        &app,
        &pool,
        "owner",
        "shop",
        REPO,
        &[spec("shop", "web", REPO, "    enabled: true\n")],
    )
    .await;
    let (b_token, b_secret) = setup(
        &app,
        &pool,
        "stranger",
        "other",
        other_repo,
        &[spec("other", "web", other_repo, "    enabled: true\n")],
    )
    .await;
    let sha = "5".repeat(40);

    // A's repository, A's secret: a preview in A only.
    let (status, body) = deliver(&app, "t-a", &pr("opened", 3, &sha, &[], false), &a_secret).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(list(&app, &a_token, "shop").await.len(), 1);
    assert!(list(&app, &b_token, "other").await.is_empty());
    // B cannot see, wake or delete A's preview by naming its number in its own project or A's.
    for path in ["/api/previews/wake", "/api/previews/delete"] {
        let (status, _) = app
            .call(path, Some(&b_token), json!({"project": "other", "pr": 3}))
            .await;
        assert_eq!(status, 404, "{path}");
        let (status, _) = app
            .call(path, Some(&b_token), json!({"project": "shop", "pr": 3}))
            .await;
        assert_eq!(status, 404, "{path}");
    }
    // B's secret over a payload naming A's repository: refused, nothing created anywhere.
    let (status, body) = deliver(
        &app,
        "t-b-on-a",
        &pr("opened", 4, &sha, &[], false),
        &b_secret,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    // B's own repository: B's preview, in B's namespace, with a hostname under B's namespace.
    let (status, body) = deliver(
        &app,
        "t-b",
        &pr_of(other_repo, "opened", 3, &sha, &[], false),
        &b_secret,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT pr.slug, e.name, e.namespace FROM previews p JOIN projects pr ON pr.id = p.project_id
         JOIN environments e ON e.id = p.environment_id ORDER BY pr.slug",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("other".into(), "pr-3".into(), "other--pr-3".into()),
            ("shop".into(), "pr-3".into(), "shop--pr-3".into())
        ]
    );
    // Builds only for each project's own service, in its own preview environment.
    let builds: Vec<(String, String)> = sqlx::query_as(
        "SELECT pr.slug, e.name FROM builds b JOIN environments e ON e.id = b.environment_id
         JOIN projects pr ON pr.id = e.project_id JOIN services s ON s.id = b.service_id
         WHERE s.project_id = pr.id ORDER BY pr.slug",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(builds.len(), 2, "{builds:?}");

    // Nothing in the payload names a namespace or hostname: out-of-range numbers and forks are
    // refused, and a user cannot make a `pr-<n>` environment for a preview to take over.
    for (id, payload, why) in [
        (
            "t-big",
            pr("opened", 1 << 40, &sha, &[], false),
            "number is not one",
        ),
        (
            "t-fork",
            pr("opened", 11, &sha, &[], true),
            "comes from a fork",
        ),
        (
            "t-sha",
            pr("opened", 12, "../../etc", &[], false),
            "not a commit id",
        ),
    ] {
        let (status, body) = deliver(&app, id, &payload, &a_secret).await;
        assert_eq!(status, 200, "{id}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(why),
            "{id}: {body}"
        );
    }
    let (status, body) = app
        .call(
            "/api/environments/create",
            Some(&a_token),
            json!({"project": "shop", "name": "pr-5"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let previews: i64 = sqlx::query_scalar("SELECT count(*) FROM previews")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(previews, 2);

    // The project page's Previews panel, rendered on the server: state, commit, last event.
    let page = app
        .client
        .get(app.url("/projects/shop"))
        .bearer_auth(&a_token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Pull request previews"), "{page}");
    assert!(
        page.contains("#3 · pr-3") && page.contains("555555555555"),
        "{page}"
    );
    assert!(
        page.contains("created for 555555555555 (opened): building web"),
        "{page}"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_preview_that_serves_requests_stays_awake(pool: PgPool) {
    let (app, cluster) = spawn(pool.clone()).await;
    let _cleanup = Cleanup(app.engine.settings.cluster.namespace_prefix.clone());
    let p = "shop";
    // The simulated pods of this image receive requests; Prometheus scrapes their counters.
    let (token, secret) = setup(
        &app,
        &pool,
        "owner",
        p,
        REPO,
        &[spec(
            p,
            "web",
            REPO,
            "    enabled: true\n    sleepAfterMinutes: 30\n",
        )],
    )
    .await;
    let sha = "6".repeat(40);
    let (status, body) = deliver(
        &app,
        "b-opened",
        &pr("opened", 10, &sha, &[], false),
        &secret,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_deployed(&app, &pool, &token, p, 10, &sha).await;
    let ns = switchyard_engine::platform::projects::namespace_for(
        &app.engine.settings.cluster.namespace_prefix,
        p,
        "pr-10",
    );
    // Wait until Prometheus has counted some of them (two scrapes at least).
    let prometheus = switchyard_engine::deploy::analysis::Prometheus::new(&cluster.prometheus_url);
    let query = app
        .engine
        .settings
        .previews
        .request_count_query
        .replace("{namespace}", &ns)
        .replace("{window}", "30m");
    let mut seen = 0.0;
    for _ in 0..300 {
        seen = prometheus.instant(&query).await.unwrap().unwrap_or(0.0);
        if seen > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen > 0.0,
        "Prometheus never counted the preview's requests"
    );
    // Untouched for longer than sleepAfterMinutes, but serving: not idle.
    let done =
        switchyard_engine::previews::scan(&app.engine, Utc::now() + chrono::Duration::minutes(31))
            .await
            .unwrap();
    assert_eq!(done, Default::default());
    assert_eq!(preview(&app, &token, p, 10).await["state"], "awake");
    let d = cluster
        .object("apps/v1", "Deployment", Some(&ns), "web")
        .await
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
}
