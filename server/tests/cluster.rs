//! What only a real API server checks, against the local cluster `scripts/test.sh` starts
//! (kube-apiserver, controller-manager and scheduler v1.37, simulated nodes): server-side apply's
//! field ownership and pruning, the Deployment controller's view of replicas under an autoscaler,
//! the tenant namespace's quota, and a rollback that restores a release exactly.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{
    LocalCluster, cluster_settings, namespace, spawn_app_with_cluster, user, wait_for_deployment,
};
use enclii_spec::render::{self, Manifest, Target};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sqlx::PgPool;
use switchyard_engine::deploy::apply;

const FIXTURES: [&str; 6] = [
    include_str!("../../spec/fixtures/dogfooding/docs-site.yaml"),
    include_str!("../../spec/fixtures/dogfooding/landing-page.yaml"),
    include_str!("../../spec/fixtures/dogfooding/plinto.yaml"),
    include_str!("../../spec/fixtures/dogfooding/status-page.yaml"),
    include_str!("../../spec/fixtures/dogfooding/switchyard-api.yaml"),
    include_str!("../../spec/fixtures/dogfooding/switchyard-ui.yaml"),
];
const API: &str = include_str!("../../spec/fixtures/dogfooding/switchyard-api.yaml");
const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const P: &str = "enclii-platform";

/// What Enclii's field manager last wrote to each object (when, and which fields), as the API
/// server holds it (`None`: absent). Controllers change resourceVersions and generations (the
/// autoscaler scales to its minimum); an apply that changes nothing leaves this as it was.
async fn versions(
    cluster: &LocalCluster,
    manifests: &[Manifest],
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for m in manifests {
        let object = cluster
            .object(&m.api_version, &m.kind, m.namespace.as_deref(), &m.name)
            .await;
        out.insert(
            format!("{}/{}", m.kind, m.name),
            object.map(|o| {
                let ours: Vec<&serde_json::Value> = o["metadata"]["managedFields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m["manager"] == apply::FIELD_MANAGER)
                    .collect();
                json!(ours).to_string()
            }),
        );
    }
    out
}

async fn replica_sets(cluster: &LocalCluster, ns: &str) -> usize {
    cluster
        .objects("apps/v1", "ReplicaSet", Some(ns))
        .await
        .len()
}

/// Kinds a later revision of a spec can stop asking for.
const DROPPABLE: [&str; 4] = [
    "Ingress",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ConfigMap",
];

#[tokio::test]
async fn every_dogfooding_fixture_applies_then_reapplies_unchanged_then_prunes_only_what_it_dropped()
 {
    let cluster = LocalCluster::from_env().await;
    let settings = cluster_settings(&cluster);
    // As Switchyard's ServiceAccount: a permission deploy/rbac.yaml lacks fails here.
    let client = switchyard_engine::deploy::connect(&settings.cluster)
        .await
        .unwrap();
    for text in FIXTURES {
        let file = enclii_spec::parse(text).expect("the fixture is valid");
        let service = file.service.metadata.name.clone();
        let ns = format!("{}{service}", settings.cluster.namespace_prefix);
        let target = Target {
            project: P,
            environment: "production",
            namespace: &ns,
            image: "ghcr.io/madfam-io/fixture:1",
            release: "r1",
            gateway: None,
            progress_deadline_secs: render::DEFAULT_PROGRESS_DEADLINE_SECS,
        };
        let manifests = render::render(&file, &target);
        let applied = apply::apply_all(&client, &manifests)
            .await
            .unwrap_or_else(|e| panic!("{service}: the API server refused the render: {e}"));
        assert_eq!(applied.len(), manifests.len(), "{service}");

        // The same render again: no object changes, so no new ReplicaSet either.
        let before = versions(&cluster, &manifests).await;
        assert!(
            before.values().all(Option::is_some),
            "{service}: {before:?}"
        );
        let mut sets = 0;
        for _ in 0..50 {
            sets = replica_sets(&cluster, &ns).await;
            if sets > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            sets, 1,
            "{service}: the Deployment controller made its ReplicaSet"
        );
        apply::apply_all(&client, &manifests).await.unwrap();
        assert_eq!(
            versions(&cluster, &manifests).await,
            before,
            "{service}: a re-apply changed objects"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(
            replica_sets(&cluster, &ns).await,
            1,
            "{service}: a re-apply rolled the pods"
        );

        // An object someone else applied, carrying our labels: never ours to prune.
        let foreign = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{service}-operator-notes"), "namespace": ns, "labels": {
                "app.kubernetes.io/managed-by": "enclii",
                "enclii.dev/service": service, "enclii.dev/environment": "production"}},
            "data": {"note": "kept by an operator"}
        });
        let configmaps = cluster.api("v1", "ConfigMap", Some(&ns));
        configmaps
            .patch(
                &format!("{service}-operator-notes"),
                &PatchParams::apply("operator"),
                &Patch::Apply(&foreign),
            )
            .await
            .unwrap();

        // A later revision without the droppable kinds prunes exactly those.
        let keep: Vec<Manifest> = manifests
            .iter()
            .filter(|m| !DROPPABLE.contains(&m.kind.as_str()))
            .cloned()
            .collect();
        let dropped: BTreeSet<String> = manifests
            .iter()
            .filter(|m| DROPPABLE.contains(&m.kind.as_str()))
            .map(|m| format!("{}/{}", m.kind, m.name))
            .collect();
        let pruned = apply::prune(&client, &ns, &service, "production", &keep)
            .await
            .unwrap();
        assert_eq!(
            pruned.into_iter().collect::<BTreeSet<_>>(),
            dropped,
            "{service}"
        );
        let left = versions(&cluster, &manifests).await;
        for m in &manifests {
            let present = left[&format!("{}/{}", m.kind, m.name)].is_some();
            assert_eq!(
                present,
                !DROPPABLE.contains(&m.kind.as_str()),
                "{service}: {}/{}",
                m.kind,
                m.name
            );
        }
        assert!(
            cluster
                .object(
                    "v1",
                    "ConfigMap",
                    Some(&ns),
                    &format!("{service}-operator-notes")
                )
                .await
                .is_some(),
            "{service}: pruning deleted another field manager's object"
        );
    }
    cluster
        .delete_namespaces(&settings.cluster.namespace_prefix)
        .await;
}

