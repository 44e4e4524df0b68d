//! Canary rollouts on the local cluster (real control plane, simulated nodes) measured by real
//! Prometheus: a canary that passes and is promoted, breaches at 10% and at 50%, one without
//! traffic, manual abort and promote, a server killed mid-canary, two servers driving at once, and
//! the split by Gateway API route weights (or by replica ratio where the API server does not serve
//! the Gateway API).
//!
//! The traffic is the node simulator's: 5 requests a second per ready pod of the service, shared
//! between the tracks by the HTTPRoute's weights or else by ready pods, failing as the image's name
//! says (`errors` 8%, `degrades` 6% from half the traffic on, `no-traffic` none, else 0.4%). A
//! canary pod's first scrape comes some seconds after it starts (Prometheus' discovery), so a step
//! begins with inconclusive analyses; the settings below leave room for that.

mod common;

use std::time::Duration;

use common::{LocalCluster, TestApp, cluster_settings, user, with_canary_pause};
use serde_json::json;
use sqlx::PgPool;
use switchyard_engine::Settings;

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const P: &str = "enclii-platform";
const SVC: &str = "docs-site";

/// Each analysis looks back over this many seconds: six scrapes at Prometheus' 1 s interval.
const WINDOW_SECS: u64 = 6;
/// With a replica-ratio split the canary's pod serves 5 requests a second at 10% (one canary pod
/// beside two stable ones) and 10 at 50%: a full window holds about 30. 20 needs about 3 s of
/// scrapes, long enough that an `errors` canary (a failure every 2.5 s) always shows one.
const MIN_REQUESTS: u32 = 20;
/// A canary pod is scraped only after Prometheus' discovery catches up with it (up to ~10 s after
/// it runs); analyses before then are inconclusive and must not fail a healthy step.
const INCONCLUSIVE_LIMIT: u32 = 20;

/// The test cluster's settings with a canary clock real Prometheus can feed.
fn canary_settings(cluster: &LocalCluster) -> Settings {
    let mut s = cluster_settings(cluster);
    s.cluster.worker = true;
    s.canary.window_secs = WINDOW_SECS;
    s.canary.interval_ms = 1000;
    s.canary.inconclusive_limit = INCONCLUSIVE_LIMIT;
    s
}

async fn spawn(pool: &PgPool, settings: Settings) -> TestApp {
    // RUST_LOG=debug shows the worker's and kube-rs' view when a test fails.
    if std::env::var_os("RUST_LOG").is_some() {
        switchyard_server::telemetry::init(&Default::default());
    }
    let app = switchyard_server::build_with_pool(settings, pool.clone())
        .await
        .expect("build app");
    common::serve_app(app).await
}

/// A server (with its worker) whose deployments go to the local cluster.
async fn spawn_app(pool: &PgPool) -> (TestApp, LocalCluster, String) {
    let cluster = LocalCluster::from_env().await;
    let app = spawn(pool, canary_settings(&cluster)).await;
    let ns = common::namespace(&app, P, "production");
    (app, cluster, ns)
}

/// The docs-site spec with canary steps of 10% and 50%, each held for `pause` and judged on at
/// least `min_requests` requests in the window.
fn spec(pause: &str, min_requests: u32) -> String {
    let spec = with_canary_pause(DOCS, pause);
    let out = spec.replacen(
        "\n  rollout:\n",
        &format!("\n  rollout:\n    minRequests: {min_requests}\n"),
        1,
    );
    assert_ne!(out, spec, "the spec has a rollout");
    out
}

async fn import(app: &TestApp, token: &str, spec: &str) {
    let (status, body) = app
        .call("/api/services/import", Some(token), json!({"spec": spec}))
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
    owner.token
}

