use super::*;

const FIXTURES: [(&str, &str); 6] = [
    (
        "switchyard-api",
        include_str!("../fixtures/dogfooding/switchyard-api.yaml"),
    ),
    (
        "switchyard-ui",
        include_str!("../fixtures/dogfooding/switchyard-ui.yaml"),
    ),
    ("plinto", include_str!("../fixtures/dogfooding/plinto.yaml")),
    (
        "landing-page",
        include_str!("../fixtures/dogfooding/landing-page.yaml"),
    ),
    (
        "docs-site",
        include_str!("../fixtures/dogfooding/docs-site.yaml"),
    ),
    (
        "status-page",
        include_str!("../fixtures/dogfooding/status-page.yaml"),
    ),
];

const MINIMAL: &str = "apiVersion: enclii.dev/v1
kind: Service
metadata:
  name: web
spec:
  build:
    type: dockerfile
  runtime:
    port: 8080
";

#[track_caller]
fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors, the spec parsed"),
        Err(diags) => diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.located("f.yaml").to_string())
            .collect(),
    }
}

/// MINIMAL with `extra` appended (indented under `spec:` when it starts with two spaces).
fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn all_six_dogfooding_specs_parse_unchanged() {
    for (name, text) in FIXTURES {
        let file = parse(text).unwrap_or_else(|d| panic!("{name}: {d:#?}"));
        assert_eq!(file.service.metadata.name, name);
        assert_eq!(
            file.service.metadata.project.as_deref(),
            Some("enclii-platform")
        );
        assert!(
            file.service
                .spec
                .build
                .source
                .as_ref()
                .unwrap()
                .git
                .auto_deploy,
            "{name}"
        );
    }
}

#[test]
fn the_api_spec_is_understood_field_by_field() {
    let file = parse(FIXTURES[0].1).unwrap();
    let s = &file.service.spec;
    assert_eq!(s.build.kind, BuildType::Dockerfile);
    assert_eq!(
        s.build.dockerfile.as_deref(),
        Some("apps/switchyard-api/Dockerfile")
    );
    assert_eq!(s.runtime.port, 8080);
    assert_eq!(s.runtime.replicas, 3);
    let res = s.runtime.resources.as_ref().unwrap();
    assert_eq!(
        res.limits.as_ref().unwrap().memory,
        Some(Quantity("512Mi".into()))
    );
    assert_eq!(
        s.runtime.readiness_probe.as_ref().unwrap().path,
        "/health/ready"
    );
    let db = s.env.iter().find(|e| e.name == "DATABASE_URL").unwrap();
    assert_eq!(
        db.value_from.as_ref().unwrap().secret_key_ref.key,
        "database-url"
    );
    assert_eq!(
        s.env
            .iter()
            .find(|e| e.name == "IN_CLUSTER")
            .unwrap()
            .value
            .as_deref(),
        Some("true")
    );
    assert_eq!(s.volumes[0].size, Quantity("20Gi".into()));
    assert_eq!(s.volumes[0].access_mode, AccessMode::ReadWriteOnce);
    assert_eq!(s.domains[0].tls_issuer.as_deref(), Some("cloudflare"));
    let hpa = s.autoscaling.as_ref().unwrap();
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (3, 10));
    assert_eq!(hpa.target_memory_utilization_percentage, Some(80));
    assert_eq!(s.slo.as_ref().unwrap().availability, Some(99.95));
    // The NetworkPolicy travels with the service, its namespace left to the environment.
    assert_eq!(file.extra_objects.len(), 1);
    let netpol = &file.extra_objects[0];
    assert_eq!(
        (netpol.kind.as_str(), netpol.name.as_str()),
        ("NetworkPolicy", "switchyard-api-netpol")
    );
    assert!(netpol.body["metadata"].get("namespace").is_none());
    assert_eq!(
        netpol.body["spec"]["podSelector"]["matchLabels"]["app"],
        "switchyard-api"
    );
    assert!(
        file.warnings
            .iter()
            .any(|w| w.message.contains("namespace `enclii-platform`"))
    );
    // No rollout section: the seed's canary.
    assert_eq!(
        file.rollout()
            .steps
            .iter()
            .map(|s| s.weight)
            .collect::<Vec<_>>(),
        [10, 50, 100]
    );
}

