//! Deployments on Kubernetes: rendering a release's manifests, applying them with server-side
//! apply, pruning what the spec no longer asks for, and following the rollout to the truth.
//! The worker claims pending deployments from PostgreSQL, so any replica can drive any one.

pub mod analysis;
pub mod apply;
pub mod canary;
pub mod logs;
pub mod rollout;
pub mod status;
pub mod worker;

use crate::config::{ClusterMode, ClusterSettings};

/// Connects to the cluster configuration names: kubeconfig or in-cluster (`kube`), or an explicit
/// API server URL without credentials (the sandbox).
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
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("cluster.url {url:?} is not a URL: {e}"))?;
    let mut config = kube::Config::new(uri);
    config.read_timeout = Some(std::time::Duration::from_secs(300));
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    kube::Client::try_from(config).map_err(|e| format!("cannot build a client for {url}: {e}"))
}
