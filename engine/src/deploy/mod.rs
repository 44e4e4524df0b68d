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
pub mod task;
pub mod tenancy;
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
pub async fn connect_all(settings: &ClusterSettings) -> Result<Clusters, String> {
    let default = connect(settings).await?;
    let mut environments = BTreeMap::new();
    for (name, target) in &settings.environments {
        let client = match (&target.mode, &target.url) {
            (ClusterMode::Url, Some(url)) => client_for_url(url)?,
            (ClusterMode::Url, None) => {
                return Err(format!(
                    "cluster.environments.{name}: mode = \"url\" needs url"
                ));
            }
            (ClusterMode::Kube, _) => {
                from_kubeconfig(settings.kubeconfig.as_deref(), target.context.clone())
                    .await
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

/// Connects to the configuration's default cluster: a kubeconfig or the in-cluster ServiceAccount
/// (`kube`), or an API server URL without credentials (`url`).
pub async fn connect(settings: &ClusterSettings) -> Result<kube::Client, String> {
    match settings.mode {
        ClusterMode::Kube => match &settings.kubeconfig {
            Some(path) => from_kubeconfig(Some(path), None).await,
            None => {
                let config = kube::Config::infer().await.map_err(|e| {
                    format!("cannot reach the Kubernetes cluster (kubeconfig or in-cluster): {e}")
                })?;
                client_from(config)
            }
        },
        ClusterMode::Url => client_for_url(
            settings
                .url
                .as_deref()
                .ok_or("cluster.mode = \"url\" needs cluster.url")?,
        ),
    }
}

/// A client from a kubeconfig: the file `path` (else `KUBECONFIG` or `~/.kube/config`), at
/// `context` (else its current context).
async fn from_kubeconfig(
    path: Option<&str>,
    context: Option<String>,
) -> Result<kube::Client, String> {
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = match path {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read the kubeconfig {path}: {e}"))?;
            kube::Config::from_custom_kubeconfig(file, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| format!("cannot use the kubeconfig: {e}"))?;
    client_from(config)
}

/// A client that gives every answer to its caller, 503s included: kube's default client retries
/// 429, 503 and 504 itself (up to 15 times, backing off from 5 ms), which hides the API server's
/// answer behind our own bounds. Our calls retry where retrying makes sense
/// (`apply::with_retries`, watchers' back-off), and the status prober must see a service proxy's
/// 503 ("no endpoints available") as the answer it is, not as a probe that never returned.
fn client_from(mut config: kube::Config) -> Result<kube::Client, String> {
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| format!("cannot build a Kubernetes client: {e}"))
}

fn client_for_url(url: &str) -> Result<kube::Client, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("cluster url {url:?} is not a URL: {e}"))?;
    let mut config = kube::Config::new(uri);
    config.read_timeout = Some(std::time::Duration::from_secs(300));
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    client_from(config).map_err(|e| format!("{url}: {e}"))
}
