//! Verifier tests: the exact Kubernetes API calls the engine makes (method, path, query, content
//! type, body), answered by a `tower-test` mock in place of an API server. The tests against the
//! local cluster show that deployments work end to end; these pin down how few and which calls
//! they take, and what a real API server cannot be made to do on cue (answer 500).

use enclii_spec::render::{self, Target};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};
use switchyard_engine::deploy::apply;
use tower_test::mock::{self, Handle};

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const NS: &str = "enclii-platform-production";

fn client() -> (kube::Client, Handle<Request<Body>, Response<Body>>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

fn manifests() -> Vec<render::Manifest> {
    let file = enclii_spec::parse(DOCS).unwrap();
    render::render(
        &file,
        &Target {
            project: "enclii-platform",
            environment: "production",
            namespace: NS,
            image: "ghcr.io/madfam-io/docs:1",
            release: "r1",
            gateway: None,
            progress_deadline_secs: enclii_spec::render::DEFAULT_PROGRESS_DEADLINE_SECS,
        },
    )
}

/// One expected request: returns it (method, path?query, content type, JSON body) after answering.
async fn next(
    handle: &mut Handle<Request<Body>, Response<Body>>,
    status: u16,
    answer: Value,
) -> (Method, String, Option<String>, Value) {
    let (request, respond) = handle.next_request().await.expect("a request");
    let method = request.method().clone();
    let uri = request.uri().to_string();
    let content_type = request
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    respond.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap(),
    );
    (method, uri, content_type, body)
}

fn object(m: &render::Manifest) -> Value {
    let mut body = m.body.clone();
    body["metadata"]["resourceVersion"] = "1".into();
    body
}

#[tokio::test]
async fn apply_sends_one_server_side_apply_patch_per_object_in_order() {
    let (client, mut handle) = client();
    let manifests = manifests();
    let expected = manifests.clone();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for m in &expected {
            let call = next(&mut handle, 200, object(m)).await;
            seen.push((m.clone(), call));
        }
        seen
    });
    let applied = apply::apply_all(&client, &manifests).await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(applied.len(), manifests.len());
    for (m, (method, uri, content_type, body)) in seen {
        assert_eq!(method, Method::PATCH, "{uri}");
        let path = match (m.api_version.split_once('/'), &m.namespace) {
            (None, None) => format!("/api/v1/{}s/{}", m.kind.to_lowercase(), m.name),
            (None, Some(ns)) => format!(
                "/api/v1/namespaces/{ns}/{}/{}",
                apply::api_resource(&m.api_version, &m.kind).plural,
                m.name
            ),
            (Some(_), Some(ns)) => format!(
                "/apis/{}/namespaces/{ns}/{}/{}",
                m.api_version,
                apply::api_resource(&m.api_version, &m.kind).plural,
                m.name
            ),
            (Some(_), None) => unreachable!(),
        };
        assert_eq!(
            uri,
            format!("{path}?&force=true&fieldManager=enclii"),
            "{}",
            m.kind
        );
        assert_eq!(
            content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(
            body, m.body,
            "the body is the rendered object, nothing added"
        );
    }
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_call_and_a_422_is_not() {
    let (client, mut handle) = client();
    let manifests = manifests()[..1].to_vec();
    let ns = manifests[0].clone();
    let server = tokio::spawn(async move {
        let failure = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcd", "reason": "InternalError", "code": 500});
        let first = next(&mut handle, 500, failure).await;
        let second = next(&mut handle, 200, object(&ns)).await;
        let invalid = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "spec.x: Invalid value", "reason": "Invalid", "code": 422});
        let third = next(&mut handle, 422, invalid).await;
        (first, second, third, handle)
    });
    apply::apply_all(&client, &manifests).await.unwrap();
    let error = apply::apply_all(&client, &manifests).await.unwrap_err();
    let (first, second, third, mut handle) = server.await.unwrap();
    assert_eq!(
        (first.0.clone(), first.1.clone()),
        (second.0, second.1),
        "the retry repeats the call"
    );
    assert_eq!(third.0, Method::PATCH);
    assert!(
        error.contains("422") && error.contains("spec.x: Invalid value"),
        "{error}"
    );
    // Nothing else was sent: a 422 is final.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), handle.next_request())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn prune_lists_each_kind_by_owner_labels_and_deletes_only_what_the_render_lacks() {
    let (client, mut handle) = client();
    let keep = manifests();
    let server = tokio::spawn(async move {
        let mut calls = Vec::new();
        for (api_version, kind) in apply::PRUNABLE {
            let ar = apply::api_resource(api_version, kind);
            // The cluster holds the kept Deployment plus a stale canary Deployment and a stale
            // ConfigMap, all applied by Enclii, and a ConfigMap with Enclii's labels that another
            // field manager applied (never pruned).
            let ours = json!([{"manager": apply::FIELD_MANAGER, "operation": "Apply"}]);
            let theirs = json!([{"manager": "kubectl", "operation": "Apply"}]);
            let items = match kind {
                "Deployment" => vec![
                    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "docs-site", "namespace": NS, "managedFields": ours}}),
                    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "docs-site-canary", "namespace": NS, "managedFields": ours}}),
                ],
                "ConfigMap" => vec![
                    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "old-config", "namespace": NS, "managedFields": ours}}),
                    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "operator-notes", "namespace": NS, "managedFields": theirs}}),
                ],
                _ => vec![],
            };
            let list = json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": {"resourceVersion": "9"}, "items": items});
            let listed = next(&mut handle, 200, list).await;
            calls.push((ar.plural.clone(), listed));
            for name in match kind {
                "Deployment" => vec!["docs-site-canary"],
                "ConfigMap" => vec!["old-config"],
                _ => vec![],
            } {
                let deleted = next(
                    &mut handle,
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                )
                .await;
                calls.push((format!("delete {name}"), deleted));
            }
        }
        calls
    });
    let pruned = apply::prune(&client, NS, "docs-site", "production", &keep)
        .await
        .unwrap();
    let calls = server.await.unwrap();
    assert_eq!(
        pruned,
        ["Deployment/docs-site-canary", "ConfigMap/old-config"]
    );
    let selector = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Denclii%2Cenclii.dev%2Fservice%3Ddocs-site%2Cenclii.dev%2Fenvironment%3Dproduction";
    let lists: Vec<&(String, (Method, String, Option<String>, Value))> = calls
        .iter()
        .filter(|(what, _)| !what.starts_with("delete"))
        .collect();
    assert_eq!(
        lists.len(),
        apply::PRUNABLE.len(),
        "one list per prunable kind"
    );
    for (plural, (method, uri, _, _)) in lists {
        assert_eq!(method, Method::GET);
        assert!(
            uri.contains(&format!("/namespaces/{NS}/{plural}?")) && uri.contains(selector),
            "{uri}"
        );
    }
    let deletes: Vec<&String> = calls
        .iter()
        .filter(|(w, _)| w.starts_with("delete"))
        .map(|(_, c)| &c.1)
        .collect();
    assert_eq!(
        deletes,
        [
            &format!("/apis/apps/v1/namespaces/{NS}/deployments/docs-site-canary?"),
            &format!("/api/v1/namespaces/{NS}/configmaps/old-config?"),
        ]
    );
}
