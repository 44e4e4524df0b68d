//! Tenant namespaces: what the platform (never a spec) puts in every environment's namespace, and
//! the rule that Switchyard never adopts a namespace it did not create for that project.
//!
//! Anyone who can sign in can own a project, so a project's namespace is the fence between
//! strangers: Pod Security admission at the platform's level, a NetworkPolicy that admits only
//! the namespace's own pods and the platform's (ingress controller, Prometheus), and a quota.
//! These objects are named with [`enclii_spec::RESERVED_PREFIX`], which specs may not use, and
//! applied by their own field manager, so no spec can overwrite them.

use std::collections::BTreeMap;

use enclii_spec::render::{LABEL_ENVIRONMENT, LABEL_PROJECT, MANAGED_BY, Manifest};
use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use kube::api::{Api, Patch, PatchParams};
use uuid::Uuid;

use super::apply;
use crate::config::TenancySettings;

/// The label that names the project a namespace was created for: checked before every deploy.
pub const LABEL_PROJECT_ID: &str = "enclii.dev/project-id";
pub const ISOLATION_POLICY: &str = "enclii-tenant-isolation";
pub const QUOTA: &str = "enclii-quota";
pub const LIMITS: &str = "enclii-limits";
/// The field manager of the platform's objects, apart from the services' own (`enclii`).
pub const FIELD_MANAGER: &str = "enclii-platform";

/// Whose namespace this is.
pub struct Tenant<'a> {
    pub namespace: &'a str,
    pub project: &'a str,
    pub project_id: Uuid,
    pub environment: &'a str,
}

/// Why a namespace cannot be deployed to.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error(
        "namespace {namespace} exists and was not created by Enclii for this project ({why}); Enclii never adopts a namespace it did not create: choose another environment name, or have a cluster administrator remove it"
    )]
    NotOurs { namespace: String, why: String },
    #[error("the cluster refuses the namespace's platform objects: {0}")]
    Cluster(String),
}

