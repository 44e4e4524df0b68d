//! Canary rollouts against the sandbox cluster and its Prometheus: a canary that passes and is
//! promoted, breaches at 10% and at 50%, one without traffic, manual abort and promote, a server
//! killed mid-canary, and two servers driving at once.

mod common;

use std::time::Duration;

use common::{
    TestApp, sandbox_settings, spawn_app_with_sandbox, start_sandbox, user, wait_for_deployment,
    with_canary_pause,
};
use serde_json::json;
use sqlx::PgPool;

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const P: &str = "enclii-platform";
const NS: &str = "enclii-platform-production";
const SVC: &str = "docs-site";

async fn setup(app: &TestApp, pool: &PgPool, pause: &str) -> String {
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
            json!({"spec": with_canary_pause(DOCS, pause)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
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

async fn deploy(app: &TestApp, token: &str, image: &str) -> serde_json::Value {
    let id = request(app, token, image).await;
    wait_for_deployment(app, token, P, id).await
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

fn stable_image(sandbox: &enclii_sandbox::Sandbox) -> String {
    sandbox
        .object("apps/v1/deployments", Some(NS), SVC)
        .expect("the stable Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn canary_exists(sandbox: &enclii_sandbox::Sandbox) -> bool {
    sandbox
        .object("apps/v1/deployments", Some(NS), "docs-site-canary")
        .is_some()
}

/// Waits until `pred` holds for the deployment's detail (test-only polling).
async fn until(
    app: &TestApp,
    token: &str,
    id: i64,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..300 {
        let d = detail(app, token, id).await;
        if pred(&d) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deployment {id} never reached: {what}");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_healthy_canary_passes_each_step_and_is_promoted_to_100_percent(pool: PgPool) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, "300ms").await;
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
    // Each step was measured, held for its pause, and only passed on enough traffic.
    for weight in [10, 50] {
        let runs: Vec<&serde_json::Value> = d["analyses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["weight"] == weight)
            .collect();
        assert_eq!(runs.last().unwrap()["decision"], "pass", "{runs:?}");
        assert!(
            runs.iter()
                .all(|a| a["decision"] == "pass" || a["decision"] == "hold"),
            "{runs:?}"
        );
        let last = runs.last().unwrap();
        assert!(last["error_rate"].as_f64().unwrap() < 2.0);
        assert!(last["requests"].as_f64().unwrap() >= 50.0);
        assert!(
            last["query"]
                .as_str()
                .unwrap()
                .contains(r#"track="canary""#)
        );
    }
    // The 10% step ran one canary pod beside the two stable pods (the autoscaler's minimum).
    let ten = &d["steps"][0]["evidence"];
    assert_eq!(
        (ten["canary_pods"].as_i64(), ten["stable_pods"].as_i64()),
        (Some(1), Some(2)),
        "{ten}"
    );
    assert_eq!(stable_image(&sandbox), "ghcr.io/madfam-io/docs:2");
    assert!(
        !canary_exists(&sandbox),
        "the canary Deployment is pruned after promotion"
    );
    assert!(
        d["deployment"]["state_reason"]
            .as_str()
            .unwrap()
            .contains("every canary step passed")
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_canary_over_2_percent_errors_at_10_percent_is_rolled_back_with_the_measurements(
    pool: PgPool,
) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, "300ms").await;
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let d = deploy(&app, &token, "ghcr.io/madfam-io/docs:errors").await;
    assert_eq!(d["state"], "rolled_back", "{d}");
    let reason = d["state_reason"].as_str().unwrap();
    assert!(
        reason.contains("error rate 8.00% exceeded 2% at 10% of traffic"),
        "{reason}"
    );
    let d = detail(&app, &token, d["id"].as_i64().unwrap()).await;
    assert_eq!(step_line(&d), ["canary@10:failed", "withdraw@0:succeeded"]);
    let breach = d["analyses"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(breach["decision"], "breach");
    assert_eq!(breach["error_rate"].as_f64(), Some(8.0));
    // The record carries the measured values, the query and the step.
    let evidence = &d["steps"][1]["evidence"];
    assert_eq!(evidence["weight"], 10);
    assert_eq!(evidence["error_rate_percent"].as_f64(), Some(8.0));
    assert!(
        evidence["query"]
            .as_str()
            .unwrap()
            .contains("code=~\"5..\""),
        "{evidence}"
    );
    assert!(!canary_exists(&sandbox), "the canary is gone");
    assert_eq!(
        stable_image(&sandbox),
        "ghcr.io/madfam-io/docs:1",
        "stable was never touched"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_canary_that_breaches_at_50_percent_is_rolled_back_after_passing_10(pool: PgPool) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, "300ms").await;
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
    assert!(!canary_exists(&sandbox));
    assert_eq!(stable_image(&sandbox), "ghcr.io/madfam-io/docs:1");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_canary_without_traffic_is_inconclusive_and_fails_never_passes(pool: PgPool) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, "0s").await;
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
    let decisions: Vec<&str> = d["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["decision"].as_str().unwrap())
        .collect();
    // Three analyses (the test's limit), none a pass, even with a zero-second pause.
    assert_eq!(decisions, ["inconclusive", "inconclusive", "gave_up"]);
    assert!(d["analyses"][0]["requests"].is_null());
    assert!(!canary_exists(&sandbox));
    assert_eq!(stable_image(&sandbox), "ghcr.io/madfam-io/docs:1");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_manual_abort_takes_the_canary_away_and_a_manual_promote_finishes_it(pool: PgPool) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, "1h").await;
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );

    let id = request(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    until(&app, &token, id, "analysing at 10%", |d| {
        d["analyses"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert!(canary_exists(&sandbox));
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
    let d = wait_for_deployment(&app, &token, P, id).await;
    assert_eq!(d["state"], "aborted", "{d}");
    assert!(!canary_exists(&sandbox));
    assert_eq!(stable_image(&sandbox), "ghcr.io/madfam-io/docs:1");
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
    until(&app, &token, id, "analysing at 10%", |d| {
        d["analyses"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let (status, body) = app
        .call(
            "/api/deployments/promote",
            Some(&token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = wait_for_deployment(&app, &token, P, id).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    assert!(
        d["state_reason"]
            .as_str()
            .unwrap()
            .contains("promoted by hand"),
        "{d}"
    );
    assert_eq!(stable_image(&sandbox), "ghcr.io/madfam-io/docs:3");
    assert!(!canary_exists(&sandbox));
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
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_newer_deployment_supersedes_a_running_canary(pool: PgPool) {
    let (app, sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, "1h").await;
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let old = request(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    until(&app, &token, old, "analysing", |d| {
        d["analyses"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let new = request(&app, &token, "ghcr.io/madfam-io/docs:3").await;
    let d = wait_for_deployment(&app, &token, P, old).await;
    assert_eq!(d["state"], "superseded", "{d}");
    // The newer one then runs its own canary (and waits in it: the pause is an hour).
    let d = until(&app, &token, new, "the newer canary analysing", |d| {
        d["analyses"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(d["deployment"]["state"], "in_progress");
    let canary = sandbox
        .object("apps/v1/deployments", Some(NS), "docs-site-canary")
        .unwrap();
    assert_eq!(
        canary["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/madfam-io/docs:3"
    );
}

/// A worker in its own runtime: shutting the runtime down stops every task it runs wherever it
/// is, as a killed process would (nothing gets to clean up).
struct Replica {
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replica {
    fn start(settings: switchyard_engine::Settings, pool: &PgPool, name: &str) -> Self {
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
                let client = switchyard_engine::deploy::connect_all(&settings.cluster, None)
                    .await
                    .unwrap();
                let engine = switchyard_engine::Engine::new(pool, settings).unwrap();
                tokio::select! {
                    _ = switchyard_engine::deploy::worker::run(engine, client, name, None) => {}
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

/// An API server without a worker, plus `replicas` worker processes of its own.
async fn cluster_of(
    pool: &PgPool,
) -> (
    TestApp,
    enclii_sandbox::Sandbox,
    switchyard_engine::Settings,
) {
    let sandbox = start_sandbox().await;
    let mut settings = sandbox_settings(&sandbox);
    settings.cluster.lease_secs = 1;
    let mut api_settings = settings.clone();
    api_settings.cluster.worker = false;
    let app = switchyard_server::build_with_pool(api_settings, pool.clone())
        .await
        .unwrap();
    (common::serve_app(app).await, sandbox, settings)
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
    let (app, sandbox, settings) = cluster_of(&pool).await;
    let token = setup(&app, &pool, "1s").await;
    let a = Replica::start(settings.clone(), &pool, "replica-a");
    assert_eq!(
        deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await["state"],
        "succeeded"
    );
    let id = request(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    until(&app, &token, id, "analysing at 50%", |d| {
        d["analyses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["weight"] == 50))
    })
    .await;
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
    let d = wait_for_deployment(&app, &token, P, id).await;
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
    assert_eq!(stable_image(&sandbox), "ghcr.io/madfam-io/docs:2");
    assert!(!canary_exists(&sandbox));
    b.kill();
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn two_servers_running_at_once_drive_each_deployment_once(pool: PgPool) {
    let (app, sandbox, settings) = cluster_of(&pool).await;
    let token = setup(&app, &pool, "300ms").await;
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
    assert_eq!(stable_image(&sandbox), "ghcr.io/madfam-io/docs:2");
    a.kill();
    b.kill();
}

async fn app_with_gateway(pool: &PgPool, gateway_api: bool) -> (TestApp, enclii_sandbox::Sandbox) {
    let sandbox = enclii_sandbox::Sandbox::start(enclii_sandbox::Options {
        ready_delay: Duration::from_millis(200),
        progress_deadline: Duration::from_secs(2),
        log_interval: Duration::from_millis(50),
        gateway_api,
    })
    .await
    .unwrap();
    let mut settings = sandbox_settings(&sandbox);
    settings.cluster.worker = true;
    settings.canary.gateway = Some(switchyard_engine::config::GatewaySettings {
        name: "public".into(),
        namespace: "gateways".into(),
    });
    let app = switchyard_server::build_with_pool(settings, pool.clone())
        .await
        .unwrap();
    (common::serve_app(app).await, sandbox)
}

fn route_weights(sandbox: &enclii_sandbox::Sandbox) -> (i64, i64) {
    let route = sandbox
        .object("gateway.networking.k8s.io/v1/httproutes", Some(NS), SVC)
        .expect("the HTTPRoute");
    let b = &route["spec"]["rules"][0]["backendRefs"];
    (
        b[0]["weight"].as_i64().unwrap(),
        b[1]["weight"].as_i64().unwrap(),
    )
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn with_the_gateway_api_the_canary_split_is_the_routes_weights(pool: PgPool) {
    let (app, sandbox) = app_with_gateway(&pool, true).await;
    let token = setup(&app, &pool, "1s").await;
    let first = deploy(&app, &token, "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(first["state"], "succeeded", "{first}");
    assert_eq!(
        route_weights(&sandbox),
        (100, 0),
        "the route exists at rest, all on stable"
    );
    assert!(
        sandbox
            .object("/v1/services", Some(NS), "docs-site-stable")
            .is_some()
    );

    let id = request(&app, &token, "ghcr.io/madfam-io/docs:2").await;
    let d = until(&app, &token, id, "analysing at 10%", |d| {
        d["analyses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["weight"] == 10))
    })
    .await;
    assert!(
        d["traffic_split"]
            .as_str()
            .unwrap()
            .starts_with("gateway api: HTTPRoute weights through Gateway gateways/public"),
        "{d}"
    );
    assert_eq!(route_weights(&sandbox), (90, 10));
    assert_eq!(
        d["steps"][0]["evidence"]["effective_weight"].as_f64(),
        Some(10.0)
    );
    let d = wait_for_deployment(&app, &token, P, id).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    assert_eq!(
        route_weights(&sandbox),
        (100, 0),
        "promoted: the new release is stable, the route at rest"
    );
    assert!(!canary_exists(&sandbox));
    assert_eq!(stable_image(&sandbox), "ghcr.io/madfam-io/docs:2");

    // A failing canary: the route goes back to stable before its pods go.
    let d = deploy(&app, &token, "ghcr.io/madfam-io/docs:errors").await;
    assert_eq!(d["state"], "rolled_back", "{d}");
    assert_eq!(route_weights(&sandbox), (100, 0));
    assert!(!canary_exists(&sandbox));
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_gateway_configured_on_a_cluster_without_the_gateway_api_falls_back_to_the_replica_ratio_and_says_so(
    pool: PgPool,
) {
    let (app, sandbox) = app_with_gateway(&pool, false).await;
    let token = setup(&app, &pool, "200ms").await;
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
    assert!(
        sandbox
            .object("gateway.networking.k8s.io/v1/httproutes", Some(NS), SVC)
            .is_none()
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn the_live_event_stream_sends_each_change_until_the_deployment_ends(pool: PgPool) {
    let (app, _sandbox) = spawn_app_with_sandbox(pool.clone()).await;
    let token = setup(&app, &pool, "300ms").await;
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
}