#[test]
fn build_args_caching_and_monitoring_are_typed() {
    let ui = parse(FIXTURES[1].1).unwrap().service.spec;
    assert_eq!(ui.build.kind, BuildType::Nixpacks);
    assert_eq!(ui.build.build_args[0].name, "NEXT_PUBLIC_API_URL");
    assert_eq!(
        ui.build.source.unwrap().git.path.as_deref(),
        Some("apps/switchyard-ui")
    );
    let caching = ui.caching.unwrap();
    assert_eq!(caching.ttl, 3600);
    assert_eq!(
        caching.headers,
        ["Cache-Control: public, max-age=3600, immutable"]
    );
    let status = parse(FIXTURES[5].1).unwrap().service.spec;
    let targets = status.monitoring.unwrap().targets;
    assert_eq!(targets.len(), 4);
    assert_eq!(targets[0].url, "https://api.enclii.io/health");
    assert_eq!(targets[0].interval, Duration::from_secs(30));
    assert_eq!(targets[3].interval, Duration::from_secs(60));
    assert_eq!(targets[3].expected_status, 200);
}

#[test]
fn a_minimal_spec_takes_the_defaults() {
    let s = parse(MINIMAL).unwrap().service;
    assert_eq!(s.spec.runtime.replicas, 1);
    assert!(s.spec.env.is_empty() && s.spec.rollout.is_none());
}

#[test]
fn an_unknown_field_is_named_with_its_position_and_the_nearest_known_field() {
    let text = MINIMAL.replace("    port: 8080\n", "    port: 8080\n    replicsa: 2\n");
    assert_eq!(
        errors(&text),
        ["f.yaml:10:5: unknown field `replicsa` in `spec.runtime`; did you mean `replicas`?"]
    );
}

#[test]
fn an_unknown_field_without_a_near_match_lists_the_known_ones() {
    let errs = errors(&with("  zzzzzzzz: 1\n"));
    assert!(
        errs[0].starts_with("f.yaml:10:3: unknown field `zzzzzzzz` in `spec`; expected one of:"),
        "{errs:?}"
    );
    assert!(errs[0].contains("autoscaling"), "{errs:?}");
}

#[test]
fn wrong_types_say_what_was_expected_and_how_to_fix_it() {
    let text = MINIMAL.replace("port: 8080", "port: eighty");
    assert_eq!(
        errors(&text),
        ["f.yaml:9:11: `spec.runtime.port` must be a whole number, found `eighty`"]
    );
    let text = with("  env:\n    - name: PORT\n      value: 8080\n");
    assert_eq!(
        errors(&text),
        [
            "f.yaml:12:14: `spec.env[0].value` must be a string, found an integer `8080` (write it in quotes: \"8080\")"
        ]
    );
}

#[test]
fn bad_values_are_refused() {
    assert_eq!(
        errors(&MINIMAL.replace("port: 8080", "port: 0")),
        ["f.yaml:9:11: `spec.runtime.port` must be at least 1, found 0"]
    );
    assert_eq!(
        errors(&MINIMAL.replace("port: 8080", "port: 8080\n    replicas: 500")),
        ["f.yaml:10:15: `spec.runtime.replicas` is 500, above the maximum of 100"]
    );
    let errs = errors(&MINIMAL.replace("name: web", "name: Web_Service"));
    assert!(
        errs[0].starts_with("f.yaml:4:9: `metadata.name` `Web_Service` is not a DNS label"),
        "{errs:?}"
    );
    let errs = errors(&with("  domains:\n    - domain: not a host\n"));
    assert!(
        errs[0].starts_with("f.yaml:11:15: `not a host` is not a hostname"),
        "{errs:?}"
    );
    let errs = errors(&MINIMAL.replace("type: dockerfile", "type: dokerfile"));
    assert_eq!(
        errs,
        [
            "f.yaml:7:11: `spec.build.type` must be one of dockerfile, nixpacks, buildpack, auto, found `dokerfile`; did you mean `dockerfile`?"
        ]
    );
}

