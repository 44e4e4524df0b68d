//! What Prometheus scrapes: the simulator writes the running pods' `http` ports as a Prometheus
//! file-based discovery file (`file_sd_configs`), labelled as the canary queries expect
//! (`namespace`, `service`, `track`, `pod`). Debian's Prometheus is built without its Kubernetes
//! discovery, so the nodes say what runs on them, as a node-local agent would; the scrapes
//! themselves go to the pods' addresses for real.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use crate::Simulation;
use crate::pods::PodRecord;

/// The discovery file's content: one target group per pod, sorted, so that an unchanged set of
/// pods writes the same bytes.
pub fn targets(pods: &[Arc<PodRecord>]) -> serde_json::Value {
    let mut groups: Vec<(String, serde_json::Value)> = pods
        .iter()
        .filter(|p| p.managed_by_enclii && p.build.is_none() && p.holds_ip.load(Ordering::SeqCst))
        .filter_map(|p| {
            let ip = p.ip?;
            let port = p.spec.containers.iter().find_map(|c| {
                c.ports
                    .iter()
                    .flatten()
                    .find(|port| port.name.as_deref() == Some("http"))
                    .map(|port| port.container_port)
            })?;
            let mut labels = json!({
                "namespace": p.namespace,
                "service": p.service,
                "pod": p.name,
            });
            if let Some(track) = &p.track {
                labels["track"] = track.clone().into();
            }
            let key = format!("{}/{}", p.namespace, p.name);
            Some((
                key,
                json!({"targets": [format!("{ip}:{port}")], "labels": labels}),
            ))
        })
        .collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    serde_json::Value::Array(groups.into_iter().map(|(_, g)| g).collect())
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Keeps `path` current, checking every half second.
pub async fn keep_written(sim: Arc<Simulation>, path: PathBuf) {
    let mut last = String::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let text = targets(&sim.pods.all()).to_string();
        if text != last {
            match write_atomically(&path, &text) {
                Ok(()) => last = text,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot write the scrape targets")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::PodStateSeed;

    fn pod(
        name: &str,
        labels: serde_json::Value,
        port: Option<&str>,
        ip: Option<&str>,
    ) -> Arc<PodRecord> {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop-production", "uid": name, "labels": labels},
            "spec": {"containers": [{"name": "web", "image": "i",
                "ports": port.map(|n| vec![json!({"name": n, "containerPort": 8080})])}]}
        }))
        .unwrap();
        Arc::new(PodRecord::new(
            &pod,
            1,
            ip.map(|i| i.parse().unwrap()),
            PodStateSeed {
                start_time: k8s_openapi::jiff::Timestamp::now(),
                init: vec![],
                containers: vec![],
            },
        ))
    }

    #[test]
    fn enclii_pods_with_an_http_port_are_targets_labelled_for_the_canary_queries() {
        let ours = json!({"app.kubernetes.io/managed-by": "enclii", "enclii.dev/service": "web", "enclii.dev/track": "canary"});
        let pods = vec![
            pod("web-b", ours.clone(), Some("http"), Some("10.244.1.3")),
            pod("web-a", ours.clone(), Some("http"), Some("10.244.1.2")),
            pod(
                "other",
                json!({"app": "x"}),
                Some("http"),
                Some("10.244.1.4"),
            ),
            pod("no-port", ours.clone(), Some("metrics"), Some("10.244.1.5")),
            pod("no-ip", ours, Some("http"), None),
        ];
        assert_eq!(
            targets(&pods),
            json!([
                {"targets": ["10.244.1.2:8080"], "labels": {"namespace": "shop-production", "service": "web", "pod": "web-a", "track": "canary"}},
                {"targets": ["10.244.1.3:8080"], "labels": {"namespace": "shop-production", "service": "web", "pod": "web-b", "track": "canary"}},
            ])
        );
    }
}
