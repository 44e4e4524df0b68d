//! The Kubernetes API surface the engine uses: server-side apply (create or merge), get, list,
//! watch with resourceVersions, delete, status, and pod logs; over real HTTP, so the real kube-rs
//! client talks to it unchanged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::Shared;
use crate::store::{Selector, kind_of, not_found};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async {
                Json(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-enclii-sandbox"}))
            }),
        )
        .route(
            "/api/v1/{plural}",
            get(core_cluster).patch(core_cluster).delete(core_cluster),
        )
        .route(
            "/api/v1/{plural}/{name}",
            get(core_cluster_named)
                .patch(core_cluster_named)
                .delete(core_cluster_named),
        )
        .route("/api/v1/namespaces/{ns}/{plural}", get(core_ns))
        .route(
            "/api/v1/namespaces/{ns}/{plural}/{name}",
            get(core_ns_named)
                .patch(core_ns_named)
                .delete(core_ns_named),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .route("/apis/{group}/{version}", get(discovery))
        .route("/apis/{group}/{version}/{plural}", get(group_cluster))
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}",
            get(group_ns),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}",
            get(group_ns_named)
                .patch(group_ns_named)
                .delete(group_ns_named),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}/status",
            get(group_status).patch(group_status),
        )
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            crate::inject_failures,
        ))
        // After the layer: the status prober's health checks neither count as the engine's API
        // calls nor take the failures a test injects for them.
        .route(
            "/api/v1/namespaces/{ns}/services/{name}/proxy/{*path}",
            get(service_proxy),
        )
        .with_state(shared)
}

type Q = Query<HashMap<String, String>>;

async fn core_cluster(
    State(s): State<Arc<Shared>>,
    m: Method,
    Path(plural): Path<String>,
    q: Q,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    // `/api/v1/namespaces` and cluster-wide lists such as `/api/v1/pods`.
    handle(
        &s,
        m,
        &format!("/v1/{plural}"),
        &plural,
        None,
        None,
        q.0,
        h,
        b,
    )
    .await
}

async fn core_cluster_named(
    State(s): State<Arc<Shared>>,
    m: Method,
    Path((plural, name)): Path<(String, String)>,
    q: Q,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    handle(
        &s,
        m,
        &format!("/v1/{plural}"),
        &plural,
        None,
        Some(name),
        q.0,
        h,
        b,
    )
    .await
}

async fn core_ns(
    State(s): State<Arc<Shared>>,
    m: Method,
    Path((ns, plural)): Path<(String, String)>,
    q: Q,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    handle(
        &s,
        m,
        &format!("/v1/{plural}"),
        &plural,
        Some(ns),
        None,
        q.0,
        h,
        b,
    )
    .await
}

async fn core_ns_named(
    State(s): State<Arc<Shared>>,
    m: Method,
    Path((ns, plural, name)): Path<(String, String, String)>,
    q: Q,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    handle(
        &s,
        m,
        &format!("/v1/{plural}"),
        &plural,
        Some(ns),
        Some(name),
        q.0,
        h,
        b,
    )
    .await
}

async fn group_cluster(
    State(s): State<Arc<Shared>>,
    m: Method,
    Path((g, v, plural)): Path<(String, String, String)>,
    q: Q,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    handle(
        &s,
        m,
        &format!("{g}/{v}/{plural}"),
        &plural,
        None,
        None,
        q.0,
        h,
        b,
    )
    .await
}

async fn group_ns(
    State(s): State<Arc<Shared>>,
    m: Method,
    Path((g, v, ns, plural)): Path<(String, String, String, String)>,
    q: Q,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    handle(
        &s,
        m,
        &format!("{g}/{v}/{plural}"),
        &plural,
        Some(ns),
        None,
        q.0,
        h,
        b,
    )
    .await
}

async fn group_ns_named(
    State(s): State<Arc<Shared>>,
    m: Method,
    Path((g, v, ns, plural, name)): Path<(String, String, String, String, String)>,
    q: Q,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    handle(
        &s,
        m,
        &format!("{g}/{v}/{plural}"),
        &plural,
        Some(ns),
        Some(name),
        q.0,
        h,
        b,
    )
    .await
}

