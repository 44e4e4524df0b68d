//! The Kubernetes Job that builds one release: check out the exact commit, generate a Nixpacks plan
//! when asked, then build with rootless BuildKit (`buildctl-daemonless.sh`), push, and attach an
//! SBOM and max-mode provenance. Pure: a snapshot test pins the whole manifest.
//!
//! The image's digest and the attestation references leave the Job through the build container's
//! termination message (BuildKit's `--metadata-file`), so no sidecar or log scraping is needed.

use enclii_spec::model::{BuildType, ServiceSpec};
use enclii_spec::render::Manifest;
use serde_json::{Value, json};

use crate::config::PipelineSettings;

/// What one build needs to know.
pub struct BuildTarget<'a> {
    pub id: i64,
    pub project: &'a str,
    pub service: &'a str,
    pub repository: &'a str,
    /// A commit SHA, or a branch name for a manual build of a branch's head.
    pub git_ref: &'a str,
    /// Where the image is pushed (`registry/project/service:tag`).
    pub image: &'a str,
    /// The project's build namespace ([`build_namespace`]).
    pub namespace: &'a str,
    /// The Secret holding this build's own registry credential ([`push_secret_name`]).
    pub push_secret: &'a str,
}

pub const LABEL_BUILD: &str = "enclii.dev/build";

pub fn job_name(service: &str, id: i64) -> String {
    format!("build-{service}-{id}")
}

/// The namespace a project's builds run in: `{pipeline.namespace_prefix}{project}`. Never one
/// of an environment's (`{cluster.namespace_prefix}{project}--{environment}`): project slugs hold
/// no `--`, so a build namespace (with the default prefixes) has none and cannot be taken for one.
pub fn build_namespace(settings: &PipelineSettings, project: &str) -> String {
    format!("{}{project}", settings.namespace_prefix)
}

/// The Secret with one build's registry credential, deleted when the build ends.
pub fn push_secret_name(job: &str) -> String {
    format!("{job}-push")
}

/// The registry's host (what a Docker config's `auths` is keyed by) and the path under it that
/// the platform's repositories start with (`pipeline.registry` may carry one:
/// `ghcr.io/acme`).
pub fn registry_parts(settings: &PipelineSettings) -> (&str, &str) {
    let registry = settings.registry.trim_end_matches('/');
    registry.split_once('/').unwrap_or((registry, ""))
}

/// The repository a build pushes to (`image` without the registry host and the tag or digest).
pub fn repository_of(image: &str) -> &str {
    let path = image.split_once('/').map_or(image, |(_, p)| p);
    let path = path.split_once('@').map_or(path, |(p, _)| p);
    match path.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => path,
    }
}

