//! Notifications against local receivers: an HTTP listener standing in for Slack, Discord and a
//! generic webhook endpoint, and a real SMTP server (Python's `aiosmtpd`, from the venv
//! `scripts/lib.sh py_tools` makes; its interpreter is `ENCLII_TEST_PYTHON`). Signatures are
//! verified by the Standard Webhooks project's own Python library, not by our code.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use common::receiver::{Captured, receiver, receiver_on};
use common::{LocalCluster, TestApp, cluster_settings, user, with_canary_pause};
use serde_json::{Value, json};
use sqlx::PgPool;
use switchyard_engine::Settings;
use switchyard_engine::config::{SmtpSecurity, SmtpSettings};

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const P: &str = "enclii-platform";

/// A listener that accepts connections and never answers: a receiver that hangs.
async fn hanging() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

fn python() -> String {
    std::env::var("ENCLII_TEST_PYTHON").expect(
        "ENCLII_TEST_PYTHON names the Python with aiosmtpd and standardwebhooks: run through ./scripts/test.sh, or `source scripts/lib.sh; py_tools` and export it",
    )
}

fn receivers_dir() -> String {
    format!("{}/tests/receivers", env!("CARGO_MANIFEST_DIR"))
}

/// A real SMTP server (aiosmtpd) writing each message it accepts to a file in `dir`.
struct Smtp {
    port: u16,
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn smtp() -> Smtp {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("enclii-smtp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(python())
        .arg(format!("{}/smtp_sink.py", receivers_dir()))
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the SMTP receiver");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the SMTP receiver said {line:?}"));
    Smtp { port, dir, child }
}

