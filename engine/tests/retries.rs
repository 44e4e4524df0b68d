//! Verifier tests of `apply::with_retries` as the deploy driver uses it: what a flaky or broken API
//! server gets from the kube client. A real API server cannot be made to fail on demand, so a
//! `tower-test` mock answers in its place (500s, a request left unanswered, a dropped connection)
//! and the tests pin which calls are repeated, how often, and what the deployment is told.

use std::time::{Duration, Instant};

use enclii_spec::render::{self, Target};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::client::Body;
use serde_json::{Value, json};
use switchyard_engine::deploy::apply;
use tower_test::mock::{self, Handle, SendResponse};

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const NS: &str = "enclii-platform-production";

type Mock = Handle<Request<Body>, Response<Body>>;

fn client() -> (kube::Client, Mock) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

/// The first object a release applies: its Namespace.
fn namespace_manifest() -> render::Manifest {
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
            progress_deadline_secs: render::DEFAULT_PROGRESS_DEADLINE_SECS,
        },
    )
    .swap_remove(0)
}

/// A request as the API server would see it: method, path and query, JSON body.
#[derive(Debug, PartialEq)]
struct Call {
    method: Method,
    uri: String,
    body: Value,
}

async fn receive(handle: &mut Mock) -> (Call, SendResponse<Response<Body>>) {
    let (request, respond) = handle.next_request().await.expect("a request");
    let method = request.method().clone();
    let uri = request.uri().to_string();
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (Call { method, uri, body }, respond)
}

fn answer(respond: SendResponse<Response<Body>>, status: u16, body: &Value) {
    respond.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn internal_error() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcdserver: leader changed", "reason": "InternalError", "code": 500})
}

fn applied(m: &render::Manifest) -> Value {
    let mut body = m.body.clone();
    body["metadata"]["resourceVersion"] = "1".into();
    body
}

/// Nothing more arrives within a moment: the client gave up or was done.
async fn assert_quiet(handle: &mut Mock) {
    assert!(
        tokio::time::timeout(Duration::from_millis(500), handle.next_request())
            .await
            .is_err(),
        "no further request"
    );
}

#[tokio::test]
async fn three_500s_and_a_dropped_connection_are_retried_through_with_the_same_call() {
    let (client, mut handle) = client();
    let manifests = vec![namespace_manifest()];
    let object = applied(&manifests[0]);
    let server = tokio::spawn(async move {
        let mut calls = Vec::new();
        for _ in 0..3 {
            let (call, respond) = receive(&mut handle).await;
            answer(respond, 500, &internal_error());
            calls.push(call);
        }
        let (call, respond) = receive(&mut handle).await;
        respond.send_error(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        ));
        calls.push(call);
        let (call, respond) = receive(&mut handle).await;
        answer(respond, 200, &object);
        calls.push(call);
        assert_quiet(&mut handle).await;
        calls
    });
    let started = Instant::now();
    let applied = apply::apply_all(&client, &manifests).await.unwrap();
    let waited = started.elapsed();
    let calls = server.await.unwrap();
    assert_eq!(applied, [format!("Namespace/{NS}")]);
    assert_eq!(calls.len(), 5);
    assert_eq!(calls[0].method, Method::PATCH);
    assert!(
        calls.iter().all(|c| *c == calls[0]),
        "every retry repeats the call: {calls:?}"
    );
    // Backing off: 200 + 400 + 800 + 1600 ms between the five tries.
    assert!(waited >= Duration::from_millis(3000), "{waited:?}");
}

#[tokio::test]
async fn a_request_left_unanswered_times_out_and_is_retried() {
    let (client, mut handle) = client();
    let m = namespace_manifest();
    let object = applied(&m);
    let server = tokio::spawn(async move {
        // The API server accepts the first request and never answers it.
        let (first, hung) = receive(&mut handle).await;
        let (second, respond) = receive(&mut handle).await;
        answer(respond, 200, &object);
        drop(hung);
        (first, second)
    });
    let api: Api<DynamicObject> =
        Api::all_with(client, &apply::api_resource(&m.api_version, &m.kind));
    let params = PatchParams::apply(apply::FIELD_MANAGER).force();
    let patch = Patch::Apply(&m.body);
    let started = Instant::now();
    let result = apply::with_retries(
        &format!("apply Namespace/{NS}"),
        5,
        Duration::from_millis(300),
        || api.patch(&m.name, &params, &patch),
    )
    .await;
    let waited = started.elapsed();
    let (first, second) = server.await.unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(first, second, "the retry repeats the call");
    // The try was bounded (300 ms), then the first back-off (200 ms).
    assert!(
        (Duration::from_millis(500)..Duration::from_secs(3)).contains(&waited),
        "{waited:?}"
    );
}

#[tokio::test]
async fn an_api_server_that_keeps_answering_500_fails_the_apply_with_its_answer() {
    let (client, mut handle) = client();
    let manifests = vec![namespace_manifest()];
    let server = tokio::spawn(async move {
        let mut tries = 0;
        for _ in 0..5 {
            let (_, respond) = receive(&mut handle).await;
            answer(respond, 500, &internal_error());
            tries += 1;
        }
        assert_quiet(&mut handle).await;
        tries
    });
    let error = apply::apply_all(&client, &manifests).await.unwrap_err();
    assert_eq!(server.await.unwrap(), 5, "five tries, then it gives up");
    assert_eq!(
        error,
        format!(
            "apply Namespace/{NS}: the API server answered 500 (InternalError): etcdserver: leader changed"
        )
    );
}

#[tokio::test]
async fn an_api_server_that_never_answers_fails_with_how_long_it_was_given() {
    let (client, mut handle) = client();
    let m = namespace_manifest();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // Accepted and never answered (the answers are held until the caller gave up).
        let mut hung = Vec::new();
        for _ in 0..2 {
            hung.push(receive(&mut handle).await);
        }
        finished.await.unwrap();
        assert_quiet(&mut handle).await;
        hung.len()
    });
    let api: Api<DynamicObject> =
        Api::all_with(client, &apply::api_resource(&m.api_version, &m.kind));
    let params = PatchParams::apply(apply::FIELD_MANAGER).force();
    let patch = Patch::Apply(&m.body);
    let error = apply::with_retries(
        &format!("apply Namespace/{NS}"),
        2,
        Duration::from_secs(1),
        || api.patch(&m.name, &params, &patch),
    )
    .await
    .unwrap_err();
    done.send(()).unwrap();
    assert_eq!(server.await.unwrap(), 2, "two tries, then it gives up");
    assert_eq!(
        error,
        format!("apply Namespace/{NS}: the Kubernetes API did not answer within 1s")
    );
}

#[tokio::test]
async fn a_refusal_is_final_and_reported_as_the_api_server_gave_it() {
    let (client, mut handle) = client();
    let manifests = vec![namespace_manifest()];
    let server = tokio::spawn(async move {
        let (call, respond) = receive(&mut handle).await;
        answer(
            respond,
            403,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "namespaces \"enclii-platform-production\" is forbidden: User \"system:serviceaccount:enclii-system:switchyard\" cannot patch resource \"namespaces\"",
                    "reason": "Forbidden", "code": 403}),
        );
        assert_quiet(&mut handle).await;
        call
    });
    let error = apply::apply_all(&client, &manifests).await.unwrap_err();
    let call = server.await.unwrap();
    assert_eq!(call.method, Method::PATCH);
    assert!(
        error.starts_with(&format!(
            "apply Namespace/{NS}: the API server answered 403 (Forbidden): "
        )) && error.contains("cannot patch resource"),
        "{error}"
    );
}