/// `{registry}/{project}/{service}:{short ref}`
pub fn image_ref(
    settings: &PipelineSettings,
    project: &str,
    service: &str,
    git_ref: &str,
) -> String {
    let tag: String = git_ref
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let tag = if tag.len() == 40 {
        tag[..12].to_owned()
    } else {
        tag
    };
    format!(
        "{}/{project}/{service}:{tag}",
        settings.registry.trim_end_matches('/')
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn build_job(spec: &ServiceSpec, t: &BuildTarget, settings: &PipelineSettings) -> Manifest {
    let build = &spec.spec.build;
    let context = build
        .context
        .as_deref()
        .unwrap_or(".")
        .trim_end_matches('/');
    let context = if context.is_empty() { "." } else { context };
    let nixpacks = matches!(
        build.kind,
        BuildType::Nixpacks | BuildType::Auto | BuildType::Buildpack
    ) && build.dockerfile.is_none();
    // Nixpacks writes its generated Dockerfile into the context's .nixpacks/.
    let dockerfile = if nixpacks {
        ".nixpacks/Dockerfile".to_owned()
    } else {
        build
            .dockerfile
            .clone()
            .unwrap_or_else(|| "Dockerfile".into())
    };
    let root = if context == "." {
        "/workspace/src".to_owned()
    } else {
        format!("/workspace/src/{context}")
    };
    let (dockerfile_dir, dockerfile_name) = match dockerfile.rsplit_once('/') {
        Some((dir, name)) => (format!("{root}/{dir}"), name.to_owned()),
        None => (root.clone(), dockerfile.clone()),
    };
    let mut buildctl = vec![
        "buildctl-daemonless.sh build".to_owned(),
        "--frontend dockerfile.v0".to_owned(),
        format!(
            "--local context={}",
            shell_quote(&format!("/workspace/src/{context}"))
        ),
        format!("--local dockerfile={}", shell_quote(&dockerfile_dir)),
        format!("--opt filename={}", shell_quote(&dockerfile_name)),
    ];
    for arg in &build.build_args {
        buildctl.push(format!(
            "--opt {}",
            shell_quote(&format!("build-arg:{}={}", arg.name, arg.value))
        ));
    }
    buildctl.push(format!(
        "--output type=image,name={},push=true",
        shell_quote(t.image)
    ));
    buildctl.push("--attest type=sbom".to_owned());
    buildctl.push("--attest type=provenance,mode=max".to_owned());
    buildctl.push("--metadata-file /workspace/metadata.json".to_owned());
    // The metadata (digest, attestation descriptors) becomes the termination message.
    let script = format!(
        "set -eu\n{} \ncp /workspace/metadata.json /dev/termination-log\n",
        buildctl.join(" \\\n  ")
    );
    let checkout = format!(
        "set -eu\ngit init -q /workspace/src\ncd /workspace/src\ngit remote add origin {}\ngit fetch -q --depth 1 -- origin {}\ngit checkout -q FETCH_HEAD\necho \"checked out $(git rev-parse HEAD)\"\n",
        shell_quote(t.repository),
        shell_quote(t.git_ref)
    );
    let mut init = vec![json!({
        "name": "checkout",
        "image": settings.git_image,
        "command": ["sh", "-c", checkout],
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
    })];
    if nixpacks {
        init.push(json!({
            "name": "plan",
            "image": settings.nixpacks_image,
            "command": ["sh", "-c", format!("nixpacks build {} --out {}", shell_quote(&root), shell_quote(&root))],
            "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
        }));
    }
    let name = job_name(t.service, t.id);
    let labels = json!({
        "app.kubernetes.io/managed-by": "enclii",
        "enclii.dev/project": t.project,
        "enclii.dev/service": t.service,
        LABEL_BUILD: t.id.to_string(),
    });
    let body = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name, "namespace": t.namespace, "labels": labels },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": settings.timeout_secs,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {
                    "labels": labels,
                },
                "spec": {
                    "restartPolicy": "Never",
                    // The build runs untrusted Dockerfile steps: no credentials to the cluster.
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    // A user namespace of its own: root inside the build (BuildKit's sandbox
                    // needs it to set up each step's namespaces) is nobody on the node.
                    "hostUsers": false,
                    "initContainers": init,
                    "containers": [{
                        "name": "buildkit",
                        "image": settings.buildkit_image,
                        "command": ["sh", "-c", script],
                        // BuildKit's process sandbox stays on (no `--oci-worker-no-process-sandbox`):
                        // each Dockerfile step runs in namespaces of its own, with its own /proc,
                        // which needs an unmasked /proc and unconfined seccomp and AppArmor to
                        // create (inside the pod's user namespace, so no privilege on the node).
                        "env": [
                            { "name": "DOCKER_CONFIG", "value": "/home/user/.docker" }
                        ],
                        "securityContext": {
                            "runAsUser": 1000, "runAsGroup": 1000,
                            "procMount": "Unmasked",
                            "seccompProfile": { "type": "Unconfined" },
                            "appArmorProfile": { "type": "Unconfined" }
                        },
                        "terminationMessagePolicy": "File",
                        "volumeMounts": [
                            { "name": "workspace", "mountPath": "/workspace" },
                            { "name": "registry", "mountPath": "/home/user/.docker", "readOnly": true },
                            { "name": "buildkitd", "mountPath": "/home/user/.local/share/buildkit" }
                        ]
                    }],
                    "volumes": [
                        { "name": "workspace", "emptyDir": {} },
                        { "name": "buildkitd", "emptyDir": {} },
                        { "name": "registry", "secret": {
                            "secretName": t.push_secret,
                            "items": [{ "key": ".dockerconfigjson", "path": "config.json" }]
                        } }
                    ]
                }
            }
        }
    });
    Manifest {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name,
        namespace: Some(t.namespace.to_owned()),
        body,
    }
}

/// The Docker config Secret of one build: its own credential for the registry's token service
/// (`pipeline/registry.rs`), which grants it push to its own repository only.
pub fn push_secret(settings: &PipelineSettings, t: &BuildTarget, password: &str) -> Manifest {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let (host, _) = registry_parts(settings);
    let config = json!({ "auths": { host: {
        "auth": b64(&format!("{}:{password}", super::registry::build_account(t.id)))
    } } });
    Manifest {
        api_version: "v1".into(),
        kind: "Secret".into(),
        name: t.push_secret.to_owned(),
        namespace: Some(t.namespace.to_owned()),
        body: json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": { "name": t.push_secret, "namespace": t.namespace, "labels": {
                "app.kubernetes.io/managed-by": "enclii",
                "enclii.dev/project": t.project,
                LABEL_BUILD: t.id.to_string(),
            } },
            "data": { ".dockerconfigjson": b64(&config.to_string()) }
        }),
    }
}

