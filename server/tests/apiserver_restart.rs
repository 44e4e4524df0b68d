//! Rollouts that outlive the API server: it restarts in the middle of one, and in the middle of
//! another its watch history is compacted away, so the engine's watches come back to `410 Gone`
//! and must list again. Its own test binary: restarting the shared API server must not meet the
//! other tests' calls (cargo runs test binaries one at a time).

mod common;

use std::time::Duration;

use common::{LocalCluster, user};
use serde_json::json;
use sqlx::PgPool;

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const P: &str = "enclii-platform";

/// The running API server's command line, from its pid file.
fn apiserver(cluster: &LocalCluster) -> (u32, Vec<String>) {
    let pid: u32 = std::fs::read_to_string(cluster.dir.join("kube-apiserver.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (pid, args)
}

/// Stops the API server and starts it again with the same flags; returns once it is ready.
async fn restart_apiserver(cluster: &LocalCluster) {
    let (pid, args) = apiserver(cluster);
    let status = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(cluster.dir.join("kube-apiserver.log"))
        .unwrap();
    let child = std::process::Command::new(&args[0])
        .args(&args[1..])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // scripts/test.sh stops the cluster by its pid files.
    std::fs::write(
        cluster.dir.join("kube-apiserver.pid"),
        child.id().to_string(),
    )
    .unwrap();
    for _ in 0..300 {
        if cluster.admin.apiserver_version().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the API server did not come back");
}

/// Compacts etcd's history up to now: watches that resume from an older revision get 410 Gone.
async fn compact_etcd(cluster: &LocalCluster) {
    let (_, args) = apiserver(cluster);
    let etcd = args
        .iter()
        .position(|a| a == "--etcd-servers")
        .map(|i| args[i + 1].clone())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--etcd-servers=").map(str::to_owned))
        })
        .unwrap();
    let http = reqwest::Client::new();
    let range: serde_json::Value = http
        .post(format!("{etcd}/v3/kv/range"))
        .json(&json!({"key": "AA=="}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let revision = range["header"]["revision"].as_str().unwrap().to_owned();
    let compacted = http
        .post(format!("{etcd}/v3/kv/compaction"))
        .json(&json!({"revision": revision, "physical": true}))
        .send()
        .await
        .unwrap();
    assert!(
        compacted.status().is_success(),
        "{:?}",
        compacted.text().await
    );
}

/// Polls (in a test only) until the deployment reaches a terminal state, for up to two minutes.
async fn finished(app: &common::TestApp, token: &str, id: i64) -> serde_json::Value {
    for _ in 0..1200 {
        let (_, page) = app
            .call("/api/deployments/list", Some(token), json!({"project": P}))
            .await;
        if let Some(d) = page["items"]
            .as_array()
            .and_then(|items| items.iter().find(|d| d["id"] == id))
        {
            if !matches!(d["state"].as_str(), Some("pending" | "in_progress")) {
                return d.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deployment {id} did not finish within two minutes");
}

/// Waits until the deployment's rollout step runs (the engine is watching the rollout).
async fn until_rolling_out(pool: &PgPool, id: i64) {
    for _ in 0..200 {
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT kind FROM deployment_steps WHERE deployment_id = $1 AND state = 'running' ORDER BY seq DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap();
        if kind.as_deref() == Some("rollout") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deployment {id} never reached its rollout step");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn rollouts_reach_their_outcome_across_an_api_server_restart_and_a_410_gone(pool: PgPool) {
    // Kubernetes' own progress deadline, not the tests' 15 s: the controllers' pods wait for the
    // API server to come back (and its authorizer to sync), which is not the subject here.
    let cluster = LocalCluster::from_env().await;
    let mut settings = common::cluster_settings(&cluster);
    settings.cluster.worker = true;
    settings.cluster.progress_deadline_secs = enclii_spec::render::DEFAULT_PROGRESS_DEADLINE_SECS;
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .unwrap(),
    )
    .await;
    let owner = user(&pool, "owner", true).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": P}),
    )
    .await;
    let spec = DOCS.replacen(
        "\nspec:\n",
        "\nspec:\n  rollout:\n    strategy: rolling\n",
        1,
    );
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&owner.token),
            json!({"spec": spec}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // `slow` images take seconds to become ready: long enough to pull the API server away.
    for (image, compact) in [
        ("ghcr.io/madfam-io/docs:slow-1", false),
        ("ghcr.io/madfam-io/docs:slow-2", true),
    ] {
        let (status, d) = app
            .call(
                "/api/deployments/create",
                Some(&owner.token),
                json!({"project": P, "service": "docs-site", "environment": "production", "image": image}),
            )
            .await;
        assert_eq!(status, 200, "{d}");
        let id = d["id"].as_i64().unwrap();
        until_rolling_out(&pool, id).await;
        if compact {
            compact_etcd(&cluster).await;
        }
        restart_apiserver(&cluster).await;
        let d = finished(&app, &owner.token, id).await;
        assert_eq!(d["state"], "succeeded", "{image}: {d}");
    }
    cluster
        .delete_namespaces(&app.engine.settings.cluster.namespace_prefix)
        .await;
}