#[test]
fn duplicate_environment_variables_are_refused_at_the_second() {
    let text = with("  env:\n    - name: A\n      value: x\n    - name: A\n      value: y\n");
    assert_eq!(
        errors(&text),
        ["f.yaml:13:13: environment variable `A` is set twice"]
    );
}

#[test]
fn every_error_in_a_file_is_reported_at_once_in_order() {
    let text = "apiVersion: enclii.dev/v1
kind: Servic
metadata:
  name: web
  labls: {}
spec:
  build:
    type: dockerfile
  runtime:
    port: 99999
";
    let errs = errors(text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_eq!(
        errs[0],
        "f.yaml:2:7: `kind` must be one of Service, found `Servic`; did you mean `Service`?"
    );
    assert!(
        errs[1].starts_with("f.yaml:5:3: unknown field `labls`"),
        "{errs:?}"
    );
    assert!(
        errs[2].starts_with("f.yaml:10:11: `spec.runtime.port` must be at most 65535"),
        "{errs:?}"
    );
}

#[test]
fn missing_required_fields_point_at_their_parent() {
    let errs = errors(
        "apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  build:\n    type: auto\n",
    );
    assert_eq!(
        errs,
        ["f.yaml:6:3: missing required field `runtime` in `spec`"]
    );
}

#[test]
fn requests_above_limits_and_inconsistent_autoscaling_are_refused() {
    let text = with(
        "    resources:\n      requests:\n        cpu: \"2\"\n      limits:\n        cpu: 500m\n  autoscaling:\n    minReplicas: 5\n    maxReplicas: 2\n    targetCPUUtilizationPercentage: 70\n",
    )
    .replace("  runtime:\n    port: 8080\n    resources", "  runtime:\n    port: 8080\n    resources");
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("requests.cpu 2 is more than limits.cpu 500m")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("`minReplicas` (5) is more than `maxReplicas` (2)")),
        "{errs:?}"
    );
}

#[test]
fn rollout_steps_must_rise_to_100() {
    let text = with("  rollout:\n    steps:\n      - weight: 50\n      - weight: 20\n");
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("step weights must increase: 20 follows 50")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("last rollout step must send 100%")),
        "{errs:?}"
    );
    let ok = parse(&with("  rollout:\n    steps:\n      - weight: 25\n        pause: 2m\n      - weight: 100\n    maxErrorRate: 1.5\n")).unwrap();
    let r = ok.rollout();
    assert_eq!(r.steps[0].pause, Duration::from_secs(120));
    assert_eq!(r.max_error_rate, 1.5);
}

#[test]
fn a_bad_duration_is_reported() {
    let text = with(
        "  monitoring:\n    targets:\n      - name: x\n        url: https://x.io\n        interval: soon\n",
    );
    let errs = errors(&text);
    // At the value itself, not at the top of the document.
    let line = text
        .lines()
        .position(|l| l.contains("interval: soon"))
        .unwrap()
        + 1;
    let col = text.lines().nth(line - 1).unwrap().find("soon").unwrap() + 1;
    let want = format!("f.yaml:{line}:{col}: `soon` is not a duration");
    assert!(
        errs.iter().any(|e| e.starts_with(&want)),
        "{want} in {errs:?}"
    );
}

#[test]
fn files_without_a_service_or_with_two_are_refused() {
    assert!(errors("# nothing\n")[0].contains("no service found"));
    let twice = format!("{MINIMAL}---\n{MINIMAL}");
    assert!(errors(&twice)[0].starts_with("f.yaml:11:1: only one Enclii service per file"));
}

#[test]
fn only_namespaced_objects_may_accompany_a_service() {
    let text = format!(
        "{MINIMAL}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: god\n"
    );
    let errs = errors(&text);
    assert!(
        errs[0].starts_with(
            "f.yaml:12:7: ClusterRole (rbac.authorization.k8s.io/v1) cannot accompany a service"
        ),
        "{errs:?}"
    );
}

