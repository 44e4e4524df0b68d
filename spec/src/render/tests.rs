use super::*;
use crate::parse;

const FIXTURES: [(&str, &str); 6] = [
    (
        "switchyard-api",
        include_str!("../../fixtures/dogfooding/switchyard-api.yaml"),
    ),
    (
        "switchyard-ui",
        include_str!("../../fixtures/dogfooding/switchyard-ui.yaml"),
    ),
    (
        "plinto",
        include_str!("../../fixtures/dogfooding/plinto.yaml"),
    ),
    (
        "landing-page",
        include_str!("../../fixtures/dogfooding/landing-page.yaml"),
    ),
    (
        "docs-site",
        include_str!("../../fixtures/dogfooding/docs-site.yaml"),
    ),
    (
        "status-page",
        include_str!("../../fixtures/dogfooding/status-page.yaml"),
    ),
];

const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

fn rendered(text: &str) -> Vec<Manifest> {
    let file = parse(text).unwrap();
    let image = format!("ghcr.io/madfam-io/{}@{DIGEST}", file.service.metadata.name);
    let target = Target {
        project: "enclii-platform",
        environment: "production",
        namespace: "enclii-platform-production",
        image: &image,
        release: "release-1",
        gateway: None,
        progress_deadline_secs: DEFAULT_PROGRESS_DEADLINE_SECS,
    };
    render(&file, &target)
}

fn find<'a>(objects: &'a [Manifest], kind: &str) -> Option<&'a serde_json::Value> {
    objects.iter().find(|m| m.kind == kind).map(|m| &m.body)
}

#[test]
fn the_six_fixtures_render_as_their_snapshots() {
    // At run time: see cli/tests/seed_script.rs.
    let dir = format!("{}/snapshots", std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut stale = Vec::new();
    for (name, text) in FIXTURES {
        let objects: Vec<serde_json::Value> = rendered(text).into_iter().map(|m| m.body).collect();
        let json = serde_json::to_string_pretty(&objects).unwrap() + "\n";
        let path = format!("{dir}/{name}.json");
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &json).unwrap();
        }
        if std::fs::read_to_string(&path).unwrap_or_default() != json {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "snapshots differ for {stale:?}: review with `UPDATE_SNAPSHOTS=1 cargo test -p enclii-spec` and `git diff spec/snapshots`"
    );
}

#[test]
fn the_api_spec_asks_for_every_kind_of_object() {
    let objects = rendered(FIXTURES[0].1);
    let kinds: Vec<&str> = objects.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "PersistentVolumeClaim",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Service",
            "Ingress",
            "PodDisruptionBudget",
            "NetworkPolicy"
        ]
    );
    let deploy = find(&objects, "Deployment").unwrap();
    assert!(
        deploy["spec"].get("replicas").is_none(),
        "the autoscaler owns the replica count"
    );
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        format!("ghcr.io/madfam-io/switchyard-api@{DIGEST}")
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        "/health/ready"
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        "/health/live"
    );
    assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
    let db = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DATABASE_URL")
        .unwrap();
    assert_eq!(
        db["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "enclii-secrets", "key": "database-url"})
    );
    assert_eq!(
        deploy["metadata"]["annotations"][ANNOTATION_RELEASE],
        "release-1"
    );
    assert_eq!(
        deploy["spec"]["template"]["metadata"]["labels"]["app"],
        "switchyard-api"
    );

    let hpa = find(&objects, "HorizontalPodAutoscaler").unwrap();
    assert_eq!(
        (
            hpa["spec"]["minReplicas"].as_i64(),
            hpa["spec"]["maxReplicas"].as_i64()
        ),
        (Some(3), Some(10))
    );
    assert_eq!(hpa["spec"]["metrics"].as_array().unwrap().len(), 2);
    let ingress = find(&objects, "Ingress").unwrap();
    assert_eq!(
        ingress["metadata"]["annotations"]["enclii.dev/tls-terminated-by"],
        "cloudflare"
    );
    assert!(
        ingress["spec"].get("tls").is_none(),
        "Cloudflare terminates TLS: no certificate in the cluster"
    );
    let netpol = find(&objects, "NetworkPolicy").unwrap();
    assert_eq!(
        netpol["metadata"]["namespace"],
        "enclii-platform-production"
    );
    assert_eq!(
        netpol["metadata"]["labels"][LABEL_SERVICE],
        "switchyard-api"
    );
    assert_eq!(
        find(&objects, "PersistentVolumeClaim").unwrap()["spec"]["resources"]["requests"]["storage"],
        "20Gi"
    );
}

