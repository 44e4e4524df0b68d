//! The Enclii service spec: one truth for the server and the `enclii` CLI.
//!
//! [`parse`] turns a spec file (YAML, possibly several documents) into a typed [`ServiceSpec`] plus
//! the extra Kubernetes objects that travel with it, or into every problem it has, each with its
//! line and column. Nothing here does I/O.

pub mod cron;
pub mod diagnostic;
pub mod model;
#[cfg(feature = "render")]
pub mod render;
pub mod rules;
mod structure;
pub mod yaml;

pub use diagnostic::{Diagnostic, Pos, Severity};
pub use model::*;

use std::sync::OnceLock;

use yaml::{Node, Value};

/// Specs larger than this are refused before parsing: real ones are a few kilobytes.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;

/// Kinds that may accompany a service in its file. Namespaced, and scoped to the service's own
/// namespace at deploy time, so that a spec cannot reach beyond its environment.
pub const EXTRA_KINDS: [(&str, &str); 5] = [
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
];

/// Objects the platform puts in every tenant namespace (its isolation NetworkPolicy, quota and
/// limits) are named with this prefix; a spec's own objects may not be, so that no spec can
/// overwrite them.
pub const RESERVED_PREFIX: &str = "enclii-";

/// A parsed spec file.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecFile {
    pub service: ServiceSpec,
    pub extra_objects: Vec<ExtraObject>,
    /// Problems that do not stop the import (the spec means something, perhaps not what was meant).
    pub warnings: Vec<Diagnostic>,
}

/// A Kubernetes object from the same file, kept as written apart from its namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub pos: Pos,
    pub body: serde_json::Value,
}

impl SpecFile {
    /// The rollout to use: the spec's own, or the platform default (canary 10 → 50 → 100, 2%).
    pub fn rollout(&self) -> Rollout {
        self.service.spec.rollout.clone().unwrap_or_default()
    }
}

/// Parses and validates a spec file. On failure, returns every diagnostic (errors and warnings),
/// ordered by position.
pub fn parse(text: &str) -> Result<SpecFile, Vec<Diagnostic>> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(vec![Diagnostic::error(
            Pos { line: 1, col: 1 },
            format!(
                "the file is {} bytes; specs are limited to {} KiB",
                text.len(),
                MAX_SPEC_BYTES / 1024
            ),
        )]);
    }
    let docs = yaml::load(text)?;
    let mut diagnostics = Vec::new();
    let mut service: Option<ServiceSpec> = None;
    let mut service_seen = false;
    let mut extra_objects = Vec::new();

    for doc in &docs {
        let Some(root) = &doc.root else { continue }; // only comments
        let api_version = root
            .get("apiVersion")
            .and_then(Node::as_str)
            .unwrap_or_default();
        if api_version.starts_with("enclii.dev/") {
            if service_seen {
                diagnostics.push(Diagnostic::error(
                    root.pos,
                    "only one Enclii service per file; put the others in files of their own",
                ));
                continue;
            }
            service_seen = true;
            service = service_document(root, &mut diagnostics);
        } else {
            if let Some(obj) = extra_object(root, &mut diagnostics) {
                extra_objects.push(obj);
            }
        }
    }
    if !service_seen {
        diagnostics.push(Diagnostic::error(
            Pos { line: 1, col: 1 },
            "no service found: a spec needs a document with `apiVersion: enclii.dev/v1` and `kind: Service`",
        ));
    }
    diagnostics.sort_by_key(|d| d.pos);
    match service {
        Some(service) if !diagnostics.iter().any(Diagnostic::is_error) => Ok(SpecFile {
            service,
            extra_objects,
            warnings: diagnostics,
        }),
        _ => Err(diagnostics),
    }
}

