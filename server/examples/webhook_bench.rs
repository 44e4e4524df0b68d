//! Benchmark (not a test) of the webhook endpoint against a real `switchyard` process:
//! 1. deliveries per second accepted (signature verified, delivery and build durably queued) and
//!    the acknowledgement latency, with BENCH_CONCURRENCY (32) senders for BENCH_DELIVERIES (5000);
//! 2. a burst of 1,000 deliveries during which the server is killed (SIGKILL) and restarted; every
//!    delivery not acknowledged is sent again, as GitHub redelivers failures; then the database must
//!    account for each delivery exactly once, with exactly one build.
//! Run by `scripts/bench-webhooks.sh` (it provides DATABASE_URL and SWITCHYARD_BIN).

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_engine::auth::{Caller, Via, users};
use switchyard_engine::pipeline::{self, github::sign};
use switchyard_engine::platform::{projects, services};
use switchyard_engine::{Engine, Settings};
use tokio::sync::Mutex;

const SPEC: &str = include_str!("../../spec/fixtures/dogfooding/switchyard-api.yaml");
const KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
const REPO: &str = "https://github.com/madfam-io/enclii";

fn start_server(bin: &str, db: &str, port: u16) -> anyhow::Result<Child> {
    Ok(Command::new(bin)
        .env("ENCLII_DATABASE__URL", db)
        .env("ENCLII_LISTEN", format!("127.0.0.1:{port}"))
        .env("ENCLII_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("ENCLII_SECRETS__KEY", KEY)
        // Acceptance is measured: the builds stay queued (no cluster, no build worker).
        .env("ENCLII_CLUSTER__WORKER", "false")
        .env("ENCLII_LOG__FILTER", "error")
        .spawn()?)
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not start");
}

fn payload(i: usize) -> String {
    let after = format!("{i:040x}");
    serde_json::json!({
        "ref": "refs/heads/main", "after": after, "deleted": false,
        "repository": {"html_url": REPO},
        "commits": [{"id": after, "added": [], "modified": ["src/main.rs"], "removed": []}]
    })
    .to_string()
}

/// Sends one delivery; `Ok(latency)` when acknowledged (2xx).
async fn send(
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    id: &str,
    body: &str,
) -> Result<Duration, String> {
    let started = Instant::now();
    let res = http
        .post(format!("{base}/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", id)
        .header(
            "x-hub-signature-256",
            sign(secret.as_bytes(), body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status().is_success() {
        Ok(started.elapsed())
    } else {
        Err(res.status().to_string())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = std::env::var("DATABASE_URL")?;
    let bin = std::env::var("SWITCHYARD_BIN")?;
    let total: usize = std::env::var("BENCH_DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);

    // Set up with the engine itself: a project, the seed's API service, the connected repository.
    let mut settings = Settings::with_database_url(&db)?;
    settings.secrets.key = Some(secrecy::SecretString::from(KEY.to_owned()));
    let pool = switchyard_engine::db::connect(&settings.database).await?;
    switchyard_engine::db::migrate(&pool).await?;
    let engine = Engine::new(pool.clone(), settings).map_err(anyhow::Error::msg)?;
    let user = users::upsert(
        &pool,
        &users::Identity {
            issuer: "bench",
            subject: "bench",
            email: None,
            display_name: "bench",
            platform_admin: true,
        },
    )
    .await?;
    let caller = Caller {
        user_id: user,
        display_name: "bench".into(),
        email: None,
        platform_admin: true,
        via: Via::Session,
        client_addr: None,
        projects: Default::default(),
    };
    let project = format!("hooks-{}", std::process::id());
    projects::create(&pool, "", Some(&caller), &project, "")
        .await
        .map_err(|e| anyhow::anyhow!(e.into_api()))?;
    services::import(
        &pool,
        &Default::default(),
        Some(&caller),
        None,
        &SPEC.replace("project: enclii-platform", &format!("project: {project}")),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.into_api()))?;
    let secret = pipeline::connect(&engine, Some(&caller), &project, REPO)
        .await
        .map_err(|e| anyhow::anyhow!(e.into_api()))?
        .secret
        .unwrap_or_default();

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let mut server = start_server(&bin, &db, port)?;
    wait_ready(&http, &base).await;

    // 1. Throughput and acknowledgement latency.
    let run = format!(
        "{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, base, secret, next, latencies, run) = (
            http.clone(),
            base.clone(),
            secret.clone(),
            next.clone(),
            latencies.clone(),
            run.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= total {
                    return;
                }
                let latency = send(&http, &base, &secret, &format!("t-{run}-{i}"), &payload(i))
                    .await
                    .expect("accepted");
                latencies.lock().await.push(latency);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed();
    let mut lat = latencies.lock().await.clone();
    lat.sort();
    println!(
        "throughput: {total} deliveries in {:.2}s = {:.0} accepted/s with {concurrency} senders; ack latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().unwrap().as_secs_f64() * 1000.0,
    );

    // 2. A burst of 1,000 with a SIGKILL in the middle, then redelivery of what was not acknowledged.
    let burst = 1000;
    let ids: Vec<String> = (0..burst).map(|i| format!("k-{run}-{i}")).collect();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, base, secret, next, acked, ids) = (
            http.clone(),
            base.clone(),
            secret.clone(),
            next.clone(),
            acked.clone(),
            ids.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= ids.len() {
                    return;
                }
                if send(&http, &base, &secret, &ids[i], &payload(total + i))
                    .await
                    .is_ok()
                {
                    acked.lock().await.insert(i);
                }
            }
        }));
    }
    // Kill once about a third has been acknowledged.
    while acked.lock().await.len() < burst / 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill()?;
    server.wait()?;
    let acked_before_kill = acked.lock().await.len();
    for t in tasks {
        t.await?;
    }
    let acked_at_kill: BTreeSet<usize> = acked.lock().await.clone();
    server = start_server(&bin, &db, port)?;
    wait_ready(&http, &base).await;
    let mut redelivered = 0;
    for i in 0..burst {
        if !acked_at_kill.contains(&i) {
            send(&http, &base, &secret, &ids[i], &payload(total + i))
                .await
                .expect("accepted after the restart");
            redelivered += 1;
        }
    }
    server.kill()?;
    server.wait()?;

    let rows = sqlx::query!(
        r#"SELECT d.delivery_id, d.outcome, (SELECT count(*) FROM builds b WHERE b.delivery_id = d.delivery_id) AS "builds!"
           FROM webhook_deliveries d WHERE d.delivery_id = ANY($1)"#,
        &ids
    )
    .fetch_all(&pool)
    .await?;
    let accepted = rows.iter().filter(|r| r.outcome == "accepted").count();
    let one_build = rows.iter().filter(|r| r.builds == 1).count();
    println!(
        "kill and restart: {burst} deliveries, {acked_before_kill} acknowledged when the server was killed, {} acknowledged in all before the restart, {redelivered} redelivered after it; \
         database: {} deliveries recorded ({accepted} accepted), {one_build} with exactly one build",
        acked_at_kill.len(),
        rows.len()
    );
    anyhow::ensure!(
        rows.len() == burst && accepted == burst && one_build == burst,
        "a delivery was lost or doubled"
    );
    println!("every delivery accounted for exactly once");
    Ok(())
}
