//! `switchyard bootstrap`, the binary's own command, against the local cluster and a fresh
//! database: from nothing it stops at the missing Secret (naming it, its namespace and its keys),
//! then installs Switchyard from its own spec once the Secret exists, then changes nothing when
//! run again; with a kubeconfig that is not an administrator's it names what it may not do.
//! The Switchyard pods are simulated (the node simulator runs any image); what is tested is what
//! bootstrap puts on the cluster and in the database.

use std::process::{Command, Output};
use std::time::Duration;

use enclii_sandbox::testing::{Cleanup, LocalCluster};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use sqlx::PgPool;

const IMAGE: &str = "ghcr.io/madfam-io/switchyard:bootstrap-test";
const SECRET_KEYS: [&str; 6] = [
    "database-url",
    "secrets-key",
    "oidc-client-secret",
    "metrics-token",
    "prometheus-url",
    "registry-token-key",
];

/// The URL of the test's own database (`#[sqlx::test]` made it beside `DATABASE_URL`'s).
fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let database = pool
        .connect_options()
        .get_database()
        .expect("a database name")
        .to_owned();
    let (server, _) = base.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{database}")
}

fn bootstrap(pool: &PgPool, prefix: &str, kubeconfig: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["bootstrap", "--kubeconfig", kubeconfig, "--image", IMAGE])
        .args(["--timeout-secs", "120"])
        .env("ENCLII_DATABASE__URL", database_url(pool))
        .env("ENCLII_CLUSTER__NAMESPACE_PREFIX", prefix)
        .env("ENCLII_LOG__FILTER", "warn")
        .output()
        .expect("the binary runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn bootstrap_from_nothing_waits_for_the_secret_then_installs_then_changes_nothing(
    pool: PgPool,
) {
    let cluster = LocalCluster::from_env().await;
    let prefix = LocalCluster::namespace_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let namespace = format!("{prefix}enclii-platform--production");
    let binding = format!("enclii-switchyard-{namespace}");
    let admin = cluster.dir.join("admin.kubeconfig").display().to_string();

    // 1. No Secret yet: refused, naming the Secret, where it goes and what it must hold.
    let out = bootstrap(&pool, &prefix, &admin);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "the Kubernetes Secret `enclii-secrets` is missing from namespace `{namespace}`"
        )),
        "{stderr}"
    );
    for key in SECRET_KEYS {
        assert!(stderr.contains(key), "{key} not named: {stderr}");
    }
    // Nothing of Switchyard itself was deployed; the namespace waits for the Secret.
    assert!(
        cluster
            .object("v1", "Namespace", None, &namespace)
            .await
            .is_some()
    );
    assert!(
        cluster
            .object("apps/v1", "Deployment", Some(&namespace), "switchyard")
            .await
            .is_none()
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM deployments").await, 0);

    // 2. The operator creates the Secret: bootstrap installs.
    let secrets: Api<Secret> = Api::namespaced(cluster.admin.clone(), &namespace);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "enclii-secrets" },
        "stringData": SECRET_KEYS.iter().map(|k| (k.to_string(), "x".to_string())).collect::<std::collections::BTreeMap<_, _>>(),
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let out = bootstrap(&pool, &prefix, &admin);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("imported the spec as revision 1"),
        "{stdout}"
    );
    assert!(stdout.contains("rollout"), "progress is reported: {stdout}");
    assert!(stdout.ends_with("bootstrap done\n"), "{stdout}");

    let deployment = cluster
        .object("apps/v1", "Deployment", Some(&namespace), "switchyard")
        .await
        .expect("the Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], IMAGE);
    assert_eq!(pod["serviceAccountName"], "switchyard");
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"]["path"],
        "/health/ready"
    );
    assert_eq!(
        pod["containers"][0]["livenessProbe"]["httpGet"]["path"],
        "/health/live"
    );
    for (api_version, kind) in [
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("networking.k8s.io/v1", "Ingress"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
    ] {
        assert!(
            cluster
                .object(api_version, kind, Some(&namespace), "switchyard")
                .await
                .is_some(),
            "{kind} missing"
        );
    }
    let crb = cluster
        .object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            None,
            &binding,
        )
        .await
        .expect("the ClusterRoleBinding");
    assert_eq!(crb["roleRef"]["name"], "enclii-switchyard");
    assert_eq!(crb["subjects"][0]["name"], "switchyard");
    assert_eq!(crb["subjects"][0]["namespace"], namespace.as_str());
    // The autoscaler brings the three replicas the spec asks for at least.
    let mut replicas = serde_json::Value::Null;
    for _ in 0..120 {
        replicas = cluster
            .object("apps/v1", "Deployment", Some(&namespace), "switchyard")
            .await
            .unwrap()["spec"]["replicas"]
            .clone();
        if replicas == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(replicas, 3);
    // Switchyard is now a service Switchyard deploys.
    let (state, image): (String, String) = sqlx::query_as(
        "SELECT d.state, r.image_ref FROM deployments d JOIN releases r ON r.id = d.release_id
         JOIN services s ON s.id = d.service_id JOIN projects p ON p.id = s.project_id
         WHERE p.slug = 'enclii-platform' AND s.name = 'switchyard'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), image.as_str()), ("succeeded", IMAGE));

    // 3. Again: nothing changes, in the database or on the cluster.
    let generation = deployment["metadata"]["generation"].clone();
    let crb_version = crb["metadata"]["resourceVersion"].clone();
    let out = bootstrap(&pool, &prefix, &admin);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the spec is unchanged (revision 1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("switchyard already runs {IMAGE}")),
        "{stdout}"
    );
    assert!(stdout.ends_with("bootstrap done: no change\n"), "{stdout}");
    assert_eq!(count(&pool, "SELECT count(*) FROM deployments").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM spec_revisions").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM projects").await, 1);
    let after = cluster
        .object("apps/v1", "Deployment", Some(&namespace), "switchyard")
        .await
        .unwrap();
    assert_eq!(after["metadata"]["generation"], generation);
    let crb_after = cluster
        .object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            None,
            &binding,
        )
        .await
        .unwrap();
    assert_eq!(crb_after["metadata"]["resourceVersion"], crb_version);

    let _ = cluster
        .api("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", None)
        .delete(&binding, &Default::default())
        .await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn bootstrap_without_an_administrators_kubeconfig_names_what_it_may_not_do(pool: PgPool) {
    let cluster = LocalCluster::from_env().await;
    let prefix = LocalCluster::namespace_prefix();
    let _cleanup = Cleanup(prefix.clone());
    // Switchyard's own ServiceAccount: it may not manage RBAC beyond namespaces.
    let out = bootstrap(&pool, &prefix, &cluster.switchyard_kubeconfig());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    // Exactly what it lacks: Switchyard's account holds every rule of the role it would grant.
    assert!(
        stderr.contains("may not patch clusterrolebindings.rbac.authorization.k8s.io, patch clusterroles.rbac.authorization.k8s.io: "),
        "{stderr}"
    );
    assert!(stderr.contains("cluster administrator"), "{stderr}");
    // It stopped before changing anything.
    assert_eq!(count(&pool, "SELECT count(*) FROM projects").await, 0);
    assert!(
        cluster
            .object(
                "v1",
                "Namespace",
                None,
                &format!("{prefix}enclii-platform--production")
            )
            .await
            .is_none()
    );
}

/// Anyone who can sign in may create a project of a free name: bootstrap must never give the
/// cluster to an `enclii-platform` it did not create (#18's threat model).
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn bootstrap_never_adopts_an_enclii_platform_project_a_tenant_created(pool: PgPool) {
    let cluster = LocalCluster::from_env().await;
    let prefix = LocalCluster::namespace_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let tenant: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO users (issuer, subject, display_name) VALUES ('http://issuer.test', 'squatter', 'squatter') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO projects (slug, description, created_by) VALUES ('enclii-platform', 'mine now', $1)")
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();
    let admin = cluster.dir.join("admin.kubeconfig").display().to_string();
    let out = bootstrap(&pool, &prefix, &admin);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("the project `enclii-platform` exists and was not created by bootstrap"),
        "{stderr}"
    );
    // Nothing was imported into it and nothing on the cluster names it.
    assert_eq!(count(&pool, "SELECT count(*) FROM services").await, 0);
    let namespace = format!("{prefix}enclii-platform--production");
    assert!(
        cluster
            .object(
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                None,
                &format!("enclii-switchyard-{namespace}")
            )
            .await
            .is_none()
    );
    assert!(
        cluster
            .object("v1", "Namespace", None, &namespace)
            .await
            .is_none()
    );
}