impl Smtp {
    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..1200 {
            let mut names: Vec<_> = std::fs::read_dir(&self.dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect();
            if names.len() >= n {
                names.sort();
                return names
                    .iter()
                    .map(|p| std::fs::read_to_string(p).unwrap())
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the SMTP server did not receive {n} messages");
    }
}

/// Quick retries and windows, loopback receivers allowed, email through `smtp`.
fn notifying(mut s: Settings, smtp_port: Option<u16>) -> Settings {
    let n = &mut s.notifications;
    n.allow_private_destinations = true;
    n.retry_base_ms = 200;
    n.retry_cap_secs = 1;
    n.timeout_ms = 1000;
    n.lease_secs = 5;
    n.failing_after = 2;
    n.smtp = smtp_port.map(|port| SmtpSettings {
        host: "127.0.0.1".into(),
        port: Some(port),
        security: SmtpSecurity::None,
        username: None,
        password: None,
        from: "Enclii <notifications@enclii.test>".into(),
    });
    s
}

async fn serve(pool: &PgPool, settings: Settings) -> TestApp {
    let app = switchyard_server::build_with_pool(settings, pool.clone())
        .await
        .expect("build app");
    common::serve_app(app).await
}

async fn project(app: &TestApp, pool: &PgPool) -> String {
    let owner = user(pool, "owner", true).await;
    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&owner.token),
            json!({"slug": P}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    owner.token
}

async fn add(app: &TestApp, token: &str, destination: Value) -> Value {
    let (status, body) = app
        .call(
            "/api/notifications/add",
            Some(token),
            json!({"project": P, "destination": destination}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn log(app: &TestApp, token: &str, name: &str) -> Vec<Value> {
    let (status, body) = app
        .call(
            "/api/notifications/log",
            Some(token),
            json!({"project": P, "name": name, "limit": 500}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

async fn destinations(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app
        .call(
            "/api/notifications/list",
            Some(token),
            json!({"project": P}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

fn types(captured: &[Captured]) -> Vec<String> {
    captured
        .iter()
        .map(|c| {
            let v: Value = serde_json::from_str(&c.body).unwrap();
            v["blocks"][1]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .rsplit('`')
                .nth(1)
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Verifies a captured request with the Standard Webhooks reference library (Python).
fn verifies(secret: &str, c: &Captured) -> bool {
    use std::io::Write;
    let headers: serde_json::Map<String, Value> = c
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
        .collect();
    let mut child = std::process::Command::new(python())
        .arg(format!("{}/verify_webhook.py", receivers_dir()))
        .arg(secret)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            json!({"headers": headers, "body": c.body})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    child.wait().unwrap().success()
}

/// Each deployment event reaches the destinations that subscribe to it (and its environment), in
/// its format: Slack gets every event, Discord only rollbacks, email only successes, a webhook
/// limited to staging nothing from production. A destination that hangs is marked failing and
/// never delays a deployment.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn deployment_events_reach_their_destinations_in_their_formats_and_a_hanging_one_delays_nothing(
    pool: PgPool,
) {
    let cluster = LocalCluster::from_env().await;
    let mail = smtp().await;
    let rx = receiver().await;
    let stuck = hanging().await;
    let mut s = notifying(cluster_settings(&cluster), Some(mail.port));
    s.cluster.worker = true;
    s.canary.window_secs = 6;
    s.canary.interval_ms = 1000;
    s.canary.inconclusive_limit = 20;
    let app = serve(&pool, s).await;
    let token = project(&app, &pool).await;
    let spec = with_canary_pause(DOCS, "10m").replacen(
        "\n  rollout:\n",
        "\n  rollout:\n    minRequests: 20\n",
        1,
    );
    let (status, body) = app
        .call("/api/services/import", Some(&token), json!({"spec": spec}))
        .await;
    assert_eq!(status, 200, "{body}");
    add(
        &app,
        &token,
        json!({"name": "chat", "kind": "slack", "url": rx.url("/slack")}),
    )
    .await;
    add(&app, &token, json!({"name": "alerts", "kind": "discord", "url": rx.url("/discord"), "events": ["deployment.rolled_back"]})).await;
    add(&app, &token, json!({"name": "mail", "kind": "email", "recipients": ["ops@example.test"], "events": ["deployment.succeeded"]})).await;
    add(&app, &token, json!({"name": "staging-hook", "kind": "webhook", "url": rx.url("/hook"), "environments": ["staging"]})).await;
    add(
        &app,
        &token,
        json!({"name": "broken", "kind": "webhook", "url": format!("http://{stuck}/never")}),
    )
    .await;

    let deploy = |image: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            let (status, d) = app
                .call(
                    "/api/deployments/create",
                    Some(&token),
                    json!({"project": P, "service": "docs-site", "environment": "production", "image": image}),
                )
                .await;
            assert_eq!(status, 200, "{d}");
            let id = d["id"].as_i64().unwrap();
            let started = std::time::Instant::now();
            for _ in 0..1800 {
                let (_, d) = app
                    .call(
                        "/api/deployments/get",
                        Some(&token),
                        json!({"project": P, "id": id}),
                    )
                    .await;
                let state = d["deployment"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if !matches!(state.as_str(), "pending" | "in_progress") {
                    return (id, state, started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("deployment {id} did not end");
        }
    };
    let (first, state, _) = deploy("ghcr.io/madfam-io/docs:1").await;
    assert_eq!(state, "succeeded");
    // The hanging destination was tried (and timed out) while the deployment went on: the
    // deployment ended with its deliveries still unsent.
    let broken = log(&app, &token, "broken").await;
    assert!(
        broken.iter().all(|d| d["state"] != "delivered"),
        "{broken:?}"
    );

    let slack = rx.wait_for("/slack", 2).await;
    assert_eq!(
        types(&slack),
        ["deployment.started", "deployment.succeeded"]
    );
    let text = serde_json::from_str::<Value>(&slack[1].body).unwrap();
    let line = text["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        line.contains(&format!("/projects/{P}/deployments/{first}|docs-site: deployment #{first} to production succeeded: the new release serves all traffic>")),
        "{line}"
    );
    let mails = mail.wait_for(1).await;
    assert!(
        mails[0].contains(&format!(
            "Subject: [Enclii] docs-site: deployment #{first} to production succeeded"
        )),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("To: ops@example.test"), "{}", mails[0]);
    // The body is quoted-printable: long lines are softly broken with `=` at their end.
    let body = mails[0].replace("=\r\n", "").replace("=\n", "");
    assert!(
        body.contains(&format!("/projects/{P}/deployments/{first}")),
        "{body}"
    );

    let (second, state, _) = deploy("ghcr.io/madfam-io/docs:errors").await;
    assert_eq!(state, "rolled_back");
    let discord = rx.wait_for("/discord", 1).await;
    let embed = &serde_json::from_str::<Value>(&discord[0].body).unwrap()["embeds"][0];
    assert!(
        embed["title"].as_str().unwrap().contains(&format!(
            "deployment #{second} to production rolled back automatically"
        )),
        "{embed}"
    );
    let why = embed["description"].as_str().unwrap();
    assert!(
        why.contains("Measured at the 10% step:") && why.contains("errors over"),
        "{why}"
    );
    assert!(why.contains("(limit 2%)"), "{why}");
    let slack = rx.wait_for("/slack", 4).await;
    assert_eq!(
        types(&slack),
        [
            "deployment.started",
            "deployment.succeeded",
            "deployment.started",
            "deployment.rolled_back"
        ]
    );
    // Only rollbacks went to Discord, only the success to email, nothing from production to the
    // staging webhook.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.at("/discord").len(), 1);
    assert_eq!(mail.wait_for(1).await.len(), 1);
    assert!(rx.at("/hook").is_empty());
    assert!(log(&app, &token, "staging-hook").await.is_empty());
    // The hanging one is shown failing; the others are fine.
    let list = destinations(&app, &token).await;
    let state_of = |name: &str| list.iter().find(|d| d["name"] == name).unwrap()["failing"].clone();
    assert_eq!(state_of("broken"), true, "{list:?}");
    assert_eq!(state_of("chat"), false);
    let broken = log(&app, &token, "broken").await;
    assert!(
        broken.iter().any(|d| d["attempts"].as_i64().unwrap() >= 1
            && d["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("timed out") || e.contains("timeout"))),
        "{broken:?}"
    );
    let api = cluster.api("v1", "Namespace", None);
    for ns in cluster.objects("v1", "Namespace", None).await {
        let name = ns["metadata"]["name"].as_str().unwrap_or_default();
        if name.starts_with(app.engine.settings.cluster.namespace_prefix.as_str()) {
            let _ = api
                .delete(name, &kube::api::DeleteParams::background())
                .await;
        }
    }
}

/// A generic webhook carries `webhook-id`, `webhook-timestamp` and `webhook-signature`, and the
/// Standard Webhooks reference library verifies it with the secret shown once at creation (and
/// refuses the same body altered). Neither the secret nor the URL's path is shown again.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_generic_webhook_is_signed_as_standard_webhooks_documents(pool: PgPool) {
    let rx = receiver().await;
    let app = serve(&pool, notifying(common::settings(), None)).await;
    let token = project(&app, &pool).await;
    let created = add(
        &app,
        &token,
        json!({"name": "hook", "kind": "webhook", "url": rx.url("/in/SECRETPATH")}),
    )
    .await;
    let secret = created["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = destinations(&app, &token).await;
    let shown = serde_json::to_string(&listed).unwrap();
    assert!(
        !shown.contains(&secret) && !shown.contains("SECRETPATH"),
        "{shown}"
    );
    assert_eq!(listed[0]["target"], format!("http://{}", rx.addr.ip()));

    let (status, event) = app
        .call(
            "/api/notifications/test",
            Some(&token),
            json!({"project": P, "name": "hook"}),
        )
        .await;
    assert_eq!(status, 200, "{event}");
    let got = rx.wait_for("/in/SECRETPATH", 1).await;
    let c = &got[0];
    assert_eq!(c.headers["webhook-id"], event.as_str().unwrap());
    assert_eq!(c.headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&c.body).unwrap();
    assert_eq!(body["type"], "test");
    assert_eq!(body["data"]["project"], P);
    assert!(
        verifies(&secret, c),
        "the reference library refused our signature"
    );
    let mut altered = c.clone();
    altered.body = altered.body.replace("test", "tesT");
    assert!(
        !verifies(&secret, &altered),
        "an altered body must not verify"
    );
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(!verifies(other, c), "another secret must not verify");
    let delivered = log(&app, &token, "hook").await;
    assert_eq!(delivered[0]["state"], "delivered");
    assert_eq!(delivered[0]["last_status"], 200);
}

/// A receiver that is down (connection refused, then 503) gets the event once it is back, once:
/// the failed attempts are retried with backoff and recorded, without the URL.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_receiver_down_for_a_while_gets_the_event_once_when_it_recovers(pool: PgPool) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let app = serve(&pool, notifying(common::settings(), None)).await;
    let token = project(&app, &pool).await;
    add(
        &app,
        &token,
        json!({"name": "chat", "kind": "slack", "url": format!("http://{addr}/services/T0/B0/SECRETPATH")}),
    )
    .await;
    let (status, _) = app
        .call(
            "/api/notifications/test",
            Some(&token),
            json!({"project": P, "name": "chat"}),
        )
        .await;
    assert_eq!(status, 200);
    // Refused twice at least, recorded as such, and never with the URL (Slack's is its secret).
    let mut entry = Value::Null;
    for _ in 0..200 {
        entry = log(&app, &token, "chat").await[0].clone();
        if entry["attempts"].as_i64().unwrap() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(entry["attempts"].as_i64().unwrap() >= 2, "{entry}");
    assert_eq!(entry["state"], "pending");
    let error = entry["last_error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("connect"), "{error}");
    assert!(
        !error.contains("SECRETPATH") && !error.contains("/services/"),
        "{error}"
    );
    // Back, but answering 503 for a moment: still retried.
    let rx = receiver_on(tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    rx.status.store(503, Ordering::SeqCst);
    rx.wait_for("/services/T0/B0/SECRETPATH", 1).await;
    rx.status.store(200, Ordering::SeqCst);
    let n = rx.at("/services/T0/B0/SECRETPATH").len();
    let got = rx.wait_for("/services/T0/B0/SECRETPATH", n + 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ok = rx.captured.lock().unwrap().len();
    assert_eq!(ok, got.len(), "nothing more after it was accepted");
    let entry = log(&app, &token, "chat").await[0].clone();
    assert_eq!(entry["state"], "delivered", "{entry}");
    assert_eq!(entry["last_status"], 200);
}

/// A server that recorded a change (a rejected GitHub delivery for the project's repository) and
/// was killed before sending anything: the next server delivers it, once.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn the_server_killed_between_the_change_and_its_delivery_leaves_it_to_the_next_once(
    pool: PgPool,
) {
    let rx = receiver().await;
    // The first server: no delivery worker (it dies before it would send), on its own runtime.
    let options = (*pool.connect_options()).clone();
    let url = rx.url("/hook");
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(String, String)>();
    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    let owner = user(&pool, "owner", true).await;
    let owner_token = owner.token.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await
                .unwrap();
            let mut s = notifying(common::settings(), None);
            s.notifications.worker = false;
            let app = serve(&pool, s).await;
            app.call("/api/projects/create", Some(&owner_token), json!({"slug": P}))
                .await;
            let created = add(&app, &owner_token, json!({"name": "hook", "kind": "webhook", "url": url, "events": ["webhook.rejected"]})).await;
            let (status, repo) = app
                .call(
                    "/api/repositories/connect",
                    Some(&owner_token),
                    json!({"project": P, "url": "https://github.com/madfam-io/enclii.git"}),
                )
                .await;
            assert_eq!(status, 200, "{repo}");
            // A delivery signed with the wrong secret: rejected and recorded, with its event.
            let body = json!({"ref": "refs/heads/main", "after": "a".repeat(40),
                "repository": {"html_url": "https://github.com/madfam-io/enclii"}})
            .to_string();
            let res = app
                .client
                .post(app.url("/webhooks/github"))
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .header("x-github-delivery", "d-1")
                .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 401);
            done_tx
                .send((created["signing_secret"].as_str().unwrap().to_owned(), owner_token))
                .unwrap();
            let _ = killed.await;
        });
        // Killed: the runtime and every task on it stop without running anything further.
        rt.shutdown_background();
    });
    let (secret, token) = done_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    kill.send(()).unwrap();
    thread.join().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.at("/hook").is_empty(), "the first server sent nothing");

    let app = serve(&pool, notifying(common::settings(), None)).await;
    let got = rx.wait_for("/hook", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.at("/hook").len(), 1, "exactly once");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "webhook.rejected");
    assert!(
        body["data"]["title"]
            .as_str()
            .unwrap()
            .contains("github.com/madfam-io/enclii")
    );
    assert!(verifies(&secret, &got[0]));
    let entry = log(&app, &token, "hook").await[0].clone();
    assert_eq!(
        (entry["state"].as_str(), entry["attempts"].as_i64()),
        (Some("delivered"), Some(1))
    );
}

/// 100 rollbacks at once: the destination gets its rate limit's worth, and the rest as one
/// digest once its window ends, never a message each.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_burst_of_100_rollbacks_is_rate_limited_into_a_digest(pool: PgPool) {
    let rx = receiver().await;
    let mut s = notifying(common::settings(), None);
    s.notifications.per_window = 5;
    s.notifications.window_secs = 3;
    let app = serve(&pool, s).await;
    let token = project(&app, &pool).await;
    let (status, body) = app
        .call("/api/services/import", Some(&token), json!({"spec": DOCS}))
        .await;
    assert_eq!(status, 200, "{body}");
    add(
        &app,
        &token,
        json!({"name": "chat", "kind": "slack", "url": rx.url("/slack")}),
    )
    .await;
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(&token),
            json!({"project": P, "service": "docs-site", "environment": "production", "image": "ghcr.io/madfam-io/docs:errors"}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    let id = d["id"].as_i64().unwrap();
    // What the deploy driver records when it rolls a canary back, 100 times over.
    for _ in 0..100 {
        let mut tx = pool.begin().await.unwrap();
        switchyard_engine::notify::facts::deployment(
            &mut tx,
            id,
            "rolled_back",
            "error rate 8.00% exceeded 2% at 10% of traffic",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let got = rx.wait_for("/slack", 6).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got_after = rx.at("/slack");
    assert_eq!(
        got_after.len(),
        6,
        "5 within the limit, then one digest: {}",
        got.len()
    );
    assert_eq!(types(&got_after[..5]), vec!["deployment.rolled_back"; 5]);
    let digest: Value = serde_json::from_str(&got_after[5].body).unwrap();
    let text = digest["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        text.contains("95 notifications for enclii-platform were held back"),
        "{text}"
    );
    assert!(text.contains("95 × deployment.rolled_back"), "{text}");
    let entries = log(&app, &token, "chat").await;
    let count = |state: &str| entries.iter().filter(|e| e["state"] == state).count();
    assert_eq!(
        (count("delivered"), count("digested")),
        (6, 95),
        "{entries:?}"
    );
}

/// Destinations are tenants': a URL on a private address (or plain http) is refused when added,
/// and one stored while private addresses were allowed is refused when sent once they are not.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn destinations_on_private_addresses_are_refused_unless_the_operator_allows_them(
    pool: PgPool,
) {
    let rx = receiver().await;
    let mut strict = notifying(common::settings(), None);
    strict.notifications.allow_private_destinations = false;
    let app = serve(&pool, strict.clone()).await;
    let token = project(&app, &pool).await;
    for url in [
        "http://hooks.example.com/services/SECRETPATH",
        "https://127.0.0.1/services/SECRETPATH",
        "https://10.0.0.8/services/SECRETPATH",
        "https://[::1]/services/SECRETPATH",
        "https://169.254.169.254/latest/SECRETPATH",
        "https://[::ffff:7f00:1]/services/SECRETPATH",
    ] {
        let (status, body) = app
            .call(
                "/api/notifications/add",
                Some(&token),
                json!({"project": P, "destination": {"name": "x", "kind": "slack", "url": url}}),
            )
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(!message.contains("SECRETPATH"), "{message}");
    }
    // Stored by a server that allowed it (and never sent it), sent by one that does not.
    let mut lax = notifying(common::settings(), None);
    lax.notifications.worker = false;
    let lax_app = serve(&pool, lax).await;
    add(
        &lax_app,
        &token,
        json!({"name": "local", "kind": "slack", "url": rx.url("/slack")}),
    )
    .await;
    let (status, _) = lax_app
        .call(
            "/api/notifications/test",
            Some(&token),
            json!({"project": P, "name": "local"}),
        )
        .await;
    assert_eq!(status, 200);
    let mut entry = Value::Null;
    for _ in 0..100 {
        entry = log(&app, &token, "local").await[0].clone();
        if entry["state"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(entry["state"], "failed", "{entry}");
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap()
            .contains("not a public address"),
        "{entry}"
    );
    assert!(rx.at("/slack").is_empty());
}

/// A deployment to an environment that needs approval is announced as awaiting it, and its
/// rejection as the end of it, to the project's destinations.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn awaiting_approval_and_a_rejection_are_announced(pool: PgPool) {
    let rx = receiver().await;
    let app = serve(&pool, notifying(common::settings(), None)).await;
    let token = project(&app, &pool).await;
    let (status, body) = app
        .call("/api/services/import", Some(&token), json!({"spec": DOCS}))
        .await;
    assert_eq!(status, 200, "{body}");
    add(&app, &token, json!({"name": "chat", "kind": "slack", "url": rx.url("/slack"), "events": ["deployment.awaiting_approval", "deployment.aborted"]})).await;
    let (status, body) = app
        .call(
            "/api/environments/set",
            Some(&token),
            json!({"project": P, "environment": "production", "approvals": 1, "approver_role": "admin"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(&token),
            json!({"project": P, "service": "docs-site", "environment": "production", "image": "ghcr.io/madfam-io/docs:2"}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    let id = d["id"].as_i64().unwrap();
    let got = rx.wait_for("/slack", 1).await;
    assert_eq!(types(&got), ["deployment.awaiting_approval"]);
    assert!(
        got[0]
            .body
            .contains(&format!("deployment #{id} to production awaits approval")),
        "{}",
        got[0].body
    );
    assert!(
        got[0].body.contains("awaiting approval: 0 of 1"),
        "{}",
        got[0].body
    );
    // Another admin rejects it.
    let admin = user(&pool, "second-admin", true).await;
    sqlx::query("INSERT INTO memberships (project_id, user_id, role) SELECT id, $1, 'admin' FROM projects WHERE slug = $2")
        .bind(admin.id)
        .bind(P)
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = app
        .call(
            "/api/deployments/reject",
            Some(&admin.token),
            json!({"project": P, "id": id, "reason": "not on a Friday"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = rx.wait_for("/slack", 2).await;
    assert_eq!(
        types(&got),
        ["deployment.awaiting_approval", "deployment.aborted"]
    );
    assert!(
        got[1]
            .body
            .contains("rejected by second-admin: not on a Friday"),
        "{}",
        got[1].body
    );
}

/// An HTTP endpoint answering GETs with a status the test changes.
async fn toggling() -> (String, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(200));
    let s = status.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        let s = s.clone();
        async move { axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap() }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), status)
}

/// A monitored endpoint that goes down is announced unhealthy once (after two failed probes, not
/// at every probe), and recovered once when it is back.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_monitored_endpoint_is_announced_unhealthy_once_and_recovered_once(pool: PgPool) {
    let (base, health) = toggling().await;
    let rx = receiver().await;
    let cluster = LocalCluster::from_env().await;
    let mut s = notifying(cluster_settings(&cluster), None);
    s.cluster.worker = true;
    s.status.refresh_secs = 1;
    s.status.service_interval_secs = 1;
    s.status.timeout_ms = 2000;
    s.status.allow_private_targets = true;
    let _cleanup = common::Cleanup(s.cluster.namespace_prefix.clone());
    let app = serve(&pool, s).await;
    let token = project(&app, &pool).await;
    let (status, body) = app
        .call(
            "/api/status/publish",
            Some(&token),
            json!({"project": P, "public": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let spec = with_canary_pause(DOCS, "100ms").replacen(
        "\nspec:\n",
        &format!("\nspec:\n  monitoring:\n    targets:\n      - name: Docs home\n        url: {base}/\n        interval: 5s\n"),
        1,
    );
    let (status, body) = app
        .call("/api/services/import", Some(&token), json!({"spec": spec}))
        .await;
    assert_eq!(status, 200, "{body}");
    add(&app, &token, json!({"name": "oncall", "kind": "slack", "url": rx.url("/slack"), "events": ["service.unhealthy", "service.recovered"]})).await;
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(&token),
            json!({"project": P, "service": "docs-site", "environment": "production", "image": "ghcr.io/madfam-io/docs:1"}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    let done = common::wait_for_deployment(&app, &token, P, d["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    // Probed up at least once, then down.
    let up: i64 = loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM status_probes WHERE target LIKE 'target:%' AND ok",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if n > 0 {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(up > 0);
    health.store(500, Ordering::SeqCst);
    let got = rx.wait_for("/slack", 1).await;
    assert_eq!(types(&got), ["service.unhealthy"]);
    assert!(
        got[0].body.contains("Docs home is unhealthy"),
        "{}",
        got[0].body
    );
    // Down through two more probes: nothing more is said.
    let failed_before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM status_probes WHERE target LIKE 'target:%' AND NOT ok",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM status_probes WHERE target LIKE 'target:%' AND NOT ok",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if n >= failed_before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(types(&rx.at("/slack")), ["service.unhealthy"]);
    health.store(200, Ordering::SeqCst);
    let got = rx.wait_for("/slack", 2).await;
    assert_eq!(types(&got), ["service.unhealthy", "service.recovered"]);
    assert!(
        got[1].body.contains("Docs home recovered"),
        "{}",
        got[1].body
    );
}
