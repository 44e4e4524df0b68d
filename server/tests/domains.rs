//! Custom domains: added with DNS instructions, verified against a real (loopback) DNS server by
//! their TXT record, then routed by the service's Ingress at the next deployment.

mod common;

use common::{
    Cleanup, LocalCluster, TestApp, cluster_settings, namespace, user, wait_for_deployment,
};
use serde_json::json;
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use switchyard_engine::platform::dns;

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const P: &str = "enclii-platform";

/// A DNS server on loopback answering TXT queries from `records` (name → values).
async fn dns_server(records: Arc<Mutex<Vec<(String, String)>>>) -> std::net::SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let query = &buf[..n];
            // The question's name, label by label.
            let mut name = Vec::new();
            let mut at = 12;
            while at < n && query[at] != 0 {
                let len = query[at] as usize;
                name.push(String::from_utf8_lossy(&query[at + 1..at + 1 + len]).into_owned());
                at += 1 + len;
            }
            let name = name.join(".");
            let values: Vec<String> = records
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .collect();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let _ = socket
                .send_to(&dns::encode_txt_response(query, &refs), from)
                .await;
        }
    });
    addr
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_domain_is_verified_by_its_txt_record_and_then_routed(pool: PgPool) {
    let records = Arc::new(Mutex::new(Vec::new()));
    let resolver = dns_server(records.clone()).await;
    let cluster = LocalCluster::from_env().await;
    let mut settings = cluster_settings(&cluster);
    let _cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    settings.cluster.worker = true;
    settings.domains.resolver = Some(resolver);
    settings.domains.cname_target = Some("ingress.enclii.io".into());
    let app: TestApp = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .unwrap(),
    )
    .await;
    let owner = user(&pool, "owner", true).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": P}),
    )
    .await;
    app.call(
        "/api/services/import",
        Some(&owner.token),
        json!({"spec": DOCS}),
    )
    .await;

    let (status, bad) = app
        .call("/api/domains/add", Some(&owner.token), json!({"project": P, "service": "docs-site", "environment": "production", "hostname": "not a host"}))
        .await;
    assert_eq!(status, 422, "{bad}");
    let (status, d) = app
        .call("/api/domains/add", Some(&owner.token), json!({"project": P, "service": "docs-site", "environment": "production", "hostname": "Guides.Example.com"}))
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["hostname"], "guides.example.com");
    assert_eq!(d["txt_name"], "_enclii-challenge.guides.example.com");
    assert_eq!(d["cname_target"], "ingress.enclii.io");
    assert_eq!(d["verified"], false);
    let (status, _) = app
        .call("/api/domains/add", Some(&owner.token), json!({"project": P, "service": "docs-site", "environment": "production", "hostname": "guides.example.com"}))
        .await;
    assert_eq!(status, 409, "once per project");
    // Another project may have the name pending (adding it proves nothing) until someone verifies.
    let other = user(&pool, "other", true).await;
    app.call(
        "/api/projects/create",
        Some(&other.token),
        json!({"slug": "squatter"}),
    )
    .await;
    app.call(
        "/api/services/import",
        Some(&other.token),
        json!({"spec": DOCS.replace("project: enclii-platform", "project: squatter")}),
    )
    .await;
    let (status, body) = app
        .call("/api/domains/add", Some(&other.token), json!({"project": "squatter", "service": "docs-site", "environment": "production", "hostname": "guides.example.com"}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Not yet in DNS, then the wrong value, then the right one.
    let verify = || {
        app.call(
            "/api/domains/verify",
            Some(&owner.token),
            json!({"project": P, "hostname": "guides.example.com"}),
        )
    };
    let (status, v) = verify().await;
    assert_eq!((status, v["verified"].as_bool()), (200, Some(false)), "{v}");
    assert!(
        v["last_check_error"]
            .as_str()
            .unwrap()
            .contains("no TXT record"),
        "{v}"
    );
    records.lock().unwrap().push((
        "_enclii-challenge.guides.example.com".into(),
        "enclii-verify=wrong".into(),
    ));
    let (_, v) = verify().await;
    assert!(
        v["last_check_error"].as_str().unwrap().contains("none is"),
        "{v}"
    );
    records.lock().unwrap().push((
        "_enclii-challenge.guides.example.com".into(),
        d["txt_value"].as_str().unwrap().into(),
    ));
    let (_, v) = verify().await;
    assert_eq!(v["verified"], true, "{v}");
    assert!(v["last_check_error"].is_null());
    // Proof settles it: the other project's pending claim is gone and cannot come back.
    let (_, theirs) = app
        .call(
            "/api/domains/list",
            Some(&other.token),
            json!({"project": "squatter"}),
        )
        .await;
    assert_eq!(theirs.as_array().unwrap().len(), 0, "{theirs}");
    let (status, body) = app
        .call("/api/domains/add", Some(&other.token), json!({"project": "squatter", "service": "docs-site", "environment": "production", "hostname": "guides.example.com"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("verified by another project")
    );

    // The next deployment routes it, with TLS like the spec's own domains.
    let (_, dep) = app
        .call("/api/deployments/create", Some(&owner.token), json!({"project": P, "service": "docs-site", "environment": "production", "image": "ghcr.io/madfam-io/docs:1"}))
        .await;
    let dep = wait_for_deployment(&app, &owner.token, P, dep["id"].as_i64().unwrap()).await;
    assert_eq!(dep["state"], "succeeded", "{dep}");
    let ns = namespace(&app, P, "production");
    let ingress = cluster
        .object("networking.k8s.io/v1", "Ingress", Some(&ns), "docs-site")
        .await
        .expect("the Ingress was applied");
    let hosts: Vec<&str> = ingress["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    // The spec's own `docs.enclii.io` is not this project's proven domain: left out, and said.
    assert_eq!(hosts, ["guides.example.com"]);
    assert!(
        dep["state_reason"].as_str().unwrap().contains(
            "not routed (not a verified domain of project enclii-platform): docs.enclii.io"
        ),
        "{dep}"
    );

    let (status, list) = app
        .call(
            "/api/domains/list",
            Some(&owner.token),
            json!({"project": P}),
        )
        .await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1));
    let (status, _) = app
        .call(
            "/api/domains/remove",
            Some(&owner.token),
            json!({"project": P, "hostname": "guides.example.com"}),
        )
        .await;
    assert_eq!(status, 200);
}
