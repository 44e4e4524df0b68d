//! The local cluster as tests find it: `scripts/test.sh` starts one per run (control plane, node
//! simulator, Prometheus) and names its folder in `ENCLII_TEST_CLUSTER`; each test then works in
//! namespaces of its own prefix ([`LocalCluster::namespace_prefix`]).

use std::path::PathBuf;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;

pub const ENV: &str = "ENCLII_TEST_CLUSTER";

pub struct LocalCluster {
    pub dir: PathBuf,
    /// As cluster admin (`system:masters`): for a test's own checks and for playing other actors
    /// (an HPA, an operator), never for Switchyard.
    pub admin: kube::Client,
    pub prometheus_url: String,
}

impl LocalCluster {
    /// The cluster `scripts/test.sh` started. Panics, saying how to start one, without it.
    pub async fn from_env() -> Self {
        let dir = std::env::var_os(ENV).map(PathBuf::from).unwrap_or_else(|| {
            panic!(
                "{ENV} is not set: these tests need the local Kubernetes cluster that scripts/test.sh starts \
                 (or `source scripts/lib.sh; local_stack_start .enclii/cluster-test 127.0.0.1:1` and \
                 export {ENV}=.enclii/cluster-test)"
            )
        });
        let admin = client(&dir.join("admin.kubeconfig")).await;
        let prometheus_url = std::fs::read_to_string(dir.join("prometheus.url"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Self {
            dir,
            admin,
            prometheus_url,
        }
    }

    /// The kubeconfig of Switchyard's ServiceAccount (`deploy/rbac.yaml`): what the product uses.
    pub fn switchyard_kubeconfig(&self) -> String {
        self.dir.join("switchyard.kubeconfig").display().to_string()
    }

    /// A namespace prefix no other test uses: `t<8 hex>-`.
    pub fn namespace_prefix() -> String {
        let n: u32 = rand_u32();
        format!("t{n:08x}-")
    }

    /// An object as the API server holds it, read as admin.
    pub async fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<serde_json::Value> {
        let api = self.api(api_version, kind, namespace);
        match api.get_opt(name).await {
            Ok(found) => found.map(|o| serde_json::to_value(o).unwrap_or_default()),
            Err(e) => panic!("reading {kind}/{name}: {e}"),
        }
    }

    /// Deletes every namespace whose name starts with `prefix` (a test's own, once it passed: the
    /// run's cluster is shared by every test).
    pub async fn delete_namespaces(&self, prefix: &str) {
        let api = self.api("v1", "Namespace", None);
        for ns in self.objects("v1", "Namespace", None).await {
            let name = ns["metadata"]["name"].as_str().unwrap_or_default();
            if !prefix.is_empty() && name.starts_with(prefix) {
                match api
                    .delete(name, &kube::api::DeleteParams::background())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => panic!("deleting namespace {name}: {e}"),
                }
            }
        }
    }

    /// Every object of a kind in a namespace, read as admin.
    pub async fn objects(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Vec<serde_json::Value> {
        let api = self.api(api_version, kind, namespace);
        api.list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("listing {kind}: {e}"))
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .collect()
    }

    pub fn api(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Api<DynamicObject> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
        let plural = plural(kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
        match namespace {
            Some(ns) => Api::namespaced_with(self.admin.clone(), ns, &ar),
            None => Api::all_with(self.admin.clone(), &ar),
        }
    }
}

/// Deletes the namespaces of a test's prefix when dropped, whether the test passed or panicked:
/// the run's cluster has room for the pods of the tests running now, not for those of every test
/// that ever ran. `let _cleanup = Cleanup(prefix);` at the start of a test.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = std::mem::take(&mut self.0);
        // The test's own runtime may be the one unwinding: reach the cluster from a runtime (and
        // a client) of this thread's own.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                LocalCluster::from_env()
                    .await
                    .delete_namespaces(&prefix)
                    .await;
            })
        })
        .join();
        if deleted.is_err() {
            eprintln!("the test's namespaces were not all deleted");
        }
    }
}

fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("ss") || lower.ends_with('x') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

async fn client(path: &std::path::Path) -> kube::Client {
    let file = kube::config::Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("using {}: {e}", path.display()));
    kube::Client::try_from(config).expect("a kube client")
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn plurals_of_the_kinds_tests_read() {
        for (kind, plural) in [
            ("Deployment", "deployments"),
            ("Ingress", "ingresses"),
            ("NetworkPolicy", "networkpolicies"),
            ("HTTPRoute", "httproutes"),
            ("Secret", "secrets"),
        ] {
            assert_eq!(super::plural(kind), plural);
        }
        let a = super::LocalCluster::namespace_prefix();
        assert!(
            a.starts_with('t') && a.ends_with('-') && a.len() == 10,
            "{a}"
        );
    }
}
