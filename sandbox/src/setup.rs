//! `enclii-nodes setup`: readies a fresh local cluster for Switchyard, as an operator would a real
//! one: installs CRDs (the Gateway API's, from the `sigs.k8s.io/gateway-api` module), applies
//! manifests (`deploy/rbac.yaml`: Switchyard's ServiceAccount and least-privilege ClusterRole),
//! then writes a kubeconfig that authenticates as that ServiceAccount with a bound token, so
//! Switchyard never runs as cluster admin. Everything is server-side applied: re-running is
//! harmless.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};

const FIELD_MANAGER: &str = "enclii-setup";

#[derive(Debug, Default)]
struct Args {
    kubeconfig: PathBuf,
    crds: Vec<PathBuf>,
    apply: Vec<PathBuf>,
    service_account: Option<(String, String)>,
    write_kubeconfig: Option<PathBuf>,
    token_hours: i64,
}

fn parse(args: Vec<String>) -> anyhow::Result<Args> {
    let mut out = Args {
        token_hours: 24 * 7,
        ..Default::default()
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--kubeconfig" => out.kubeconfig = value()?.into(),
            "--crds" => out.crds.push(value()?.into()),
            "--apply" => out.apply.push(value()?.into()),
            "--service-account" => {
                let v = value()?;
                let (ns, name) = v
                    .split_once('/')
                    .context("--service-account is NAMESPACE/NAME")?;
                out.service_account = Some((ns.to_owned(), name.to_owned()));
            }
            "--write-kubeconfig" => out.write_kubeconfig = Some(value()?.into()),
            "--token-hours" => out.token_hours = value()?.parse().context("--token-hours")?,
            other => bail!(
                "unknown flag {other}; usage: enclii-nodes setup --kubeconfig ADMIN [--crds DIR]... [--apply FILE]... [--service-account NS/NAME --write-kubeconfig OUT]"
            ),
        }
    }
    if out.kubeconfig.as_os_str().is_empty() {
        bail!("--kubeconfig is required");
    }
    if out.service_account.is_some() != out.write_kubeconfig.is_some() {
        bail!("--service-account and --write-kubeconfig go together");
    }
    Ok(out)
}

/// Every object of the YAML files in `paths` (files, or folders of `*.yaml`), in order.
fn read_objects(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml"))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let shown = f.display().to_string();
        let docs = enclii_spec::yaml::load(&text).map_err(|errors| {
            let all: Vec<String> = errors
                .iter()
                .map(|d| d.located(&shown).to_string())
                .collect();
            anyhow::anyhow!("not YAML:\n{}", all.join("\n"))
        })?;
        for doc in docs {
            if let Some(root) = doc.root {
                out.push((format!("{}:{}", f.display(), doc.pos.line), root.to_json()));
            }
        }
    }
    Ok(out)
}

fn gvk(object: &serde_json::Value) -> anyhow::Result<GroupVersionKind> {
    let api_version = object["apiVersion"].as_str().context("no apiVersion")?;
    let kind = object["kind"].as_str().context("no kind")?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok(GroupVersionKind::gvk(group, version, kind))
}

async fn apply_objects(
    client: &kube::Client,
    objects: &[(String, serde_json::Value)],
) -> anyhow::Result<()> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .context("API discovery")?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (at, object) in objects {
        let gvk = gvk(object).with_context(|| at.clone())?;
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .with_context(|| format!("{at}: the API server does not serve {gvk:?}"))?;
        let name = object["metadata"]["name"]
            .as_str()
            .with_context(|| format!("{at}: no metadata.name"))?;
        let api: Api<DynamicObject> = match (caps.scope, object["metadata"]["namespace"].as_str()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .with_context(|| format!("{at}: applying {}/{name}", gvk.kind))?;
    }
    Ok(())
}

/// Waits until every CRD applied is established (its API is served).
async fn wait_established(
    client: &kube::Client,
    crds: &[(String, serde_json::Value)],
) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in crds
        .iter()
        .filter(|(_, o)| o["kind"] == "CustomResourceDefinition")
    {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let cond = kube::runtime::wait::conditions::is_crd_established();
        tokio::time::timeout(
            Duration::from_secs(30),
            kube::runtime::wait::await_condition(api.clone(), name, cond),
        )
        .await
        .with_context(|| format!("CRD {name} not established within 30 s"))?
        .with_context(|| format!("waiting for CRD {name}"))?;
    }
    Ok(())
}

/// A bound token for the ServiceAccount, and a kubeconfig that uses it.
async fn write_service_account_kubeconfig(
    client: &kube::Client,
    admin: &Path,
    (ns, name): &(String, String),
    hours: i64,
    out: &Path,
) -> anyhow::Result<()> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(hours * 3600),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let issued: TokenRequest = api
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {ns}/{name}"))?;
    let token = issued
        .status
        .map(|s| s.token)
        .context("the token request came back without a token")?;
    let config = kube::config::Kubeconfig::read_from(admin)
        .with_context(|| format!("reading {}", admin.display()))?;
    let cluster = config
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .context("the admin kubeconfig names no cluster")?;
    let server = cluster
        .server
        .context("the admin kubeconfig has no server")?;
    let ca = cluster
        .certificate_authority
        .context("the admin kubeconfig has no certificate-authority file")?;
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: enclii-local\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {ns}-{name}\n  user:\n    token: {token}\ncontexts:\n- name: enclii-local\n  context: {{cluster: enclii-local, user: {ns}-{name}, namespace: {ns}}}\ncurrent-context: enclii-local\n"
    );
    write_private(out, &text)
}

/// Writes a file only its owner can read (it holds a credential).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub async fn main(args: Vec<String>) -> anyhow::Result<()> {
    let args = parse(args)?;
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&args.kubeconfig)
            .with_context(|| format!("reading {}", args.kubeconfig.display()))?,
        &options,
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let crds = read_objects(&args.crds)?;
    if !crds.is_empty() {
        apply_objects(&client, &crds).await?;
        wait_established(&client, &crds).await?;
    }
    let objects = read_objects(&args.apply)?;
    apply_objects(&client, &objects).await?;
    if let (Some(sa), Some(out)) = (&args.service_account, &args.write_kubeconfig) {
        write_service_account_kubeconfig(&client, &args.kubeconfig, sa, args.token_hours, out)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked() {
        assert!(parse(vec![]).is_err());
        assert!(parse(vec!["--kubeconfig".into()]).is_err());
        let a = parse(
            [
                "--kubeconfig",
                "k",
                "--apply",
                "a.yaml",
                "--service-account",
                "ns/sa",
                "--write-kubeconfig",
                "o",
            ]
            .map(String::from)
            .to_vec(),
        )
        .unwrap();
        assert_eq!(a.service_account, Some(("ns".into(), "sa".into())));
        let half = ["--kubeconfig", "k", "--service-account", "ns/sa"]
            .map(String::from)
            .to_vec();
        assert!(parse(half).is_err());
    }

    #[test]
    fn rbac_manifests_parse_into_objects() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac.yaml");
        let objects = read_objects(&[path]).unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|(_, o)| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding"
            ]
        );
        assert_eq!(
            gvk(&objects[2].1).unwrap().group,
            "rbac.authorization.k8s.io"
        );
    }
}
