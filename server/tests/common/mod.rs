#![allow(dead_code)] // each test binary uses a different part of these fixtures
//! Test fixtures: a real server on an ephemeral loopback port, on the fresh database `#[sqlx::test]`
//! made for the test.

pub mod receiver;

use std::net::SocketAddr;

use leptos::prelude::LeptosOptions;
use sqlx::PgPool;
use switchyard_engine::{Engine, Settings};

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub engine: Engine,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
    }
}

pub fn settings() -> Settings {
    // The pool comes from sqlx::test; this URL is never dialled.
    let mut settings = Settings::with_database_url("postgres://unused").expect("default settings");
    settings.database.migrate = false; // sqlx::test already applied the migrations
    settings.cluster.worker = false; // tests that deploy start a sandbox and turn it on
    // A fixed test key (32 bytes of 0x2a, base64): secrets in tests are encrypted for real.
    // Notification receivers are local listeners (tests/common/receiver.rs); the refusal of
    // private destinations is tested with this turned off (tests/notifications.rs).
    settings.notifications.allow_private_destinations = true;
    settings.secrets.key = Some(secrecy::SecretString::from(
        "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=".to_owned(),
    ));
    // A fixed test key too: builds' registry tokens are signed for real.
    settings.pipeline.registry_token.signing_key =
        Some(secrecy::SecretString::from(TEST_REGISTRY_KEY.to_owned()));
    settings
}

/// An EC P-256 key for tests only (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
pub const TEST_REGISTRY_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHAKKdbisgKTm0XVF
TQqtU1HtFqzGMuxLmKa8RT9vVGahRANCAAR2Xsi+2o+FeoKB2pBqUZHSGV+XsUh4
HQ04r/84C5gTVLPs2zV486wM95LAgYw/4ptz2JWwWhqq4kNcNaZ3d/qP
-----END PRIVATE KEY-----
";

pub async fn spawn_app(pool: PgPool) -> TestApp {
    let app = switchyard_server::build_with_pool(settings(), pool)
        .await
        .expect("build app");
    serve(app.router, app.engine).await
}

/// Like [`spawn_app`] with leptos options of the test's choosing (a site root, hashed names).
pub async fn spawn_app_with_site(pool: PgPool, options: LeptosOptions) -> TestApp {
    let engine = Engine::new(pool, settings()).unwrap();
    let router = switchyard_server::http::router(engine.clone(), options);
    serve(router, engine).await
}

async fn serve(router: axum::Router, engine: Engine) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.expect("serve") });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        addr,
        client,
        engine,
    }
}

/// A signed-up user and an API token for them.
pub struct User {
    pub id: uuid::Uuid,
    pub token: String,
}

pub async fn user(pool: &PgPool, name: &str, write: bool) -> User {
    use switchyard_engine::auth::{tokens, users};
    let id = users::upsert(
        pool,
        &users::Identity {
            issuer: "http://issuer.test",
            subject: name,
            email: Some(&format!("{name}@example.test")),
            display_name: name,
            platform_admin: false,
        },
    )
    .await
    .unwrap();
    let scopes: &[tokens::Scope] = if write {
        &[tokens::Scope::Read, tokens::Scope::Write]
    } else {
        &[tokens::Scope::Read]
    };
    let created = tokens::create(pool, id, "test", scopes, None)
        .await
        .unwrap();
    User {
        id,
        token: created.token,
    }
}

impl TestApp {
    /// POSTs JSON to an API path as `token` (None: anonymous); returns the status and JSON body.
    pub async fn call(
        &self,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let response = req.send().await.expect("request failed");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::Value::String(text));
        (status, json)
    }
}

#[allow(unused_imports)] // each test binary uses a different part
pub use enclii_sandbox::testing::{Cleanup, LocalCluster};

/// Settings whose deployments go to the local cluster (`scripts/test.sh` starts it) as
/// Switchyard's ServiceAccount, in namespaces of the test's own prefix, with a quick canary clock
/// (analyses every 100 ms, three inconclusive ones fail a step) and short leases.
pub fn cluster_settings(cluster: &LocalCluster) -> Settings {
    let mut s = settings();
    s.cluster.mode = switchyard_engine::config::ClusterMode::Kube;
    s.cluster.kubeconfig = Some(cluster.switchyard_kubeconfig());
    s.cluster.namespace_prefix = LocalCluster::namespace_prefix();
    s.cluster.rollout_timeout_secs = 60;
    // Short enough for `stuck` images to fail within a test, long enough for a busy control plane
    // (several tests at once) to report progress on a healthy rollout in time.
    s.cluster.progress_deadline_secs = 15;
    // Build namespaces of the test's own prefix too (project names repeat across tests).
    s.pipeline.namespace_prefix = format!("{}builds-", s.cluster.namespace_prefix);
    s.cluster.lease_secs = 2;
    s.canary.prometheus_url = Some(cluster.prometheus_url.clone());
    s.canary.interval_ms = 100;
    s.canary.inconclusive_limit = 3;
    s
}

