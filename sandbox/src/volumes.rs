//! Plays a storage provisioner for the simulated nodes: a claim of a StorageClass whose
//! provisioner is [`PROVISIONER`] gets a PersistentVolume made for it (bound to it by the real
//! PV controller), and a released volume is deleted, as `reclaimPolicy: Delete` asks.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

pub const PROVISIONER: &str = "enclii.dev/simulated";

/// The volume to create for a claim, or `None` when it is not ours to provision (bound already,
/// no class, another provisioner's class).
pub fn volume_for(
    claim: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
) -> Option<PersistentVolume> {
    let class = class.filter(|c| c.provisioner == PROVISIONER)?;
    let spec = claim.spec.as_ref()?;
    if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let uid = claim.metadata.uid.clone()?;
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()?;
    Some(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(format!("pvc-{uid}")),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "enclii-nodes".to_owned(),
            )])),
            annotations: Some(BTreeMap::from([(
                "pv.kubernetes.io/provisioned-by".to_owned(),
                PROVISIONER.to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_owned(), storage)])),
            access_modes: spec.access_modes.clone(),
            persistent_volume_reclaim_policy: class
                .reclaim_policy
                .clone()
                .or(Some("Delete".into())),
            storage_class_name: class.metadata.name.clone(),
            claim_ref: Some(ObjectReference {
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: Some(uid.clone()),
                ..Default::default()
            }),
            // Nothing is ever written: the simulated pods have no filesystem.
            host_path: Some(HostPathVolumeSource {
                path: format!("/var/lib/enclii-simulated-volumes/{uid}"),
                type_: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Runs until the process ends: provisions claims and deletes released volumes.
pub async fn run(client: kube::Client) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let classes: Api<StorageClass> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let released = {
        let volumes = volumes.clone();
        async move {
            let mut events = watcher(volumes.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = events.next().await {
                let Ok(pv) = event else { continue };
                let ours = pv
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("pv.kubernetes.io/provisioned-by"))
                    .is_some_and(|p| p == PROVISIONER);
                let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
                if ours && phase == Some("Released") {
                    let name = pv.metadata.name.clone().unwrap_or_default();
                    if let Err(error) = volumes.delete(&name, &DeleteParams::default()).await {
                        tracing::warn!(%name, %error, "could not delete a released volume");
                    }
                }
            }
        }
    };
    let provision = async move {
        let mut events = watcher(claims, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(event) = events.next().await {
            let Ok(claim) = event else { continue };
            let class_name = claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.clone())
                .unwrap_or_default();
            if class_name.is_empty() {
                continue;
            }
            let class = classes.get_opt(&class_name).await.ok().flatten();
            let Some(pv) = volume_for(&claim, class.as_ref()) else {
                continue;
            };
            match volumes.create(&PostParams::default(), &pv).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(error) => tracing::warn!(%error, "could not provision a volume"),
            }
        }
    };
    futures::join!(released, provision);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(volume: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cache", "namespace": "ns", "uid": "u1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "simulated",
                     "volumeName": volume, "resources": {"requests": {"storage": "5Gi"}}}
        }))
        .unwrap()
    }

    fn class(provisioner: &str) -> StorageClass {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "simulated"}, "provisioner": provisioner
        }))
        .unwrap()
    }

    #[test]
    fn claims_of_our_classes_get_a_volume_of_their_size_bound_to_them() {
        let pv = volume_for(&claim(None), Some(&class(PROVISIONER))).unwrap();
        let spec = pv.spec.unwrap();
        assert_eq!(spec.capacity.unwrap()["storage"].0, "5Gi");
        assert_eq!(spec.claim_ref.unwrap().uid.as_deref(), Some("u1"));
        assert_eq!(spec.storage_class_name.as_deref(), Some("simulated"));
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-u1"));
    }

    #[test]
    fn bound_claims_and_other_provisioners_are_left_alone() {
        assert!(volume_for(&claim(Some("pv-1")), Some(&class(PROVISIONER))).is_none());
        assert!(volume_for(&claim(None), Some(&class("ebs.csi.aws.com"))).is_none());
        assert!(volume_for(&claim(None), None).is_none());
    }
}