/// The service document's problems of every phase at once, in file order: its structure against
/// the schema, the values serde refuses, and the rules about meaning. A value that fails an
/// earlier phase is left out (with the whole list it sits in, so that list positions stay true)
/// and the rest is read and checked as far as it can be, so fixing one error does not reveal the
/// next. `Some` only when the document was read whole (the caller still refuses it on any error).
fn service_document(root: &Node, diagnostics: &mut Vec<Diagnostic>) -> Option<ServiceSpec> {
    let schema = schema();
    let mut checker = structure::Checker::new(schema);
    checker.check(root, schema, &mut Vec::new());
    let whole = checker.errors.is_empty();
    diagnostics.extend(checker.errors);
    let mut json = root.to_json();
    let mut left_out: Vec<Vec<yaml::Seg>> = Vec::new();
    for path in checker.invalid {
        leave_out(&mut json, &path, &mut left_out);
    }
    // Bounded: each round leaves out one more part of the document.
    for _ in 0..32 {
        match serde_path_to_error::deserialize::<_, ServiceSpec>(&json) {
            Ok(spec) => {
                // A rule about a value left out, or about what holds it (`needs value or
                // valueFrom`), restates an error already reported there.
                let restated: Vec<Pos> = left_out
                    .iter()
                    .flat_map(|p| [root.at(p), p.split_last().and_then(|(_, up)| root.at(up))])
                    .flatten()
                    .map(|n| n.pos)
                    .collect();
                diagnostics.extend(
                    rules::check(&spec, root)
                        .into_iter()
                        .filter(|d| !restated.contains(&d.pos)),
                );
                return whole.then_some(spec);
            }
            Err(e) => {
                let path: Vec<yaml::Seg> = e
                    .path()
                    .iter()
                    .filter_map(|s| match s {
                        serde_path_to_error::Segment::Seq { index } => {
                            Some(yaml::Seg::Index(*index))
                        }
                        serde_path_to_error::Segment::Map { key } => {
                            Some(yaml::Seg::Key(key.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                // A field missing because an earlier phase left out its value (or what holds it)
                // was reported already.
                let consequence = left_out
                    .iter()
                    .any(|l| l.starts_with(&path) || path.starts_with(l));
                if !consequence {
                    // A value format (a duration, say) serde refused: point at that value, or at
                    // its nearest ancestor present in the file.
                    let pos = (0..=path.len())
                        .rev()
                        .find_map(|n| root.at(&path[..n]))
                        .map(|n| n.pos)
                        .unwrap_or(root.pos);
                    diagnostics.push(Diagnostic::error(pos, e.inner().to_string()));
                }
                if path.is_empty() {
                    return None;
                }
                leave_out(&mut json, &path, &mut left_out);
            }
        }
    }
    None
}

/// Removes the value at `path` from `json`. A list item itself is never removed (the positions of
/// the items after it would be wrong): its whole list is.
fn leave_out(json: &mut serde_json::Value, path: &[yaml::Seg], left_out: &mut Vec<Vec<yaml::Seg>>) {
    let mut path = path;
    while let Some((yaml::Seg::Index(_), rest)) = path.split_last() {
        path = rest;
    }
    let Some((yaml::Seg::Key(last), parent)) = path.split_last() else {
        return;
    };
    let mut at = &mut *json;
    for seg in parent {
        let next = match seg {
            yaml::Seg::Key(k) => at.get_mut(k.as_str()),
            yaml::Seg::Index(i) => at.get_mut(*i),
        };
        match next {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(last);
    }
    left_out.push(path.to_vec());
}

fn extra_object(root: &Node, diagnostics: &mut Vec<Diagnostic>) -> Option<ExtraObject> {
    if !matches!(root.value, Value::Map(_)) {
        diagnostics.push(Diagnostic::error(
            root.pos,
            format!(
                "expected a Kubernetes object (a mapping), found {}",
                root.kind()
            ),
        ));
        return None;
    }
    let field = |name: &str| root.get(name).and_then(Node::as_str);
    let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
        diagnostics.push(Diagnostic::error(
            root.pos,
            "a Kubernetes object needs `apiVersion` and `kind`",
        ));
        return None;
    };
    let kind_pos = root.get("kind").map(|n| n.pos).unwrap_or(root.pos);
    if !EXTRA_KINDS.contains(&(api_version, kind)) {
        let allowed: Vec<String> = EXTRA_KINDS
            .iter()
            .map(|(a, k)| format!("{k} ({a})"))
            .collect();
        diagnostics.push(Diagnostic::error(
            kind_pos,
            format!(
                "{kind} ({api_version}) cannot accompany a service; allowed: {}",
                allowed.join(", ")
            ),
        ));
        return None;
    }
    if kind == "RoleBinding" {
        role_binding(root, diagnostics);
    }
    let metadata = root.get("metadata");
    let Some(name_node) = metadata.and_then(|m| m.get("name")) else {
        diagnostics.push(Diagnostic::error(
            metadata.map(|m| m.pos).unwrap_or(root.pos),
            format!("the {kind} needs `metadata.name`"),
        ));
        return None;
    };
    let name = name_node.as_str().unwrap_or_default().to_owned();
    if let Err(why) = rules::dns_label(&name) {
        diagnostics.push(Diagnostic::error(
            name_node.pos,
            format!("`metadata.name` {why}"),
        ));
        return None;
    }
    if name.starts_with(RESERVED_PREFIX) {
        diagnostics.push(Diagnostic::error(
            name_node.pos,
            format!(
                "`{name}`: names starting with `{RESERVED_PREFIX}` are reserved for the platform's own objects in every namespace"
            ),
        ));
        return None;
    }
    if let Some(ns) = metadata.and_then(|m| m.get("namespace")) {
        diagnostics.push(Diagnostic::warning(
            ns.pos,
            format!(
                "namespace `{}` is replaced by the environment's namespace when deployed",
                ns.as_str().unwrap_or_default()
            ),
        ));
    }
    let mut body = root.to_json();
    if let Some(meta) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("namespace");
    }
    Some(ExtraObject {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name,
        pos: root.pos,
        body,
    })
}

/// A RoleBinding may grant only what a tenant holds inside its own namespace: a `Role` of that
/// namespace (a `ClusterRole` such as `cluster-admin` would hand out rights the project never had)
/// to the namespace's own ServiceAccounts (a User, a Group or another namespace's account would let
/// someone outside the project act in it). Subjects' namespace is filled in at render.
fn role_binding(root: &Node, diagnostics: &mut Vec<Diagnostic>) {
    match root.get("roleRef") {
        None => diagnostics.push(Diagnostic::error(
            root.pos,
            "the RoleBinding needs `roleRef` (a Role of this spec's namespace)",
        )),
        Some(role_ref) => {
            let kind = role_ref.get("kind");
            if kind.and_then(Node::as_str) != Some("Role") {
                diagnostics.push(Diagnostic::error(
                    kind.map(|k| k.pos).unwrap_or(role_ref.pos),
                    format!(
                        "`roleRef.kind` must be `Role`, found `{}`: a tenant may bind only roles of its own namespace, never a ClusterRole",
                        kind.and_then(Node::as_str).unwrap_or_default()
                    ),
                ));
            }
            if let Some(group) = role_ref.get("apiGroup") {
                if group.as_str() != Some("rbac.authorization.k8s.io") {
                    diagnostics.push(Diagnostic::error(
                        group.pos,
                        "`roleRef.apiGroup` must be `rbac.authorization.k8s.io`",
                    ));
                }
            }
        }
    }
    let Some(subjects) = root.get("subjects") else {
        return;
    };
    let Value::Seq(items) = &subjects.value else {
        diagnostics.push(Diagnostic::error(
            subjects.pos,
            format!("`subjects` must be a list, found {}", subjects.kind()),
        ));
        return;
    };
    for subject in items {
        let kind = subject.get("kind");
        if kind.and_then(Node::as_str) != Some("ServiceAccount") {
            diagnostics.push(Diagnostic::error(
                kind.map(|k| k.pos).unwrap_or(subject.pos),
                format!(
                    "a subject must be a `ServiceAccount` of this spec's namespace, found `{}`",
                    kind.and_then(Node::as_str).unwrap_or_default()
                ),
            ));
        }
        if let Some(ns) = subject.get("namespace") {
            diagnostics.push(Diagnostic::error(
                ns.pos,
                format!(
                    "a subject may not name a namespace (`{}`): only this environment's own ServiceAccounts can be bound",
                    ns.as_str().unwrap_or_default()
                ),
            ));
        }
    }
}

/// The JSON Schema of the service document, generated from [`ServiceSpec`].
pub fn schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| schemars::schema_for!(ServiceSpec).to_value())
}

#[cfg(test)]
mod tests;
