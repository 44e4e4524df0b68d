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