/// A project's build namespace and the platform's objects in it, in apply order. Pure.
///
/// Pod Security is `privileged` here, unlike environments' namespaces: BuildKit's sandbox needs
/// unconfined seccomp and AppArmor and an unmasked /proc (each pod in its own user namespace).
/// Only Switchyard creates pods here (specs' objects go to environments' namespaces), and each
/// is the Job of [`build_job`].
pub fn namespace_objects(
    settings: &PipelineSettings,
    project: &str,
    project_id: uuid::Uuid,
) -> Vec<Manifest> {
    use crate::deploy::tenancy::{LABEL_PROJECT_ID, QUOTA};
    let namespace = build_namespace(settings, project);
    let mut out = vec![Manifest {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        name: namespace.clone(),
        namespace: None,
        body: json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": namespace, "labels": {
                "app.kubernetes.io/managed-by": "enclii",
                "enclii.dev/project": project,
                LABEL_PROJECT_ID: project_id.to_string(),
                "enclii.dev/purpose": "builds",
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/enforce-version": "latest",
            } }
        }),
    }];
    out.push(network_policy(settings, &namespace));
    if !settings.quota.is_empty() {
        out.push(Manifest {
            api_version: "v1".into(),
            kind: "ResourceQuota".into(),
            name: QUOTA.into(),
            namespace: Some(namespace.clone()),
            body: json!({
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": { "name": QUOTA, "namespace": namespace,
                              "labels": { "app.kubernetes.io/managed-by": "enclii" } },
                "spec": { "hard": settings.quota }
            }),
        });
    }
    out
}

/// Address ranges no build may reach: the cluster's and the platform's own networks (pods,
/// Services, the node and cloud metadata addresses), whatever a Dockerfile step tries.
pub const PRIVATE_RANGES: [&str; 7] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "0.0.0.0/8",
];

/// The NetworkPolicy of a build namespace: nothing reaches a build, and a build reaches only
/// the cluster's DNS, the public internet and the addresses the platform lists
/// (`pipeline.egress_allow`: an in-cluster registry or git server).
pub fn network_policy(settings: &PipelineSettings, namespace: &str) -> Manifest {
    let mut egress = vec![
        json!({
            "to": [{ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } } }],
            "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }]
        }),
        json!({ "to": [
            { "ipBlock": { "cidr": "0.0.0.0/0", "except": PRIVATE_RANGES } },
            { "ipBlock": { "cidr": "::/0", "except": ["fc00::/7", "fe80::/10", "::1/128"] } }
        ] }),
    ];
    if !settings.egress_allow.is_empty() {
        let to: Vec<serde_json::Value> = settings
            .egress_allow
            .iter()
            .map(|cidr| json!({ "ipBlock": { "cidr": cidr } }))
            .collect();
        egress.push(json!({ "to": to }));
    }
    let name = BUILD_POLICY.to_owned();
    Manifest {
        api_version: "networking.k8s.io/v1".into(),
        kind: "NetworkPolicy".into(),
        name: name.clone(),
        namespace: Some(namespace.to_owned()),
        body: json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": { "name": name, "namespace": namespace,
                          "labels": { "app.kubernetes.io/managed-by": "enclii" } },
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [],
                "egress": egress
            }
        }),
    }
}

/// The build namespace's NetworkPolicy (a reserved name: no spec can carry it).
pub const BUILD_POLICY: &str = "enclii-build-egress";

/// What a finished build reports in its termination message (BuildKit's metadata file).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub digest: Option<String>,
    pub sbom_ref: Option<String>,
    pub provenance_ref: Option<String>,
}

