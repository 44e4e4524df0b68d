//! `enclii spec validate` as a script would use it: exit codes and `FILE:LINE:COL` lines.

use std::path::PathBuf;
use std::process::Command;

fn enclii() -> Command {
    Command::new(env!("CARGO_BIN_EXE_enclii"))
}

fn fixture(name: &str) -> PathBuf {
    // At run time: see tests/seed_script.rs.
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../spec/fixtures/dogfooding")
        .join(name)
}

fn temp_spec(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enclii-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_six_dogfooding_specs_validate() {
    let names = [
        "switchyard-api.yaml",
        "switchyard-ui.yaml",
        "plinto.yaml",
        "landing-page.yaml",
        "docs-site.yaml",
        "status-page.yaml",
    ];
    let out = enclii()
        .arg("spec")
        .arg("validate")
        .args(names.map(fixture))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_invalid_spec_exits_1_with_one_located_line_per_error() {
    let path = temp_spec(
        "bad.yaml",
        "apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  build:\n    type: dockerfile\n  runtime:\n    port: 0\n    replicsa: 2\n",
    );
    let out = enclii()
        .args(["spec", "validate"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    let file = path.display().to_string();
    assert_eq!(
        lines,
        [
            format!("{file}:9:11: `spec.runtime.port` must be at least 1, found 0"),
            format!(
                "{file}:10:5: unknown field `replicsa` in `spec.runtime`; did you mean `replicas`?"
            ),
        ]
    );
}

#[test]
fn an_unreadable_file_exits_3() {
    let out = enclii()
        .args(["spec", "validate", "/nonexistent/spec.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/spec.yaml: cannot read")
    );
}

#[test]
fn the_schema_command_prints_the_published_schema() {
    let out = enclii().args(["spec", "schema"]).output().unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let published: serde_json::Value =
        serde_json::from_str(include_str!("../../schema/service-spec.schema.json")).unwrap();
    assert_eq!(printed, published);
}

#[test]
fn render_prints_the_same_objects_as_the_snapshots() {
    let out = enclii()
        .args(["spec", "render", "--env", "production", "--image"])
        .arg(format!(
            "ghcr.io/madfam-io/docs-site@sha256:{}",
            "0".repeat(63) + "1"
        ))
        .arg(fixture("docs-site.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.matches("---").count(),
        6,
        "Namespace, Deployment, Service, Ingress, HPA, PDB:\n{text}"
    );
    assert!(text.contains("kind: HorizontalPodAutoscaler"));
    // The namespace Switchyard gives the environment: project `--` environment.
    assert!(text.contains("namespace: enclii-platform--production"));
    assert!(
        text.contains("image: \"ghcr.io/madfam-io/docs-site@sha256:")
            || text.contains("image: ghcr.io/madfam-io/docs-site@sha256:"),
        "{text}"
    );
}

/// Switchyard's own spec (deploy/enclii/switchyard.yaml, what `switchyard bootstrap` installs).
#[test]
fn switchyards_own_spec_validates_and_renders_for_production() {
    let spec = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../deploy/enclii/switchyard.yaml");
    let out = enclii()
        .args(["spec", "validate"])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = "registry.example.com/enclii/switchyard:1";
    let out = enclii()
        .args(["spec", "render"])
        .arg(&spec)
        .args(["--env", "production", "--image", image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "kind: Namespace",
        "name: enclii-platform--production",
        "kind: Deployment",
        "kind: HorizontalPodAutoscaler",
        "minReplicas: 3",
        "maxReplicas: 10",
        "kind: PodDisruptionBudget",
        "kind: ServiceAccount",
        "serviceAccountName: switchyard",
        "path: /health/live",
        "path: /health/ready",
        "name: ENCLII_HTTP__METRICS_TOKEN",
        "name: enclii-secrets",
        "kind: Ingress",
        "app.enclii.io",
        &format!("image: \"{image}\""),
    ] {
        assert!(yaml.contains(expected), "{expected} missing from:\n{yaml}");
    }
}
