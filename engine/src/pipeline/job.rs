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
}

pub const LABEL_BUILD: &str = "enclii.dev/build";

pub fn job_name(service: &str, id: i64) -> String {
    format!("build-{service}-{id}")
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
        "metadata": { "name": name, "namespace": settings.namespace, "labels": labels },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": settings.timeout_secs,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {
                    "labels": labels,
                    // Rootless BuildKit needs unconfined AppArmor and seccomp to create its namespaces.
                    "annotations": { "container.apparmor.security.beta.kubernetes.io/buildkit": "unconfined" }
                },
                "spec": {
                    "restartPolicy": "Never",
                    // The build runs untrusted Dockerfile steps: no credentials to the cluster.
                    "automountServiceAccountToken": false,
                    "initContainers": init,
                    "containers": [{
                        "name": "buildkit",
                        "image": settings.buildkit_image,
                        "command": ["sh", "-c", script],
                        "env": [
                            { "name": "BUILDKITD_FLAGS", "value": "--oci-worker-no-process-sandbox" },
                            { "name": "DOCKER_CONFIG", "value": "/home/user/.docker" }
                        ],
                        "securityContext": {
                            "runAsUser": 1000, "runAsGroup": 1000,
                            "seccompProfile": { "type": "Unconfined" }
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
                            "secretName": settings.registry_secret,
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
        namespace: Some(settings.namespace.clone()),
        body,
    }
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

/// The NetworkPolicy of the build namespace: nothing reaches a build, and a build reaches only
/// the cluster's DNS, the public internet and the addresses the platform lists
/// (`pipeline.egress_allow`: an in-cluster registry or git server).
pub fn network_policy(settings: &PipelineSettings) -> Manifest {
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
        namespace: Some(settings.namespace.clone()),
        body: json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": { "name": name, "namespace": settings.namespace,
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
        assert_eq!(
            spec["volumes"][2]["secret"]["secretName"],
            "enclii-registry"
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
        let policy = network_policy(&s);
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
        let policy = network_policy(&s);
        assert_eq!(
            policy.body["spec"]["egress"][2]["to"][0]["ipBlock"]["cidr"],
            "10.96.0.50/32"
        );
        assert!(BUILD_POLICY.starts_with(enclii_spec::RESERVED_PREFIX));
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