#[test]
fn caching_headers_reach_the_ingress() {
    let objects = rendered(FIXTURES[3].1);
    let snippet = find(&objects, "Ingress").unwrap()["metadata"]["annotations"]["nginx.ingress.kubernetes.io/configuration-snippet"].as_str().unwrap().to_owned();
    assert_eq!(
        snippet,
        "more_set_headers \"Cache-Control: public, max-age=86400, s-maxage=86400\";"
    );
}

#[test]
fn a_minimal_spec_gets_no_ingress_autoscaler_or_budget() {
    let text = "apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  build:\n    type: auto\n  runtime:\n    port: 8080\n";
    let objects = rendered(text);
    let kinds: Vec<&str> = objects.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, ["Namespace", "Deployment", "Service"]);
    let deploy = find(&objects, "Deployment").unwrap();
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["tcpSocket"]["port"],
        8080
    );
}

#[test]
fn a_cert_manager_issuer_gets_a_certificate() {
    let text = "apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  build:\n    type: auto\n  runtime:\n    port: 8080\n    replicas: 2\n  domains:\n    - domain: shop.example.com\n";
    let objects = rendered(text);
    let ingress = find(&objects, "Ingress").unwrap();
    assert_eq!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        DEFAULT_TLS_ISSUER
    );
    assert_eq!(ingress["spec"]["tls"][0]["hosts"][0], "shop.example.com");
    assert_eq!(
        find(&objects, "PodDisruptionBudget").unwrap()["spec"]["maxUnavailable"],
        1
    );
}

#[test]
fn the_canary_track_has_its_own_deployment_and_selector_and_the_service_selects_both_tracks() {
    let file = parse(FIXTURES[0].1).unwrap();
    let target = Target {
        project: "enclii-platform",
        environment: "production",
        namespace: "enclii-platform-production",
        image: "ghcr.io/madfam-io/switchyard-api:2",
        release: "r2",
        gateway: None,
        progress_deadline_secs: DEFAULT_PROGRESS_DEADLINE_SECS,
    };
    let canary = canary(&file, &target, 2);
    assert_eq!(canary.name, "switchyard-api-canary");
    let spec = &canary.body["spec"];
    assert_eq!(
        spec["replicas"], 2,
        "a fixed count even though the spec autoscales"
    );
    assert_eq!(spec["selector"]["matchLabels"][LABEL_TRACK], TRACK_CANARY);
    assert_eq!(
        spec["template"]["metadata"]["labels"][LABEL_TRACK],
        TRACK_CANARY
    );
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/madfam-io/switchyard-api:2"
    );
    assert_eq!(
        canary.body["metadata"]["labels"][LABEL_SERVICE], "switchyard-api",
        "pruned with the service"
    );

    let all = render(&file, &target);
    let stable = all.iter().find(|m| m.kind == "Deployment").unwrap();
    assert_eq!(
        stable.body["spec"]["selector"]["matchLabels"][LABEL_TRACK],
        TRACK_STABLE
    );
    // The Service selects by service only: both tracks' pods receive traffic.
    let service = all.iter().find(|m| m.kind == "Service").unwrap();
    assert!(service.body["spec"]["selector"].get(LABEL_TRACK).is_none());
    assert_eq!(
        service.body["spec"]["selector"][LABEL_SERVICE],
        "switchyard-api"
    );
}