async fn request(app: &TestApp, token: &str, image: &str) -> i64 {
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(token),
            json!({"project": P, "service": SVC, "environment": "production", "image": image}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    d["id"].as_i64().unwrap()
}

/// Waits (in a test only) until the deployment has ended; returns its summary. Two canary steps
/// on real Prometheus take longer than `common::wait_for_deployment` waits.
async fn finished(app: &TestApp, token: &str, id: i64) -> serde_json::Value {
    until(app, token, id, "the end", |d| {
        !matches!(
            d["deployment"]["state"].as_str(),
            Some("pending" | "in_progress")
        )
    })
    .await["deployment"]
        .clone()
}

async fn deploy(app: &TestApp, token: &str, image: &str) -> serde_json::Value {
    let id = request(app, token, image).await;
    finished(app, token, id).await
}

async fn detail(app: &TestApp, token: &str, id: i64) -> serde_json::Value {
    let (status, d) = app
        .call(
            "/api/deployments/get",
            Some(token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    d
}

/// `kind@weight:state` for each step, in order.
fn step_line(d: &serde_json::Value) -> Vec<String> {
    d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| match s["weight"].as_i64() {
            Some(w) => format!(
                "{}@{w}:{}",
                s["kind"].as_str().unwrap(),
                s["state"].as_str().unwrap()
            ),
            None => format!(
                "{}:{}",
                s["kind"].as_str().unwrap(),
                s["state"].as_str().unwrap()
            ),
        })
        .collect()
}

/// The analyses at `weight`, in order.
fn analyses_at(d: &serde_json::Value, weight: i64) -> Vec<&serde_json::Value> {
    d["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["weight"] == weight)
        .collect()
}

fn decisions(runs: &[&serde_json::Value]) -> Vec<String> {
    runs.iter()
        .map(|a| a["decision"].as_str().unwrap().to_owned())
        .collect()
}

async fn stable_image(cluster: &LocalCluster, ns: &str) -> String {
    cluster
        .object("apps/v1", "Deployment", Some(ns), SVC)
        .await
        .expect("the stable Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn canary_exists(cluster: &LocalCluster, ns: &str) -> bool {
    cluster
        .object("apps/v1", "Deployment", Some(ns), "docs-site-canary")
        .await
        .is_some()
}

/// Deletes the namespaces of a test that passed (a failed test's stay, to be looked at): the
/// pods of every test of a run share the simulated nodes' CPU, which leftovers soon fill.
async fn clean_up(cluster: &LocalCluster, app: &TestApp) {
    let prefix = &app.engine.settings.cluster.namespace_prefix;
    let api = cluster.api("v1", "Namespace", None);
    for ns in cluster.objects("v1", "Namespace", None).await {
        let name = ns["metadata"]["name"].as_str().unwrap_or_default();
        if name.starts_with(prefix.as_str()) {
            api.delete(name, &kube::api::DeleteParams::background())
                .await
                .unwrap_or_else(|e| panic!("deleting namespace {name}: {e}"));
        }
    }
}

/// Waits until `pred` holds for the deployment's detail (test-only polling).
async fn until(
    app: &TestApp,
    token: &str,
    id: i64,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let d = detail(app, token, id).await;
        if pred(&d) {
            return d;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("deployment {id} never reached: {what}\n{d:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn analysing(d: &serde_json::Value, weight: i64) -> bool {
    d["analyses"]
        .as_array()
        .is_some_and(|a| a.iter().any(|a| a["weight"] == weight))
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_healthy_canary_passes_each_step_and_is_promoted_to_100_percent(pool: PgPool) {
    let (app, cluster, ns) = spawn_app(&pool).await;
    let token = setup(&app, &pool, &spec("2s", MIN_REQUESTS)).await;
    let first = deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(first["state"], "succeeded", "{first}");
    let first = detail(&app, &token, first["id"].as_i64().unwrap()).await;
    assert!(
        first["traffic_split"]
            .as_str()
            .unwrap()
            .starts_with("one step: no stable pods"),
        "the first release has nothing to compare against: {first}"
    );

    let d = deploy(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let d = detail(&app, &token, d["id"].as_i64().unwrap()).await;
    assert!(
        d["traffic_split"]
            .as_str()
            .unwrap()
            .starts_with("replica ratio"),
        "{d}"
    );
    assert_eq!(d["plan"], json!([10, 50, 100]));
    assert_eq!(
        step_line(&d),
        [
            "canary@10:succeeded",
            "canary@50:succeeded",
            "apply:succeeded",
            "rollout@100:succeeded",
            "prune:succeeded"
        ]
    );
    // Each step was measured, held for its pause, and only passed on enough traffic. Until
    // Prometheus has scraped the canary the analyses are inconclusive; once it has, healthy.
    for weight in [10, 50] {
        let runs = analyses_at(&d, weight);
        let seen = decisions(&runs);
        let measured = seen
            .iter()
            .position(|s| s != "inconclusive")
            .unwrap_or(seen.len());
        assert!(
            measured < seen.len()
                && seen[measured..].iter().all(|s| s == "hold" || s == "pass")
                && seen.last().unwrap() == "pass",
            "at {weight}%: {seen:?}"
        );
        let last = runs.last().unwrap();
        assert!(last["error_rate"].as_f64().unwrap() < 2.0, "{last}");
        assert!(
            last["requests"].as_f64().unwrap() >= MIN_REQUESTS as f64,
            "{last}"
        );
        assert!(
            last["query"]
                .as_str()
                .unwrap()
                .contains(r#"track="canary""#)
        );
        assert!(
            last["detail"].as_str().unwrap().starts_with("passed after"),
            "{last}"
        );
    }
    // The 10% step ran one canary pod beside the two stable pods (the autoscaler's minimum).
    let ten = &d["steps"][0]["evidence"];
    assert_eq!(
        (ten["canary_pods"].as_i64(), ten["stable_pods"].as_i64()),
        (Some(1), Some(2)),
        "{ten}"
    );
    assert_eq!(
        stable_image(&cluster, &ns).await,
        "ghcr.io/madfam-io/docs:2"
    );
    assert!(
        !canary_exists(&cluster, &ns).await,
        "the canary Deployment is pruned after promotion"
    );
    assert!(
        d["deployment"]["state_reason"]
            .as_str()
            .unwrap()
            .contains("every canary step passed")
    );
    clean_up(&cluster, &app).await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_canary_over_2_percent_errors_at_10_percent_is_rolled_back_with_the_measurements(
    pool: PgPool,
) {
    let (app, cluster, ns) = spawn_app(&pool).await;
    // A pause far longer than the test: only a breach ends this canary in time.
    let token = setup(&app, &pool, &spec("10m", MIN_REQUESTS)).await;
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let d = deploy(&app, &token, "ghcr.io/madfam-io/docs:errors").await;
    assert_eq!(d["state"], "rolled_back", "{d}");
    let reason = d["state_reason"].as_str().unwrap().to_owned();
    let d = detail(&app, &token, d["id"].as_i64().unwrap()).await;
    assert_eq!(step_line(&d), ["canary@10:failed", "withdraw@0:succeeded"]);
    let breach = d["analyses"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(breach["decision"], "breach");
    // The simulated 8%, as Prometheus measured it over a few seconds of whole requests.
    let rate = breach["error_rate"].as_f64().unwrap();
    assert!(rate > 2.0 && rate <= 20.0, "{breach}");
    assert!(
        breach["requests"].as_f64().unwrap() >= MIN_REQUESTS as f64,
        "{breach}"
    );
    assert!(
        reason.contains(&format!(
            "error rate {rate:.2}% exceeded 2% at 10% of traffic"
        )),
        "{reason}"
    );
    // The record carries the measured values, the query and the step.
    let evidence = &d["steps"][1]["evidence"];
    assert_eq!(evidence["weight"], 10);
    assert_eq!(evidence["error_rate_percent"].as_f64(), Some(rate));
    assert!(
        evidence["query"]
            .as_str()
            .unwrap()
            .contains("code=~\"5..\""),
        "{evidence}"
    );
    assert!(!canary_exists(&cluster, &ns).await, "the canary is gone");
    assert_eq!(
        stable_image(&cluster, &ns).await,
        "ghcr.io/madfam-io/docs:1",
        "stable was never touched"
    );
    clean_up(&cluster, &app).await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_canary_that_breaches_at_50_percent_is_rolled_back_after_passing_10(pool: PgPool) {
    let (app, cluster, ns) = spawn_app(&pool).await;
    // `degrades` fails 6% from half the traffic on: at 50% its first failure shows within ~5 s,
    // well inside the pause, so the step cannot pass before it is seen.
    let token = setup(&app, &pool, &spec("9s", MIN_REQUESTS)).await;
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let d = deploy(&app, &token, "ghcr.io/madfam-io/docs:degrades").await;
    assert_eq!(d["state"], "rolled_back", "{d}");
    assert!(
        d["state_reason"]
            .as_str()
            .unwrap()
            .contains("at 50% of traffic"),
        "{d}"
    );
    let d = detail(&app, &token, d["id"].as_i64().unwrap()).await;
    assert_eq!(
        step_line(&d),
        [
            "canary@10:succeeded",
            "canary@50:failed",
            "withdraw@0:succeeded"
        ]
    );
    // At 10% (a third of the pods) it was healthy; at 50% it was not.
    for a in analyses_at(&d, 10) {
        assert!(a["error_rate"].as_f64().unwrap_or(0.0) < 2.0, "{a}");
    }
    assert_eq!(
        analyses_at(&d, 50).last().unwrap()["decision"],
        "breach",
        "{d}"
    );
    assert!(!canary_exists(&cluster, &ns).await);
    assert_eq!(
        stable_image(&cluster, &ns).await,
        "ghcr.io/madfam-io/docs:1"
    );
    clean_up(&cluster, &app).await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_canary_without_traffic_is_inconclusive_and_fails_never_passes(pool: PgPool) {
    let (app, cluster, ns) = spawn_app(&pool).await;
    let token = setup(&app, &pool, &spec("0s", MIN_REQUESTS)).await;
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let d = deploy(&app, &token, "ghcr.io/madfam-io/docs:no-traffic").await;
    assert_eq!(d["state"], "failed", "{d}");
    assert!(
        d["state_reason"]
            .as_str()
            .unwrap()
            .contains("inconclusive at 10% of traffic"),
        "{d}"
    );
    let d = detail(&app, &token, d["id"].as_i64().unwrap()).await;
    let seen = decisions(&analyses_at(&d, 10));
    // The settings' limit of analyses, none a pass, even with a zero-second pause.
    let mut expected = vec!["inconclusive"; INCONCLUSIVE_LIMIT as usize - 1];
    expected.push("gave_up");
    assert_eq!(seen, expected);
    // Prometheus did scrape the canary before the step gave up: it counted no requests, which is
    // what was judged (not only the wait for a first scrape).
    let requests: Vec<Option<f64>> = d["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["requests"].as_f64())
        .collect();
    assert!(
        requests.iter().all(|r| r.is_none_or(|r| r == 0.0)),
        "{requests:?}"
    );
    assert_eq!(requests.last(), Some(&Some(0.0)), "{requests:?}");
    assert!(!canary_exists(&cluster, &ns).await);
    assert_eq!(
        stable_image(&cluster, &ns).await,
        "ghcr.io/madfam-io/docs:1"
    );
    clean_up(&cluster, &app).await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_manual_abort_takes_the_canary_away_and_a_manual_promote_finishes_it(pool: PgPool) {
    let (app, cluster, ns) = spawn_app(&pool).await;
    let token = setup(&app, &pool, &spec("1h", MIN_REQUESTS)).await;
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );

    let id = request(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    until(&app, &token, id, "analysing at 10%", |d| analysing(d, 10)).await;
    assert!(canary_exists(&cluster, &ns).await);
    // A viewer cannot; a developer can.
    let viewer = user(&pool, "viewer", true).await;
    sqlx::query!(
        "INSERT INTO memberships (project_id, user_id, role) SELECT id, $1, 'viewer' FROM projects",
        viewer.id
    )
    .execute(&pool)
    .await
    .unwrap();
    let (status, _) = app
        .call(
            "/api/deployments/abort",
            Some(&viewer.token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .call(
            "/api/deployments/abort",
            Some(&token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = finished(&app, &token, id).await;
    assert_eq!(d["state"], "aborted", "{d}");
    assert!(!canary_exists(&cluster, &ns).await);
    assert_eq!(
        stable_image(&cluster, &ns).await,
        "ghcr.io/madfam-io/docs:1"
    );
    let (status, body) = app
        .call(
            "/api/deployments/abort",
            Some(&token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(
        status, 409,
        "an ended deployment cannot be aborted again: {body}"
    );

    let id = request(&app, &token, "ghcr.io/madfam-io/docs:3").await;
    until(&app, &token, id, "analysing at 10%", |d| analysing(d, 10)).await;
    let (status, body) = app
        .call(
            "/api/deployments/promote",
            Some(&token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = finished(&app, &token, id).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    assert!(
        d["state_reason"]
            .as_str()
            .unwrap()
            .contains("promoted by hand"),
        "{d}"
    );
    assert_eq!(
        stable_image(&cluster, &ns).await,
        "ghcr.io/madfam-io/docs:3"
    );
    assert!(!canary_exists(&cluster, &ns).await);
    let actions: Vec<String> = sqlx::query_scalar!(
        "SELECT action FROM audit_events WHERE action LIKE 'deployment.%' ORDER BY id"
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        actions.contains(&"deployment.abort".to_owned())
            && actions.contains(&"deployment.promote".to_owned()),
        "{actions:?}"
    );
    clean_up(&cluster, &app).await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_newer_deployment_supersedes_a_running_canary(pool: PgPool) {
    let (app, cluster, ns) = spawn_app(&pool).await;
    let token = setup(&app, &pool, &spec("1h", MIN_REQUESTS)).await;
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let old = request(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    until(&app, &token, old, "analysing", |d| analysing(d, 10)).await;
    let new = request(&app, &token, "ghcr.io/madfam-io/docs:3").await;
    let d = finished(&app, &token, old).await;
    assert_eq!(d["state"], "superseded", "{d}");
    // The newer one then runs its own canary (and waits in it: the pause is an hour).
    let d = until(&app, &token, new, "the newer canary analysing", |d| {
        analysing(d, 10)
    })
    .await;
    assert_eq!(d["deployment"]["state"], "in_progress");
    let canary = cluster
        .object("apps/v1", "Deployment", Some(&ns), "docs-site-canary")
        .await
        .unwrap();
    assert_eq!(
        canary["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/madfam-io/docs:3"
    );
    clean_up(&cluster, &app).await;
}

/// A worker in its own runtime: shutting the runtime down stops every task it runs wherever it
/// is, as a killed process would (nothing gets to clean up).
struct Replica {
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replica {
    fn start(settings: Settings, pool: &PgPool, name: &str) -> Self {
        let options = (*pool.connect_options()).clone();
        let name = name.to_owned();
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await
                    .unwrap();
                let clusters = switchyard_engine::deploy::connect_all(&settings.cluster)
                    .await
                    .unwrap();
                let engine = switchyard_engine::Engine::new(pool, settings).unwrap();
                tokio::select! {
                    _ = switchyard_engine::deploy::worker::run(engine, clusters, name) => {}
                    _ = killed => {}
                }
            });
            rt.shutdown_background();
        });
        Self {
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    fn kill(mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
    }
}

/// An API server without a worker, and the settings (one namespace prefix) for worker replicas
/// of its own.
async fn cluster_of(pool: &PgPool) -> (TestApp, LocalCluster, String, Settings) {
    let cluster = LocalCluster::from_env().await;
    let mut settings = canary_settings(&cluster);
    settings.cluster.lease_secs = 1;
    let mut api_settings = settings.clone();
    api_settings.cluster.worker = false;
    let app = spawn(pool, api_settings).await;
    let ns = common::namespace(&app, P, "production");
    (app, cluster, ns, settings)
}

async fn unique_steps_and_runs(pool: &PgPool, id: i64) {
    let dup_steps: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM (SELECT kind, weight FROM deployment_steps WHERE deployment_id = $1
           GROUP BY kind, weight HAVING count(*) > 1) d"#,
        id
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(dup_steps, 0, "no step was done twice");
    let runs = sqlx::query!(
        "SELECT step_seq, array_agg(run ORDER BY run) AS runs FROM canary_analyses WHERE deployment_id = $1 GROUP BY step_seq",
        id
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(!runs.is_empty());
    for r in runs {
        let runs = r.runs.unwrap();
        assert_eq!(
            runs,
            (1..=runs.len() as i32).collect::<Vec<_>>(),
            "analysis runs are numbered once each"
        );
    }
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_server_killed_mid_canary_is_resumed_by_the_next_to_exactly_one_terminal_state(
    pool: PgPool,
) {
    let (app, cluster, ns, settings) = cluster_of(&pool).await;
    // The 50% step has the canary's first pod scraped already: it would pass as soon as its pause
    // is over, so the pause leaves time to kill replica-a first.
    let token = setup(&app, &pool, &spec("5s", MIN_REQUESTS)).await;
    let a = Replica::start(settings.clone(), &pool, "replica-a");
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let id = request(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    until(&app, &token, id, "analysing at 50%", |d| analysing(d, 50)).await;
    a.kill();
    let lease: Option<String> =
        sqlx::query_scalar!("SELECT lease_owner FROM deployments WHERE id = $1", id)
            .fetch_one(&pool)
            .await
            .unwrap();
    // The lease is held by one claim of replica-a (a token per claim: `switchyard_engine::leases`).
    assert!(
        lease
            .as_deref()
            .is_some_and(|l| l.starts_with("replica-a/")),
        "the dead replica still holds the lease: {lease:?}"
    );

    let b = Replica::start(settings, &pool, "replica-b");
    let d = finished(&app, &token, id).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let d = detail(&app, &token, id).await;
    assert_eq!(
        step_line(&d),
        [
            "canary@10:succeeded",
            "canary@50:succeeded",
            "apply:succeeded",
            "rollout@100:succeeded",
            "prune:succeeded"
        ],
        "the 50% step was resumed, not restarted as a new one"
    );
    unique_steps_and_runs(&pool, id).await;
    let who: Vec<String> = sqlx::query_scalar!(
        "SELECT DISTINCT split_part(replica, '/', 1) AS \"replica!\" FROM canary_analyses WHERE deployment_id = $1 AND weight = 50 ORDER BY 1",
        id
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        who,
        ["replica-a", "replica-b"],
        "the 50% step was analysed by both, one after the other"
    );
    assert_eq!(
        stable_image(&cluster, &ns).await,
        "ghcr.io/madfam-io/docs:2"
    );
    assert!(!canary_exists(&cluster, &ns).await);
    b.kill();
    clean_up(&cluster, &app).await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn two_servers_running_at_once_drive_each_deployment_once(pool: PgPool) {
    let (app, cluster, ns, settings) = cluster_of(&pool).await;
    let token = setup(&app, &pool, &spec("1s", MIN_REQUESTS)).await;
    let a = Replica::start(settings.clone(), &pool, "replica-a");
    let b = Replica::start(settings, &pool, "replica-b");
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let d = deploy(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let id = d["id"].as_i64().unwrap();
    unique_steps_and_runs(&pool, id).await;
    let who: Vec<String> = sqlx::query_scalar!(
        "SELECT DISTINCT replica FROM canary_analyses WHERE deployment_id = $1",
        id
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(who.len(), 1, "one replica ran every analysis: {who:?}");
    let d = detail(&app, &token, id).await;
    assert_eq!(
        step_line(&d),
        [
            "canary@10:succeeded",
            "canary@50:succeeded",
            "apply:succeeded",
            "rollout@100:succeeded",
            "prune:succeeded"
        ]
    );
    assert_eq!(
        stable_image(&cluster, &ns).await,
        "ghcr.io/madfam-io/docs:2"
    );
    a.kill();
    b.kill();
    clean_up(&cluster, &app).await;
}

/// Through the route the canary gets exactly its weight: at 10%, a tenth of the three pods' 15
/// requests a second. A full window holds about 9.
const ROUTED_MIN_REQUESTS: u32 = 5;

fn with_gateway(mut settings: Settings) -> Settings {
    settings.canary.gateway = Some(switchyard_engine::config::GatewaySettings {
        name: "public".into(),
        namespace: "gateways".into(),
    });
    settings
}

async fn route_weights(cluster: &LocalCluster, ns: &str) -> (i64, i64) {
    let route = cluster
        .object("gateway.networking.k8s.io/v1", "HTTPRoute", Some(ns), SVC)
        .await
        .expect("the HTTPRoute");
    let b = &route["spec"]["rules"][0]["backendRefs"];
    (
        b[0]["weight"].as_i64().unwrap(),
        b[1]["weight"].as_i64().unwrap(),
    )
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn with_the_gateway_api_the_canary_split_is_the_routes_weights(pool: PgPool) {
    let cluster = LocalCluster::from_env().await;
    let app = spawn(&pool, with_gateway(canary_settings(&cluster))).await;
    let ns = common::namespace(&app, P, "production");
    let token = setup(&app, &pool, &spec("2s", ROUTED_MIN_REQUESTS)).await;
    let first = deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(first["state"], "succeeded", "{first}");
    assert_eq!(
        route_weights(&cluster, &ns).await,
        (100, 0),
        "the route exists at rest, all on stable"
    );
    assert!(
        cluster
            .object("v1", "Service", Some(&ns), "docs-site-stable")
            .await
            .is_some()
    );

    let id = request(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    let d = until(&app, &token, id, "analysing at 10%", |d| analysing(d, 10)).await;
    assert!(
        d["traffic_split"]
            .as_str()
            .unwrap()
            .starts_with("gateway api: HTTPRoute weights through Gateway gateways/public"),
        "{d}"
    );
    assert_eq!(route_weights(&cluster, &ns).await, (90, 10));
    assert_eq!(
        d["steps"][0]["evidence"]["effective_weight"].as_f64(),
        Some(10.0)
    );
    let d = finished(&app, &token, id).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    assert_eq!(
        route_weights(&cluster, &ns).await,
        (100, 0),
        "promoted: the new release is stable, the route at rest"
    );
    assert!(!canary_exists(&cluster, &ns).await);
    assert_eq!(
        stable_image(&cluster, &ns).await,
        "ghcr.io/madfam-io/docs:2"
    );

    // A failing canary: the route goes back to stable before its pods go. At a tenth of the
    // traffic its first failure comes after ~8 s of requests, so it gets a pause it cannot outlast.
    import(&app, &token, &spec("10m", ROUTED_MIN_REQUESTS)).await;
    let d = deploy(&app, &token, "ghcr.io/madfam-io/docs:errors").await;
    assert_eq!(d["state"], "rolled_back", "{d}");
    assert!(
        d["state_reason"]
            .as_str()
            .unwrap()
            .contains("at 10% of traffic"),
        "{d}"
    );
    assert_eq!(route_weights(&cluster, &ns).await, (100, 0));
    assert!(!canary_exists(&cluster, &ns).await);
    clean_up(&cluster, &app).await;
}

/// A client that sees the cluster as one without the Gateway API: every request for its group
/// goes to a group the API server does not serve, which answers as such a cluster would (404).
/// Everything else is Switchyard's own ServiceAccount talking to the real API server.
fn without_the_gateway_api(client: kube::Client) -> kube::Client {
    const GROUP: &str = "/apis/gateway.networking.k8s.io/";
    let service = tower::service_fn(
        move |mut request: axum::http::Request<kube::client::Body>| {
            let client = client.clone();
            async move {
                let uri = request.uri().to_string();
                if let Some(rest) = uri.strip_prefix(GROUP) {
                    *request.uri_mut() =
                        format!("/apis/not-served.gateway.networking.k8s.io/{rest}")
                            .parse()
                            .expect("a path");
                }
                client.send(request).await
            }
        },
    );
    kube::Client::new(service, "default")
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_gateway_configured_on_a_cluster_without_the_gateway_api_falls_back_to_the_replica_ratio_and_says_so(
    pool: PgPool,
) {
    let cluster = LocalCluster::from_env().await;
    let mut settings = with_gateway(canary_settings(&cluster));
    settings.cluster.worker = false;
    let app = spawn(&pool, settings).await;
    let ns = common::namespace(&app, P, "production");
    let client = switchyard_engine::deploy::connect(&app.engine.settings.cluster)
        .await
        .unwrap();
    tokio::spawn(switchyard_engine::deploy::worker::run(
        app.engine.clone(),
        switchyard_engine::deploy::Clusters::single(without_the_gateway_api(client)),
        "no-gateway-api".into(),
    ));
    let token = setup(&app, &pool, &spec("1s", MIN_REQUESTS)).await;
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let d = deploy(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let d = detail(&app, &token, d["id"].as_i64().unwrap()).await;
    assert!(
        d["traffic_split"]
            .as_str()
            .unwrap()
            .contains("the cluster does not serve the Gateway API"),
        "{d}"
    );
    let effective = d["steps"][0]["evidence"]["effective_weight"]
        .as_f64()
        .unwrap();
    assert!(
        (effective - 100.0 / 3.0).abs() < 0.01,
        "one canary pod beside two stable ones: {effective}"
    );
    assert!(
        cluster
            .objects("gateway.networking.k8s.io/v1", "HTTPRoute", Some(&ns))
            .await
            .is_empty()
    );
    clean_up(&cluster, &app).await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn the_live_event_stream_sends_each_change_until_the_deployment_ends(pool: PgPool) {
    let (app, cluster, _ns) = spawn_app(&pool).await;
    let token = setup(&app, &pool, &spec("1s", MIN_REQUESTS)).await;
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let id = request(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    let url = app.url(&format!("/api/events/deployments/{P}/{id}"));
    assert_eq!(
        app.client.get(&url).send().await.unwrap().status(),
        401,
        "the caller is checked first"
    );
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
    let mut stream = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    // The stream ends by itself once the deployment has ended.
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), stream.chunk())
        .await
        .expect("an event in time")
        .unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        events.len() >= 5,
        "one event per change, not one at the end: {}",
        events.len()
    );
    assert_eq!(events.last().unwrap()["deployment"]["state"], "succeeded");
    // Events arrive in order: the step count never goes down.
    let steps: Vec<usize> = events
        .iter()
        .map(|e| e["steps"].as_array().unwrap().len())
        .collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    assert!(text.contains("event: deployment"));
    clean_up(&cluster, &app).await;
}
