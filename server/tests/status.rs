//! The public status page: the prober finds a status spec's monitoring targets and every deployed
//! service's health check, probes them (real HTTP on loopback; health checks through the local
//! cluster's real API server service proxy, to the simulated pods), stores every result in
//! PostgreSQL, and the page shows the state and the day's bar to anyone, signed in or not. Also the
//! charts' range queries against real Prometheus, and spec validation.
//!
//! Targets are tenants' (issue #18): the prober probes only public addresses, checked at import and
//! on the address it connects to, follows no redirects, bounds a project's targets, and probes and
//! shows a project's targets only when the project opts in. The tests that probe loopback servers
//! here turn on `status.allow_private_targets`, as the local stack does.

mod common;

use std::time::Duration;

use common::{
    Cleanup, LocalCluster, TestApp, cluster_settings, namespace, user, wait_for_deployment,
    with_canary_pause,
};
use serde_json::json;
use sqlx::PgPool;

const STATUS: &str = include_str!("../../spec/fixtures/dogfooding/status-page.yaml");
const P: &str = "enclii-platform";

/// An HTTP server on loopback: `/health` answers 200, anything else 500.
async fn endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .fallback(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "broken") });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// The fixture with its monitoring targets pointed at `base`: two healthy, two failing (one
/// answering 500, one refusing connections), every 5 s (the shortest a spec allows).
fn status_spec(base: &str, name: &str) -> String {
    // Without the fixture's custom domain: two copies of the service may not both route it.
    let spec = with_canary_pause(STATUS, "100ms")
        .replace("name: status-page", &format!("name: {name}"))
        .replace("  domains:\n    - domain: status.enclii.io\n      tls: true\n      tlsIssuer: cloudflare\n", "");
    assert!(!spec.contains("domain: status.enclii.io"));
    let start = spec.find("  monitoring:").unwrap();
    let end = spec[start..]
        .find("\n\n")
        .map(|e| start + e)
        .unwrap_or(spec.len());
    let targets = format!(
        "  monitoring:\n    targets:\n      - name: Control Plane API\n        url: {base}/health\n        interval: 5s\n      - name: Web Dashboard\n        url: {base}/health\n        interval: 5s\n      - name: Authentication\n        url: {base}/broken\n        interval: 5s\n      - name: Documentation\n        url: http://127.0.0.1:9/\n        interval: 5s"
    );
    format!("{}{}{}", &spec[..start], targets, &spec[end..])
}