#[test]
fn with_a_gateway_the_render_has_track_services_and_a_route_at_rest_on_stable() {
    let file = parse(FIXTURES[0].1).unwrap();
    let target = Target {
        project: "enclii-platform",
        environment: "production",
        namespace: "enclii-platform-production",
        image: "ghcr.io/madfam-io/switchyard-api:2",
        release: "r2",
        gateway: Some(GatewayRef {
            name: "public",
            namespace: "gateways",
        }),
        progress_deadline_secs: DEFAULT_PROGRESS_DEADLINE_SECS,
    };
    let all = render(&file, &target);
    let names: Vec<String> = all
        .iter()
        .map(|m| format!("{}/{}", m.kind, m.name))
        .collect();
    for want in [
        "Service/switchyard-api",
        "Service/switchyard-api-stable",
        "Service/switchyard-api-canary",
        "HTTPRoute/switchyard-api",
    ] {
        assert!(names.contains(&want.to_owned()), "{want} in {names:?}");
    }
    let canary_svc = all
        .iter()
        .find(|m| m.name == "switchyard-api-canary")
        .unwrap();
    assert_eq!(
        canary_svc.body["spec"]["selector"][LABEL_TRACK],
        TRACK_CANARY
    );
    let at_rest = all.iter().find(|m| m.kind == "HTTPRoute").unwrap();
    let backends = &at_rest.body["spec"]["rules"][0]["backendRefs"];
    assert_eq!(
        (
            backends[0]["weight"].as_u64(),
            backends[1]["weight"].as_u64()
        ),
        (Some(100), Some(0))
    );
    assert_eq!(at_rest.body["spec"]["parentRefs"][0]["name"], "public");
    assert_eq!(
        at_rest.body["spec"]["hostnames"][0],
        file.service.spec.domains[0].domain
    );

    let ten = route(&file, &target, 10).unwrap();
    let backends = &ten.body["spec"]["rules"][0]["backendRefs"];
    assert_eq!(
        (
            backends[0]["name"].as_str(),
            backends[0]["weight"].as_u64(),
            backends[1]["weight"].as_u64()
        ),
        (Some("switchyard-api-stable"), Some(90), Some(10))
    );
    let without = Target {
        gateway: None,
        progress_deadline_secs: DEFAULT_PROGRESS_DEADLINE_SECS,
        ..target
    };
    assert!(route(&file, &without, 10).is_none());
    assert!(
        !render(&file, &without)
            .iter()
            .any(|m| m.kind == "HTTPRoute")
    );
}

