//! Deployments on the local cluster (a real API server, controllers and scheduler; nodes played by
//! the node simulator) as Switchyard's own ServiceAccount: healthy rollouts, failures reported with
//! the cluster's reason, rollback, pruning, a refusal by the API server, logs and live status, and
//! an environment with a cluster of its own. How a flaky API server is retried is pinned by the
//! verifier tests in engine/tests/retries.rs (a real API server cannot be made to fail on demand).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    Cleanup, LocalCluster, TestApp, cluster_settings, namespace, user, wait_for_deployment,
    with_canary_pause,
};
use serde_json::json;
use sqlx::PgPool;
use switchyard_engine::Settings;

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const API: &str = include_str!("../../spec/fixtures/dogfooding/switchyard-api.yaml");
const P: &str = "enclii-platform";

/// The local cluster's settings, with a canary clock real Prometheus can feed: a canary pod is
/// scraped (every second) only once Prometheus' discovery has found it, so a step starts with
/// inconclusive analyses; each analysis looks back six scrapes.
fn settings(cluster: &LocalCluster) -> Settings {
    let mut s = cluster_settings(cluster);
    s.cluster.worker = true;
    s.canary.window_secs = 6;
    s.canary.interval_ms = 1000;
    s.canary.inconclusive_limit = 20;
    s
}

async fn spawn_with(pool: &PgPool, settings: Settings) -> TestApp {
    // RUST_LOG=debug shows the worker's and kube-rs' view when a test fails.
    if std::env::var_os("RUST_LOG").is_some() {
        switchyard_server::telemetry::init(&Default::default());
    }
    common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .expect("build app"),
    )
    .await
}

/// A server with its deployment worker on the local cluster, the cluster, the namespace of the
/// project's production environment, and the clean-up of the test's namespaces.
async fn spawn(pool: &PgPool) -> (TestApp, LocalCluster, String, Cleanup) {
    let cluster = LocalCluster::from_env().await;
    let settings = settings(&cluster);
    let cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    let app = spawn_with(pool, settings).await;
    let ns = namespace(&app, P, "production");
    (app, cluster, ns, cleanup)
}

/// `spec` as the tests import it: canary steps of 10% and 50% held 300 ms each, judged on at least
/// 20 requests (a window of six scrapes sees about 30 at 10%).
fn canary_spec(spec: &str) -> String {
    let spec = with_canary_pause(spec, "300ms");
    let out = spec.replacen("\n  rollout:\n", "\n  rollout:\n    minRequests: 20\n", 1);
    assert_ne!(out, spec, "the spec has a rollout");
    out
}

