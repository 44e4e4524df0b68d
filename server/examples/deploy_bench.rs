//! Benchmark (not a test): deploy 1 service, then N services at once, to the sandbox cluster through
//! the real worker and kube-rs client; report the time from the deploy request to all objects
//! applied, to rollout success, and the Kubernetes API calls per deploy.
//! Run by `scripts/bench-deploy.sh` (it provides DATABASE_URL).

use std::time::{Duration, Instant};

use switchyard_engine::Settings;
use switchyard_engine::auth::{Caller, Via, users};
use switchyard_engine::platform::{deployments, projects, services};

const SPEC: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")?;
    let many: usize = std::env::var("BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let sandbox = enclii_sandbox::Sandbox::start(enclii_sandbox::Options {
        ready_delay: Duration::from_millis(200),
        progress_deadline: Duration::from_secs(60),
        log_interval: Duration::from_secs(1),
        ..Default::default()
    })
    .await?;
    let mut settings = Settings::with_database_url(&url)?;
    settings.cluster.mode = switchyard_engine::config::ClusterMode::Url;
    settings.cluster.url = Some(sandbox.kube_url.clone());
    settings.database.max_connections = 20;
    let app = switchyard_server::build(settings).await?;
    let pool = app.engine.pool.clone();
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
    let project = format!("bench-{}", std::process::id());
    projects::create(&pool, Some(&caller), &project, "")
        .await
        .map_err(|e| anyhow::anyhow!(e.into_api()))?;

    for (label, count) in [("1 service", 1usize), ("many services at once", many)] {
        let mut names = Vec::new();
        for i in 0..count {
            let name = format!("svc-{label_len}-{i}", label_len = count);
            let spec = SPEC
                .replace("name: docs-site", &format!("name: {name}"))
                .replace("project: enclii-platform", &format!("project: {project}"));
            services::import(&pool, Some(&caller), None, &spec)
                .await
                .map_err(|e| anyhow::anyhow!(e.into_api()))?;
            names.push(name);
        }
        let calls_before = sandbox.requests();
        let started = Instant::now();
        let mut ids = Vec::new();
        for name in &names {
            let req = deployments::Request {
                project: &project,
                service: name,
                environment: "production",
                image: Some("ghcr.io/bench/app:1"),
            };
            ids.push(
                deployments::create(&pool, Some(&caller), req)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.into_api()))?
                    .id,
            );
        }
        loop {
            let open: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments WHERE id = ANY($1) AND state IN ('pending', 'in_progress')")
                .bind(&ids)
                .fetch_one(&pool)
                .await?;
            if open == 0 {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                anyhow::bail!("deployments did not finish in 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let total = started.elapsed();
        let calls = sandbox.requests() - calls_before;
        let (applied_p50, applied_max): (f64, f64) = sqlx::query_as(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM s.finished_at - d.created_at)),
                    max(extract(epoch FROM s.finished_at - d.created_at))::float8
             FROM deployments d JOIN deployment_steps s ON s.deployment_id = d.id AND s.kind = 'apply'
             WHERE d.id = ANY($1)",
        )
        .bind(&ids)
        .fetch_one(&pool)
        .await?;
        let succeeded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deployments WHERE id = ANY($1) AND state = 'succeeded'",
        )
        .bind(&ids)
        .fetch_one(&pool)
        .await?;
        println!(
            "{label:>22}: {count} deploys, {succeeded} succeeded; request→objects applied p50 {:.0} ms, max {:.0} ms; all rollouts done in {:.2} s; {:.1} API calls per deploy",
            applied_p50 * 1000.0,
            applied_max * 1000.0,
            total.as_secs_f64(),
            calls as f64 / count as f64
        );
    }
    Ok(())
}