/// Reads `containerimage.digest` and the attestation manifests from BuildKit's metadata.
pub fn read_outcome(image: &str, message: &str) -> Outcome {
    let Ok(v) = serde_json::from_str::<Value>(message) else {
        return Outcome::default();
    };
    let digest = v["containerimage.digest"]
        .as_str()
        .filter(|d| d.starts_with("sha256:") && d.len() == 71)
        .map(str::to_owned);
    let repo = image
        .rsplit_once(':')
        .filter(|(r, _)| !r.ends_with('/'))
        .map(|(r, _)| r)
        .unwrap_or(image);
    // BuildKit attaches the attestations to the image index it pushed: they are found from the
    // index's digest (`docker buildx imagetools inspect REF --format '{{json .SBOM}}'`).
    let attestation = |kind: &str| {
        digest
            .as_ref()
            .map(|d| format!("{repo}@{d} ({kind} attestation)"))
    };
    Outcome {
        sbom_ref: attestation("sbom"),
        provenance_ref: attestation("provenance"),
        digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PipelineSettings {
        PipelineSettings::default()
    }

    fn job_for(fixture: &str, service: &str) -> Manifest {
        let file = enclii_spec::parse(fixture).unwrap();
        let settings = settings();
        let image = image_ref(
            &settings,
            "enclii-platform",
            service,
            "0123456789abcdef0123456789abcdef01234567",
        );
        build_job(
            &file.service,
            &BuildTarget {
                id: 42,
                project: "enclii-platform",
                service,
                repository: "https://github.com/madfam-io/enclii",
                git_ref: "0123456789abcdef0123456789abcdef01234567",
                image: &image,
                namespace: "enclii-builds-enclii-platform",
                push_secret: "build-switchyard-api-42-push",
            },
            &settings,
        )
    }

    /// The whole Job for a Dockerfile build and a Nixpacks build, as snapshots
    /// (`UPDATE_SNAPSHOTS=1` rewrites them after an intended change).
    #[test]
    fn build_jobs_match_their_snapshots() {
        // At run time: a test binary another checkout built into the shared target dir would
        // otherwise read that checkout's snapshots.
        let dir = format!("{}/snapshots", std::env::var("CARGO_MANIFEST_DIR").unwrap());
        let cases = [
            (
                "build-job-dockerfile",
                include_str!("../../../spec/fixtures/dogfooding/switchyard-api.yaml"),
                "switchyard-api",
            ),
            (
                "build-job-nixpacks",
                include_str!("../../../spec/fixtures/dogfooding/docs-site.yaml"),
                "docs-site",
            ),
        ];
        let mut stale = Vec::new();
        for (name, fixture, service) in cases {
            let json =
                serde_json::to_string_pretty(&job_for(fixture, service).body).unwrap() + "\n";
            let path = format!("{dir}/{name}.json");
            if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &json).unwrap();
            }
            if std::fs::read_to_string(&path).ok().as_deref() != Some(json.as_str()) {
                stale.push(path);
            }
        }
        assert!(
            stale.is_empty(),
            "snapshots differ (UPDATE_SNAPSHOTS=1 to accept): {stale:?}"
        );
    }

    #[test]
    fn the_job_checks_out_the_commit_and_builds_with_attestations() {
        let job = job_for(
            include_str!("../../../spec/fixtures/dogfooding/switchyard-api.yaml"),
            "switchyard-api",
        );
        let spec = &job.body["spec"]["template"]["spec"];
        let checkout = spec["initContainers"][0]["command"][2].as_str().unwrap();
        assert!(checkout.contains(
            "git fetch -q --depth 1 -- origin '0123456789abcdef0123456789abcdef01234567'"
        ));
        let build = spec["containers"][0]["command"][2].as_str().unwrap();
        for part in [
            "buildctl-daemonless.sh build",
            "--attest type=sbom",
            "--attest type=provenance,mode=max",
            "type=image,name='registry.enclii.local/enclii-platform/switchyard-api:0123456789ab',push=true",
            "cp /workspace/metadata.json /dev/termination-log",
        ] {
            assert!(build.contains(part), "{part} in {build}");
        }
        assert_eq!(job.body["spec"]["backoffLimit"], 0);
        assert_eq!(job.body["spec"]["activeDeadlineSeconds"], 1800);
        // Its own credential, no token to the cluster, BuildKit's sandbox on, its own user
        // namespace.
        assert_eq!(
            spec["volumes"][2]["secret"]["secretName"],
            "build-switchyard-api-42-push"
        );
        assert_eq!(spec["automountServiceAccountToken"], false);
        assert_eq!(spec["hostUsers"], false);
        assert_eq!(
            job.body["metadata"]["namespace"],
            "enclii-builds-enclii-platform"
        );
        assert!(!job.body.to_string().contains("no-process-sandbox"));
        assert_eq!(
            spec["containers"][0]["securityContext"]["procMount"],
            "Unmasked"
        );
        // Nixpacks plans first, then BuildKit builds the generated Dockerfile.
        let nix = job_for(
            include_str!("../../../spec/fixtures/dogfooding/docs-site.yaml"),
            "docs-site",
        );
        let nix_spec = &nix.body["spec"]["template"]["spec"];
        assert_eq!(nix_spec["initContainers"][1]["name"], "plan");
        assert!(
            nix_spec["containers"][0]["command"][2]
                .as_str()
                .unwrap()
                .contains("--opt filename='Dockerfile'")
        );
        assert!(
            nix_spec["containers"][0]["command"][2]
                .as_str()
                .unwrap()
                .contains("--local dockerfile='/workspace/src/.nixpacks'")
        );
    }

    #[test]
    fn builds_reach_no_private_address_unless_the_platform_lists_it() {
        let mut s = settings();
        let policy = network_policy(&s, "enclii-builds-acme");
        let spec = &policy.body["spec"];
        assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(spec["ingress"], json!([]), "nothing reaches a build");
        let public = &spec["egress"][1]["to"][0]["ipBlock"];
        assert_eq!(public["cidr"], "0.0.0.0/0");
        for private in [
            "10.0.0.0/8",
            "169.254.0.0/16",
            "192.168.0.0/16",
            "127.0.0.0/8",
        ] {
            assert!(
                public["except"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(private)),
                "{private}"
            );
        }
        assert_eq!(spec["egress"].as_array().unwrap().len(), 2);
        s.egress_allow = vec!["10.96.0.50/32".into()];
        let policy = network_policy(&s, "enclii-builds-acme");
        assert_eq!(
            policy.body["spec"]["egress"][2]["to"][0]["ipBlock"]["cidr"],
            "10.96.0.50/32"
        );
        assert!(BUILD_POLICY.starts_with(enclii_spec::RESERVED_PREFIX));
    }

    #[test]
    fn each_project_builds_in_its_own_namespace_with_its_own_credential() {
        let s = settings();
        let id = uuid::Uuid::from_u128(7);
        let objects = namespace_objects(&s, "acme", id);
        let ns = &objects[0].body;
        assert_eq!(ns["metadata"]["name"], "enclii-builds-acme");
        let labels = &ns["metadata"]["labels"];
        assert_eq!(labels["enclii.dev/project-id"], id.to_string());
        assert_eq!(labels["app.kubernetes.io/managed-by"], "enclii");
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "privileged");
        assert_eq!(objects[1].kind, "NetworkPolicy");
        assert_eq!(objects[1].namespace.as_deref(), Some("enclii-builds-acme"));
        assert_eq!(objects[2].body["spec"]["hard"]["pods"], "4");
        // No environment's namespace (`{project}--{env}`) is ever a build namespace.
        assert!(!build_namespace(&s, "acme").contains("--"));

        let target = BuildTarget {
            id: 9,
            project: "acme",
            service: "api",
            repository: "https://example.com/r",
            git_ref: "main",
            image: "registry.enclii.local/acme/api:main",
            namespace: "enclii-builds-acme",
            push_secret: "build-api-9-push",
        };
        let secret = push_secret(&s, &target, "s3cret");
        assert_eq!(secret.body["type"], "kubernetes.io/dockerconfigjson");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let config: Value = serde_json::from_slice(
            &b64.decode(secret.body["data"][".dockerconfigjson"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        let auth = config["auths"]["registry.enclii.local"]["auth"]
            .as_str()
            .unwrap();
        assert_eq!(b64.decode(auth).unwrap(), b"build-9:s3cret");
    }

    #[test]
    fn repositories_are_read_from_image_references() {
        for (image, repo) in [
            ("registry.enclii.local/acme/api:main", "acme/api"),
            ("localhost:5000/acme/api:abc", "acme/api"),
            ("ghcr.io/org/acme/api@sha256:ab", "org/acme/api"),
            ("registry.enclii.local/acme/api", "acme/api"),
        ] {
            assert_eq!(repository_of(image), repo, "{image}");
        }
        let mut s = settings();
        assert_eq!(registry_parts(&s), ("registry.enclii.local", ""));
        s.registry = "ghcr.io/org/".into();
        assert_eq!(registry_parts(&s), ("ghcr.io", "org"));
    }

    #[test]
    fn build_args_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        let o = read_outcome(
            "r/p/s:abc",
            &format!(r#"{{"containerimage.digest":"sha256:{}"}}"#, "f".repeat(64)),
        );
        assert_eq!(o.digest.as_deref().map(str::len), Some(71));
        assert!(o.sbom_ref.unwrap().starts_with("r/p/s@sha256:"));
        assert_eq!(read_outcome("r/p/s:abc", "not json"), Outcome::default());
    }
}
