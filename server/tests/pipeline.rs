//! Continuous deployment: GitHub webhook deliveries (signatures, replays, unknown repositories,
//! branch and path filters), the durable build queue, and the whole pipeline against the local
//! cluster (a real API server, simulated nodes): a build Job that reports a digest (or fails with
//! its log), then the deploy.

mod common;

use common::{
    Cleanup, LocalCluster, TestApp, namespace, spawn_app, spawn_app_with_cluster, user,
    wait_for_deployment, with_canary_pause,
};
use serde_json::json;
use sqlx::PgPool;
use switchyard_engine::pipeline::github::sign;
use switchyard_engine::pipeline::job::build_namespace;

const P: &str = "enclii-platform";
const API: &str = include_str!("../../spec/fixtures/dogfooding/switchyard-api.yaml");
const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const LANDING: &str = include_str!("../../spec/fixtures/dogfooding/landing-page.yaml");
const REPO: &str = "https://github.com/madfam-io/enclii";

/// A project with `specs` imported and the repository connected; returns the owner's token and
/// the webhook secret.
async fn setup(app: &TestApp, pool: &PgPool, specs: &[&str]) -> (String, String) {
    let owner = user(pool, "owner", true).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": P}),
    )
    .await;
    for spec in specs {
        let (status, body) = app
            .call(
                "/api/services/import",
                Some(&owner.token),
                json!({"spec": with_canary_pause(spec, "200ms")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, repo) = app
        .call(
            "/api/repositories/connect",
            Some(&owner.token),
            json!({"project": P, "url": format!("{REPO}.git")}),
        )
        .await;
    assert_eq!(status, 200, "{repo}");
    assert_eq!(repo["url"], REPO, "stored normalised");
    assert!(
        repo["webhook_url"]
            .as_str()
            .unwrap()
            .ends_with("/webhooks/github")
    );
    (owner.token, repo["secret"].as_str().unwrap().to_owned())
}

fn push(branch: &str, after: &str, files: &[&str]) -> serde_json::Value {
    json!({
        "ref": format!("refs/heads/{branch}"), "before": "0".repeat(40), "after": after, "deleted": false,
        "repository": {"html_url": REPO, "clone_url": format!("{REPO}.git"), "full_name": "madfam-io/enclii"},
        "commits": [{"id": after, "added": [], "modified": files, "removed": []}]
    })
}

/// Sends a delivery as GitHub would; `secret: None` sends no signature.
async fn deliver(
    app: &TestApp,
    event: &str,
    id: &str,
    payload: &serde_json::Value,
    secret: Option<&str>,
) -> (u16, serde_json::Value) {
    let body = payload.to_string();
    let mut req = app
        .client
        .post(app.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", id);
    if let Some(s) = secret {
        req = req.header("x-hub-signature-256", sign(s.as_bytes(), body.as_bytes()));
    }
    let res = req.body(body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

async fn outcome(pool: &PgPool, id: &str) -> (String, String) {
    let r = sqlx::query!(
        "SELECT outcome, reason FROM webhook_deliveries WHERE delivery_id = $1",
        id
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (r.outcome, r.reason)
}

async fn builds(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query!(
        "SELECT s.name, b.state FROM builds b JOIN services s ON s.id = b.service_id ORDER BY b.id"
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.name, r.state))
    .collect()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn signatures_are_verified_replays_change_nothing_and_every_delivery_is_recorded(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone()).await;
    let (token, secret) = setup(&app, &pool, &[API]).await;
    let commit = "a".repeat(40);

    let (status, body) = deliver(
        &app,
        "ping",
        "d-ping",
        &json!({"zen": "Keep it logically awesome.", "repository": {"html_url": REPO}}),
        Some(&secret),
    )
    .await;
    assert_eq!((status, body["message"].as_str()), (200, Some("pong")));

    let (status, body) = deliver(
        &app,
        "push",
        "d-bad",
        &push("main", &commit, &["src/main.rs"]),
        Some("not the secret"),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(outcome(&pool, "d-bad").await.0, "rejected");
    let (status, _) = deliver(
        &app,
        "push",
        "d-unsigned",
        &push("main", &commit, &["src/main.rs"]),
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        outcome(&pool, "d-unsigned")
            .await
            .1
            .contains("no X-Hub-Signature-256")
    );

    let mut other = push("main", &commit, &[]);
    other["repository"]["html_url"] = "https://github.com/someone/else".into();
    let (status, body) = deliver(&app, "push", "d-unknown", &other, Some(&secret)).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        outcome(&pool, "d-unknown")
            .await
            .1
            .contains("is not connected")
    );
    assert!(
        builds(&pool).await.is_empty(),
        "nothing unverified was queued"
    );

    let (status, body) = deliver(
        &app,
        "push",
        "d-good",
        &push("main", &commit, &["src/main.rs"]),
        Some(&secret),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["builds"].as_array().unwrap().len(), 1);
    let (status, body) = deliver(
        &app,
        "push",
        "d-good",
        &push("main", &commit, &["src/main.rs"]),
        Some(&secret),
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("duplicate")),
        "a redelivery is idempotent"
    );
    assert_eq!(
        builds(&pool).await,
        [("switchyard-api".into(), "queued".into())]
    );

    // A rejected delivery, redelivered once the secret is right, is processed.
    let (status, _) = deliver(
        &app,
        "push",
        "d-bad",
        &push("main", &"b".repeat(40), &["src/main.rs"]),
        Some(&secret),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(outcome(&pool, "d-bad").await.0, "accepted");

    let res = app
        .client
        .post(app.url("/webhooks/github"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "no event or delivery header");
    let huge = "x".repeat(2 * 1024 * 1024);
    let res = app
        .client
        .post(app.url("/webhooks/github"))
        .header("x-github-event", "push")
        .header("x-github-delivery", "d-huge")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413, "payloads are size-limited");

    // The project's delivery list shows every verified or attributable delivery with its outcome.
    let (status, list) = app
        .call("/api/deliveries/list", Some(&token), json!({"project": P}))
        .await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap())
        .collect();
    for id in ["d-ping", "d-good", "d-bad", "d-unsigned"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let good = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["delivery_id"] == "d-good")
        .unwrap();
    assert_eq!(good["builds"][0]["service"], "switchyard-api");
    assert_eq!(
        good["builds"][0]["state"], "superseded",
        "d-bad's newer push superseded it while queued"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn branch_and_path_filters_decide_which_services_build(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (_token, secret) = setup(&app, &pool, &[DOCS, LANDING]).await;
    let commit = "c".repeat(40);
    let (status, body) = deliver(
        &app,
        "push",
        "d-1",
        &push("develop", &commit, &["docs/a.md"]),
        Some(&secret),
    )
    .await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("ignored")));
    assert!(
        outcome(&pool, "d-1")
            .await
            .1
            .contains("no service builds develop")
    );

    let (status, _) = deliver(
        &app,
        "push",
        "d-2",
        &push("main", &commit, &["README.md"]),
        Some(&secret),
    )
    .await;
    assert_eq!(status, 200);
    let reason = outcome(&pool, "d-2").await.1;
    assert!(
        reason.contains("changed nothing under") && reason.contains("docs-site (docs)"),
        "{reason}"
    );

    let (status, _) = deliver(
        &app,
        "push",
        "d-3",
        &push("main", &commit, &["docs/guide/intro.md"]),
        Some(&secret),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        builds(&pool).await,
        [("docs-site".into(), "queued".into())],
        "only the service whose path changed"
    );

    let mut tag = push("main", &commit, &[]);
    tag["ref"] = "refs/tags/v1.0.0".into();
    let (status, _) = deliver(&app, "push", "d-4", &tag, Some(&secret)).await;
    assert_eq!(status, 200);
    assert!(outcome(&pool, "d-4").await.1.contains("is not a branch"));

    let mut deleted = push("main", &"0".repeat(40), &[]);
    deleted["deleted"] = true.into();
    deliver(&app, "push", "d-5", &deleted, Some(&secret)).await;
    assert!(outcome(&pool, "d-5").await.1.contains("was deleted"));

    let (status, _) = deliver(
        &app,
        "issues",
        "d-6",
        &json!({"repository": {"html_url": REPO}}),
        Some(&secret),
    )
    .await;
    assert_eq!(status, 200);
    assert!(outcome(&pool, "d-6").await.1.contains("not used"));

    // An environment that names the branch receives its pushes instead of production.
    sqlx::query!(
        "UPDATE environments SET deploy_branch = CASE name WHEN 'staging' THEN 'main' END"
    )
    .execute(&pool)
    .await
    .unwrap();
    let (status, _) = deliver(
        &app,
        "push",
        "d-7",
        &push("main", &"d".repeat(40), &["docs/b.md"]),
        Some(&secret),
    )
    .await;
    assert_eq!(status, 202);
    let env: String = sqlx::query_scalar!(
        "SELECT e.name FROM builds b JOIN environments e ON e.id = b.environment_id WHERE b.delivery_id = 'd-7'"
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(env, "staging");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn manual_builds_queue_like_pushes_and_can_be_cancelled(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (token, _) = setup(&app, &pool, &[API]).await;
    let (status, b) = app
        .call(
            "/api/builds/create",
            Some(&token),
            json!({"project": P, "service": "switchyard-api", "environment": "staging"}),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        (
            b["state"].as_str(),
            b["git_ref"].as_str(),
            b["environment"].as_str()
        ),
        (Some("queued"), Some("main"), Some("staging"))
    );
    let (status, c) = app
        .call(
            "/api/builds/cancel",
            Some(&token),
            json!({"project": P, "id": b["id"]}),
        )
        .await;
    assert_eq!(
        (status, c["state"].as_str()),
        (200, Some("cancelled")),
        "{c}"
    );
    let (status, _) = app
        .call(
            "/api/builds/cancel",
            Some(&token),
            json!({"project": P, "id": b["id"]}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, e) = app
        .call("/api/builds/create", Some(&token), json!({"project": P, "service": "switchyard-api", "environment": "production", "git_ref": "has space"}))
        .await;
    assert_eq!(status, 422, "{e}");
}

async fn wait_build(pool: &PgPool, id: i64) -> (String, Option<String>) {
    for _ in 0..300 {
        let r = sqlx::query!("SELECT state, state_reason FROM builds WHERE id = $1", id)
            .fetch_one(pool)
            .await
            .unwrap();
        if !matches!(r.state.as_str(), "queued" | "running") {
            return (r.state, r.state_reason);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("build {id} did not finish");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_push_builds_in_the_cluster_records_the_release_and_deploys_it(pool: PgPool) {
    let (app, cluster) = spawn_app_with_cluster(pool.clone()).await;
    let _cleanup = Cleanup(app.engine.settings.cluster.namespace_prefix.clone());
    let (token, secret) = setup(&app, &pool, &[API]).await;
    let rx = common::receiver::receiver().await;
    let (status, body) = app
        .call(
            "/api/notifications/add",
            Some(&token),
            json!({"project": P, "destination": {"name": "builds", "kind": "webhook", "url": rx.url("/builds"), "events": ["build.failed"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let (status, body) = deliver(
        &app,
        "push",
        "d-ok",
        &push("main", commit, &["src/main.rs"]),
        Some(&secret),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let build = body["builds"][0].as_i64().unwrap();
    let (state, reason) = wait_build(&pool, build).await;
    assert_eq!(state, "succeeded", "{reason:?}");

    let (_, page) = app
        .call(
            "/api/builds/list",
            Some(&token),
            json!({"project": P, "service": "switchyard-api"}),
        )
        .await;
    let b = &page["items"][0];
    assert_eq!(
        b["image"],
        "registry.enclii.local/enclii-platform/switchyard-api:0123456789ab"
    );
    let digest = b["image_digest"].as_str().unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert!(
        b["sbom_ref"].as_str().unwrap().contains(digest)
            && b["sbom_ref"].as_str().unwrap().contains("sbom")
    );
    assert!(b["provenance_ref"].as_str().unwrap().contains("provenance"));

    // The Job was built from the spec: the exact commit, BuildKit with SBOM and provenance.
    let job = cluster
        .object(
            "batch/v1",
            "Job",
            Some(&build_namespace(&app.engine.settings.pipeline, P)),
            &format!("build-switchyard-api-{build}"),
        )
        .await
        .expect("the build Job");
    // Builds run untrusted steps: the namespace admits nothing and lets out nothing private.
    let policy = cluster
        .object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(&build_namespace(&app.engine.settings.pipeline, P)),
            "enclii-build-egress",
        )
        .await
        .expect("the build namespace's egress policy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(
        policy["spec"]["ingress"]
            .as_array()
            .is_none_or(|rules| rules.is_empty()),
        "no ingress rule: {policy}"
    );
    assert!(
        policy["spec"]["egress"][1]["to"][0]["ipBlock"]["except"]
            .as_array()
            .unwrap()
            .contains(&json!("10.0.0.0/8"))
    );
    assert_eq!(
        job["spec"]["template"]["spec"]["automountServiceAccountToken"],
        false
    );
    // As the API server stored it (a field of a disabled feature would be dropped): the build's
    // own user namespace, BuildKit's sandbox with an unmasked /proc, its own push credential.
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["hostUsers"], false, "{pod}");
    assert_eq!(
        pod["containers"][0]["securityContext"]["procMount"],
        "Unmasked"
    );
    assert!(!pod.to_string().contains("no-process-sandbox"));
    assert_eq!(
        pod["volumes"][2]["secret"]["secretName"],
        format!("build-switchyard-api-{build}-push")
    );
    // The project's own build namespace, marked as this project's, and the credential gone with
    // the build.
    let ns_name = build_namespace(&app.engine.settings.pipeline, P);
    let ns = cluster
        .object("v1", "Namespace", None, &ns_name)
        .await
        .expect("the project's build namespace");
    let project_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1")
        .bind(P)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["enclii.dev/project-id"],
        project_id.to_string()
    );
    assert!(
        cluster
            .object(
                "v1",
                "Secret",
                Some(&ns_name),
                &format!("build-switchyard-api-{build}-push")
            )
            .await
            .is_none(),
        "the push Secret is deleted when the build ends"
    );
    let script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap();
    assert!(
        script.contains("--attest type=sbom")
            && script.contains("--attest type=provenance,mode=max"),
        "{script}"
    );
    assert!(
        job["spec"]["template"]["spec"]["initContainers"][0]["command"][2]
            .as_str()
            .unwrap()
            .contains(commit)
    );

    // The release carries it all, and the deployment runs it pinned by digest.
    let release =
        sqlx::query!("SELECT image_digest, git_commit, git_repository, sbom_ref FROM releases")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(release.image_digest.as_deref(), Some(digest));
    assert_eq!(release.git_commit.as_deref(), Some(commit));
    assert_eq!(release.git_repository.as_deref(), Some(REPO));
    let deployment = b["deployment_id"]
        .as_i64()
        .expect("a deployment was started");
    let d = wait_for_deployment(&app, &token, P, deployment).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let running = cluster
        .object(
            "apps/v1",
            "Deployment",
            Some(&namespace(&app, P, "production")),
            "switchyard-api",
        )
        .await
        .expect("the Deployment");
    assert_eq!(
        running["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("registry.enclii.local/enclii-platform/switchyard-api@{digest}")
    );

    // The build's log is there to read.
    let log = app
        .client
        .get(app.url(&format!("/api/builds/{P}/{build}/logs")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        log.contains(&format!("checked out {commit}"))
            && log.contains("pushing registry.enclii.local"),
        "{log}"
    );

    // A commit that does not build: the build fails with the log's tail, and nothing is deployed.
    let bad = "bad0000000000000000000000000000000000000";
    let (status, body) = deliver(
        &app,
        "push",
        "d-bad",
        &push("main", bad, &["src/main.rs"]),
        Some(&secret),
    )
    .await;
    assert_eq!(status, 202);
    let (state, reason) = wait_build(&pool, body["builds"][0].as_i64().unwrap()).await;
    assert_eq!(state, "failed");
    let reason = reason.unwrap();
    assert!(
        reason.contains("the build failed") && reason.contains("failed to solve"),
        "{reason}"
    );
    // Its people are told, once, with the commit and the first line of why (not the log).
    let told = rx.wait_for("/builds", 1).await;
    let told: serde_json::Value = serde_json::from_str(&told[0].body).unwrap();
    assert_eq!(told["type"], "build.failed");
    assert!(
        told["data"]["title"].as_str().unwrap().contains("build #")
            && told["data"]["title"]
                .as_str()
                .unwrap()
                .contains("of bad000000000 failed"),
        "{told}"
    );
    assert_eq!(told["data"]["reason"].as_str(), reason.lines().next());
    assert_eq!(rx.at("/builds").len(), 1, "the good build told nothing");
    let deployments: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM deployments"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(deployments, 1);

    // The delivery list tells the whole story.
    let (_, list) = app
        .call("/api/deliveries/list", Some(&token), json!({"project": P}))
        .await;
    let ok = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["delivery_id"] == "d-ok")
        .unwrap();
    assert_eq!(ok["builds"][0]["state"], "succeeded");
    assert_eq!(ok["builds"][0]["deployment_state"], "succeeded");
}

/// Build Jobs may not be created in a namespace while this quota allows none: the API server refuses
/// them (403, exceeded quota), as it would in a namespace whose quota an operator set too low.
const NO_JOBS: &str = "builds-paused";

async fn refuse_jobs_in(cluster: &LocalCluster, namespace: &str, project_id: uuid::Uuid) {
    use kube::api::{Patch, PatchParams};
    let params = PatchParams::apply("pipeline-test").force();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {
        "app.kubernetes.io/managed-by": "enclii", "enclii.dev/project-id": project_id.to_string()
    }}});
    cluster
        .api("v1", "Namespace", None)
        .patch(namespace, &params, &Patch::Apply(&ns))
        .await
        .expect("create the build namespace");
    let quota = json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": NO_JOBS, "namespace": namespace},
        "spec": {"hard": {"count/jobs.batch": "0"}}
    });
    let quotas = cluster.api("v1", "ResourceQuota", Some(namespace));
    quotas
        .patch(NO_JOBS, &params, &Patch::Apply(&quota))
        .await
        .expect("create the quota");
    // Admission enforces the quota's status, which the controller-manager's quota controller
    // fills in: until then every create in the namespace is refused as "status unknown".
    wait_for_quota(cluster, namespace, "0").await;
}

/// Raises the quota to `jobs` and waits until the quota controller has taken it up.
async fn allow_jobs_in(cluster: &LocalCluster, namespace: &str, jobs: &str) {
    use kube::api::{Patch, PatchParams};
    let patch = json!({"spec": {"hard": {"count/jobs.batch": jobs}}});
    cluster
        .api("v1", "ResourceQuota", Some(namespace))
        .patch(NO_JOBS, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("raise the quota");
    wait_for_quota(cluster, namespace, jobs).await;
}

async fn wait_for_quota(cluster: &LocalCluster, namespace: &str, jobs: &str) {
    for _ in 0..200 {
        let quota = cluster
            .object("v1", "ResourceQuota", Some(namespace), NO_JOBS)
            .await
            .expect("the quota");
        if quota["status"]["hard"]["count/jobs.batch"] == jobs
            && quota["status"]["used"]["count/jobs.batch"].is_string()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the quota controller did not take up count/jobs.batch={jobs} in {namespace}");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_build_that_fails_on_the_cluster_is_retried_with_backoff(pool: PgPool) {
    let cluster = LocalCluster::from_env().await;
    let mut settings = common::cluster_settings(&cluster);
    settings.cluster.worker = true;
    settings.pipeline.retry_base_ms = 2000;
    let _cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    let builds_ns = build_namespace(&settings.pipeline, P);
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .unwrap(),
    )
    .await;
    let (token, _) = setup(&app, &pool, &[API]).await;
    // The API server refuses the first attempt's Job: the build namespace's quota allows none.
    // (Transient 5xx answers, retried within one attempt, are pinned in engine/tests/api_calls.rs:
    // a real API server cannot be made to fail on cue.) The namespace is made as the platform
    // would, for this project: a namespace that is not the project's is never built in.
    let project_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1")
        .bind(P)
        .fetch_one(&pool)
        .await
        .unwrap();
    refuse_jobs_in(&cluster, &builds_ns, project_id).await;
    let (status, b) = app
        .call(
            "/api/builds/create",
            Some(&token),
            json!({"project": P, "service": "switchyard-api", "environment": "production"}),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let id = b["id"].as_i64().unwrap();

    // The refusal is the cluster's, not the build's: queued again, after a backoff, saying why.
    let mut requeued = None;
    for _ in 0..300 {
        let (state, reason, attempts, waiting): (String, Option<String>, i32, bool) =
            sqlx::query_as(
                "SELECT state, state_reason, attempts, next_attempt_at > now() FROM builds WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(
            matches!(state.as_str(), "queued" | "running"),
            "{state}: {reason:?}"
        );
        if state == "queued" && attempts == 1 {
            assert!(waiting, "the second attempt waits for its backoff");
            requeued = reason;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reason = requeued.expect("the first attempt was refused and the build queued again");
    assert!(
        reason.contains("attempt 1 failed on the cluster")
            && reason.contains("exceeded quota")
            && reason.contains("retrying"),
        "{reason}"
    );

    // The operator raises the quota while the build waits; the second attempt goes through.
    allow_jobs_in(&cluster, &builds_ns, "1").await;
    let early: bool =
        sqlx::query_scalar("SELECT next_attempt_at > now() FROM builds WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        early,
        "the raised quota was in force before the backoff ran out (the test's premise)"
    );
    let (state, reason) = wait_build(&pool, id).await;
    assert_eq!(state, "succeeded", "{reason:?}");
    let attempts: i32 = sqlx::query_scalar!("SELECT attempts FROM builds WHERE id = $1", id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2, "one refused attempt, then a good one");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_signed_delivery_replayed_under_a_new_delivery_id_changes_nothing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (_token, secret) = setup(&app, &pool, &[API]).await;
    let captured = push("main", &"e".repeat(40), &["src/main.rs"]);
    let (status, body) = deliver(&app, "push", "d-original", &captured, Some(&secret)).await;
    assert_eq!(status, 202, "{body}");
    // The same signed body, as anyone who saw it could send it again, under fresh ids.
    for id in ["d-replay-1", "d-replay-2"] {
        let (status, body) = deliver(&app, "push", id, &captured, Some(&secret)).await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (200, Some("duplicate")),
            "{body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("already received under another delivery id"),
            "{body}"
        );
    }
    assert_eq!(
        builds(&pool).await,
        [("switchyard-api".into(), "queued".into())],
        "one build, from the original"
    );
    let replays: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE delivery_id LIKE 'd-replay-%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(replays, 0, "a replay writes nothing");
    // GitHub's own redelivery (same id) is still the ordinary duplicate, and a new push builds.
    let (status, body) = deliver(&app, "push", "d-original", &captured, Some(&secret)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("duplicate")));
    let (status, body) = deliver(
        &app,
        "push",
        "d-next",
        &push("main", &"f".repeat(40), &["src/main.rs"]),
        Some(&secret),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn rejected_deliveries_are_clipped_bounded_and_rate_limited(pool: PgPool) {
    let mut settings = common::settings();
    settings.pipeline.rejected_deliveries_per_project = 5;
    settings.pipeline.rejected_deliveries_per_minute = 8;
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .unwrap(),
    )
    .await;
    let (_token, secret) = setup(&app, &pool, &[API]).await;
    let (status, _) = deliver(
        &app,
        "push",
        "d-good",
        &push("main", &"a".repeat(40), &["src/main.rs"]),
        Some(&secret),
    )
    .await;
    assert_eq!(status, 202);

    // Forged deliveries for the connected repository: refused, recorded at most 8 a minute, and
    // only the newest 5 kept.
    for i in 0..12 {
        let (status, _) = deliver(
            &app,
            "push",
            &format!("bad-{i:02}"),
            &push("main", &format!("{i:040x}"), &["src/main.rs"]),
            Some("forged"),
        )
        .await;
        assert_eq!(status, 401);
    }
    let kept: Vec<String> = sqlx::query_scalar(
        "SELECT delivery_id FROM webhook_deliveries WHERE outcome = 'rejected' AND project_id IS NOT NULL ORDER BY delivery_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(kept, ["bad-03", "bad-04", "bad-05", "bad-06", "bad-07"]);
    assert_eq!(
        outcome(&pool, "d-good").await.0,
        "accepted",
        "verified rows stay"
    );

    // Unknown repositories with enormous names: clipped in the record and in the answer.
    let huge = format!("https://github.com/someone/{}", "x".repeat(100_000));
    for i in 0..10 {
        let mut forged = push("main", &"b".repeat(40), &[]);
        forged["repository"]["html_url"] = huge.clone().into();
        forged["ref"] = format!("refs/heads/{}", "r".repeat(10_000)).into();
        let (status, body) = deliver(&app, "push", &format!("unknown-{i}"), &forged, None).await;
        assert_eq!(status, 404);
        assert!(
            body.to_string().len() < 1000,
            "{} bytes",
            body.to_string().len()
        );
    }
    let rows: Vec<(String, Option<String>, Option<String>, String)> = sqlx::query_as(
        "SELECT delivery_id, repository, git_ref, reason FROM webhook_deliveries WHERE outcome = 'rejected' AND project_id IS NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 8, "at most 8 a minute");
    for (id, repository, git_ref, reason) in &rows {
        assert!(repository.as_ref().unwrap().len() <= 200, "{id}");
        assert!(git_ref.as_ref().unwrap().len() <= 200, "{id}");
        assert!(reason.len() <= 500, "{id}");
    }
    // Nothing recorded holds the secret.
    let all: String = sqlx::query_scalar(
        "SELECT string_agg(concat_ws(' ', delivery_id, event, repository, git_ref, commit_sha, reason), ' ') FROM webhook_deliveries",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!all.contains(&secret));
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_build_never_runs_in_a_namespace_that_is_not_its_projects(pool: PgPool) {
    let cluster = LocalCluster::from_env().await;
    let mut settings = common::cluster_settings(&cluster);
    settings.cluster.worker = true;
    let _cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    // Someone else's namespace already has the name this project's builds would use.
    let squatted = build_namespace(&settings.pipeline, P);
    use kube::api::{Patch, PatchParams};
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": squatted}});
    cluster
        .api("v1", "Namespace", None)
        .patch(
            &squatted,
            &PatchParams::apply("squatter"),
            &Patch::Apply(&ns),
        )
        .await
        .expect("create the namespace");
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .unwrap(),
    )
    .await;
    let (token, _) = setup(&app, &pool, &[API]).await;
    let (status, b) = app
        .call(
            "/api/builds/create",
            Some(&token),
            json!({"project": P, "service": "switchyard-api", "environment": "production"}),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let (state, reason) = wait_build(&pool, b["id"].as_i64().unwrap()).await;
    let reason = reason.unwrap_or_default();
    assert_eq!(state, "failed", "{reason}");
    assert!(
        reason.contains(&squatted) && reason.contains("not labelled as managed by Enclii"),
        "{reason}"
    );
    let jobs = cluster.objects("batch/v1", "Job", Some(&squatted)).await;
    assert!(jobs.is_empty(), "nothing was created in it");
}