#[test]
fn oversize_files_are_refused_before_parsing() {
    let huge = format!("{MINIMAL}#{}\n", "x".repeat(MAX_SPEC_BYTES));
    assert!(errors(&huge)[0].contains("specs are limited to 256 KiB"));
}

#[test]
fn the_published_json_schema_is_current() {
    let path = format!(
        "{}/../schema/service-spec.schema.json",
        // At run time: see cli/tests/seed_script.rs.
        std::env::var("CARGO_MANIFEST_DIR").unwrap()
    );
    let generated = serde_json::to_string_pretty(schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "schema/service-spec.schema.json is stale: run `UPDATE_SCHEMA=1 cargo test -p enclii-spec` and commit it"
    );
}

#[test]
fn a_role_binding_may_bind_only_a_role_of_its_namespace_to_its_own_service_accounts() {
    let binding = |role_ref: &str, subjects: &str| {
        with(&format!(
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: b\nroleRef:\n{role_ref}\nsubjects:\n{subjects}\n"
        ))
    };
    let ok = binding(
        "  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: reader",
        "  - kind: ServiceAccount\n    name: web",
    );
    let file = parse(&ok).unwrap();
    assert_eq!(file.extra_objects[0].kind, "RoleBinding");

    let admin = errors(&binding(
        "  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin",
        "  - kind: ServiceAccount\n    name: web",
    ));
    assert_eq!(admin.len(), 1, "{admin:?}");
    assert!(
        admin[0].starts_with("f.yaml:17:9: `roleRef.kind` must be `Role`, found `ClusterRole`"),
        "{admin:?}"
    );

    let outsiders = errors(&binding(
        "  kind: Role\n  name: reader",
        "  - kind: Group\n    name: system:authenticated\n  - kind: ServiceAccount\n    name: builder\n    namespace: enclii-builds\n  - kind: User\n    name: alice",
    ));
    assert_eq!(outsiders.len(), 3, "{outsiders:?}");
    assert!(outsiders[0].contains("19:11: a subject must be a `ServiceAccount`"));
    assert!(outsiders[1].contains("23:16: a subject may not name a namespace (`enclii-builds`)"));
    assert!(outsiders[2].contains("found `User`"));

    let missing = errors(
        &binding("  kind: Role\n  name: r", "  []")
            .replace("roleRef:\n  kind: Role\n  name: r\n", ""),
    );
    assert!(missing[0].contains("needs `roleRef`"), "{missing:?}");
}

#[test]
fn kinds_that_reach_beyond_the_namespace_and_reserved_names_are_refused_where_written() {
    for (kind, api) in [
        ("Pod", "v1"),
        ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
        ("Namespace", "v1"),
        ("Secret", "v1"),
        ("DaemonSet", "apps/v1"),
    ] {
        let e = errors(&with(&format!(
            "---\napiVersion: {api}\nkind: {kind}\nmetadata:\n  name: x\n"
        )));
        assert!(
            e[0].starts_with("f.yaml:12:7: ") && e[0].contains("cannot accompany a service"),
            "{kind}: {e:?}"
        );
    }
    let e = errors(&with(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: enclii-tenant-isolation\nspec:\n  podSelector: {}\n",
    ));
    assert!(
        e[0].starts_with(
            "f.yaml:14:9: `enclii-tenant-isolation`: names starting with `enclii-` are reserved"
        ),
        "{e:?}"
    );
}