/// May `labels` (of an existing namespace) be deployed to for `project_id`?
pub fn ownership(
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
    project_id: Uuid,
) -> Result<(), Refusal> {
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let why = if label(MANAGED_BY.0) != Some(MANAGED_BY.1) {
        "it is not labelled as managed by Enclii".to_owned()
    } else {
        match label(LABEL_PROJECT_ID) {
            Some(id) if id == project_id.to_string() => return Ok(()),
            Some(_) => "it belongs to another project".to_owned(),
            None => format!("it has no {LABEL_PROJECT_ID} label"),
        }
    };
    Err(Refusal::NotOurs {
        namespace: namespace.to_owned(),
        why,
    })
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

/// The namespace and the platform's objects in it, in apply order. Pure.
pub fn objects(
    t: &Tenant,
    policy: &TenancySettings,
    gateway_namespace: Option<&str>,
) -> Vec<Manifest> {
    let level = policy.pod_security.as_str();
    let mut labels = BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (LABEL_PROJECT.to_owned(), t.project.to_owned()),
        (LABEL_PROJECT_ID.to_owned(), t.project_id.to_string()),
        (LABEL_ENVIRONMENT.to_owned(), t.environment.to_owned()),
        // The specs' NetworkPolicies select namespaces by a `name` label.
        ("name".to_owned(), t.namespace.to_owned()),
    ]);
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            level.to_owned(),
        );
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".to_owned(),
        );
    }
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(t.namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
            (LABEL_PROJECT.to_owned(), t.project.to_owned()),
        ])),
        ..Default::default()
    };
    let mut out = vec![enclii_spec::render::manifest(Namespace {
        metadata: ObjectMeta {
            name: Some(t.namespace.to_owned()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    })];
    let mut platform: Vec<String> = policy.allow_from_namespaces.clone();
    if let Some(g) = gateway_namespace {
        platform.push(g.to_owned());
    }
    platform.sort();
    platform.dedup();
    let mut from = vec![NetworkPolicyPeer {
        // Every pod of this namespace.
        pod_selector: Some(LabelSelector::default()),
        ..Default::default()
    }];
    if !platform.is_empty() {
        from.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "kubernetes.io/metadata.name".into(),
                    operator: "In".into(),
                    values: Some(platform),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    out.push(enclii_spec::render::manifest(NetworkPolicy {
        metadata: meta(ISOLATION_POLICY),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(from),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }));
    if let Some(hard) = quantities(&policy.quota) {
        out.push(enclii_spec::render::manifest(ResourceQuota {
            metadata: meta(QUOTA),
            spec: Some(ResourceQuotaSpec {
                hard: Some(hard),
                ..Default::default()
            }),
            ..Default::default()
        }));
    }
    if let Some(default_request) = quantities(&policy.default_request) {
        out.push(enclii_spec::render::manifest(LimitRange {
            metadata: meta(LIMITS),
            spec: Some(LimitRangeSpec {
                limits: vec![LimitRangeItem {
                    type_: "Container".into(),
                    default_request: Some(default_request),
                    ..Default::default()
                }],
            }),
        }));
    }
    out
}

/// Checks that the namespace is this project's (or does not exist yet), then applies the
/// namespace and the platform's objects in it. Before every deploy: the platform's policy may
/// have changed, and a namespace must never be adopted.
#[tracing::instrument(skip_all, fields(namespace = t.namespace))]
pub async fn ensure(
    client: &kube::Client,
    t: &Tenant<'_>,
    policy: &TenancySettings,
    gateway_namespace: Option<&str>,
) -> Result<(), Refusal> {
    ensure_objects(
        client,
        t.namespace,
        t.project_id,
        &objects(t, policy, gateway_namespace),
    )
    .await
}

/// Applies a project's namespace and the platform's objects in it (`objects`, the namespace
/// first), unless the namespace exists and is not this project's: environments' namespaces and
/// builds' (`pipeline/job.rs::namespace_objects`) alike.
#[tracing::instrument(skip(client, objects))]
pub async fn ensure_objects(
    client: &kube::Client,
    namespace: &str,
    project_id: Uuid,
    objects: &[Manifest],
) -> Result<(), Refusal> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let existing = apply::with_retries(
        "read the namespace",
        5,
        std::time::Duration::from_secs(10),
        || namespaces.get_opt(namespace),
    )
    .await
    .map_err(Refusal::Cluster)?;
    if let Some(ns) = existing {
        ownership(namespace, ns.metadata.labels.as_ref(), project_id)?;
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for m in objects {
        let ar = apply::api_resource(&m.api_version, &m.kind);
        let api: Api<kube::api::DynamicObject> = match &m.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let what = format!("apply {}/{}", m.kind, m.name);
        let patch = Patch::Apply(&m.body);
        apply::with_retries(&what, 5, std::time::Duration::from_secs(10), || {
            api.patch(&m.name, &params, &patch)
        })
        .await
        .map_err(Refusal::Cluster)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: Uuid) -> Tenant<'static> {
        Tenant {
            namespace: "shop--production",
            project: "shop",
            project_id: id,
            environment: "production",
        }
    }

    #[test]
    fn only_a_namespace_created_for_this_project_may_be_deployed_to() {
        let id = Uuid::from_u128(7);
        let ours = BTreeMap::from([
            (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
            (LABEL_PROJECT_ID.to_owned(), id.to_string()),
        ]);
        assert_eq!(ownership("n", Some(&ours), id), Ok(()));
        let theirs = BTreeMap::from([
            (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
            (LABEL_PROJECT_ID.to_owned(), Uuid::from_u128(8).to_string()),
        ]);
        for (labels, why) in [
            (None, "not labelled as managed by Enclii"),
            (
                Some(BTreeMap::from([(
                    LABEL_PROJECT_ID.to_owned(),
                    id.to_string(),
                )])),
                "not labelled as managed by Enclii",
            ),
            (Some(theirs), "belongs to another project"),
            (
                Some(BTreeMap::from([(
                    MANAGED_BY.0.to_owned(),
                    MANAGED_BY.1.to_owned(),
                )])),
                "has no enclii.dev/project-id label",
            ),
        ] {
            let e = ownership("kube-system", labels.as_ref(), id).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(
                    "namespace kube-system exists and was not created by Enclii for this project"
                ),
                "{text}"
            );
            assert!(text.contains(why), "{text}");
        }
    }

    #[test]
    fn the_namespace_carries_pod_security_and_the_platform_objects_are_reserved_names() {
        let id = Uuid::from_u128(7);
        let policy = TenancySettings::default();
        let objects = objects(&tenant(id), &policy, Some("gateways"));
        let kinds: Vec<(&str, &str)> = objects
            .iter()
            .map(|m| (m.kind.as_str(), m.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Namespace", "shop--production"),
                ("NetworkPolicy", ISOLATION_POLICY),
                ("ResourceQuota", QUOTA),
                ("LimitRange", LIMITS)
            ]
        );
        let labels = &objects[0].body["metadata"]["labels"];
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels[LABEL_PROJECT_ID], id.to_string());
        for m in &objects[1..] {
            assert!(m.name.starts_with(enclii_spec::RESERVED_PREFIX));
            assert_eq!(m.namespace.as_deref(), Some("shop--production"));
        }
        let from = &objects[1].body["spec"]["ingress"][0]["from"];
        assert_eq!(from[0], serde_json::json!({"podSelector": {}}));
        let allowed = from[1]["namespaceSelector"]["matchExpressions"][0]["values"]
            .as_array()
            .unwrap();
        assert!(allowed.contains(&"gateways".into()));
        assert!(allowed.contains(&"ingress-nginx".into()));
        assert_eq!(
            objects[2].body["spec"]["hard"]["services.nodeports"], "0",
            "no tenant opens a port on every node"
        );
    }

    #[test]
    fn the_platform_chooses_the_pod_security_level() {
        let policy = TenancySettings {
            pod_security: crate::config::PodSecurityLevel::Baseline,
            quota: BTreeMap::new(),
            default_request: BTreeMap::new(),
            ..Default::default()
        };
        let objects = objects(&tenant(Uuid::nil()), &policy, None);
        assert_eq!(objects.len(), 2, "no quota or limits when none are set");
        assert_eq!(
            objects[0].body["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
            "baseline"
        );
    }
}