async fn import(app: &TestApp, token: &str, spec: &str) {
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(token),
            json!({"spec": canary_spec(spec)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn setup(app: &TestApp, pool: &PgPool, spec: &str) -> String {
    let owner = user(pool, "owner", true).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": P}),
    )
    .await;
    import(app, &owner.token, spec).await;
    common::prove_domains(pool, P, spec).await;
    owner.token
}

/// Requests a deployment to production and waits for its end (a canary on real Prometheus takes
/// longer than `common::wait_for_deployment` waits).
async fn deploy(app: &TestApp, token: &str, service: &str, image: &str) -> serde_json::Value {
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(token),
            json!({"project": P, "service": service, "environment": "production", "image": image}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    finished(app, token, d["id"].as_i64().unwrap()).await
}

/// Polls (in a test only) until the deployment has ended: up to 90 s.
async fn finished(app: &TestApp, token: &str, id: i64) -> serde_json::Value {
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

async fn steps(pool: &PgPool, id: i64) -> Vec<(String, String)> {
    sqlx::query_as("SELECT kind, state FROM deployment_steps WHERE deployment_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Polls (in a test only) until `check` holds of what `read` returns, for up to `secs` seconds;
/// returns the last reading either way, for the caller's assertion to show.
async fn eventually<T, F, Fut>(secs: u64, mut read: F, check: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let value = read().await;
        if check(&value) || tokio::time::Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The pods of `service` in `ns` that are not being deleted.
async fn live_pods(cluster: &LocalCluster, ns: &str, service: &str) -> Vec<serde_json::Value> {
    cluster
        .objects("v1", "Pod", Some(ns))
        .await
        .into_iter()
        .filter(|p| {
            p["metadata"]["labels"]["enclii.dev/service"] == service
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

fn is_ready(pod: &serde_json::Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn image_of(deployment: &serde_json::Value) -> serde_json::Value {
    deployment["spec"]["template"]["spec"]["containers"][0]["image"].clone()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_healthy_rollout_applies_every_object_and_succeeds_when_the_new_pods_are_ready(
    pool: PgPool,
) {
    let (app, cluster, ns, _cleanup) = spawn(&pool).await;
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
    for (api_version, kind, name) in [
        ("apps/v1", "Deployment", "switchyard-api"),
        ("v1", "Service", "switchyard-api"),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "switchyard-api",
        ),
        ("policy/v1", "PodDisruptionBudget", "switchyard-api"),
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "switchyard-api-netpol",
        ),
        ("networking.k8s.io/v1", "Ingress", "switchyard-api"),
        ("v1", "PersistentVolumeClaim", "switchyard-api-build-cache"),
    ] {
        let found = cluster.object(api_version, kind, Some(&ns), name).await;
        let found = found.unwrap_or_else(|| panic!("{kind} {name} was not applied"));
        // Applied by Switchyard (server-side apply, its one field manager), not made by anyone else.
        assert!(
            found["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["manager"] == "enclii" && m["operation"] == "Apply"),
            "{kind} {name}: {}",
            found["metadata"]["managedFields"]
        );
    }
    assert!(cluster.object("v1", "Namespace", None, &ns).await.is_some());
    // The autoscaler's minimum (3) decided the pod count, and all of them run the new release.
    let release: String =
        sqlx::query_scalar("SELECT release_id::text FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let pods = live_pods(&cluster, &ns, "switchyard-api").await;
    assert_eq!(pods.len(), 3, "{pods:#?}");
    for pod in &pods {
        assert!(is_ready(pod), "{pod:#}");
        assert_eq!(
            pod["metadata"]["annotations"]["enclii.dev/release"],
            release.as_str()
        );
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            "ghcr.io/madfam-io/switchyard-api:1"
        );
    }
    let evidence: serde_json::Value = sqlx::query_scalar(
        "SELECT evidence FROM deployment_steps WHERE deployment_id = $1 AND kind = 'rollout'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(evidence["ready"], 3);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn images_that_cannot_run_fail_fast_with_the_reason(pool: PgPool) {
    let (app, _cluster, _ns, _cleanup) = spawn(&pool).await;
    let token = setup(&app, &pool, DOCS).await;
    for (image, reason) in [
        ("ghcr.io/madfam-io/docs:pull-error", "ErrImagePull"),
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
    let (app, cluster, ns, _cleanup) = spawn(&pool).await;
    let token = setup(&app, &pool, DOCS).await;
    let first = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(first["state"], "succeeded", "{first}");
    let second = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:2").await;
    assert_eq!(second["state"], "succeeded", "{second}");
    let image = || async {
        image_of(
            &cluster
                .object("apps/v1", "Deployment", Some(&ns), "docs-site")
                .await
                .unwrap(),
        )
    };
    assert_eq!(image().await, "ghcr.io/madfam-io/docs:2");

    let (status, rb) = app
        .call(
            "/api/deployments/rollback",
            Some(&token),
            json!({"project": P, "service": "docs-site", "environment": "production"}),
        )
        .await;
    assert_eq!(status, 200, "{rb}");
    assert_eq!(rb["strategy"], "rollback");
    let done = finished(&app, &token, rb["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        image().await,
        "ghcr.io/madfam-io/docs:1",
        "the cluster runs the earlier release again"
    );
    // Its pods, not only its Deployment: every ready pod runs the earlier image.
    let pods = live_pods(&cluster, &ns, "docs-site").await;
    let ready: Vec<&serde_json::Value> = pods.iter().filter(|p| is_ready(p)).collect();
    assert!(!ready.is_empty(), "{pods:#?}");
    for pod in ready {
        assert_eq!(
            pod["spec"]["containers"][0]["image"], "ghcr.io/madfam-io/docs:1",
            "{pod:#}"
        );
    }
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn an_object_the_spec_no_longer_asks_for_is_pruned(pool: PgPool) {
    let (app, cluster, ns, _cleanup) = spawn(&pool).await;
    let token = setup(&app, &pool, DOCS).await;
    let first = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(first["state"], "succeeded", "{first}");
    assert!(
        cluster
            .object("networking.k8s.io/v1", "Ingress", Some(&ns), "docs-site")
            .await
            .is_some()
    );
    // Another actor's object with Switchyard's labels (a copy made with kubectl): not ours to prune.
    let mut copy = cluster
        .object("networking.k8s.io/v1", "Ingress", Some(&ns), "docs-site")
        .await
        .unwrap();
    copy["metadata"] = json!({"name": "docs-site-copy", "namespace": ns, "labels": copy["metadata"]["labels"].clone()});
    copy.as_object_mut().unwrap().remove("status");
    let copy: kube::api::DynamicObject = serde_json::from_value(copy).unwrap();
    cluster
        .api("networking.k8s.io/v1", "Ingress", Some(&ns))
        .create(&kube::api::PostParams::default(), &copy)
        .await
        .unwrap();

    let without_domains = DOCS.replace(
        "  domains:\n    - domain: docs.enclii.io\n      tls: true\n      tlsIssuer: cloudflare\n",
        "",
    );
    assert_ne!(without_domains, DOCS);
    import(&app, &token, &without_domains).await;
    // …and the project gives the domain up (a verified domain is routed whatever the spec says).
    sqlx::query("DELETE FROM domains")
        .execute(&pool)
        .await
        .unwrap();
    let d = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:2").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    assert!(
        cluster
            .object("networking.k8s.io/v1", "Ingress", Some(&ns), "docs-site")
            .await
            .is_none(),
        "the Ingress was pruned"
    );
    assert!(
        cluster
            .object("v1", "Service", Some(&ns), "docs-site")
            .await
            .is_some(),
        "the rest stays"
    );
    assert!(
        cluster
            .object(
                "networking.k8s.io/v1",
                "Ingress",
                Some(&ns),
                "docs-site-copy"
            )
            .await
            .is_some(),
        "what Switchyard did not apply stays"
    );
    // The canary's Deployment went with the promotion.
    assert!(
        cluster
            .object("apps/v1", "Deployment", Some(&ns), "docs-site-canary")
            .await
            .is_none()
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_spec_granting_more_than_switchyard_holds_is_refused_and_fails_the_deployment_clearly(
    pool: PgPool,
) {
    let (app, cluster, ns, _cleanup) = spawn(&pool).await;
    // A Role the service's own tooling uses: within what Switchyard's ServiceAccount may grant.
    let role = |resource: &str, verb: &str| {
        format!(
            "{DOCS}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: docs-tooling\nrules:\n  - apiGroups: [\"\"]\n    resources: [{resource}]\n    verbs: [{verb}]\n"
        )
    };
    let token = setup(&app, &pool, &role("configmaps", "get")).await;
    let d = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let applied = cluster
        .object(
            "rbac.authorization.k8s.io/v1",
            "Role",
            Some(&ns),
            "docs-tooling",
        )
        .await
        .expect("the Role was applied");
    assert_eq!(applied["rules"][0]["resources"], json!(["configmaps"]));

    // Exec into pods: deploy/rbac.yaml does not give it to Switchyard, so the API server refuses to
    // let Switchyard grant it (RBAC's escalation check), whatever the spec says. Every object of
    // the release is checked (a server-side dry run) before any is applied: the deployment fails
    // at once, before a canary runs, and nothing of the release reaches the cluster.
    let template_before = cluster
        .object("apps/v1", "Deployment", Some(&ns), "docs-site")
        .await
        .unwrap()["spec"]["template"]
        .clone();
    import(&app, &token, &role("pods/exec", "create")).await;
    let (status, body) = app
        .call(
            "/api/env/set",
            Some(&token),
            json!({"project": P, "service": "docs-site", "environment": "production", "name": "NEW_SETTING", "value": "on"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:2").await;
    assert_eq!(d["state"], "failed", "{d}");
    let reason = d["state_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the cluster refuses this release: apply Role/docs-tooling: the API server answered 403 (Forbidden): ")
            && reason.contains("system:serviceaccount:enclii-system:switchyard")
            && reason.contains("pods/exec"),
        "{reason}"
    );
    let id = d["id"].as_i64().unwrap();
    let steps = steps(&pool, id).await;
    assert!(steps.is_empty(), "no step ran: {steps:?}");
    // A refusal is final: the check did not back off and try again (five tries would wait
    // 200 + 400 + 800 + 1600 ms between them).
    let took: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM finished_at - created_at)::float8 FROM deployments WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(took < 2.5, "the deployment took {took} s to fail");
    assert_eq!(
        cluster
            .object("apps/v1", "Deployment", Some(&ns), "docs-site")
            .await
            .unwrap()["spec"]["template"],
        template_before,
        "the refused release changed the running Deployment"
    );
    assert!(
        cluster
            .object("apps/v1", "Deployment", Some(&ns), "docs-site-canary")
            .await
            .is_none(),
        "no canary was started"
    );
    let kept = cluster
        .object(
            "rbac.authorization.k8s.io/v1",
            "Role",
            Some(&ns),
            "docs-tooling",
        )
        .await
        .unwrap();
    assert_eq!(
        kept["rules"][0]["resources"],
        json!(["configmaps"]),
        "the cluster kept the Role it had"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn live_status_shows_ready_replicas_and_the_running_release(pool: PgPool) {
    let (app, _cluster, _ns, _cleanup) = spawn(&pool).await;
    let token = setup(&app, &pool, DOCS).await;
    let status = || async {
        let (status, body) = app
            .call(
                "/api/services/status",
                Some(&token),
                json!({"project": P, "service": "docs-site"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let before = status().await;
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
    let d = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let production = |all: &serde_json::Value| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|s| s["environment"] == "production")
            .unwrap()
            .clone()
    };
    // The Deployment controller marks the rollout complete (NewReplicaSetAvailable) in its own time.
    let after = eventually(10, status, |all| {
        production(all)["progress"] == "NewReplicaSetAvailable"
    })
    .await;
    let prod = production(&after);
    assert_eq!(
        (prod["desired"].as_i64(), prod["ready"].as_i64()),
        (Some(2), Some(2)),
        "{prod}"
    );
    assert_eq!(prod["image"], "ghcr.io/madfam-io/docs:1");
    assert_eq!(prod["progress"], "NewReplicaSetAvailable", "{prod}");
    let release: String = sqlx::query_scalar("SELECT id::text FROM releases")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(prod["release"], release);
}

/// The request number of a simulated access-log line (`… GET /health 200 3ms request=12`).
fn request_number(line: &str) -> u64 {
    line.rsplit_once("request=")
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request number in {line:?}"))
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn pod_logs_stream_from_every_pod_and_only_to_members(pool: PgPool) {
    let (app, cluster, ns, _cleanup) = spawn(&pool).await;
    let token = setup(&app, &pool, DOCS).await;
    let d = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let running = live_pods(&cluster, &ns, "docs-site").await;
    assert_eq!(running.len(), 2, "the autoscaler's minimum: {running:#?}");
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
    let names: std::collections::BTreeSet<&str> = running
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        pods, names,
        "both pods speak, each line named by its pod:\n{body}"
    );
    assert!(
        body.lines()
            .all(|l| l.contains("docs-site GET /health 200")),
        "{body}"
    );
    // The tail: at most five lines of each pod.
    for pod in &pods {
        let n = body
            .lines()
            .filter(|l| l.starts_with(&format!("{pod} | ")))
            .count();
        assert!((1..=5).contains(&n), "{pod}: {n} lines\n{body}");
    }

    // Following: after each pod's history, lines it writes later keep coming.
    let mut follow = app
        .client
        .get(format!("{url}&follow=true"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let newest_of = |text: &str, pod: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{pod} | ")))
            .map(request_number)
            .max()
    };
    let history: Vec<(String, u64)> = pods
        .iter()
        .map(|p| (p.to_string(), newest_of(&body, p).unwrap()))
        .collect();
    while !history
        .iter()
        .all(|(pod, newest)| newest_of(&seen, pod).is_some_and(|n| n > *newest))
    {
        let chunk = tokio::time::timeout(Duration::from_secs(5), follow.chunk())
            .await
            .unwrap_or_else(|_| panic!("a followed line newer than {history:?}:\n{seen}"))
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }

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

/// A second way to the local cluster, as `kubectl proxy` gives one: an HTTP address on loopback
/// that forwards every request to the API server as Switchyard's ServiceAccount, and records each
/// (`METHOD path?query`), so that a test sees which address a call went to.
struct ApiProxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ApiProxy {
    async fn start(cluster: &LocalCluster) -> Self {
        use axum::body::Body;
        use axum::http::{Request, Response, StatusCode};
        let file = kube::config::Kubeconfig::read_from(cluster.switchyard_kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let client = client.clone();
            let record = record.clone();
            async move {
                let (parts, body) = request.into_parts();
                let path = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                record
                    .lock()
                    .unwrap()
                    .push(format!("{} {path}", parts.method));
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let mut forward = axum::http::Request::builder()
                    .method(parts.method)
                    .uri(path);
                for name in [axum::http::header::CONTENT_TYPE, axum::http::header::ACCEPT] {
                    if let Some(value) = parts.headers.get(&name) {
                        forward = forward.header(name, value);
                    }
                }
                let forward = forward
                    .body(kube::client::Body::from(body.to_vec()))
                    .unwrap();
                match client.send(forward).await {
                    Ok(answer) => answer.map(Body::new),
                    Err(e) => Response::builder()
                        .status(StatusCode::BAD_GATEWAY)
                        .body(Body::from(e.to_string()))
                        .unwrap(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, seen }
    }

    /// The requests so far whose path mentions `text`.
    fn seen(&self, text: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(text))
            .cloned()
            .collect()
    }
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn an_environment_configured_with_its_own_cluster_deploys_there(pool: PgPool) {
    // Two API server addresses, one per kubeconfig context; both lead to the local cluster, and
    // each records what reached it.
    let cluster = LocalCluster::from_env().await;
    let production_cluster = ApiProxy::start(&cluster).await;
    let staging_cluster = ApiProxy::start(&cluster).await;
    let mut settings = settings(&cluster);
    let _cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    let kubeconfig = std::env::temp_dir().join(format!(
        "{}two-clusters.kubeconfig",
        settings.cluster.namespace_prefix
    ));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n  - name: production\n    cluster: {{server: {}}}\n  - name: staging\n    cluster: {{server: {}}}\nusers:\n  - name: proxied\n    user: {{}}\ncontexts:\n  - name: production\n    context: {{cluster: production, user: proxied}}\n  - name: staging\n    context: {{cluster: staging, user: proxied}}\ncurrent-context: production\n",
            production_cluster.url, staging_cluster.url
        ),
    )
    .unwrap();
    settings.cluster.kubeconfig = Some(kubeconfig.display().to_string());
    settings.cluster.environments.insert(
        "staging".into(),
        switchyard_engine::config::EnvironmentCluster {
            mode: switchyard_engine::config::ClusterMode::Kube,
            url: None,
            context: Some("staging".into()),
        },
    );
    let app = spawn_with(&pool, settings).await;
    std::fs::remove_file(&kubeconfig).unwrap();
    let staging = namespace(&app, P, "staging");
    let production = namespace(&app, P, "production");
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
    let applied = staging_cluster.seen(&format!("/namespaces/{staging}/deployments/docs-site?"));
    assert!(
        applied.iter().any(|r| r.starts_with("PATCH ")),
        "the staging Deployment was applied through staging's cluster: {applied:?}"
    );
    assert!(
        cluster
            .object("apps/v1", "Deployment", Some(&staging), "docs-site")
            .await
            .is_some()
    );
    assert_eq!(
        production_cluster.seen(&staging),
        Vec::<String>::new(),
        "nothing about staging went to the default cluster"
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
    assert!(
        !production_cluster
            .seen(&format!("/namespaces/{production}/deployments/docs-site"))
            .is_empty(),
        "production's status came from the default cluster"
    );
    assert_eq!(production_cluster.seen(&staging), Vec::<String>::new());
    assert!(staging_cluster.seen(&production).is_empty());
}

/// Reads server-sent events from `response` until `done` says stop; returns each event's data.
async fn read_events(
    response: &mut reqwest::Response,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while !done(&events) {
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .unwrap_or_else(|_| panic!("an event in time; so far {events:#?}"))
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
    let (app, _cluster, ns, _cleanup) = spawn(&pool).await;
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
    assert_eq!(deployed["state"], "succeeded", "{deployed}");
    // The page learns of the rollout from the cluster's watch, without asking again.
    let live = format!(
        r#""environment":"production","namespace":"{ns}","deployed":true,"desired":2,"ready":2"#
    );
    let events = read_events(&mut status, |e| e.iter().any(|d| d.contains(&live))).await;
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
    let (app, cluster, ns, _cleanup) = spawn(&pool).await;
    let token = setup(&app, &pool, DOCS).await;
    for body in [
        json!({"project": P, "service": "docs-site", "environment": "production", "name": "API_KEY", "value": "t0ps3cret", "secret": true}),
        json!({"project": P, "service": "docs-site", "environment": "production", "name": "MODE", "value": "fast", "secret": false}),
        json!({"project": P, "service": "docs-site", "environment": "production", "name": "DATABASE_URL", "secret_ref": ["db", "url"]}),
    ] {
        let (status, answer) = app.call("/api/env/set", Some(&token), body).await;
        assert_eq!(status, 200, "{answer}");
    }
    // `db` is the database operator's Secret, there before the service is deployed (a kubelet does
    // not start a container whose environment names a Secret that does not exist), in the
    // namespace as Switchyard creates it for the project (it adopts no other).
    {
        use kube::api::{DynamicObject, PostParams};
        common::tenant_namespace(&cluster, &pool, P, &ns).await;
        let db: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": ns},
            "stringData": {"url": "postgres://docs@db/docs"}
        }))
        .unwrap();
        cluster
            .api("v1", "Secret", Some(&ns))
            .create(&PostParams::default(), &db)
            .await
            .unwrap();
    }
    let d = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    // The values' Secret is named by its content: `docs-site-env-<checksum>`.
    let env_secrets = || async {
        cluster
            .objects("v1", "Secret", Some(&ns))
            .await
            .into_iter()
            .filter(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("docs-site-env-")
            })
            .collect::<Vec<_>>()
    };
    let secrets = env_secrets().await;
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    let secret = &secrets[0];
    assert_eq!(secret["data"]["API_KEY"], "dDBwczNjcmV0");
    let deployment = cluster
        .object("apps/v1", "Deployment", Some(&ns), "docs-site")
        .await
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
    let after = cluster
        .object("apps/v1", "Deployment", Some(&ns), "docs-site")
        .await
        .unwrap();
    assert_ne!(
        after["spec"]["template"]["metadata"]["annotations"]["enclii.dev/env-checksum"],
        before
    );
    // The canary read its own Secret; after promotion only the new one is left (the old was pruned).
    let secrets = env_secrets().await;
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert_eq!(secrets[0]["data"]["API_KEY"], "cm90YXRlZA==");
    assert_ne!(secrets[0]["metadata"]["name"], secret["metadata"]["name"]);
}

/// A replica that claims a deployment again after its own earlier claim's lease ran out (a driver
/// that stalled) gets a new lease token: the stalled driver's fenced writes match nothing.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_reclaim_by_the_same_replica_fences_out_its_stalled_driver(pool: PgPool) {
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