#[test]
fn caching_headers_accept_only_a_grammar_nginx_cannot_misread() {
    for good in [
        "Cache-Control: public, max-age=3600",
        "Vary: Accept-Encoding",
        "X-Frame-Options: DENY",
        "Access-Control-Allow-Origin: *",
    ] {
        assert!(rules::header_line(good).is_ok(), "{good}");
    }
    for hostile in [
        "X-A: a\\\"; proxy_pass http://169.254.169.254; #",
        "X-A: a\\",
        "X-A: $http_authorization",
        "X-A: v\"; }",
        "X-A: a'b",
        "X-A: a\nmore_set_headers \"B: c\"",
        "X-A: a\tb",
        "X $host: v",
        "X-\"A: v",
        "X-A:",
        "no colon",
    ] {
        assert!(rules::header_line(hostile).is_err(), "{hostile:?}");
    }
    let e = errors(&with(
        "  caching:\n    ttl: 60\n    headers:\n      - 'X-A: a\\ b'\n      - 'X-B: $host'\n",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("f.yaml:13:9: the value of header `X-A` contains `\\\\`"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("f.yaml:14:9: the value of header `X-B` contains `$`"),
        "{e:?}"
    );
}

#[test]
fn release_command_and_jobs_are_typed_with_their_defaults() {
    let file = parse(&with(
        "  release:\n    command: [./migrate, up]\n  jobs:\n    - name: nightly-report\n      schedule: \"0 2 * * *\"\n      command: [./report]\n      timezone: Europe/Berlin\n    - name: cleanup\n      schedule: \"@hourly\"\n      command: [sh, -c, ./cleanup]\n      concurrencyPolicy: Replace\n      timeoutSeconds: 120\n      resources:\n        limits:\n          memory: 256Mi\n",
    ))
    .unwrap();
    let spec = &file.service.spec;
    let release = spec.release.as_ref().unwrap();
    assert_eq!(release.command, ["./migrate", "up"]);
    assert_eq!(release.timeout_seconds, 600);
    assert_eq!(spec.jobs.len(), 2);
    assert_eq!(spec.jobs[0].name, "nightly-report");
    assert_eq!(spec.jobs[0].timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(spec.jobs[0].concurrency_policy, ConcurrencyPolicy::Forbid);
    assert_eq!(spec.jobs[0].timeout_seconds, None);
    assert_eq!(spec.jobs[1].concurrency_policy, ConcurrencyPolicy::Replace);
    assert_eq!(spec.jobs[1].timeout_seconds, Some(120));
}

#[test]
fn bad_jobs_are_refused_where_written() {
    let text = with(
        "  release:\n    command: []\n  jobs:\n    - name: Report\n      schedule: \"0 25 * * *\"\n      command: [./report]\n      timezone: \"not a zone\"\n    - name: twice\n      schedule: \"* * *\"\n      command: [./a]\n    - name: twice\n      schedule: \"@daily\"\n      command: [./b]\n      concurrencyPolicy: Sometimes\n",
    );
    let errs = errors(&text);
    let want = [
        "f.yaml:11:14: the command is empty",
        "f.yaml:13:13: job name `Report` is not a DNS label",
        "f.yaml:14:17: `spec.jobs[0].schedule`: `25` in the hour field is out of range (0–23)",
        "f.yaml:16:17: `not a zone` is not a time zone name",
        "f.yaml:18:17: `spec.jobs[1].schedule`: `* * *` has 3 fields",
        "f.yaml:20:13: job `twice` is declared twice",
        "f.yaml:23:26: `spec.jobs[2].concurrencyPolicy` must be one of Allow, Forbid, Replace",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (e, w) in errs.iter().zip(want) {
        assert!(e.starts_with(w), "{e}\n  does not start with\n{w}");
    }
}

#[test]
fn a_structural_error_no_longer_hides_the_semantic_ones() {
    // An unknown field, a wrong type, a bad duration and then an invalid name, a bad schedule and
    // a duplicate variable: all six at once, in file order.
    let text = "apiVersion: enclii.dev/v1
kind: Service
metadata:
  name: Web_App
  labls: {}
spec:
  build:
    type: dockerfile
  runtime:
    port: 8080
    replicas: many
  env:
    - name: A
      value: x
    - name: A
      value: y
  monitoring:
    targets:
      - name: t
        url: https://x.io
        interval: soon
  jobs:
    - name: report
      schedule: \"61 * * * *\"
      command: [./report]
";
    let errs = errors(text);
    let lines: Vec<&str> = errs.iter().map(|e| e.split(": ").next().unwrap()).collect();
    assert_eq!(
        lines,
        [
            "f.yaml:4:9",
            "f.yaml:5:3",
            "f.yaml:11:15",
            "f.yaml:15:13",
            "f.yaml:21:19",
            "f.yaml:24:17"
        ],
        "{errs:#?}"
    );
    assert!(errs[0].contains("`Web_App` is not a DNS label"), "{errs:?}");
    assert!(errs[1].contains("unknown field `labls`"), "{errs:?}");
    assert!(
        errs[2].contains("`spec.runtime.replicas` must be"),
        "{errs:?}"
    );
    assert!(errs[3].contains("`A` is set twice"), "{errs:?}");
    assert!(errs[4].contains("`soon` is not a duration"), "{errs:?}");
    assert!(errs[5].contains("minute field is out of range"), "{errs:?}");
}

#[test]
fn a_missing_required_field_is_reported_once() {
    let errs = errors("apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: x\n");
    assert_eq!(
        errs,
        ["f.yaml:1:1: missing required field `spec` at the top level"]
    );
}

#[test]
fn the_platforms_own_job_names_are_reserved() {
    let errs = errors(&with(
        "  jobs:\n    - name: release\n      schedule: \"@daily\"\n      command: [./x]\n",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("f.yaml:11:13: `release` names the platform's own jobs"),
        "{errs:?}"
    );
}

#[test]
fn a_service_account_name_is_a_kubernetes_name() {
    let ok = MINIMAL.replace(
        "port: 8080",
        "port: 8080\n    serviceAccountName: switchyard",
    );
    assert_eq!(
        parse(&ok)
            .unwrap()
            .service
            .spec
            .runtime
            .service_account_name
            .as_deref(),
        Some("switchyard")
    );
    let errs = errors(&MINIMAL.replace(
        "port: 8080",
        "port: 8080\n    serviceAccountName: Not_A_Name",
    ));
    assert!(
        errs[0].starts_with(
            "f.yaml:10:25: `spec.runtime.serviceAccountName` `Not_A_Name` is not a valid Kubernetes name"
        ),
        "{errs:?}"
    );
}

#[test]
fn previews_are_typed_and_bad_values_are_refused_where_written() {
    let file = parse(&with(
        "  previews:\n    enabled: true\n    label: preview\n    ttlHours: 72\n    sleepAfterMinutes: 30\n",
    ))
    .unwrap();
    let p = file.service.spec.previews.as_ref().unwrap();
    assert!(p.enabled);
    assert_eq!(p.label.as_deref(), Some("preview"));
    assert_eq!((p.ttl_hours, p.sleep_after_minutes), (Some(72), Some(30)));
    assert!(file.warnings.is_empty(), "{:?}", file.warnings);

    let errs = errors(&with(
        "  previews:\n    enabled: yes please\n    label: \" preview\"\n    ttlHours: 0\n    sleepAfterMinutes: -5\n    branches: [main]\n",
    ));
    let want = [
        "f.yaml:11:14: `spec.previews.enabled`",
        "f.yaml:13:15: `spec.previews.ttlHours`",
        "f.yaml:14:24: `spec.previews.sleepAfterMinutes`",
        "f.yaml:15:5: ",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (e, w) in errs.iter().zip(want) {
        assert!(e.starts_with(w), "{e}\n  does not start with\n{w}");
    }

    // A label as GitHub never writes one (`enabled` refused above leaves the whole block out).
    let errs = errors(&with(
        "  previews:\n    enabled: true\n    label: \" preview\"\n",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("f.yaml:12:12: ` preview` starts or ends with spaces"),
        "{errs:?}"
    );

    // Sleeping after the preview is already deleted says so, as a warning.
    let file = parse(&with(
        "  previews:\n    enabled: true\n    ttlHours: 1\n    sleepAfterMinutes: 90\n",
    ))
    .unwrap();
    let w: Vec<String> = file
        .warnings
        .iter()
        .map(|d| d.located("f.yaml").to_string())
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("f.yaml:13:24: warning: a preview is deleted after 1h"),
        "{w:?}"
    );
    let errs = errors(&with(&format!(
        "  previews:\n    enabled: true\n    label: \"{}\"\n",
        "x".repeat(51)
    )));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("f.yaml:12:12: `spec.previews.label` is not a GitHub label"));
}
