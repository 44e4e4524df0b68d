//! A service's environment variables and secrets (set with `enclii secrets set`) in its pods:
//! plain values as env entries, Enclii-held secrets through one Kubernetes Secret per service and
//! environment (`{service}-env`), references to existing Secrets as `secretKeyRef`. Pure; the
//! driver loads and decrypts the rows.
//!
//! A checksum of every value goes on the pod template, so changing a secret rolls the pods like
//! any other change, and only the hash of a value is ever outside the Secret.

use std::collections::BTreeMap;

use base64::Engine as _;
use enclii_spec::render::{LABEL_SERVICE, Manifest};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const ANNOTATION_ENV_CHECKSUM: &str = "enclii.dev/env-checksum";

pub enum EnvValue {
    Plain(String),
    /// Decrypted for the Secret's body only; `fingerprint` (the sealed value's nonce, new at every
    /// change) goes into the checksum instead of anything derived from the value.
    Secret {
        value: secrecy::SecretString,
        fingerprint: Vec<u8>,
    },
    Ref {
        name: String,
        key: String,
    },
}

pub struct EnvEntry {
    pub name: String,
    pub value: EnvValue,
}

/// The Secret holding one set of values: named by its content's checksum, so that a canary with new
/// values gets its own Secret and the stable pods keep reading theirs (until promotion prunes it).
pub fn secret_name(service: &str, checksum: &str) -> String {
    format!("{service}-env-{}", &checksum[..10.min(checksum.len())])
}

