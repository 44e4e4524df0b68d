//! Benchmark (not a test) of the notifications outbox against a real `switchyard` process and its
//! delivery worker:
//! 1. events recorded per second: BENCH_EVENTS (5000) events, each in its own transaction as a
//!    state change writes it, from BENCH_CONCURRENCY (16) writers;
//! 2. events delivered per second end to end (recorded → signed → POSTed to a receiver on
//!    loopback → acknowledged → recorded as delivered), and each event's latency from its commit
//!    to its arrival (p50, p99);
//! 3. that every event arrived exactly once (by `webhook-id`).
//!
//! Run by `scripts/bench-notify.sh` (it provides DATABASE_URL and SWITCHYARD_BIN).

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use enclii_api::{DestinationKind, EventKind, NewDestination};
use switchyard_engine::auth::{Caller, Via, users};
use switchyard_engine::notify::{self, Event, Facts};
use switchyard_engine::platform::projects;
use switchyard_engine::{Engine, Settings};

const KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

fn start_server(bin: &str, db: &str, port: u16) -> anyhow::Result<Child> {
    Ok(Command::new(bin)
        .env("ENCLII_DATABASE__URL", db)
        .env("ENCLII_LISTEN", format!("127.0.0.1:{port}"))
        .env("ENCLII_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("ENCLII_SECRETS__KEY", KEY)
        .env("ENCLII_CLUSTER__WORKER", "false")
        .env("ENCLII_STATUS__PROBER", "false")
        .env("ENCLII_NOTIFICATIONS__ALLOW_PRIVATE_DESTINATIONS", "true")
        // Throughput is measured: no rate limit in the way.
        .env("ENCLII_NOTIFICATIONS__PER_WINDOW", "100000000")
        .env("ENCLII_LOG__FILTER", "error")
        .spawn()?)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

type Arrivals = Arc<Mutex<HashMap<String, (Instant, usize)>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = std::env::var("DATABASE_URL")?;
    let bin = std::env::var("SWITCHYARD_BIN")?;
    let total: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);

    // The receiver: each request's `webhook-id` and when it arrived.
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let receiver = axum::Router::new().fallback(axum::routing::post(
        move |headers: HeaderMap, _body: String| {
            let seen = seen.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let mut seen = seen.lock().unwrap();
                let entry = seen.entry(id).or_insert((Instant::now(), 0));
                entry.1 += 1;
                axum::http::StatusCode::NO_CONTENT
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    // Set up with the engine itself: a project and its webhook destination.
    let mut settings = Settings::with_database_url(&db)?;
    settings.secrets.key = Some(secrecy::SecretString::from(KEY.to_owned()));
    settings.notifications.allow_private_destinations = true;
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
    let project = format!("notify-{}", std::process::id());
    projects::create(&pool, "", Some(&caller), &project, "")
        .await
        .map_err(|e| anyhow::anyhow!(e.into_api()))?;
    notify::destinations::add(
        &engine,
        Some(&caller),
        &project,
        NewDestination {
            name: "bench".into(),
            kind: DestinationKind::Webhook,
            url: Some(format!("http://{receiver_addr}/hook")),
            recipients: vec![],
            events: vec![EventKind::DeploymentFailed],
            environments: vec![],
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.into_api()))?;
    let project_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1")
        .bind(&project)
        .fetch_one(&pool)
        .await?;

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut server = start_server(&bin, &db, port)?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1 and 2: record from `concurrency` writers, each event in its own transaction.
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for _ in 0..concurrency {
        let (pool, committed, next, project) = (
            pool.clone(),
            committed.clone(),
            next.clone(),
            project.clone(),
        );
        writers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= total {
                    return Ok::<_, sqlx::Error>(());
                }
                let mut tx = pool.begin().await?;
                let id = notify::record(
                    &mut tx,
                    &Event {
                        kind: EventKind::DeploymentFailed,
                        project_id,
                        facts: Facts {
                            project: project.clone(),
                            service: Some("api".into()),
                            environment: Some("production".into()),
                            title: format!("api: deployment #{i} to production failed"),
                            reason: "the canary's pods failed".into(),
                            link: format!("/projects/{project}/deployments/{i}"),
                            details: Default::default(),
                        },
                    },
                    None,
                )
                .await?;
                tx.commit().await?;
                committed
                    .lock()
                    .unwrap()
                    .insert(id.to_string(), Instant::now());
            }
        }));
    }
    for w in writers {
        w.await??;
    }
    let recorded_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arrivals = arrivals.lock().unwrap().clone();
    let last = arrivals.values().map(|(t, _)| *t).max().unwrap_or(started);
    let delivered_in = last - started;
    let committed = committed.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = committed
        .iter()
        .filter_map(|(id, at)| {
            arrivals
                .get(id)
                .map(|(got, _)| got.saturating_duration_since(*at))
        })
        .collect();
    latencies.sort();
    let twice = arrivals.values().filter(|(_, n)| *n > 1).count();
    let _ = server.kill();
    let _ = server.wait();

    println!("events: {total}, writers: {concurrency}");
    println!(
        "recorded: {:.0} events/s ({:.2} s)",
        total as f64 / recorded_in.as_secs_f64(),
        recorded_in.as_secs_f64()
    );
    println!(
        "delivered end to end: {} of {total} in {:.2} s = {:.0} events/s",
        arrivals.len(),
        delivered_in.as_secs_f64(),
        arrivals.len() as f64 / delivered_in.as_secs_f64()
    );
    if !latencies.is_empty() {
        println!(
            "commit → receiver latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
            percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
            latencies.last().unwrap().as_secs_f64() * 1000.0
        );
    }
    println!("received more than once: {twice}");
    anyhow::ensure!(arrivals.len() == total, "not every event arrived");
    anyhow::ensure!(twice == 0, "an event arrived twice");
    Ok(())
}
