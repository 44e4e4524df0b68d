//! Benchmark (not a test): the lists the dashboard and CLI page through, with 10,000 services and
//! 1,000,000 deployments in the database. Reports p50/p99 of each engine call (query and mapping,
//! as the server functions run them), first page and a deep keyset page.
//! Run by `scripts/bench-scale.sh` (it provides DATABASE_URL). With `BENCH_SEED_ONLY=1` it loads
//! the data, prints `TOKEN=<read-only API token of the project's owner>` and stops: the page
//! benchmark in `scripts/bench.sh` then measures the dashboard's pages over that data.

use std::time::{Duration, Instant};

use switchyard_engine::Settings;
use switchyard_engine::auth::{Caller, Via, users};
use switchyard_engine::platform::{deployments, projects, services};

const SPEC: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");

fn stats(mut d: Vec<Duration>) -> String {
    d.sort();
    let p = |q: f64| {
        d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1].as_secs_f64() * 1000.0
    };
    format!("p50 {:.2} ms, p99 {:.2} ms", p(0.5), p(0.99))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")?;
    let services_n: i64 = std::env::var("BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let per_service: i64 = std::env::var("BENCH_DEPLOYMENTS_PER_SERVICE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let settings = Settings::with_database_url(&url)?;
    let pool = switchyard_engine::db::connect(&settings.database).await?;
    switchyard_engine::db::migrate(&pool).await?;
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
        platform_admin: false,
        via: Via::Session,
        client_addr: None,
        projects: Default::default(),
    };
    let project = "scale";
    projects::create(&pool, "", Some(&caller), project, "")
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

    // Bulk data in SQL, copying the imported service; the notify triggers are off for the load.
    let started = Instant::now();
    sqlx::raw_sql(&format!(
        r#"
        ALTER TABLE deployments DISABLE TRIGGER deployments_notify;
        INSERT INTO services (project_id, name, description, git_repository, git_branch, auto_deploy, current_revision)
          SELECT s.project_id, 'svc-' || lpad(g::text, 5, '0'), s.description, s.git_repository, s.git_branch, s.auto_deploy, 1
          FROM services s, generate_series(2, {services_n}) g WHERE s.name = 'docs-site';
        INSERT INTO spec_revisions (service_id, revision, source, source_sha256, spec, extra_objects)
          SELECT n.id, 1, r.source, r.source_sha256, r.spec, r.extra_objects
          FROM services n, spec_revisions r JOIN services o ON o.id = r.service_id AND o.name = 'docs-site'
          WHERE n.name LIKE 'svc-%';
        INSERT INTO releases (service_id, spec_revision, image_ref)
          SELECT id, 1, 'ghcr.io/bench/' || name || ':1' FROM services;
        INSERT INTO deployments (service_id, environment_id, release_id, strategy, state, created_at, finished_at)
          SELECT r.service_id, e.id, r.id, 'canary', 'succeeded',
                 now() - make_interval(mins => g), now() - make_interval(mins => g) + interval '2 minutes'
          FROM releases r JOIN services s ON s.id = r.service_id
               JOIN environments e ON e.project_id = s.project_id AND e.name = 'production',
               generate_series(1, {per_service}) g;
        ALTER TABLE deployments ENABLE TRIGGER deployments_notify;
        ANALYZE;
        "#
    ))
    .execute(&pool)
    .await?;
    let (svc_count, dep_count): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM services), (SELECT count(*) FROM deployments)",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "loaded {svc_count} services and {dep_count} deployments in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    if std::env::var_os("BENCH_SEED_ONLY").is_some() {
        let token = switchyard_engine::auth::tokens::create(
            &pool,
            user,
            "bench",
            &[switchyard_engine::auth::tokens::Scope::Read],
            None,
        )
        .await?;
        println!("TOKEN={}", token.token);
        return Ok(());
    }

    // Each timed call is one request's worth of work: a fresh caller, so that the project lookup
    // is not remembered from the last call (`Caller::projects` lives for one request).
    let fresh = || Caller {
        projects: Default::default(),
        ..caller.clone()
    };
    let runs = 200;
    // Services, first page and a page deep into the list (by keyset cursor).
    let mut first = Vec::new();
    let mut deep = Vec::new();
    let deep_cursor = format!("svc-{:05}", services_n * 9 / 10);
    for _ in 0..runs {
        let t = Instant::now();
        let page = services::list(&pool, Some(&fresh()), project, None, Some(50))
            .await
            .map_err(|e| anyhow::anyhow!(e.into_api()))?;
        first.push(t.elapsed());
        assert_eq!(page.items.len(), 50);
        let t = Instant::now();
        services::list(&pool, Some(&fresh()), project, Some(&deep_cursor), Some(50))
            .await
            .map_err(|e| anyhow::anyhow!(e.into_api()))?;
        deep.push(t.elapsed());
    }
    println!("services/list, first page of 50: {}", stats(first));
    println!("services/list, page after {deep_cursor}: {}", stats(deep));

    let mut first = Vec::new();
    let mut deep = Vec::new();
    let mut one_service = Vec::new();
    let max_id: i64 = sqlx::query_scalar("SELECT max(id) FROM deployments")
        .fetch_one(&pool)
        .await?;
    for _ in 0..runs {
        let t = Instant::now();
        let page = deployments::list(&pool, Some(&fresh()), project, None, None, Some(50))
            .await
            .map_err(|e| anyhow::anyhow!(e.into_api()))?;
        first.push(t.elapsed());
        assert_eq!(page.items.len(), 50);
        let t = Instant::now();
        deployments::list(
            &pool,
            Some(&fresh()),
            project,
            None,
            Some(max_id / 10),
            Some(50),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.into_api()))?;
        deep.push(t.elapsed());
        let t = Instant::now();
        deployments::list(
            &pool,
            Some(&fresh()),
            project,
            Some("svc-05000"),
            None,
            Some(50),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.into_api()))?;
        one_service.push(t.elapsed());
    }
    println!(
        "deployments/list, newest 50 of the project: {}",
        stats(first)
    );
    println!(
        "deployments/list, 50 after a cursor 90% deep: {}",
        stats(deep)
    );
    println!(
        "deployments/list, one service's newest 50: {}",
        stats(one_service)
    );
    Ok(())
}