/// Adds `entries` to every pod template in `manifests` (Deployments, Jobs and CronJobs: a release
/// command and a scheduled job run with the service's configuration; the entries override the
/// spec's of the same name) and, when any is secret, a Secret applied before the first of them.
pub fn inject(manifests: &mut Vec<Manifest>, service: &str, entries: &[EnvEntry]) {
    use secrecy::ExposeSecret;
    if entries.is_empty() {
        return;
    }
    // The checksum first: it names the Secret the entries refer to.
    let mut checksum = Sha256::new();
    for e in entries {
        checksum.update(e.name.as_bytes());
        match &e.value {
            EnvValue::Plain(v) => {
                checksum.update(b"=plain:");
                checksum.update(v.as_bytes());
            }
            EnvValue::Secret { fingerprint, .. } => {
                checksum.update(b"=secret:");
                checksum.update(fingerprint);
            }
            EnvValue::Ref { name, key } => checksum.update(format!("=ref:{name}/{key}").as_bytes()),
        }
    }
    let sum: String = checksum
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let secret = secret_name(service, &sum);
    let mut data = BTreeMap::new();
    let env: Vec<Value> = entries
        .iter()
        .map(|e| {
            match &e.value {
                EnvValue::Plain(v) => {
                    json!({ "name": e.name, "value": v })
                }
                EnvValue::Secret { value: v, .. } => {
                    data.insert(
                        e.name.clone(),
                        base64::engine::general_purpose::STANDARD.encode(v.expose_secret()),
                    );
                    json!({ "name": e.name, "valueFrom": { "secretKeyRef": { "name": secret, "key": e.name } } })
                }
                EnvValue::Ref { name, key } => {
                    json!({ "name": e.name, "valueFrom": { "secretKeyRef": { "name": name, "key": key } } })
                }
            }
        })
        .collect();
    let mut first_deployment = None;
    for (i, m) in manifests.iter_mut().enumerate() {
        let template = match m.kind.as_str() {
            "Deployment" | "Job" => &mut m.body["spec"]["template"],
            "CronJob" => &mut m.body["spec"]["jobTemplate"]["spec"]["template"],
            _ => continue,
        };
        first_deployment.get_or_insert(i);
        template["metadata"]["annotations"][ANNOTATION_ENV_CHECKSUM] = sum.clone().into();
        let container = &mut template["spec"]["containers"][0];
        let mut list: Vec<Value> = container["env"].as_array().cloned().unwrap_or_default();
        list.retain(|v| !entries.iter().any(|e| v["name"] == e.name.as_str()));
        list.extend(env.iter().cloned());
        container["env"] = Value::Array(list);
    }
    if data.is_empty() {
        return;
    }
    let Some(at) = first_deployment else { return };
    let labels = manifests[at].body["metadata"]["labels"].clone();
    let namespace = manifests[at].namespace.clone();
    let mut labels = labels;
    if let Some(l) = labels.as_object_mut() {
        // The track belongs to the Deployment, not to the Secret both tracks read; so does a
        // Job's name.
        l.remove(enclii_spec::render::LABEL_TRACK);
        l.remove(enclii_spec::render::LABEL_JOB);
        l.insert(LABEL_SERVICE.into(), service.into());
    }
    let body = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": { "name": secret, "namespace": namespace, "labels": labels },
        "data": data,
    });
    manifests.insert(
        at,
        Manifest {
            api_version: "v1".into(),
            kind: "Secret".into(),
            name: secret,
            namespace,
            body,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use enclii_spec::render::{self, Target};

    fn manifests() -> Vec<Manifest> {
        let file = enclii_spec::parse(include_str!(
            "../../../spec/fixtures/dogfooding/switchyard-api.yaml"
        ))
        .unwrap();
        render::render(
            &file,
            &Target {
                project: "enclii-platform",
                environment: "production",
                namespace: "enclii-platform-production",
                image: "i",
                release: "r",
                gateway: None,
                progress_deadline_secs: enclii_spec::render::DEFAULT_PROGRESS_DEADLINE_SECS,
            },
        )
    }

    fn entries(secret: &str) -> Vec<EnvEntry> {
        vec![
            EnvEntry {
                name: "MODE".into(),
                value: EnvValue::Plain("fast".into()),
            },
            EnvEntry {
                name: "API_KEY".into(),
                value: EnvValue::Secret {
                    value: secret.to_owned().into(),
                    fingerprint: secret.as_bytes().to_vec(),
                },
            },
            EnvEntry {
                name: "DATABASE_URL".into(),
                value: EnvValue::Ref {
                    name: "db".into(),
                    key: "url".into(),
                },
            },
        ]
    }

    #[test]
    fn values_reach_the_pods_and_secrets_go_through_a_secret() {
        let mut m = manifests();
        inject(&mut m, "switchyard-api", &entries("s3cret"));
        let secret_at = m.iter().position(|x| x.kind == "Secret").unwrap();
        let deploy_at = m.iter().position(|x| x.kind == "Deployment").unwrap();
        assert!(
            secret_at < deploy_at,
            "the Secret is applied before the pods that read it"
        );
        let secret = &m[secret_at].body;
        let name = secret["metadata"]["name"].as_str().unwrap().to_owned();
        assert!(
            name.starts_with("switchyard-api-env-")
                && name.len() == "switchyard-api-env-".len() + 10,
            "{name}"
        );
        assert_eq!(secret["data"]["API_KEY"], "czNjcmV0");
        assert_eq!(
            secret["metadata"]["labels"][LABEL_SERVICE],
            "switchyard-api"
        );
        let env = m[deploy_at].body["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .clone();
        let find = |n: &str| env.iter().find(|e| e["name"] == n).unwrap().clone();
        assert_eq!(find("MODE")["value"], "fast");
        assert_eq!(
            find("API_KEY")["valueFrom"]["secretKeyRef"]["name"],
            name.as_str()
        );
        assert_eq!(
            find("DATABASE_URL")["valueFrom"]["secretKeyRef"]["key"],
            "url"
        );
        // The value itself is nowhere but in the Secret.
        assert!(!m[deploy_at].body.to_string().contains("s3cret"));
    }

    #[test]
    fn a_changed_secret_changes_the_pod_template() {
        let checksum = |secret: &str| {
            let mut m = manifests();
            inject(&mut m, "switchyard-api", &entries(secret));
            let d = m.iter().find(|x| x.kind == "Deployment").unwrap();
            d.body["spec"]["template"]["metadata"]["annotations"][ANNOTATION_ENV_CHECKSUM].clone()
        };
        assert_ne!(checksum("a"), checksum("b"));
        assert_eq!(checksum("a"), checksum("a"));
    }

    #[test]
    fn entries_override_the_specs_and_none_change_nothing() {
        let mut m = manifests();
        let before = m.clone();
        inject(&mut m, "switchyard-api", &[]);
        assert_eq!(m, before);
        let spec_env = before.iter().find(|x| x.kind == "Deployment").unwrap().body["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut m = manifests();
        inject(
            &mut m,
            "switchyard-api",
            &[EnvEntry {
                name: spec_env.clone(),
                value: EnvValue::Plain("override".into()),
            }],
        );
        let env = m.iter().find(|x| x.kind == "Deployment").unwrap().body["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().clone();
        let same: Vec<&Value> = env
            .iter()
            .filter(|e| e["name"] == spec_env.as_str())
            .collect();
        assert_eq!(same.len(), 1);
        assert_eq!(same[0]["value"], "override");
        assert!(
            !m.iter().any(|x| x.kind == "Secret"),
            "no secret values, no Secret"
        );
    }
}