#[test]
fn every_pod_meets_the_restricted_pod_security_standard() {
    for (name, text) in FIXTURES {
        let objects = rendered(text);
        let pod = &find(&objects, "Deployment").unwrap()["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        let c = &pod["containers"][0]["securityContext"];
        assert_eq!(c["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(
            c["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());
    }
}

#[test]
fn role_binding_subjects_are_bound_in_the_environments_namespace() {
    let text = format!(
        "{}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: b\n  namespace: kube-system\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: reader\nsubjects:\n  - kind: ServiceAccount\n    name: web\n",
        FIXTURES[4].1
    );
    let objects = rendered(&text);
    let binding = find(&objects, "RoleBinding").unwrap();
    assert_eq!(
        binding["metadata"]["namespace"],
        "enclii-platform-production"
    );
    assert_eq!(
        binding["subjects"][0]["namespace"],
        "enclii-platform-production"
    );
}

#[test]
fn a_hand_built_spec_with_hostile_headers_puts_none_of_them_in_the_edge_configuration() {
    let mut file = parse(FIXTURES[3].1).unwrap();
    let caching = file.service.spec.caching.as_mut().unwrap();
    caching.headers = vec![
        "X-A: a\\\"; proxy_pass http://169.254.169.254; #".into(),
        "X-B: $http_authorization".into(),
        "X-C: ok".into(),
    ];
    let image = format!("x@{DIGEST}");
    let objects = render(
        &file,
        &Target {
            project: "p",
            environment: "production",
            namespace: "p--production",
            image: &image,
            release: "r",
            gateway: None,
            progress_deadline_secs: DEFAULT_PROGRESS_DEADLINE_SECS,
        },
    );
    let snippet = find(&objects, "Ingress").unwrap()["metadata"]["annotations"]
        ["nginx.ingress.kubernetes.io/configuration-snippet"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(snippet, "more_set_headers \"X-C: ok\";");
}

const JOBS: &str = include_str!("../../fixtures/examples/jobs.yaml");

#[test]
fn scheduled_jobs_render_as_cron_jobs_and_the_release_command_as_a_job_as_their_snapshot() {
    let file = parse(JOBS).unwrap();
    let image = format!("ghcr.io/acme/billing@{DIGEST}");
    let target = Target {
        project: "acme",
        environment: "production",
        namespace: "acme-production",
        image: &image,
        release: "release-7",
        gateway: None,
        progress_deadline_secs: DEFAULT_PROGRESS_DEADLINE_SECS,
    };
    let objects = render(&file, &target);
    let crons: Vec<&Manifest> = objects.iter().filter(|m| m.kind == "CronJob").collect();
    let names: Vec<&str> = crons.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["billing-invoices", "billing-cleanup"]);
    let release = release_job(&file, &target, 42).unwrap();
    assert_eq!(release.name, "billing-release-42");
    let run = run_job(
        &file,
        &target,
        "9",
        &["./billing".into(), "console".into()],
        3600,
    );
    assert_eq!(run.name, "billing-run-9");
    let mut snapshot: Vec<serde_json::Value> = crons.iter().map(|m| m.body.clone()).collect();
    snapshot.push(release.body.clone());
    let json = serde_json::to_string_pretty(&snapshot).unwrap() + "\n";
    let path = format!(
        "{}/snapshots/jobs.json",
        std::env::var("CARGO_MANIFEST_DIR").unwrap()
    );
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &json).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap_or_default(),
        json,
        "review with `UPDATE_SNAPSHOTS=1 cargo test -p enclii-spec` and `git diff spec/snapshots`"
    );

    let invoices = &crons[0].body["spec"];
    assert_eq!(invoices["schedule"], "0 2 * * *");
    assert_eq!(invoices["timeZone"], "Europe/Berlin");
    assert_eq!(invoices["concurrencyPolicy"], "Forbid");
    let job = &invoices["jobTemplate"]["spec"];
    assert_eq!(job["backoffLimit"], 0);
    assert_eq!(job["activeDeadlineSeconds"], 1800);
    let pod = &job["template"];
    // Pruned with the service (owner labels), found by the job's name, and never behind the
    // service's Services (no `app` label).
    assert_eq!(
        crons[0].body["metadata"]["labels"][LABEL_SERVICE],
        "billing"
    );
    assert_eq!(
        crons[0].body["metadata"]["labels"][MANAGED_BY.0],
        MANAGED_BY.1
    );
    assert_eq!(pod["metadata"]["labels"][LABEL_JOB], "invoices");
    assert!(pod["metadata"]["labels"].get("app").is_none());
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], image.as_str());
    assert_eq!(
        c["command"],
        serde_json::json!(["./billing", "send-invoices"])
    );
    assert_eq!(
        c["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        "billing-db"
    );
    assert!(c.get("readinessProbe").is_none() && c.get("ports").is_none());
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    // The job's own resources replace the service's; without its own, it gets the service's.
    assert_eq!(
        crons[1].body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"],
        serde_json::json!({ "limits": { "memory": "256Mi" } })
    );
    assert_eq!(c["resources"]["requests"]["cpu"], "100m");
    let r = &release.body["spec"];
    assert_eq!(r["activeDeadlineSeconds"], 300);
    assert_eq!(r["backoffLimit"], 0);
    assert_eq!(
        r["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["./billing", "migrate", "up"])
    );
    assert_eq!(r["template"]["metadata"]["labels"][LABEL_JOB], JOB_RELEASE);
}

#[test]
fn task_pods_meet_the_restricted_pod_security_standard() {
    let file = parse(JOBS).unwrap();
    let target = Target {
        project: "acme",
        environment: "production",
        namespace: "acme-production",
        image: "i",
        release: "r",
        gateway: None,
        progress_deadline_secs: DEFAULT_PROGRESS_DEADLINE_SECS,
    };
    let mut pods: Vec<serde_json::Value> = render(&file, &target)
        .into_iter()
        .filter(|m| m.kind == "CronJob")
        .map(|m| m.body["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone())
        .collect();
    pods.push(release_job(&file, &target, 1).unwrap().body["spec"]["template"]["spec"].clone());
    assert_eq!(pods.len(), 3);
    for pod in pods {
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c = &pod["containers"][0]["securityContext"];
        assert_eq!(c["allowPrivilegeEscalation"], false);
        assert_eq!(c["capabilities"]["drop"], serde_json::json!(["ALL"]));
    }
}

#[test]
fn task_names_fit_a_cron_job_whatever_the_service_is_called() {
    assert_eq!(task_name("web", "release-12"), "web-release-12");
    let long = "a".repeat(63);
    let name = task_name(&long, "release-123456");
    assert_eq!(name.len(), 52, "{name}");
    assert!(name.ends_with("-release-123456"));
    assert!(task_name("ab-cd", "x").starts_with("ab-cd-"));
}

#[test]
fn the_platforms_job_labels_are_the_names_specs_may_not_take() {
    for label in [JOB_RELEASE, JOB_RUN] {
        assert!(crate::rules::RESERVED_JOB_NAMES.contains(&label), "{label}");
    }
}

#[test]
fn pods_run_as_the_spec_service_account_or_the_namespace_default() {
    let named = MINIMAL_WITH_ACCOUNT;
    let objects = rendered(named);
    let pod = &find(&objects, "Deployment").unwrap()["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "builder");
    let objects = rendered(&named.replace("    serviceAccountName: builder\n", ""));
    let pod = &find(&objects, "Deployment").unwrap()["spec"]["template"]["spec"];
    assert!(pod.get("serviceAccountName").is_none(), "{pod}");
}

const MINIMAL_WITH_ACCOUNT: &str = "apiVersion: enclii.dev/v1
kind: Service
metadata:
  name: web
spec:
  build:
    type: dockerfile
  runtime:
    port: 8080
    serviceAccountName: builder
";
