//! The simulated Node objects: registered (or adopted, when the simulator restarts) with the
//! capacity, addresses and kubelet endpoint of a real node, then kept Ready by a heartbeat every
//! 10 s: the Ready condition in the node's status and a renewed Lease in `kube-node-lease`, which
//! is what the controller-manager's node lifecycle controller checks before it taints a node
//! NotReady and evicts its pods.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};

use crate::Simulation;
use crate::kubelet::pod::FIELD_MANAGER;
use crate::network::{KUBELET_PORT, node_ip, node_name, pod_cidr};

pub const KUBELET_VERSION: &str = "v1.37.2";
const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;
const HEARTBEAT: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(2);

/// The Node as registered: name, labels and pod range (the status is applied separately).
pub fn node_object(node: usize) -> Node {
    let name = node_name(node);
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_owned(), name),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
                ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
                (
                    "node.kubernetes.io/instance-type".to_owned(),
                    "simulated".to_owned(),
                ),
            ])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(pod_cidr(node)),
            pod_cidrs: Some(vec![pod_cidr(node)]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The node's status at a heartbeat: Ready (since `ready_since`), no pressure of any kind.
pub fn node_status(node: usize, now: Timestamp, ready_since: Timestamp) -> Node {
    let name = node_name(node);
    // Large machines: a test run deploys hundreds of services side by side, and what a pod fits on
    // is not what the simulation is about (`unschedulable` images are made unschedulable by an
    // admission policy instead). Pods are bounded by the addresses a node has (10.244.N.2-254).
    let resources = BTreeMap::from(
        [
            ("cpu", "256"),
            ("memory", "1Ti"),
            ("pods", "250"),
            ("ephemeral-storage", "100Gi"),
        ]
        .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned()))),
    );
    let condition = |kind: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(ready_since)),
    };
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: None,
        status: Some(NodeStatus {
            capacity: Some(resources.clone()),
            allocatable: Some(resources),
            conditions: Some(vec![
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                ),
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: node_ip(node).to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.clone(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: KUBELET_PORT.into(),
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: format!("{name}-boot"),
                container_runtime_version: "simulated://1".into(),
                kernel_version: "simulated".into(),
                kube_proxy_version: String::new(),
                kubelet_version: KUBELET_VERSION.into(),
                machine_id: name.clone(),
                operating_system: "linux".into(),
                os_image: "Enclii simulated node".into(),
                system_uuid: name,
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The node's lease, renewed at `now`; owned by the Node so that it goes with it.
pub fn lease(node: usize, node_uid: &str, now: Timestamp) -> Lease {
    let name = node_name(node);
    Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(LEASE_NAMESPACE.to_owned()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: name.clone(),
                uid: node_uid.to_owned(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// Registers node `node` and keeps it Ready, for ever.
pub async fn keep_alive(sim: Arc<Simulation>, node: usize) {
    let name = node_name(node);
    let nodes: Api<Node> = Api::all(sim.client.clone());
    let leases: Api<Lease> = Api::namespaced(sim.client.clone(), LEASE_NAMESPACE);
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    'register: loop {
        let (uid, ready_since) = loop {
            match register(&nodes, node, &apply).await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "registering the node; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        };
        tracing::info!(node = %name, ip = %node_ip(node), "node registered");
        let mut beat = tokio::time::interval(HEARTBEAT);
        loop {
            beat.tick().await;
            let now = Timestamp::now();
            let status = node_status(node, now, ready_since);
            match nodes
                .patch_status(&name, &apply, &Patch::Apply(&status))
                .await
            {
                Ok(_) => {}
                // Deleted: register it again.
                Err(kube::Error::Api(s)) if s.code == 404 => continue 'register,
                Err(e) => tracing::warn!(node = %name, error = %e, "node heartbeat"),
            }
            let lease = lease(node, &uid, now);
            if let Err(e) = leases.patch(&name, &apply, &Patch::Apply(&lease)).await {
                tracing::warn!(node = %name, error = %e, "renewing the node lease");
            }
        }
    }
}

/// Creates or adopts the Node; returns its UID and since when it has been Ready.
async fn register(
    nodes: &Api<Node>,
    node: usize,
    apply: &PatchParams,
) -> Result<(String, Timestamp), kube::Error> {
    let name = node_name(node);
    let existing = nodes.get_opt(&name).await?;
    // A node that was Ready stays Ready since then; one that was not is Ready from now.
    let ready_since = existing
        .as_ref()
        .and_then(|n| n.status.as_ref()?.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map_or_else(Timestamp::now, |t| t.0);
    let created = nodes
        .patch(&name, apply, &Patch::Apply(&node_object(node)))
        .await?;
    nodes
        .patch_status(
            &name,
            apply,
            &Patch::Apply(&node_status(node, Timestamp::now(), ready_since)),
        )
        .await?;
    Ok((created.metadata.uid.unwrap_or_default(), ready_since))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_node_looks_like_a_kubelets() {
        let n = node_object(2);
        let labels = n.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "sim-node-2");
        assert_eq!(labels["node.kubernetes.io/instance-type"], "simulated");
        assert_eq!(n.spec.unwrap().pod_cidr.as_deref(), Some("10.244.2.0/24"));
        let s = node_status(2, t("2026-12-01T10:00:10Z"), t("2026-12-01T10:00:00Z"))
            .status
            .unwrap();
        let ready = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(
            ready.last_heartbeat_time,
            Some(Time(t("2026-12-01T10:00:10Z")))
        );
        assert_eq!(
            ready.last_transition_time,
            Some(Time(t("2026-12-01T10:00:00Z")))
        );
        assert_eq!(
            s.capacity.as_ref().unwrap()["memory"],
            Quantity("1Ti".into())
        );
        assert_eq!(
            s.allocatable.as_ref().unwrap()["pods"],
            Quantity("250".into())
        );
        let addresses = s.addresses.unwrap();
        assert_eq!(addresses[0].address, "10.244.0.12");
        assert_eq!(addresses[1].address, "sim-node-2");
        assert_eq!(
            s.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port,
            10250
        );
        assert_eq!(s.node_info.unwrap().kubelet_version, "v1.37.2");
        // Server-side apply needs the kind in the body.
        let json = serde_json::to_value(node_status(
            2,
            t("2026-12-01T10:00:10Z"),
            t("2026-12-01T10:00:00Z"),
        ))
        .unwrap();
        assert_eq!(json["kind"], "Node");
        assert!(json.get("spec").is_none());
    }

    #[test]
    fn the_lease_names_its_holder_and_duration() {
        let l = lease(1, "uid-1", t("2026-12-01T10:00:10Z"));
        assert_eq!(l.metadata.namespace.as_deref(), Some("kube-node-lease"));
        assert_eq!(
            l.metadata.owner_references.as_ref().unwrap()[0].uid,
            "uid-1"
        );
        let spec = l.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("sim-node-1"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
    }
}
