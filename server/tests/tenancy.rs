//! Tenant isolation on the real control plane (issue #18): anyone who can sign in can own a
//! project, so a project's specs must not reach beyond its own namespace. Each test here failed
//! on the code before the fix: namespaces were adopted whatever their owner, carried no Pod
//! Security level, a RoleBinding could name `cluster-admin`, and any hostname was routed.

mod common;

use common::{LocalCluster, namespace, spawn_app_with_cluster, user, wait_for_deployment};
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use sqlx::PgPool;

const P: &str = "enclii-platform";
const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");

/// The fixture as a plain rolling update (no canary analysis: these tests are about objects).
fn rolling(spec: &str) -> String {
    spec.replacen(
        "\nspec:\n",
        "\nspec:\n  rollout:\n    strategy: rolling\n",
        1,
    )
}

async fn owner_with_project(app: &common::TestApp, pool: &PgPool) -> String {
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

async fn import(app: &common::TestApp, token: &str, spec: &str) -> (u16, serde_json::Value) {
    app.call("/api/services/import", Some(token), json!({"spec": spec}))
        .await
}

async fn deploy(app: &common::TestApp, token: &str) -> serde_json::Value {
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(token),
            json!({"project": P, "service": "docs-site", "environment": "production", "image": "ghcr.io/madfam-io/docs:1"}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    wait_for_deployment(app, token, P, d["id"].as_i64().unwrap()).await
}

async fn labels(cluster: &LocalCluster, ns: &str) -> serde_json::Value {
    cluster
        .object("v1", "Namespace", None, ns)
        .await
        .map(|n| n["metadata"]["labels"].clone())
        .unwrap_or_default()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_namespace_switchyard_did_not_create_for_the_project_is_never_adopted(pool: PgPool) {
    let (app, cluster) = spawn_app_with_cluster(pool.clone()).await;
    let token = owner_with_project(&app, &pool).await;
    let (status, body) = import(&app, &token, &rolling(DOCS)).await;
    assert_eq!(status, 200, "{body}");
    let ns = namespace(&app, P, "production");
    // Someone else's namespace of that name, with their data in it.
    cluster
        .api("v1", "Namespace", None)
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    cluster
        .api("v1", "ConfigMap", Some(&ns))
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "theirs", "namespace": ns}, "data": {"k": "v"}}))
            .unwrap(),
        )
        .await
        .unwrap();

    let d = deploy(&app, &token).await;
    assert_eq!(d["state"], "failed", "{d}");
    let reason = d["state_reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("namespace {ns} exists and was not created by Enclii for this project (it is not labelled as managed by Enclii)")),
        "{reason}"
    );
    assert!(
        cluster
            .object("apps/v1", "Deployment", Some(&ns), "docs-site")
            .await
            .is_none(),
        "nothing was applied in it"
    );
    assert_eq!(
        labels(&cluster, &ns)
            .await
            .get("pod-security.kubernetes.io/enforce"),
        None
    );
    let theirs = cluster
        .object("v1", "ConfigMap", Some(&ns), "theirs")
        .await
        .unwrap();
    assert_eq!(theirs["data"]["k"], "v");

    // Labelled as Enclii's, but for another project: still not ours.
    cluster
        .api("v1", "Namespace", None)
        .patch(
            &ns,
            &PatchParams::apply("someone"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns,
                "labels": {"app.kubernetes.io/managed-by": "enclii",
                           "enclii.dev/project-id": "00000000-0000-0000-0000-000000000001"}}}),
            ),
        )
        .await
        .unwrap();
    let d = deploy(&app, &token).await;
    assert_eq!(d["state"], "failed", "{d}");
    assert!(
        d["state_reason"]
            .as_str()
            .unwrap()
            .contains("(it belongs to another project)"),
        "{d}"
    );
    cluster
        .delete_namespaces(&app.engine.settings.cluster.namespace_prefix)
        .await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_tenant_namespace_enforces_restricted_pods_admits_only_its_own_and_the_platforms_traffic_and_has_a_quota(
    pool: PgPool,
) {
    let (app, cluster) = spawn_app_with_cluster(pool.clone()).await;
    let token = owner_with_project(&app, &pool).await;
    let (status, body) = import(&app, &token, &rolling(DOCS)).await;
    assert_eq!(status, 200, "{body}");
    // The service's own pods meet `restricted`: admission let them run.
    let d = deploy(&app, &token).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let ns = namespace(&app, P, "production");
    let project_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1")
        .bind(P)
        .fetch_one(&pool)
        .await
        .unwrap();
    let l = labels(&cluster, &ns).await;
    assert_eq!(l["pod-security.kubernetes.io/enforce"], "restricted", "{l}");
    assert_eq!(l["enclii.dev/project-id"], project_id.to_string(), "{l}");

    let policy = cluster
        .object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(&ns),
            "enclii-tenant-isolation",
        )
        .await
        .expect("the isolation policy");
    assert_eq!(policy["spec"]["podSelector"], json!({}));
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0],
        json!({"podSelector": {}})
    );
    let quota = cluster
        .object("v1", "ResourceQuota", Some(&ns), "enclii-quota")
        .await
        .expect("the quota");
    assert_eq!(quota["spec"]["hard"]["services.nodeports"], "0");
    assert!(
        cluster
            .object("v1", "LimitRange", Some(&ns), "enclii-limits")
            .await
            .is_some()
    );

    // Whatever slips past the spec's rules (here: created directly) meets Pod Security.
    let pods = cluster.api("v1", "Pod", Some(&ns));
    for (what, pod_spec) in [
        (
            "privileged",
            json!({"containers": [{"name": "c", "image": "busybox",
                "securityContext": {"privileged": true}}]}),
        ),
        (
            "hostPath",
            json!({"containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
        ),
        (
            "host network",
            json!({"hostNetwork": true, "containers": [{"name": "c", "image": "busybox"}]}),
        ),
    ] {
        let e = pods
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "escape", "namespace": ns}, "spec": pod_spec}))
                .unwrap(),
            )
            .await
            .expect_err(what);
        assert!(
            e.to_string()
                .contains("violates PodSecurity \"restricted:latest\""),
            "{what}: {e}"
        );
    }
    cluster
        .delete_namespaces(&app.engine.settings.cluster.namespace_prefix)
        .await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn dangerous_objects_in_a_spec_are_refused_at_their_line_before_anything_is_applied(
    pool: PgPool,
) {
    let (app, cluster) = spawn_app_with_cluster(pool.clone()).await;
    let token = owner_with_project(&app, &pool).await;
    let lines = DOCS.lines().count();
    for (what, extra, line, message) in [
        (
            "a binding to cluster-admin",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: admin\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n  - kind: ServiceAccount\n    name: default\n",
            7,
            "`roleRef.kind` must be `Role`, found `ClusterRole`",
        ),
        (
            "a binding for another namespace's account",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: builder\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: r\nsubjects:\n  - kind: ServiceAccount\n    name: default\n    namespace: enclii-builds\n",
            12,
            "a subject may not name a namespace (`enclii-builds`)",
        ),
        (
            "a privileged pod with the host's disk",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: escape\nspec:\n  containers:\n    - name: c\n      image: busybox\n      securityContext:\n        privileged: true\n  volumes:\n    - name: root\n      hostPath:\n        path: /\n",
            2,
            "Pod (v1) cannot accompany a service",
        ),
        (
            "the platform's own isolation policy",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: enclii-tenant-isolation\nspec:\n  podSelector: {}\n  ingress:\n    - {}\n",
            4,
            "names starting with `enclii-` are reserved",
        ),
    ] {
        let spec = format!("{}---\n{extra}", rolling(DOCS));
        let (status, body) = import(&app, &token, &spec).await;
        assert_eq!(status, 422, "{what}: {body}");
        let error = body["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["severity"] == "error")
            .unwrap_or_else(|| panic!("{what}: {body}"));
        // The line within the extra document, after the service's lines (two more for its
        // rollout) and the `---`.
        assert_eq!(
            error["pos"]["line"].as_u64().unwrap() as usize,
            lines + 2 + 1 + line,
            "{what}: {error}"
        );
        assert!(
            error["message"].as_str().unwrap().contains(message),
            "{what}: {error}"
        );
    }
    let services: i64 = sqlx::query_scalar("SELECT count(*) FROM services")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(services, 0, "nothing recorded");

    // An object that names another namespace lands in the tenant's own.
    let spec = format!(
        "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: kube-system\ndata:\n  k: v\n",
        rolling(DOCS)
    );
    let (status, body) = import(&app, &token, &spec).await;
    assert_eq!(status, 200, "{body}");
    let d = deploy(&app, &token).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    let ns = namespace(&app, P, "production");
    assert!(
        cluster
            .object("v1", "ConfigMap", Some(&ns), "settings")
            .await
            .is_some()
    );
    assert!(
        cluster
            .object("v1", "ConfigMap", Some("kube-system"), "settings")
            .await
            .is_none()
    );
    cluster
        .delete_namespaces(&app.engine.settings.cluster.namespace_prefix)
        .await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn hostnames_the_project_has_not_proven_are_left_out_and_the_deployment_says_so(
    pool: PgPool,
) {
    let (app, cluster) = spawn_app_with_cluster(pool.clone()).await;
    let token = owner_with_project(&app, &pool).await;
    let (status, body) = import(&app, &token, &rolling(DOCS)).await;
    assert_eq!(status, 200, "{body}");
    let ns = namespace(&app, P, "production");
    let d = deploy(&app, &token).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    assert!(
        d["state_reason"].as_str().unwrap().contains(
            "not routed (not a verified domain of project enclii-platform): docs.enclii.io"
        ),
        "{d}"
    );
    assert!(
        cluster
            .object("networking.k8s.io/v1", "Ingress", Some(&ns), "docs-site")
            .await
            .is_none(),
        "no route for a hostname the project has not proven"
    );

    // Once proven (a verified TXT record), the next deployment routes it.
    common::prove_domains(&pool, P, DOCS).await;
    let d = deploy(&app, &token).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    assert!(
        !d["state_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not routed"),
        "{d}"
    );
    let ingress = cluster
        .object("networking.k8s.io/v1", "Ingress", Some(&ns), "docs-site")
        .await
        .expect("routed once proven");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "docs.enclii.io");
    cluster
        .delete_namespaces(&app.engine.settings.cluster.namespace_prefix)
        .await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn another_projects_builds_in_the_platform_registry_cannot_be_deployed(pool: PgPool) {
    let app = common::spawn_app(pool.clone()).await;
    let token = owner_with_project(&app, &pool).await;
    let (status, body) = import(&app, &token, DOCS).await;
    assert_eq!(status, 200, "{body}");
    let registry = app
        .engine
        .settings
        .pipeline
        .registry
        .trim_end_matches('/')
        .to_owned();
    let ask = |image: String| {
        app.call(
            "/api/deployments/create",
            Some(&token),
            json!({"project": P, "service": "docs-site", "environment": "production", "image": image}),
        )
    };
    let (status, body) = ask(format!("{registry}/victim/api:1")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("outside project `enclii-platform`'s path"),
        "{body}"
    );
    let releases: i64 = sqlx::query_scalar("SELECT count(*) FROM releases")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(releases, 0, "nothing recorded");
    let (status, body) = ask(format!("{registry}/{P}/docs-site:1")).await;
    assert_eq!(status, 200, "{body}");
}