/// `spec` with canary steps of 10% and 50% held for `pause` each (the fixtures use the seed's
/// 60 s pauses, too slow for a test).
pub fn with_canary_pause(spec: &str, pause: &str) -> String {
    let rollout = format!(
        "spec:\n  rollout:\n    steps:\n      - weight: 10\n        pause: {pause}\n      - weight: 50\n        pause: {pause}\n      - weight: 100\n"
    );
    let out = spec.replacen("\nspec:\n", &format!("\n{rollout}"), 1);
    assert_ne!(out, spec, "the spec has a top-level `spec:` line");
    out
}

/// A server whose deployments go to the local cluster, in namespaces of its own. The namespace of
/// project `p`'s environment `e` is `{prefix}p-e`: see [`namespace`].
pub async fn spawn_app_with_cluster(pool: PgPool) -> (TestApp, LocalCluster) {
    // RUST_LOG=debug shows the worker's and kube-rs' view when a deploy test fails.
    if std::env::var_os("RUST_LOG").is_some() {
        switchyard_server::telemetry::init(&Default::default());
    }
    let cluster = LocalCluster::from_env().await;
    let mut s = cluster_settings(&cluster);
    s.cluster.worker = true;
    let app = switchyard_server::build_with_pool(s, pool)
        .await
        .expect("build app");
    (serve(app.router, app.engine).await, cluster)
}

/// The namespace the app gives project `project`'s environment `environment`.
pub fn namespace(app: &TestApp, project: &str, environment: &str) -> String {
    switchyard_engine::platform::projects::namespace_for(
        &app.engine.settings.cluster.namespace_prefix,
        project,
        environment,
    )
}

/// Records the spec's domains as proven by the project (as a verified TXT record would), in the
/// service's production environment: only proven hostnames are routed.
#[allow(dead_code)]
pub async fn prove_domains(pool: &PgPool, project: &str, spec: &str) {
    let file = enclii_spec::parse(spec).expect("a valid spec");
    for d in &file.service.spec.domains {
        sqlx::query(
            "INSERT INTO domains (service_id, environment_id, hostname, verification_token, verified_at)
             SELECT s.id, e.id, $3, 'proven-in-test', now()
               FROM services s JOIN projects p ON p.id = s.project_id
               JOIN environments e ON e.project_id = p.id AND e.name = 'production'
              WHERE p.slug = $1 AND s.name = $2",
        )
        .bind(project)
        .bind(&file.service.metadata.name)
        .bind(&d.domain)
        .execute(pool)
        .await
        .expect("domain recorded");
    }
}

/// Creates the namespace of a project's environment as Switchyard does (labelled as the
/// project's: it adopts no other), for tests whose operator puts something there first.
#[allow(dead_code)]
pub async fn tenant_namespace(cluster: &LocalCluster, pool: &PgPool, project: &str, ns: &str) {
    let project_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1")
        .bind(project)
        .fetch_one(pool)
        .await
        .expect("the project exists");
    let namespace: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {
            enclii_spec::render::MANAGED_BY.0: enclii_spec::render::MANAGED_BY.1,
            switchyard_engine::deploy::tenancy::LABEL_PROJECT_ID: project_id.to_string()}}
    }))
    .unwrap();
    cluster
        .api("v1", "Namespace", None)
        .create(&kube::api::PostParams::default(), &namespace)
        .await
        .expect("namespace created");
}

/// Polls (in a test only) until the deployment reaches a terminal state; returns it.
pub async fn wait_for_deployment(
    app: &TestApp,
    token: &str,
    project: &str,
    id: i64,
) -> serde_json::Value {
    for _ in 0..300 {
        let (_, page) = app
            .call(
                "/api/deployments/list",
                Some(token),
                serde_json::json!({"project": project}),
            )
            .await;
        if let Some(d) = page["items"]
            .as_array()
            .and_then(|items| items.iter().find(|d| d["id"] == id))
        {
            let state = d["state"].as_str().unwrap_or_default();
            if !matches!(state, "pending" | "in_progress") {
                return d.clone();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("deployment {id} did not finish");
}

/// Serves an app built by the caller (settings of its own).
pub async fn serve_app(app: switchyard_server::Switchyard) -> TestApp {
    serve(app.router, app.engine).await
}
