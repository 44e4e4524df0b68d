//! Benchmark (not a test): deploy 1 service, then N services at once, to the local cluster (a real
//! kube-apiserver with simulated nodes, found through `ENCLII_TEST_CLUSTER`) through the real
//! worker and kube-rs client, as Switchyard's ServiceAccount; report the time from the deploy
//! request to all objects applied, to rollout success, and the Kubernetes API calls per deploy.
//! The calls are counted in Switchyard's own client (a tower layer under kube-rs), so the
//! controllers, the node simulator and other users of the cluster do not blur the figure.
//! Run by `scripts/bench-deploy.sh` (it provides DATABASE_URL, a database of its own).
//! `BENCH_SERVICES` (default 100) is the many.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enclii_sandbox::testing::LocalCluster;
use switchyard_engine::Settings;
use switchyard_engine::auth::{Caller, Via, users};
use switchyard_engine::deploy::Clusters;
use switchyard_engine::platform::{deployments, projects, services};

const SPEC: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");

/// Requests the kube client sent, by verb and resource (`apply deployments`, `watch pods`,
/// `dry-run apply services`).
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<String, u64>>>);

impl Calls {
    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }

    /// A client as `deploy::connect` makes it from the kubeconfig, counting every request.
    async fn client(&self, kubeconfig: &str) -> anyhow::Result<kube::Client> {
        let file = kube::config::Kubeconfig::read_from(kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(file, &Default::default()).await?;
        let calls = self.clone();
        let count = tower::util::MapRequestLayer::new(
            move |req: axum::http::Request<kube::client::Body>| {
                *calls.0.lock().unwrap().entry(call_kind(&req)).or_default() += 1;
                req
            },
        );
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&count)
            .build())
    }
}

/// `verb resource[/subresource]` of an API request, as the API server's audit log would name it.
fn call_kind<B>(req: &axum::http::Request<B>) -> String {
    let segments: Vec<&str> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    // /api/v1/… or /apis/{group}/{version}/…
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..).unwrap_or_default(),
        _ => segments.get(3..).unwrap_or_default(),
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let resource = match rest {
        [plural, _, sub, ..] => format!("{plural}/{sub}"),
        [plural, ..] => (*plural).to_owned(),
        [] => "?".to_owned(),
    };
    let query = req.uri().query().unwrap_or_default();
    let apply = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    let dry_run = query.split('&').any(|p| p.starts_with("dryRun="));
    let verb = match req.method().as_str() {
        "GET" if query.split('&').any(|p| p == "watch=true") => "watch",
        "GET" if rest.len() >= 2 => "get",
        "GET" => "list",
        "PATCH" if apply && dry_run => "dry-run apply",
        "PATCH" if apply => "apply",
        "PATCH" => "patch",
        "POST" => "create",
        "PUT" => "update",
        "DELETE" => "delete",
        other => other,
    };
    format!("{verb} {resource}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")?;
    let many: usize = std::env::var("BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let cluster = LocalCluster::from_env().await;
    let mut settings = Settings::with_database_url(&url)?;
    settings.cluster.mode = switchyard_engine::config::ClusterMode::Kube;
    settings.cluster.kubeconfig = Some(cluster.switchyard_kubeconfig());
    settings.cluster.namespace_prefix = LocalCluster::namespace_prefix();
    // The worker is started below, on the counting client.
    settings.cluster.worker = false;
    settings.database.max_connections = 20;
    let prefix = settings.cluster.namespace_prefix.clone();
    let app = switchyard_server::build(settings).await?;
    let calls = Calls::default();
    let clusters = Clusters::single(calls.client(&cluster.switchyard_kubeconfig()).await?);
    let _ = app.engine.kube.set(clusters.clone());
    tokio::spawn(switchyard_engine::deploy::worker::run(
        app.engine.clone(),
        clusters,
        format!("deploy-bench-{}", std::process::id()),
    ));
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
    projects::create(&pool, &prefix, Some(&caller), &project, "")
        .await
        .map_err(|e| anyhow::anyhow!(e.into_api()))?;

    let result = run(&pool, &caller, &project, &calls, many).await;
    // The pods of a hundred services would weigh on everyone else using the cluster.
    let namespace = projects::namespace_for(&prefix, &project, "production");
    let _ = cluster
        .api("v1", "Namespace", None)
        .delete(&namespace, &Default::default())
        .await;
    result
}

async fn run(
    pool: &sqlx::PgPool,
    caller: &Caller,
    project: &str,
    calls: &Calls,
    many: usize,
) -> anyhow::Result<()> {
    for (phase, (label, count)) in [("1 service", 1usize), ("many services at once", many)]
        .into_iter()
        .enumerate()
    {
        let mut names = Vec::new();
        for i in 0..count {
            let name = format!("svc-{phase}-{i}");
            let spec = SPEC
                .replace("name: docs-site", &format!("name: {name}"))
                .replace("project: enclii-platform", &format!("project: {project}"));
            services::import(pool, &Default::default(), Some(caller), None, &spec)
                .await
                .map_err(|e| anyhow::anyhow!(e.into_api()))?;
            names.push(name);
        }
        let calls_before = calls.snapshot();
        let started = Instant::now();
        let mut ids = Vec::new();
        for name in &names {
            let req = deployments::Request {
                project,
                service: name,
                environment: "production",
                image: Some("ghcr.io/bench/app:1"),
                registry: "",
            };
            ids.push(
                deployments::create(pool, Some(caller), req)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.into_api()))?
                    .id,
            );
        }
        loop {
            let open: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments WHERE id = ANY($1) AND state IN ('pending', 'in_progress')")
                .bind(&ids)
                .fetch_one(pool)
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
        let mut by_kind = calls.snapshot();
        for (kind, n) in by_kind.iter_mut() {
            *n -= calls_before.get(kind).copied().unwrap_or_default();
        }
        by_kind.retain(|_, n| *n > 0);
        let calls_made: u64 = by_kind.values().sum();
        let (applied_p50, applied_max): (f64, f64) = sqlx::query_as(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM s.finished_at - d.created_at)),
                    max(extract(epoch FROM s.finished_at - d.created_at))::float8
             FROM deployments d JOIN deployment_steps s ON s.deployment_id = d.id AND s.kind = 'apply'
             WHERE d.id = ANY($1)",
        )
        .bind(&ids)
        .fetch_one(pool)
        .await?;
        let succeeded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deployments WHERE id = ANY($1) AND state = 'succeeded'",
        )
        .bind(&ids)
        .fetch_one(pool)
        .await?;
        println!(
            "{label:>22}: {count} deploys, {succeeded} succeeded; request→objects applied p50 {:.0} ms, max {:.0} ms; all rollouts done in {:.2} s; {:.1} API calls per deploy",
            applied_p50 * 1000.0,
            applied_max * 1000.0,
            total.as_secs_f64(),
            calls_made as f64 / count as f64
        );
        let per_deploy: Vec<String> = by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {:.1}", *n as f64 / count as f64))
            .collect();
        println!("{:>22}  per deploy: {}", "", per_deploy.join(", "));
    }
    Ok(())
}
