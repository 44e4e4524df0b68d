//! Promotion between environments on the local cluster: production gets the exact release staging
//! runs (the same release row: image digest, SBOM, provenance), pinned by digest, through its own
//! rollout; a release staging did not run successfully is refused.

mod common;

use std::time::Duration;

use common::{Cleanup, LocalCluster, TestApp, cluster_settings, namespace, user};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::json;
use sqlx::PgPool;

const P: &str = "shop";

const SPEC: &str = "apiVersion: enclii.dev/v1
kind: Service
metadata:
  name: web
spec:
  build:
    type: dockerfile
  runtime:
    port: 8080
    healthCheck: /health
  rollout:
    strategy: rolling
";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

async fn spawn(pool: &PgPool) -> (TestApp, LocalCluster, Cleanup, String) {
    let cluster = LocalCluster::from_env().await;
    let mut settings = cluster_settings(&cluster);
    settings.cluster.worker = true;
    let cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .expect("build app"),
    )
    .await;
    let owner = user(pool, "owner", true).await;
    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&owner.token),
            json!({"slug": P}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&owner.token),
            json!({"spec": SPEC, "project": P}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (app, cluster, cleanup, owner.token)
}

/// Polls (in a test only) the deployment until it has ended: up to 90 s.
async fn ended(app: &TestApp, token: &str, id: i64) -> serde_json::Value {
    for _ in 0..450 {
        let (status, d) = app
            .call(
                "/api/deployments/get",
                Some(token),
                json!({"project": P, "id": id}),
            )
            .await;
        assert_eq!(status, 200, "{d}");
        if !matches!(
            d["deployment"]["state"].as_str(),
            Some("awaiting_approval" | "pending" | "in_progress")
        ) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("deployment {id} did not end within 90 s");
}

async fn deploy(app: &TestApp, token: &str, environment: &str, image: &str) -> serde_json::Value {
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(token),
            json!({"project": P, "service": "web", "environment": environment, "image": image}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    ended(app, token, d["id"].as_i64().unwrap()).await
}

/// (release id, image digest, SBOM, provenance) of a deployment's release.
async fn release_of(
    pool: &PgPool,
    deployment: i64,
) -> (uuid::Uuid, Option<String>, Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT r.id, r.image_digest, r.sbom_ref, r.provenance_ref FROM deployments d
         JOIN releases r ON r.id = d.release_id WHERE d.id = $1",
    )
    .bind(deployment)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn running_image(cluster: &LocalCluster, ns: &str) -> String {
    let api: Api<Deployment> = Api::namespaced(cluster.admin.clone(), ns);
    let d = api.get("web").await.expect("the Deployment");
    d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn production_gets_the_release_staging_runs_by_digest_with_its_sbom_and_provenance(
    pool: PgPool,
) {
    let (app, cluster, _cleanup, token) = spawn(&pool).await;
    let image = format!("registry.example/shop/web@{}", digest('a'));
    let staging = deploy(&app, &token, "staging", &image).await;
    assert_eq!(staging["deployment"]["state"], "succeeded", "{staging}");
    let staging_id = staging["deployment"]["id"].as_i64().unwrap();
    // What a build records on its release (this release came from an image, not a build).
    sqlx::query(
        "UPDATE releases SET sbom_ref = $2, provenance_ref = $3
         WHERE id = (SELECT release_id FROM deployments WHERE id = $1)",
    )
    .bind(staging_id)
    .bind(format!("registry.example/shop/web@{}", digest('b')))
    .bind(format!("registry.example/shop/web@{}", digest('c')))
    .execute(&pool)
    .await
    .unwrap();

    let (status, promoted) = app
        .call(
            "/api/promotions/create",
            Some(&token),
            json!({"project": P, "service": "web", "from": "staging", "to": "production"}),
        )
        .await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(promoted["environment"], "production");
    let id = promoted["id"].as_i64().unwrap();
    let done = ended(&app, &token, id).await;
    assert_eq!(done["deployment"]["state"], "succeeded", "{done}");
    assert_eq!(
        done["promoted_from"],
        json!({"deployment": staging_id, "environment": "staging"})
    );

    // The same release row: the same digest, SBOM and provenance.
    let source = release_of(&pool, staging_id).await;
    let target = release_of(&pool, id).await;
    assert_eq!(target, source);
    assert_eq!(source.1.as_deref(), Some(digest('a').as_str()));
    assert!(source.2.is_some() && source.3.is_some());
    // Pinned by digest in production's namespace, with production's own rollout.
    assert_eq!(
        running_image(&cluster, &namespace(&app, P, "production")).await,
        image
    );
    let (_, audit) = app
        .call(
            "/api/audit/list",
            Some(&token),
            json!({"project": P, "action": "deployment.promotion"}),
        )
        .await;
    let event = &audit["items"][0];
    assert_eq!(event["target"], format!("deployment:{id}"), "{audit}");
    assert_eq!(event["details"]["from_environment"], "staging");
    assert_eq!(event["details"]["from_deployment"], staging_id);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_release_staging_did_not_run_successfully_is_not_promoted(pool: PgPool) {
    let (app, cluster, _cleanup, token) = spawn(&pool).await;
    let good = format!("registry.example/shop/web@{}", digest('a'));
    assert_eq!(
        deploy(&app, &token, "staging", &good).await["deployment"]["state"],
        "succeeded"
    );
    let (status, first) = app
        .call(
            "/api/promotions/create",
            Some(&token),
            json!({"project": P, "service": "web", "from": "staging", "to": "production"}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let first = ended(&app, &token, first["id"].as_i64().unwrap()).await;
    assert_eq!(first["deployment"]["state"], "succeeded", "{first}");

    // Staging's newest release crashes: it failed there, so it goes no further.
    let bad = format!("registry.example/shop/web-crashloop@{}", digest('d'));
    let failed = deploy(&app, &token, "staging", &bad).await;
    assert_eq!(failed["deployment"]["state"], "failed", "{failed}");
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (status, refused) = app
        .call(
            "/api/promotions/create",
            Some(&token),
            json!({"project": P, "service": "web", "from": "staging", "to": "production"}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "latest deployment of `web` to `staging` (#{}) is failed",
            failed["deployment"]["id"]
        )),
        "{message}"
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(after, before, "nothing was recorded");
    // Production still runs the release promoted before.
    assert_eq!(
        running_image(&cluster, &namespace(&app, P, "production")).await,
        good
    );
    // Promoting to the same environment, or from one never deployed to, is refused too.
    let (status, same) = app
        .call(
            "/api/promotions/create",
            Some(&token),
            json!({"project": P, "service": "web", "from": "staging", "to": "staging"}),
        )
        .await;
    assert_eq!(status, 409, "{same}");
}