async fn group_status(
    State(s): State<Arc<Shared>>,
    Path((g, v, ns, plural, name)): Path<(String, String, String, String, String)>,
) -> Response {
    match s.store.get(&format!("{g}/{v}/{plural}"), Some(&ns), &name) {
        Some(obj) => Json(obj).into_response(),
        None => (StatusCode::NOT_FOUND, Json(not_found(&plural, &name))).into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    s: &Arc<Shared>,
    method: Method,
    resource: &str,
    plural: &str,
    ns: Option<String>,
    name: Option<String>,
    q: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // `namespaces/<name>` under /api/v1 is a cluster-scoped object, not a namespace of objects.
    let ns = if plural == "namespaces" { None } else { ns };
    match (method, name) {
        (Method::GET, Some(name)) => match s.store.get(resource, ns.as_deref(), &name) {
            Some(obj) => Json(obj).into_response(),
            None => (StatusCode::NOT_FOUND, Json(not_found(plural, &name))).into_response(),
        },
        (Method::GET, None) => {
            let selector = Selector::parse(
                q.get("labelSelector").map(String::as_str),
                q.get("fieldSelector").map(String::as_str),
            );
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                let since = q
                    .get("resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let timeout = q
                    .get("timeoutSeconds")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(290u64);
                return watch(
                    s,
                    resource.to_owned(),
                    ns,
                    selector,
                    since,
                    Duration::from_secs(timeout),
                );
            }
            let (rv, items) = s.store.list(resource, ns.as_deref(), &selector);
            let api_version = resource
                .rsplit_once('/')
                .map(|(gv, _)| gv.trim_start_matches('/'))
                .unwrap_or("v1");
            Json(json!({
                "apiVersion": api_version,
                "kind": format!("{}List", kind_of(plural)),
                "metadata": { "resourceVersion": rv.to_string() },
                "items": items,
            }))
            .into_response()
        }
        (Method::PATCH, Some(name)) => {
            let apply = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("application/apply-patch"));
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return (StatusCode::BAD_REQUEST, Json(json!({"kind": "Status", "status": "Failure", "message": "body is not JSON", "code": 400}))).into_response();
            };
            let current = s.store.get(resource, ns.as_deref(), &name);
            if current.is_none() && !apply {
                return (StatusCode::NOT_FOUND, Json(not_found(plural, &name))).into_response();
            }
            let merged = merge(current.clone().unwrap_or_else(|| json!({})), patch);
            let stored = s.store.put(resource, ns.as_deref(), &name, merged);
            s.applied(resource, ns.as_deref(), &name, &stored);
            let status = if current.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            (status, Json(stored)).into_response()
        }
        (Method::DELETE, Some(name)) => match s.store.delete(resource, ns.as_deref(), &name) {
            Some(obj) => {
                s.deleted(resource, ns.as_deref(), &name);
                Json(obj).into_response()
            }
            None => (StatusCode::NOT_FOUND, Json(not_found(plural, &name))).into_response(),
        },
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(json!({"kind": "Status", "status": "Failure", "code": 405})),
        )
            .into_response(),
    }
}

/// Server-side apply, simplified: the applied fields replace what was there (the one field manager
/// owns everything it sends); fields it does not send, such as `status`, are kept.
fn merge(mut current: Value, patch: Value) -> Value {
    if let (Some(cur), Value::Object(p)) = (current.as_object_mut(), patch) {
        for (k, v) in p {
            if k == "metadata" {
                let meta = cur.entry("metadata").or_insert_with(|| json!({}));
                if let (Some(m), Value::Object(pm)) = (meta.as_object_mut(), v) {
                    for (mk, mv) in pm {
                        m.insert(mk, mv);
                    }
                }
            } else if k != "status" {
                cur.insert(k, v);
            }
        }
    }
    current
}

fn watch(
    s: &Arc<Shared>,
    resource: String,
    ns: Option<String>,
    selector: Selector,
    since: u64,
    timeout: Duration,
) -> Response {
    // Subscribe before reading the log, so that no event falls between the two.
    let live = tokio_stream::wrappers::BroadcastStream::new(s.store.events.subscribe());
    let Some(past) = s.store.since(since) else {
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410, "message": "too old resource version"}});
        return Response::new(Body::from(format!("{gone}\n")));
    };
    let last = past.last().map(|e| e.rv).unwrap_or(since);
    let matches = {
        let resource = resource.clone();
        move |e: &crate::store::Event| {
            e.resource == resource
                && (ns.is_none() || e.namespace == ns)
                && selector.matches(&e.object)
        }
    };
    let m1 = matches.clone();
    let past = futures::stream::iter(past.into_iter().filter(move |e| m1(e)));
    let live = live.filter_map(move |e| {
        let keep = e.ok().filter(|e| e.rv > last && matches(e));
        async move { keep }
    });
    let lines = past.chain(live).map(|e| {
        Ok::<_, std::io::Error>(format!("{}\n", json!({"type": e.kind, "object": e.object})))
    });
    let lines = tokio_stream::StreamExt::timeout(lines, timeout)
        .take_while(|r| futures::future::ready(r.is_ok()))
        .filter_map(|r| async move { r.ok() });
    let mut response = Response::new(Body::from_stream(lines));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