async fn setup(app: &common::TestApp, pool: &PgPool, spec: &str) -> String {
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
            json!({"spec": spec}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    common::prove_domains(pool, P, spec).await;
    owner.token
}

async fn deploy(
    app: &common::TestApp,
    token: &str,
    service: &str,
    image: &str,
) -> serde_json::Value {
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(token),
            json!({"project": P, "service": service, "environment": "production", "image": image}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    wait_for_deployment(app, token, P, d["id"].as_i64().unwrap()).await
}

/// `spec` rolled out as a plain rolling update (no canary analysis).
fn rolling(spec: &str) -> String {
    let out = spec.replacen(
        "\nspec:\n",
        "\nspec:\n  rollout:\n    strategy: rolling\n",
        1,
    );
    assert_ne!(out, spec);
    out
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_deploy_keeps_the_replica_count_an_autoscaler_set(pool: PgPool) {
    let (app, cluster) = spawn_app_with_cluster(pool.clone()).await;
    let token = setup(&app, &pool, &rolling(API)).await;
    let d = deploy(
        &app,
        &token,
        "switchyard-api",
        "ghcr.io/madfam-io/switchyard-api:1",
    )
    .await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let ns = namespace(&app, P, "production");
    // Play the autoscaler: it scales through the scale subresource, as its controller does.
    let deployments: Api<Deployment> = Api::namespaced(cluster.admin.clone(), &ns);
    deployments
        .patch_scale(
            "switchyard-api",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    let d = deploy(
        &app,
        &token,
        "switchyard-api",
        "ghcr.io/madfam-io/switchyard-api:2",
    )
    .await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let after = deployments.get("switchyard-api").await.unwrap();
    assert_eq!(
        after.spec.unwrap().replicas,
        Some(5),
        "the deploy reset the autoscaler's count"
    );
    assert!(
        d["state_reason"].as_str().unwrap().contains("5 pods"),
        "{d}"
    );
    cluster
        .delete_namespaces(&app.engine.settings.cluster.namespace_prefix)
        .await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn pods_the_namespace_quota_refuses_fail_the_deployment_with_the_api_servers_reason(
    pool: PgPool,
) {
    // Kubernetes' own progress deadline, not the tests' 5 s: the refusal must be what fails the
    // rollout, however busy the controllers are.
    let cluster = LocalCluster::from_env().await;
    let mut settings = cluster_settings(&cluster);
    settings.cluster.worker = true;
    settings.cluster.progress_deadline_secs = render::DEFAULT_PROGRESS_DEADLINE_SECS;
    // The platform's quota for every tenant namespace: one pod, where the service asks for two.
    settings.cluster.tenancy.quota = BTreeMap::from([("pods".to_owned(), "1".to_owned())]);
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .unwrap(),
    )
    .await;
    let token = setup(&app, &pool, &rolling(DOCS)).await;
    let d = deploy(&app, &token, "docs-site", "ghcr.io/madfam-io/docs:1").await;
    assert_eq!(d["state"], "failed", "{d}");
    let reason = d["state_reason"].as_str().unwrap();
    assert!(reason.contains("exceeded quota: enclii-quota"), "{d}");
    assert!(
        !reason.contains("timed out") && !reason.contains("deadline"),
        "{reason}"
    );
    cluster
        .delete_namespaces(&app.engine.settings.cluster.namespace_prefix)
        .await;
}

/// What a release puts on the cluster: the pod template, the values Secret it names (with its
/// contents) and the Ingress.
async fn snapshot(
    cluster: &LocalCluster,
    ns: &str,
) -> (serde_json::Value, Vec<serde_json::Value>, serde_json::Value) {
    let d = cluster
        .object("apps/v1", "Deployment", Some(ns), "switchyard-api")
        .await
        .unwrap();
    let ingress = cluster
        .object(
            "networking.k8s.io/v1",
            "Ingress",
            Some(ns),
            "switchyard-api",
        )
        .await
        .unwrap();
    let template = d["spec"]["template"].clone();
    let secrets: Vec<serde_json::Value> = cluster
        .objects("v1", "Secret", Some(ns))
        .await
        .into_iter()
        .filter(|s| {
            template
                .to_string()
                .contains(s["metadata"]["name"].as_str().unwrap_or("-"))
        })
        .map(|s| json!({"name": s["metadata"]["name"], "data": s["data"]}))
        .collect();
    (template, secrets, ingress["spec"].clone())
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_rollback_restores_the_previous_releases_objects_exactly(pool: PgPool) {
    let (app, cluster) = spawn_app_with_cluster(pool.clone()).await;
    let token = setup(&app, &pool, &rolling(API)).await;
    let ns = namespace(&app, P, "production");
    let (status, body) = app
        .call(
            "/api/env/set",
            Some(&token),
            json!({"project": P, "service": "switchyard-api", "environment": "production", "name": "MODE", "value": "one", "secret": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let first = deploy(
        &app,
        &token,
        "switchyard-api",
        "ghcr.io/madfam-io/switchyard-api:1",
    )
    .await;
    assert_eq!(first["state"], "succeeded", "{first}");
    let before = snapshot(&cluster, &ns).await;
    assert_eq!(before.1.len(), 1, "one values Secret: {:?}", before.1);
    let (status, body) = app
        .call(
            "/api/env/set",
            Some(&token),
            json!({"project": P, "service": "switchyard-api", "environment": "production", "name": "MODE", "value": "two", "secret": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = deploy(
        &app,
        &token,
        "switchyard-api",
        "ghcr.io/madfam-io/switchyard-api:2",
    )
    .await;
    assert_eq!(second["state"], "succeeded", "{second}");
    assert_ne!(snapshot(&cluster, &ns).await.0, before.0);
    let (status, r) = app
        .call(
            "/api/deployments/rollback",
            Some(&token),
            json!({"project": P, "service": "switchyard-api", "environment": "production"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let r = wait_for_deployment(&app, &token, P, r["id"].as_i64().unwrap()).await;
    assert_eq!(r["state"], "succeeded", "{r}");
    assert_eq!(snapshot(&cluster, &ns).await, before);
    cluster
        .delete_namespaces(&app.engine.settings.cluster.namespace_prefix)
        .await;
}
