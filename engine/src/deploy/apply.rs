//! Server-side apply of rendered manifests (one field manager, minimal bodies), pruning of what a
//! newer render no longer contains (by owner labels), and retries with backoff for the API
//! server's transient failures.

use std::time::Duration;

use enclii_spec::render::{LABEL_ENVIRONMENT, LABEL_SERVICE, MANAGED_BY, Manifest};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;

/// The one field manager Enclii applies with.
pub const FIELD_MANAGER: &str = "enclii";

/// Kinds Enclii may create, so pruning knows where to look. Namespaces are never pruned.
pub const PRUNABLE: [(&str, &str); 12] = [
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    // A scheduled job removed from the spec stops with the release that no longer has it.
    ("batch/v1", "CronJob"),
];

pub fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Ingress" => "ingresses".to_owned(),
        "NetworkPolicy" => "networkpolicies".to_owned(),
        other => format!("{}s", other.to_ascii_lowercase()),
    };
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        plural,
    }
}

fn api(client: &kube::Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// Whether an error is worth retrying: the API server is overloaded, restarting or unreachable.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429 || s.code == 409,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Runs `op` until it succeeds, fails for good, or `attempts` are spent; waits 200 ms, 400 ms, …
/// between tries. Each try is bounded by `per_try`, so a hung API server is a timeout, not a hang.
pub async fn with_retries<T, F, Fut>(
    what: &str,
    attempts: u32,
    per_try: Duration,
    mut op: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=attempts {
        let outcome = tokio::time::timeout(per_try, op()).await;
        let error = match outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if !transient(&e) || attempt == attempts => {
                return Err(format!("{what}: {}", describe(&e)));
            }
            Ok(Err(e)) => describe(&e),
            Err(_) if attempt == attempts => {
                return Err(format!(
                    "{what}: the Kubernetes API did not answer within {}s",
                    per_try.as_secs()
                ));
            }
            Err(_) => "timed out".to_owned(),
        };
        tracing::warn!(what, attempt, %error, "Kubernetes API call failed; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    Err(format!("{what}: gave up"))
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!(
            "the API server answered {} ({}): {}",
            s.code, s.reason, s.message
        ),
        other => other.to_string(),
    }
}

/// Applies every manifest in order; returns `kind/name` of each.
pub async fn apply_all(
    client: &kube::Client,
    manifests: &[Manifest],
) -> Result<Vec<String>, String> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::with_capacity(manifests.len());
    for m in manifests {
        let ar = api_resource(&m.api_version, &m.kind);
        let api = api(client, &ar, m.namespace.as_deref());
        let what = format!("apply {}/{}", m.kind, m.name);
        let patch = Patch::Apply(&m.body);
        with_retries(&what, 5, Duration::from_secs(10), || {
            api.patch(&m.name, &params, &patch)
        })
        .await?;
        applied.push(format!("{}/{}", m.kind, m.name));
    }
    Ok(applied)
}

/// Has the API server check every object as it would apply it, changing nothing (`dryRun=All`:
/// validation, admission such as Pod Security and quotas, RBAC), so that an object it refuses
/// fails the deployment before any other changed: applying stops at the first refusal, and the
/// objects before it would stay on the new release. Namespaces are applied for real, since the
/// objects inside one cannot be checked before it exists.
pub async fn check_all(client: &kube::Client, manifests: &[Manifest]) -> Result<(), String> {
    let (namespaces, rest): (Vec<Manifest>, Vec<Manifest>) = manifests
        .iter()
        .cloned()
        .partition(|m| m.kind == "Namespace");
    apply_all(client, &namespaces).await?;
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    for m in &rest {
        let ar = api_resource(&m.api_version, &m.kind);
        let api = api(client, &ar, m.namespace.as_deref());
        let what = format!("apply {}/{}", m.kind, m.name);
        let patch = Patch::Apply(&m.body);
        with_retries(&what, 5, Duration::from_secs(10), || {
            api.patch(&m.name, &params, &patch)
        })
        .await?;
    }
    Ok(())
}

/// Deletes the service's objects (by owner labels) that `keep` no longer contains.
pub async fn prune(
    client: &kube::Client,
    namespace: &str,
    service: &str,
    environment: &str,
    keep: &[Manifest],
) -> Result<Vec<String>, String> {
    let selector = format!(
        "{}={},{LABEL_SERVICE}={service},{LABEL_ENVIRONMENT}={environment}",
        MANAGED_BY.0, MANAGED_BY.1
    );
    let mut pruned = Vec::new();
    let dp = DeleteParams::default();
    for (api_version, kind) in PRUNABLE {
        let ar = api_resource(api_version, kind);
        let api = api(client, &ar, Some(namespace));
        let lp = ListParams::default().labels(&selector);
        let list = with_retries(&format!("list {kind}"), 5, Duration::from_secs(10), || {
            api.list(&lp)
        })
        .await?;
        for obj in list.items {
            let name = obj.metadata.name.clone().unwrap_or_default();
            if keep.iter().any(|m| m.kind == kind && m.name == name) {
                continue;
            }
            // Something else made it (another tool copying our labels, an operator): not ours to
            // delete, however it is labelled.
            if !applied_by_us(&obj.metadata) {
                continue;
            }
            with_retries(
                &format!("delete {kind}/{name}"),
                5,
                Duration::from_secs(10),
                || api.delete(&name, &dp),
            )
            .await?;
            pruned.push(format!("{kind}/{name}"));
        }
    }
    Ok(pruned)
}

/// Whether Enclii's field manager has applied to the object (server-side apply records it).
pub fn applied_by_us(meta: &kube::core::ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER) && m.operation.as_deref() == Some("Apply")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_we_applied_are_ours_to_prune() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let entry = |manager: &str, operation: &str| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            ..Default::default()
        };
        let mut meta = kube::core::ObjectMeta::default();
        assert!(!applied_by_us(&meta));
        meta.managed_fields = Some(vec![
            entry("kubectl", "Apply"),
            entry(FIELD_MANAGER, "Update"),
        ]);
        assert!(!applied_by_us(&meta));
        meta.managed_fields = Some(vec![
            entry("kube-controller-manager", "Update"),
            entry(FIELD_MANAGER, "Apply"),
        ]);
        assert!(applied_by_us(&meta));
    }

    #[test]
    fn kinds_map_to_their_api_paths() {
        let ar = api_resource("networking.k8s.io/v1", "NetworkPolicy");
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.plural.as_str()),
            ("networking.k8s.io", "v1", "networkpolicies")
        );
        assert_eq!(
            api_resource("v1", "PersistentVolumeClaim").plural,
            "persistentvolumeclaims"
        );
        assert_eq!(
            api_resource("networking.k8s.io/v1", "Ingress").plural,
            "ingresses"
        );
        assert_eq!(
            api_resource("autoscaling/v2", "HorizontalPodAutoscaler").plural,
            "horizontalpodautoscalers"
        );
        assert_eq!(api_resource("v1", "Namespace").group, "");
    }
}
