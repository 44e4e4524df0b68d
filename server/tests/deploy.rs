//! Deployments against the sandbox cluster through the real kube-rs client: healthy rollouts,
//! failures reported with their reason, rollback, pruning, and a flaky API server.

mod common;

use common::{spawn_app_with_sandbox, user, wait_for_deployment, with_canary_pause};
use serde_json::json;
use sqlx::PgPool;

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const API: &str = include_str!("../../spec/fixtures/dogfooding/switchyard-api.yaml");
const P: &str = "enclii-platform";
const NS: &str = "enclii-platform-production";

async fn setup(app: &common::TestApp, pool: &PgPool, spec: &str) -> String {
    let owner = user(pool, "owner", true).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": P}),
    )
    .await;
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&owner.token),
            json!({"spec": with_canary_pause(spec, "300ms")}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    owner.token
}

async fn deploy(
    app: &common::TestApp,
    token: &str,
    service: &str,
    image: &str,
) -> serde_json::Value {
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(token),
            json!({"project": P, "service": service, "environment": "production", "image": image}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    wait_for_deployment(app, token, P, d["id"].as_i64().unwrap()).await
}

async fn steps(pool: &PgPool, id: i64) -> Vec<(String, String)> {
    sqlx::query!(
        "SELECT kind, state FROM deployment_steps WHERE deployment_id = $1 ORDER BY seq",
        id
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.kind, r.state))
    .collect()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_healthy_rollout_applies_every_object_and_succeeds_when_the_new_pods_are_ready(
    pool: PgPool,
) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, API).await;
    let d = deploy(
        &app,
        &token,
        "switchyard-api",
        "ghcr.io/madfam-io/switchyard-api:1",
    )
    .await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let id = d["id"].as_i64().unwrap();
    assert_eq!(
        steps(&pool, id).await,
        [
            ("apply".into(), "succeeded".into()),
            ("rollout".into(), "succeeded".into()),
            ("prune".into(), "succeeded".into())
        ]
    );
    for (resource, name) in [
        ("apps/v1/deployments", "switchyard-api"),
        ("/v1/services", "switchyard-api"),
        ("autoscaling/v2/horizontalpodautoscalers", "switchyard-api"),
        ("policy/v1/poddisruptionbudgets", "switchyard-api"),
        (
            "networking.k8s.io/v1/networkpolicies",
            "switchyard-api-netpol",
        ),
        ("networking.k8s.io/v1/ingresses", "switchyard-api"),
        ("/v1/persistentvolumeclaims", "switchyard-api-build-cache"),
    ] {
        assert!(
            sandbox.object(resource, Some(NS), name).is_some(),
            "{resource} {name} was not applied"
        );
    }
    assert!(sandbox.object("/v1/namespaces", None, NS).is_some());
    // The autoscaler's minimum (3) decided the pod count, and all of them run the new release.
    let pods = sandbox.objects("/v1/pods", Some(NS));
    assert_eq!(pods.len(), 3);
    let evidence: serde_json::Value = sqlx::query_scalar!(
        "SELECT evidence FROM deployment_steps WHERE deployment_id = $1 AND kind = 'rollout'",
        id
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(evidence["ready"], 3);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn images_that_cannot_run_fail_fast_with_the_reason(pool: PgPool) {
    let (app, _sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, DOCS).await;
    for (image, reason) in [
        ("ghcr.io/madfam-io/docs:pull-error", "ImagePullBackOff"),
        ("ghcr.io/madfam-io/docs:crashloop", "CrashLoopBackOff"),
        (
            "ghcr.io/madfam-io/docs:unschedulable",
            "cannot be scheduled",
        ),
        ("ghcr.io/madfam-io/docs:stuck", "ProgressDeadlineExceeded"),
    ] {
        let d = deploy(&app, &token, "docs-site", image).await;
        assert_eq!(d["state"], "failed", "{image}: {d}");
        assert!(
            d["state_reason"].as_str().unwrap().contains(reason),
            "{image}: {d}"
        );
    }
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn rolling_back_reapplies_an_earlier_release(pool: PgPool) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, DOCS).await;
    let first = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(first["state"], "succeeded");
    assert_eq!(
        deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:2").await["state"],
        "succeeded"
    );
    let image = |s: &enclii_sandbox::Sandbox| {
        s.object("apps/v1/deployments", Some(NS), "docs-site")
            .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
            .clone()
    };
    assert_eq!(image(&sandbox), "ghcr.io/madfam-io/docs:2");

    let (status, rb) = app
        .call(
            "/api/deployments/rollback",
            Some(&token),
            json!({"project": P, "service": "docs-site", "environment": "production"}),
        )
        .await;
    assert_eq!(status, 200, "{rb}");
    assert_eq!(rb["strategy"], "rollback");
    let done = wait_for_deployment(&app, &token, P, rb["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        image(&sandbox),
        "ghcr.io/madfam-io/docs:1",
        "the cluster runs the earlier release again"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn an_object_the_spec_no_longer_asks_for_is_pruned(pool: PgPool) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, DOCS).await;
    assert_eq!(
        deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    assert!(
        sandbox
            .object("networking.k8s.io/v1/ingresses", Some(NS), "docs-site")
            .is_some()
    );
    let without_domains = DOCS.replace(
        "  domains:\n    - domain: docs.enclii.io\n      tls: true\n      tlsIssuer: cloudflare\n",
        "",
    );
    assert_ne!(without_domains, DOCS);
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&token),
            json!({"spec": with_canary_pause(&without_domains, "300ms")}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:2").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    assert!(
        sandbox
            .object("networking.k8s.io/v1/ingresses", Some(NS), "docs-site")
            .is_none(),
        "the Ingress was pruned"
    );
    assert!(
        sandbox
            .object("/v1/services", Some(NS), "docs-site")
            .is_some(),
        "the rest stays"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_flaky_api_server_is_retried_and_a_broken_one_fails_the_deployment_clearly(pool: PgPool) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, DOCS).await;
    sandbox.fail_next(3, 500);
    assert_eq!(
        deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded",
        "three 500s are retried through"
    );
    sandbox.hang_next(1);
    assert_eq!(
        deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:2").await["state"],
        "succeeded",
        "a hung request times out and is retried"
    );
    sandbox.fail_next(30, 500);
    let d = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:3").await;
    assert_eq!(d["state"], "failed");
    assert!(
        d["state_reason"]
            .as_str()
            .unwrap()
            .contains("the API server answered 500"),
        "{d}"
    );
    sandbox.fail_next(0, 500);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn live_status_shows_ready_replicas_and_the_running_release(pool: PgPool) {
    let (app, _sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, DOCS).await;
    let (_, before) = app
        .call(
            "/api/services/status",
            Some(&token),
            json!({"project": P, "service": "docs-site"}),
        )
        .await;
    assert_eq!(
        before
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["deployed"] == true)
            .count(),
        0,
        "{before}"
    );
    assert_eq!(
        deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let (status, after) = app
        .call(
            "/api/services/status",
            Some(&token),
            json!({"project": P, "service": "docs-site"}),
        )
        .await;
    assert_eq!(status, 200, "{after}");
    let prod = after
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["environment"] == "production")
        .unwrap();
    assert_eq!(
        (prod["desired"].as_i64(), prod["ready"].as_i64()),
        (Some(2), Some(2)),
        "{prod}"
    );
    assert_eq!(prod["image"], "ghcr.io/madfam-io/docs:1");
    assert_eq!(prod["progress"], "NewReplicaSetAvailable");
    let release: String = sqlx::query_scalar!("SELECT id::text AS \"id!\" FROM releases")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(prod["release"], release);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn pod_logs_stream_from_every_pod_and_only_to_members(pool: PgPool) {
    let (app, _sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, DOCS).await;
    assert_eq!(
        deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let url = app.url("/api/logs/enclii-platform/docs-site/production?tail=5");
    let body = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pods: std::collections::BTreeSet<&str> = body
        .lines()
        .map(|l| l.split(" | ").next().unwrap())
        .collect();
    assert_eq!(
        pods.len(),
        2,
        "both pods (the autoscaler's minimum) speak:\n{body}"
    );
    assert!(
        body.lines()
            .all(|l| l.contains("docs-site GET /health 200")),
        "{body}"
    );

    // Following: lines keep coming after the history.
    let mut follow = app
        .client
        .get(format!("{url}&follow=true"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while seen.lines().count() < 14 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), follow.chunk())
            .await
            .expect("a followed line")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("request=6"),
        "a line newer than the history:\n{seen}"
    );

    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);
    let outsider = user(&pool, "outsider", true).await;
    assert_eq!(
        app.client
            .get(&url)
            .bearer_auth(&outsider.token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn an_environment_configured_with_its_own_cluster_deploys_there(pool: PgPool) {
    let production_cluster = common::start_sandbox().await;
    let staging_cluster = common::start_sandbox().await;
    let mut settings = common::sandbox_settings(&production_cluster);
    settings.cluster.worker = true;
    settings.cluster.environments.insert(
        "staging".into(),
        switchyard_engine::config::EnvironmentCluster {
            mode: switchyard_engine::config::ClusterMode::Url,
            url: Some(staging_cluster.kube_url.clone()),
            context: None,
        },
    );
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .unwrap(),
    )
    .await;
    let token = setup(&app, &pool, DOCS).await;
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(&token),
            json!({"project": P, "service": "docs-site", "environment": "staging", "image": "ghcr.io/madfam-io/docs:1"}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    let d = wait_for_deployment(&app, &token, P, d["id"].as_i64().unwrap()).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let staging = "enclii-platform-staging";
    assert!(
        staging_cluster
            .object("apps/v1/deployments", Some(staging), "docs-site")
            .is_some()
    );
    assert!(
        production_cluster
            .object("apps/v1/deployments", Some(staging), "docs-site")
            .is_none(),
        "nothing went to the default cluster"
    );
    // Status reads each environment from its own cluster.
    let (_, status) = app
        .call(
            "/api/services/status",
            Some(&token),
            json!({"project": P, "service": "docs-site"}),
        )
        .await;
    let by_env = |name: &str| {
        status
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["environment"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_env("staging")["deployed"], true, "{status}");
    assert_eq!(by_env("production")["deployed"], false, "{status}");
}

/// Reads server-sent events from `response` until `done` says stop; returns each event's data.
async fn read_events(
    response: &mut reqwest::Response,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while !done(&events) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), response.chunk())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("the stream is still open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
    }
    events
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn live_status_and_logs_stream_as_server_sent_events(pool: PgPool) {
    let (app, _sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, DOCS).await;
    let url = app.url("/api/events/status/enclii-platform/docs-site");
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);
    let mut status = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(status.headers()["content-type"], "text/event-stream");
    let first = read_events(&mut status, |e| !e.is_empty()).await;
    assert!(first[0].contains(r#""deployed":false"#), "{first:?}");
    // Before any pod runs, the log stream says so and tells the browser to come back.
    let early = app
        .client
        .get(app.url("/api/logs/enclii-platform/docs-site/production?follow=true&format=sse"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 200);
    let early = early.text().await.unwrap();
    assert!(
        early.contains("event: notice")
            && early.contains("retry: 3000")
            && early.contains("no running pods"),
        "{early}"
    );
    let deployed = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(deployed["state"], "succeeded");
    // The page learns of the rollout from the cluster's watch, without asking again.
    let events = read_events(&mut status, |e| {
        e.iter().any(|d| d.contains(r#""environment":"production","namespace":"enclii-platform-production","deployed":true,"desired":2,"ready":2"#))
    })
    .await;
    assert!(events.len() >= 2, "{events:?}");

    let mut logs = app
        .client
        .get(
            app.url("/api/logs/enclii-platform/docs-site/production?tail=3&follow=true&format=sse"),
        )
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logs.headers()["content-type"], "text/event-stream");
    let lines = read_events(&mut logs, |e| e.len() >= 8).await;
    assert!(
        lines.iter().all(|l| l.contains(" | ")
            && l.contains("docs-site GET /health 200")
            && !l.ends_with('\n')),
        "{lines:?}"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn variables_and_secrets_reach_the_pods_through_a_secret(pool: PgPool) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, DOCS).await;
    for body in [
        json!({"project": P, "service": "docs-site", "environment": "production", "name": "API_KEY", "value": "t0ps3cret", "secret": true}),
        json!({"project": P, "service": "docs-site", "environment": "production", "name": "MODE", "value": "fast", "secret": false}),
        json!({"project": P, "service": "docs-site", "environment": "production", "name": "DATABASE_URL", "secret_ref": ["db", "url"]}),
    ] {
        let (status, answer) = app.call("/api/env/set", Some(&token), body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let d = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    // The values' Secret is named by its content: `docs-site-env-<checksum>`.
    let env_secrets = |s: &enclii_sandbox::Sandbox| -> Vec<serde_json::Value> {
        s.objects("/v1/secrets", Some(NS))
            .into_iter()
            .filter(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("docs-site-env-")
            })
            .collect()
    };
    let secrets = env_secrets(&sandbox);
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    let secret = &secrets[0];
    assert_eq!(secret["data"]["API_KEY"], "dDBwczNjcmV0");
    let deployment = sandbox
        .object("apps/v1/deployments", Some(NS), "docs-site")
        .unwrap();
    let template = &deployment["spec"]["template"];
    let env = template["spec"]["containers"][0]["env"].as_array().unwrap();
    let find = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {env:?}"))
    };
    assert_eq!(find("MODE")["value"], "fast");
    assert_eq!(
        find("API_KEY")["valueFrom"]["secretKeyRef"]["name"],
        secret["metadata"]["name"]
    );
    assert_eq!(
        find("DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"],
        "db"
    );
    assert!(!deployment.to_string().contains("t0ps3cret"));
    let before = template["metadata"]["annotations"]["enclii.dev/env-checksum"].clone();

    // A new secret value rolls the pods on the next deploy (the template's checksum changes).
    app.call(
        "/api/env/set",
        Some(&token),
        json!({"project": P, "service": "docs-site", "environment": "production", "name": "API_KEY", "value": "rotated", "secret": true}),
    )
    .await;
    let again = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(again["state"], "succeeded", "{again}");
    let after = sandbox
        .object("apps/v1/deployments", Some(NS), "docs-site")
        .unwrap();
    assert_ne!(
        after["spec"]["template"]["metadata"]["annotations"]["enclii.dev/env-checksum"],
        before
    );
    // The canary read its own Secret; after promotion only the new one is left (the old was pruned).
    let secrets = env_secrets(&sandbox);
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert_eq!(secrets[0]["data"]["API_KEY"], "cm90YXRlZA==");
    assert_ne!(secrets[0]["metadata"]["name"], secret["metadata"]["name"]);
}

/// A replica that claims a deployment again after its own earlier claim's lease ran out (a driver
/// that stalled) gets a new lease token: the stalled driver's fenced writes match nothing.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_reclaim_by_the_same_replica_fences_out_its_stalled_driver(pool: PgPool) {
    use std::time::Duration;
    use switchyard_engine::deploy::worker::claim;
    use switchyard_engine::leases::claim_token;
    let app = common::spawn_app(pool.clone()).await;
    let alice = common::user(&pool, "alice", true).await;
    app.call(
        "/api/projects/create",
        Some(&alice.token),
        serde_json::json!({"slug": "enclii-platform"}),
    )
    .await;
    let spec = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
    app.call(
        "/api/services/import",
        Some(&alice.token),
        serde_json::json!({"spec": spec}),
    )
    .await;
    let (status, body) = app
        .call(
            "/api/deployments/create",
            Some(&alice.token),
            serde_json::json!({"project": "enclii-platform", "service": "docs-site", "environment": "staging", "image": "ghcr.io/x/docs:1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let first = claim_token("replica-a");
    let id = claim(&pool, &first, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("claimed");
    sqlx::query("UPDATE deployments SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let second = claim_token("replica-a");
    assert_eq!(
        claim(&pool, &second, Duration::from_secs(30))
            .await
            .unwrap(),
        Some(id),
        "reclaimed"
    );
    // The stalled driver's lease renewal (the same fence every driver write carries).
    let renewed = sqlx::query("UPDATE deployments SET lease_until = now() + interval '30 seconds' WHERE id = $1 AND lease_owner = $2")
        .bind(id)
        .bind(&first)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        renewed.rows_affected(),
        0,
        "the earlier claim is fenced out"
    );
    let owner: String = sqlx::query_scalar("SELECT lease_owner FROM deployments WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(owner, second);
}
