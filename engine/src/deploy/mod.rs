//! Deployments on Kubernetes: rendering a release's manifests, applying them with server-side
//! apply, pruning what the spec no longer asks for, and following the rollout to the truth.
//! The worker claims pending deployments from PostgreSQL, so any replica can drive any one.

pub mod analysis;
pub mod apply;
pub mod canary;
pub mod env;
pub mod logs;
pub mod rollout;
pub mod status;
pub mod worker;

use std::collections::BTreeMap;

use crate::config::{ClusterMode, ClusterSettings};

/// The clusters deployments go to: the default one, and any that environments name.
#[derive(Clone)]
pub struct Clusters {
    default: kube::Client,
    environments: BTreeMap<String, kube::Client>,
}

impl Clusters {
    pub fn single(client: kube::Client) -> Self {
        Self {
            default: client,
            environments: BTreeMap::new(),
        }
    }

    /// The client for an environment's namespace.
    pub fn for_environment(&self, environment: &str) -> kube::Client {
        self.environments
            .get(environment)
            .unwrap_or(&self.default)
            .clone()
    }
}

/// Connects to every cluster the configuration names (see [`connect`]).
pub async fn connect_all(
    settings: &ClusterSettings,
    sandbox_url: Option<&str>,
) -> Result<Clusters, String> {
    let default = connect(settings, sandbox_url).await?;
    let mut environments = BTreeMap::new();
    for (name, target) in &settings.environments {
        let client = match (&target.mode, &target.url) {
            (ClusterMode::Url, Some(url)) => client_for_url(url)?,
            (ClusterMode::Url, None) => {
                return Err(format!(
                    "cluster.environments.{name}: mode = \"url\" needs url"
                ));
            }
            (ClusterMode::Sandbox, _) => match sandbox_url {
                Some(url) => client_for_url(url)?,
                None => {
                    return Err(format!(
                        "cluster.environments.{name}: the sandbox is not running"
                    ));
                }
            },
            (ClusterMode::Kube, _) => {
                let options = kube::config::KubeConfigOptions {
                    context: target.context.clone(),
                    ..Default::default()
                };
                let config = kube::Config::from_kubeconfig(&options).await.map_err(|e| {
                    format!("cluster.environments.{name}: cannot read the kubeconfig: {e}")
                })?;
                kube::Client::try_from(config)
                    .map_err(|e| format!("cluster.environments.{name}: {e}"))?
            }
        };
        environments.insert(name.clone(), client);
    }
    Ok(Clusters {
        default,
        environments,
    })
}

/// Connects to the configuration's default cluster: kubeconfig or in-cluster (`kube`), or an
/// explicit API server URL without credentials (the sandbox).
pub async fn connect(
    settings: &ClusterSettings,
    sandbox_url: Option<&str>,
) -> Result<kube::Client, String> {
    let url = match (&settings.mode, sandbox_url) {
        (ClusterMode::Kube, _) => {
            return kube::Client::try_default().await.map_err(|e| {
                format!("cannot reach the Kubernetes cluster (kubeconfig or in-cluster): {e}")
            });
        }
        (ClusterMode::Sandbox, Some(url)) => url.to_owned(),
        (ClusterMode::Sandbox, None) => settings
            .url
            .clone()
            .ok_or("the sandbox cluster is not running")?,
        (ClusterMode::Url, _) => settings
            .url
            .clone()
            .ok_or("cluster.mode = \"url\" needs cluster.url")?,
    };
    client_for_url(&url)
}

fn client_for_url(url: &str) -> Result<kube::Client, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("cluster url {url:?} is not a URL: {e}"))?;
    let mut config = kube::Config::new(uri);
    config.read_timeout = Some(std::time::Duration::from_secs(300));
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    kube::Client::try_from(config).map_err(|e| format!("cannot build a client for {url}: {e}"))
}