/// What the cluster's operator provides before the status page runs there: its namespace (as
/// Switchyard creates it for the project: it adopts no other) and the `enclii-secrets` Secret the
/// fixture's `PROMETHEUS_URL` reads (a kubelet does not start a container whose environment
/// names a Secret that does not exist).
async fn operators_secret(cluster: &LocalCluster, pool: &PgPool, ns: &str) {
    use kube::api::{DynamicObject, PostParams};
    common::tenant_namespace(cluster, pool, P, ns).await;
    let secret: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "enclii-secrets", "namespace": ns},
        "stringData": {"prometheus-url": "http://prometheus.monitoring:9090"}
    }))
    .unwrap();
    cluster
        .api("v1", "Secret", Some(ns))
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn targets_and_health_checks_are_probed_stored_and_shown_publicly(pool: PgPool) {
    let base = endpoint().await;
    let cluster = LocalCluster::from_env().await;
    let mut settings = cluster_settings(&cluster);
    let _cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    settings.cluster.worker = true;
    settings.status.refresh_secs = 1;
    settings.status.service_interval_secs = 1;
    settings.status.timeout_ms = 2000;
    // The targets are on loopback.
    settings.status.allow_private_targets = true;
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
    let (status, body) = app
        .call(
            "/api/status/publish",
            Some(&owner.token),
            json!({"project": P, "public": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for name in ["status-page", "status-canary"] {
        let (status, body) = app
            .call(
                "/api/services/import",
                Some(&owner.token),
                json!({"spec": status_spec(&base, name)}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let ns = namespace(&app, P, "production");
    operators_secret(&cluster, &pool, &ns).await;
    for service in ["status-page", "status-canary"] {
        let (status, d) = app
            .call("/api/deployments/create", Some(&owner.token), json!({"project": P, "service": service, "environment": "production", "image": "registry.local/status:1"}))
            .await;
        assert_eq!(status, 200, "{d}");
        let done = wait_for_deployment(&app, &owner.token, P, d["id"].as_i64().unwrap()).await;
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    // Then status-canary loses every pod (an operator scales it to zero): its Service has no ready
    // endpoint left, and the API server's proxy answers 503 for it. (A release whose pods never
    // pass their health check does not get this far on a real cluster: its rollout fails, and the
    // prober only watches services that were deployed.)
    cluster
        .api("apps/v1", "Deployment", Some(&ns))
        .patch(
            "status-canary",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();

    // Anonymous: the page is public.
    let mut page = serde_json::Value::Null;
    for _ in 0..150 {
        let (status, body) = app.call("/api/status", None, json!({})).await;
        assert_eq!(status, 200, "{body}");
        page = body;
        let states: Vec<&str> = page["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["state"].as_str().unwrap())
            .collect();
        let sick = page["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "enclii-platform/status-canary (production)");
        if states.len() == 10
            && !states.contains(&"unknown")
            && sick.is_some_and(|t| t["detail"] == "answered 503")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let targets = page["targets"].as_array().unwrap();
    let by_name = |n: &str| {
        targets
            .iter()
            .find(|t| t["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {page}"))
    };
    // Both services list the four endpoints: eight endpoints, then the two health checks.
    assert_eq!(targets.len(), 10, "{page}");
    assert_eq!(by_name("Control Plane API")["state"], "up");
    assert_eq!(by_name("Control Plane API")["kind"], "endpoint");
    assert_eq!(by_name("Authentication")["state"], "down");
    assert_eq!(by_name("Authentication")["detail"], "answered 500");
    assert_eq!(by_name("Documentation")["state"], "down");
    assert_eq!(by_name("Documentation")["detail"], "could not connect");
    let healthy = by_name("enclii-platform/status-page (production)");
    assert_eq!(
        (healthy["kind"].as_str(), healthy["state"].as_str()),
        (Some("service"), Some("up")),
        "{healthy}"
    );
    let sick = by_name("enclii-platform/status-canary (production)");
    assert_eq!(sick["state"], "down", "{sick}");
    assert_eq!(sick["detail"], "answered 503", "{sick}");
    assert_eq!(page["overall"], "degraded");
    // The overview's headline agrees, without the bars.
    let (status, headline) = app.call("/api/status/headline", None, json!({})).await;
    assert_eq!(status, 200, "{headline}");
    assert_eq!(
        headline,
        json!({"overall": "degraded", "targets": 10, "down": 5})
    );
    assert_eq!(page["days"], 90);
    let daily = healthy["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 90);
    let today = &daily[89];
    assert!(
        today[1].as_i64().unwrap() >= 1 && today[0] == today[1],
        "{today}"
    );
    assert_eq!(healthy["uptime"], 1.0);
    // Up until it lost its pods (if the prober got to it before), then down: not all day up.
    let sick_today = &sick["daily"].as_array().unwrap()[89];
    assert!(
        sick_today[0].as_i64().unwrap() < sick_today[1].as_i64().unwrap(),
        "{sick_today}"
    );
    assert!(sick["uptime"].as_f64().unwrap() < 1.0, "{sick}");
    // Public means names and states only: no target URL or cluster address leaks.
    let text = page.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("svc"),
        "{text}"
    );

    // Every probe is a row; the day's counters agree with them.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM status_probes")
        .fetch_one(&pool)
        .await
        .unwrap();
    let counted: i64 = sqlx::query_scalar("SELECT sum(total)::bigint FROM status_daily")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(rows >= 10, "{rows}");
    assert_eq!(rows, counted);

    // The server-rendered page, signed out.
    let html = app.get("/status").await.text().await.unwrap();
    assert!(html.contains("Some systems are down"), "{html}");
    assert!(html.contains("Control Plane API") && html.contains("status-canary (production)"));
    assert!(!html.contains(&base));

    // A target removed from its spec leaves the page.
    let fewer = status_spec(&base, "status-canary").replace(
        "      - name: Documentation\n        url: http://127.0.0.1:9/\n        interval: 5s",
        "",
    );
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&owner.token),
            json!({"spec": fewer}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut left = 0;
    for _ in 0..50 {
        let (_, page) = app.call("/api/status", None, json!({})).await;
        left = page["targets"].as_array().unwrap().len();
        if left == 9 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(left, 9);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn charts_read_the_last_hour_from_prometheus(pool: PgPool) {
    let (app, cluster) = common::spawn_app_with_cluster(pool.clone()).await;
    let _cleanup = Cleanup(app.engine.settings.cluster.namespace_prefix.clone());
    let owner = user(&pool, "owner", true).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": P}),
    )
    .await;
    let spec = with_canary_pause(STATUS, "100ms");
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&owner.token),
            json!({"spec": spec}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ask = json!({"project": P, "service": "status-page", "environment": "production"});
    let (status, none) = app.call("/api/services/metrics", None, ask.clone()).await;
    assert_eq!(status, 401, "{none}");
    // Not deployed: Prometheus has no series; the charts are empty, not an error.
    let (status, m) = app
        .call("/api/services/metrics", Some(&owner.token), ask.clone())
        .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["requests_per_second"], json!([]));
    assert_eq!(m["unavailable"], serde_json::Value::Null);

    let ns = namespace(&app, P, "production");
    operators_secret(&cluster, &pool, &ns).await;
    let (_, d) = app
        .call("/api/deployments/create", Some(&owner.token), json!({"project": P, "service": "status-page", "environment": "production", "image": "registry.local/status:1"}))
        .await;
    let done = wait_for_deployment(&app, &owner.token, P, d["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    // The charts' points fall on whole minutes: the first point with the new pods' requests is the
    // first minute after Prometheus scraped them twice (up to a minute and a few seconds).
    let mut m = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = app
            .call("/api/services/metrics", Some(&owner.token), ask.clone())
            .await;
        assert_eq!(status, 200, "{body}");
        m = body;
        if m["requests_per_second"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(m["unavailable"], serde_json::Value::Null, "{m}");
    assert_eq!(m["step_secs"], 60, "{m}");
    let rps = m["requests_per_second"].as_array().unwrap();
    assert!(!rps.is_empty(), "requests reached the chart: {m}");
    // The last hour at one point a minute: the points Prometheus has (since the pods started), a
    // minute apart, the last one on the current minute.
    assert!(rps.len() <= 61, "{m}");
    assert!(
        rps.windows(2)
            .all(|w| w[1][0].as_i64().unwrap() - w[0][0].as_i64().unwrap() == 60),
        "{m}"
    );
    let (at, now) = (
        rps.last().unwrap()[0].as_i64().unwrap(),
        rps.last().unwrap()[1].as_f64().unwrap(),
    );
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let minute = unix / 60 * 60;
    assert!(
        at % 60 == 0 && (minute - 60..=minute).contains(&at),
        "{at} {minute}"
    );
    // The chart is what Prometheus computes from the pods' counters with the configured query,
    // at that minute. Two ready pods serve 5 requests a second each; a five-minute rate of a series
    // younger than five minutes is less than that, never more.
    let query = switchyard_engine::platform::metrics::fill(
        &app.engine.settings.metrics.request_rate_query,
        &ns,
        "status-page",
    );
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/query", cluster.prometheus_url))
        .form(&[("query", query.as_str()), ("time", &at.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let direct: f64 = answer["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .parse()
        .unwrap();
    assert!(
        (now - direct).abs() < 1e-9,
        "chart {now}, Prometheus {direct}"
    );
    assert!(now > 0.0 && now <= 10.5, "{now}");
    let errors = m["error_ratio"]
        .as_array()
        .unwrap()
        .last()
        .unwrap_or_else(|| panic!("an error ratio: {m}"))[1]
        .as_f64()
        .unwrap();
    assert!(errors < 0.01, "{errors}");
    // The simulated pods' latency histogram puts the 95th percentile at about 49 ms; Prometheus
    // interpolates within the bucket it falls in, so a busy machine's few scrapes move it a little.
    let p95 = m["latency_p95_ms"]
        .as_array()
        .unwrap()
        .last()
        .unwrap_or_else(|| panic!("a latency point: {m}"))[1]
        .as_f64()
        .unwrap();
    assert!((25.0..=75.0).contains(&p95), "p95 {p95} ms");

    let (status, missing) = app
        .call(
            "/api/services/metrics",
            Some(&owner.token),
            json!({"project": P, "service": "status-page", "environment": "nowhere"}),
        )
        .await;
    assert_eq!(status, 404, "{missing}");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn validation_locates_every_problem_without_importing(pool: PgPool) {
    let app = common::spawn_app(pool.clone()).await;
    let owner = user(&pool, "owner", true).await;
    let (status, none) = app
        .call("/api/services/validate", None, json!({"spec": STATUS}))
        .await;
    assert_eq!(status, 401, "{none}");
    for (from, to) in [
        ("    port: 3000", "    port: lots"),
        ("interval: 60s", "interval: soon"),
    ] {
        let bad = STATUS.replace(from, to);
        let (status, d) = app
            .call(
                "/api/services/validate",
                Some(&owner.token),
                json!({"spec": bad}),
            )
            .await;
        assert_eq!(status, 200, "{d}");
        let line = bad.lines().position(|l| l.contains(to)).unwrap() + 1;
        // At the refused value.
        let value = to.rsplit(' ').next().unwrap();
        let col = bad.lines().nth(line - 1).unwrap().find(value).unwrap() + 1;
        let error = d
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["severity"] == "error")
            .unwrap_or_else(|| panic!("{d}"));
        assert_eq!(error["pos"]["line"], line, "{d}");
        assert_eq!(error["pos"]["col"], col, "{d}");
    }
    let (_, ok) = app
        .call(
            "/api/services/validate",
            Some(&owner.token),
            json!({"spec": STATUS}),
        )
        .await;
    assert!(
        ok.as_array()
            .unwrap()
            .iter()
            .all(|x| x["severity"] != "error"),
        "{ok}"
    );
    let services: i64 = sqlx::query_scalar("SELECT count(*) FROM services")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(services, 0, "validation imports nothing");
}

/// A tenant's spec with one monitoring target.
fn tenant_spec(project: &str, service: &str, targets: &[(&str, &str)]) -> String {
    let mut spec = format!(
        "apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: {service}\n  project: {project}\nspec:\n  build:\n    type: dockerfile\n  runtime:\n    port: 3000\n  monitoring:\n    targets:\n"
    );
    for (name, url) in targets {
        spec.push_str(&format!(
            "      - name: {name}\n        url: {url}\n        interval: 5s\n"
        ));
    }
    spec
}

/// An HTTP server on loopback that counts what it serves: `/health` answers 200, `/moved`
/// redirects there.
async fn counting_endpoint() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counted = hits.clone();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route(
            "/moved",
            axum::routing::get(|| async { axum::response::Redirect::temporary("/health") }),
        )
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                counted.fetch_add(1, Ordering::SeqCst);
                next.run(req)
            },
        ));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

async fn status_names(app: &TestApp) -> Vec<(String, String)> {
    let (status, page) = app.call("/api/status", None, json!({})).await;
    assert_eq!(status, 200, "{page}");
    page["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn targets_on_addresses_that_are_not_public_are_refused_at_import(pool: PgPool) {
    let app = common::spawn_app(pool.clone()).await;
    let owner = user(&pool, "owner", true).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": "tenant"}),
    )
    .await;
    for url in [
        "http://127.0.0.1:8080/health",
        "http://localhost:8080/health",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0.0.0.0:3000/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.96.0.1/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
    ] {
        let spec = tenant_spec("tenant", "probe", &[("Probe", url)]);
        let (status, body) = app
            .call(
                "/api/services/import",
                Some(&owner.token),
                json!({"spec": spec}),
            )
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("monitoring target `Probe`: ")
                && message.contains("the status page probes only public addresses"),
            "{url}: {message}"
        );
    }
    let services: i64 = sqlx::query_scalar("SELECT count(*) FROM services")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(services, 0, "nothing refused was imported");
    // A name that does not resolve (yet) is accepted: every probe checks it again.
    let spec = tenant_spec(
        "tenant",
        "probe",
        &[("Probe", "https://status.example.invalid/health")],
    );
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&owner.token),
            json!({"spec": spec}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn probes_check_the_address_they_connect_to_and_follow_no_redirects(pool: PgPool) {
    use std::sync::atomic::Ordering;
    use switchyard_engine::monitor::{self, Probe, Target};
    let (addr, hits) = counting_endpoint().await;
    let port = addr.port();
    let target = |url: String| Target {
        key: "target:tenant/probe/Probe".into(),
        name: "Probe".into(),
        interval: Duration::from_secs(5),
        probe: Probe::Http {
            url,
            expected_status: 200,
        },
    };
    let timeout = Duration::from_secs(2);
    let mut settings = common::settings();
    settings.status.prober = false;
    let engine = switchyard_engine::Engine::new(pool.clone(), settings.clone()).unwrap();
    let http = monitor::http_client(&settings.status).unwrap();
    // `localhost` stands for any name that resolves to a private address when probed, whatever it
    // resolved to at import (DNS rebinding): the resolver refuses it, and nothing is sent.
    for url in [
        format!("http://localhost:{port}/health"),
        format!("http://127.0.0.1:{port}/health"),
        format!("http://[::ffff:127.0.0.1]:{port}/health"),
        format!("http://2130706433:{port}/health"),
    ] {
        let o = monitor::probe(&engine, &http, &target(url.clone()), timeout).await;
        assert_eq!(
            (o.ok, o.status_code, o.detail.as_str()),
            (false, None, "refused: not a public address"),
            "{url}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no request reached it");

    // Where the platform allows private targets, they are probed; a redirect is the answer, not
    // followed (it could point anywhere).
    settings.status.allow_private_targets = true;
    let engine = switchyard_engine::Engine::new(pool.clone(), settings.clone()).unwrap();
    let http = monitor::http_client(&settings.status).unwrap();
    let o = monitor::probe(
        &engine,
        &http,
        &target(format!("http://localhost:{port}/health")),
        timeout,
    )
    .await;
    assert!(o.ok, "{o:?}");
    let o = monitor::probe(
        &engine,
        &http,
        &target(format!("http://127.0.0.1:{port}/moved")),
        timeout,
    )
    .await;
    assert_eq!(
        (o.ok, o.status_code, o.detail.as_str()),
        (false, Some(307), "answered 307")
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "/health once, /moved once, the redirect not followed"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_project_has_a_bounded_number_of_monitoring_targets(pool: PgPool) {
    let mut settings = common::settings();
    settings.status.max_targets_per_project = 3;
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .unwrap(),
    )
    .await;
    let owner = user(&pool, "owner", true).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": "tenant"}),
    )
    .await;
    let url = |n: u32| format!("https://t{n}.example.invalid/");
    let (u1, u2, u3, u4) = (url(1), url(2), url(3), url(4));
    let import = |spec: String| {
        let app = &app;
        let token = owner.token.clone();
        async move {
            app.call("/api/services/import", Some(&token), json!({"spec": spec}))
                .await
        }
    };
    let (status, body) = import(tenant_spec(
        "tenant",
        "one",
        &[("A", &u1), ("B", &u2), ("C", &u3), ("D", &u4)],
    ))
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("a project may have at most 3 monitoring targets"),
        "{body}"
    );
    let (status, body) = import(tenant_spec("tenant", "one", &[("A", &u1), ("B", &u2)])).await;
    assert_eq!(status, 200, "{body}");
    // Counted over the project's services.
    let (status, body) = import(tenant_spec("tenant", "two", &[("C", &u3), ("D", &u4)])).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("it would have 4"),
        "{body}"
    );
    let (status, body) = import(tenant_spec("tenant", "two", &[("C", &u3)])).await;
    assert_eq!(status, 200, "{body}");
    // A service's own targets are replaced by its new spec, not added to.
    let (status, body) = import(tenant_spec("tenant", "one", &[("A", &u1), ("E", &u2)])).await;
    assert_eq!(status, 200, "{body}");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn only_projects_that_opt_in_have_their_targets_probed_and_shown(pool: PgPool) {
    let (addr, _hits) = counting_endpoint().await;
    let mut settings = common::settings();
    settings.status.refresh_secs = 1;
    settings.status.allow_private_targets = true;
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .unwrap(),
    )
    .await;
    let owner = user(&pool, "owner", true).await;
    let stranger = user(&pool, "stranger", true).await;
    for (project, target) in [("shown", "Shown endpoint"), ("hidden", "Hidden endpoint")] {
        let (status, body) = app
            .call(
                "/api/projects/create",
                Some(&owner.token),
                json!({"slug": project}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let url = format!("http://{addr}/health");
        let spec = tenant_spec(project, "probe", &[(target, &url)]);
        let (status, body) = app
            .call(
                "/api/services/import",
                Some(&owner.token),
                json!({"spec": spec}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let publish = |token: Option<String>, project: &'static str, public: bool| {
        let app = &app;
        async move {
            app.call(
                "/api/status/publish",
                token.as_deref(),
                json!({"project": project, "public": public}),
            )
            .await
            .0
        }
    };
    assert_eq!(publish(None, "hidden", true).await, 401);
    assert_eq!(
        publish(Some(stranger.token.clone()), "hidden", true).await,
        404,
        "a stranger cannot publish another's project"
    );
    assert_eq!(publish(Some(owner.token.clone()), "shown", true).await, 200);

    let wait_for = |want: Vec<(&'static str, &'static str)>| {
        let app = &app;
        async move {
            let mut seen = Vec::new();
            for _ in 0..100 {
                seen = status_names(app).await;
                let got: Vec<(&str, &str)> =
                    seen.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
                if got == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("wanted {want:?}, the page shows {seen:?}");
        }
    };
    // Once the listed project's target is up, the prober has read every spec: the other project's
    // target was neither listed nor probed.
    wait_for(vec![("Shown endpoint", "up")]).await;
    let hidden_probes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM status_probes WHERE target LIKE 'target:hidden/%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(hidden_probes, 0);
    let (_, headline) = app.call("/api/status/headline", None, json!({})).await;
    assert_eq!(headline["targets"], 1, "{headline}");

    assert_eq!(
        publish(Some(owner.token.clone()), "hidden", true).await,
        200
    );
    wait_for(vec![("Hidden endpoint", "up"), ("Shown endpoint", "up")]).await;
    assert_eq!(
        publish(Some(owner.token.clone()), "shown", false).await,
        200
    );
    wait_for(vec![("Hidden endpoint", "up")]).await;
}
