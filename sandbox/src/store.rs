//! The sandbox's objects and their history. Every change gets the next resourceVersion and an
//! event, which watchers replay from any version still in the log and then follow live.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// `group/version/plural`, e.g. `apps/v1/deployments` or `/v1/pods` for the core group.
pub type Resource = String;

#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub resource: Resource,
    pub namespace: Option<String>,
    pub kind: &'static str,
    pub object: Value,
}

pub struct Store {
    inner: Mutex<Inner>,
    pub events: broadcast::Sender<Event>,
}

struct Inner {
    rv: u64,
    objects: BTreeMap<(Resource, Option<String>, String), Value>,
    log: Vec<Event>,
}

/// How many past events a watch can resume from; older versions answer 410 Gone, like the real one.
const LOG_LIMIT: usize = 10_000;

impl Store {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                log: Vec::new(),
            }),
            events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, resource: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(resource.to_owned(), ns.map(str::to_owned), name.to_owned()))
            .cloned()
    }

    /// Objects of a resource, in one namespace or all, matching a label selector.
    pub fn list(&self, resource: &str, ns: Option<&str>, selector: &Selector) -> (u64, Vec<Value>) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((r, n, _), _)| r == resource && (ns.is_none() || n.as_deref() == ns))
            .filter(|(_, v)| selector.matches(v))
            .map(|(_, v)| v.clone())
            .collect();
        (inner.rv, items)
    }

    /// Creates or replaces an object, stamping its metadata; returns the stored object.
    pub fn put(&self, resource: &str, ns: Option<&str>, name: &str, mut object: Value) -> Value {
        let mut inner = self.lock();
        inner.rv += 1;
        let rv = inner.rv;
        let key = (resource.to_owned(), ns.map(str::to_owned), name.to_owned());
        let existed = inner.objects.get(&key).cloned();
        let meta = &mut object["metadata"];
        meta["resourceVersion"] = rv.to_string().into();
        meta["name"] = name.into();
        if let Some(ns) = ns {
            meta["namespace"] = ns.into();
        }
        match &existed {
            Some(old) => {
                meta["uid"] = old["metadata"]["uid"].clone();
                meta["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
                let changed = old.get("spec") != object.get("spec");
                object["metadata"]["generation"] =
                    (if changed { generation + 1 } else { generation }).into();
            }
            None => {
                meta["uid"] = format!("{:08x}-sandbox-{rv}", rv).into();
                meta["creationTimestamp"] = chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
                    .into();
                meta["generation"] = 1.into();
            }
        }
        inner.objects.insert(key, object.clone());
        let event = Event {
            rv,
            resource: resource.to_owned(),
            namespace: ns.map(str::to_owned),
            kind: if existed.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            },
            object: object.clone(),
        };
        inner.log.push(event.clone());
        if inner.log.len() > LOG_LIMIT {
            inner.log.drain(..LOG_LIMIT / 10);
        }
        let _ = self.events.send(event);
        object
    }

    pub fn delete(&self, resource: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let mut inner = self.lock();
        let object =
            inner
                .objects
                .remove(&(resource.to_owned(), ns.map(str::to_owned), name.to_owned()))?;
        inner.rv += 1;
        let event = Event {
            rv: inner.rv,
            resource: resource.to_owned(),
            namespace: ns.map(str::to_owned),
            kind: "DELETED",
            object: object.clone(),
        };
        inner.log.push(event.clone());
        let _ = self.events.send(event);
        Some(object)
    }

    /// Events after `rv`, or None when `rv` is older than the log remembers.
    pub fn since(&self, rv: u64) -> Option<Vec<Event>> {
        let inner = self.lock();
        if let Some(first) = inner.log.first() {
            if rv + 1 < first.rv && rv != 0 {
                return None;
            }
        }
        Some(inner.log.iter().filter(|e| e.rv > rv).cloned().collect())
    }
}

/// Equality label selectors (`a=b,c`) and the `metadata.name` field selector.
#[derive(Debug, Default, Clone)]
pub struct Selector {
    labels: Vec<(String, Option<String>)>,
    name: Option<String>,
}

impl Selector {
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Self {
        let labels = labels
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|term| match term.split_once('=') {
                Some((k, v)) => (
                    k.trim_end_matches('=').to_owned(),
                    Some(v.trim_start_matches('=').to_owned()),
                ),
                None => (term.to_owned(), None),
            })
            .collect();
        let name = fields.and_then(|f| {
            f.split(',')
                .find_map(|t| t.strip_prefix("metadata.name=").map(str::to_owned))
        });
        Self { labels, name }
    }

    pub fn matches(&self, object: &Value) -> bool {
        if let Some(name) = &self.name {
            if object["metadata"]["name"].as_str() != Some(name) {
                return false;
            }
        }
        let labels = &object["metadata"]["labels"];
        self.labels.iter().all(|(k, v)| match v {
            Some(v) => labels[k].as_str() == Some(v),
            None => !labels[k].is_null(),
        })
    }
}

/// The kind of objects a resource's plural names, for list responses.
pub fn kind_of(plural: &str) -> &'static str {
    match plural {
        "namespaces" => "Namespace",
        "pods" => "Pod",
        "services" => "Service",
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        "serviceaccounts" => "ServiceAccount",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        "deployments" => "Deployment",
        "replicasets" => "ReplicaSet",
        "ingresses" => "Ingress",
        "horizontalpodautoscalers" => "HorizontalPodAutoscaler",
        "poddisruptionbudgets" => "PodDisruptionBudget",
        "networkpolicies" => "NetworkPolicy",
        "roles" => "Role",
        "rolebindings" => "RoleBinding",
        "jobs" => "Job",
        _ => "Object",
    }
}

pub fn not_found(plural: &str, name: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{plural} \"{name}\" not found"), "reason": "NotFound", "code": 404
    })
}