/// The API server's proxy to a Service (`name` is `service:port`): what the service's ready pods
/// answer. Without a ready pod it is 503, as a real proxy with no endpoints; an image named
/// `unhealthy` fails its health check with 500.
async fn service_proxy(
    State(s): State<Arc<Shared>>,
    Path((ns, name, path)): Path<(String, String, String)>,
) -> Response {
    let service = name.split(':').next().unwrap_or_default();
    let selector = Selector::parse(Some(&format!("enclii.dev/service={service}")), None);
    let ready: Vec<Value> = s
        .store
        .list("/v1/pods", Some(&ns), &selector)
        .1
        .into_iter()
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .collect();
    let Some(pod) = ready.first() else {
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("no endpoints available for service \"{service}\""),
            "reason": "ServiceUnavailable", "code": 503});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(status)).into_response();
    };
    let image = pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default();
    if image.contains("unhealthy") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("/{path}: unhealthy\n"),
        )
            .into_response();
    }
    (StatusCode::OK, format!("/{path}: ok\n")).into_response()
}

async fn pod_log(
    State(s): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    q: Q,
) -> Response {
    let Some(pod) = s.store.get("/v1/pods", Some(&ns), &name) else {
        return (StatusCode::NOT_FOUND, Json(not_found("pods", &name))).into_response();
    };
    // A build pod logs its build.
    if let Some(git_ref) = pod["metadata"]["annotations"]["enclii.dev/build-ref"].as_str() {
        let image = pod["metadata"]["annotations"]["enclii.dev/build-image"]
            .as_str()
            .unwrap_or_default();
        let failing = pod["metadata"]["annotations"]["enclii.dev/build-fails"] == "true";
        let mut lines = crate::jobs::build_log(git_ref, image, failing);
        if let Some(n) = q.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        let text: String = lines.into_iter().map(|l| l + "\n").collect();
        return Response::new(Body::from(text));
    }
    let service = pod["metadata"]["labels"]["enclii.dev/service"]
        .as_str()
        .unwrap_or("app")
        .to_owned();
    let follow = q.get("follow").is_some_and(|f| f == "true");
    let line = move |i: u64| {
        format!(
            "{} {service} GET /health 200 {}ms request={i}\n",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            1 + i % 7
        )
    };
    let history: Vec<String> = (0..5).map(&line).collect();
    if !follow {
        return Response::new(Body::from(history.concat()));
    }
    let every = s.options.log_interval;
    let live = futures::stream::unfold(5u64, move |i| async move {
        tokio::time::sleep(every).await;
        Some((i, i + 1))
    })
    .map(line);
    let stream = futures::stream::iter(history)
        .chain(live)
        .map(Ok::<_, std::io::Error>);
    Response::new(Body::from_stream(stream))
}

/// API discovery for a group version. Only the Gateway API is asked about (to choose how canary
/// traffic is split), and the sandbox serves it only when its options say so.
async fn discovery(
    State(shared): State<Arc<Shared>>,
    Path((group, version)): Path<(String, String)>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if group == "gateway.networking.k8s.io" && version == "v1" && shared.options.gateway_api {
        return Json(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "gateway.networking.k8s.io/v1",
            "resources": [
                {"name": "httproutes", "singularName": "httproute", "namespaced": true, "kind": "HTTPRoute",
                 "verbs": ["get", "list", "watch", "patch", "delete"]},
                {"name": "gateways", "singularName": "gateway", "namespaced": true, "kind": "Gateway",
                 "verbs": ["get", "list", "watch", "patch", "delete"]}
            ]
        }))
        .into_response();
    }
    (
        axum::http::StatusCode::NOT_FOUND,
        Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                    "message": format!("the server could not find the requested resource ({group}/{version})")})),
    )
        .into_response()
}
