//! The public status page: the prober finds a status spec's monitoring targets and every deployed
//! service's health check, probes them (real HTTP on loopback; health checks through the API
//! server's service proxy), stores every result in PostgreSQL, and the page shows the state and
//! the day's bar to anyone, signed in or not. Also the charts' range queries and spec validation.

mod common;

use common::{
    TestApp, sandbox_settings, start_sandbox, user, wait_for_deployment, with_canary_pause,
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

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn targets_and_health_checks_are_probed_stored_and_shown_publicly(pool: PgPool) {
    let base = endpoint().await;
    let sandbox = start_sandbox().await;
    let mut settings = sandbox_settings(&sandbox);
    settings.cluster.worker = true;
    settings.status.refresh_secs = 1;
    settings.status.service_interval_secs = 1;
    settings.status.timeout_ms = 2000;
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
    for (service, image) in [
        ("status-page", "registry.local/status:1"),
        ("status-canary", "registry.local/unhealthy:1"),
    ] {
        let (status, d) = app
            .call("/api/deployments/create", Some(&owner.token), json!({"project": P, "service": service, "environment": "production", "image": image}))
            .await;
        assert_eq!(status, 200, "{d}");
        let done = wait_for_deployment(&app, &owner.token, P, d["id"].as_i64().unwrap()).await;
        assert_eq!(done["state"], "succeeded", "{done}");
    }

    // Anonymous: the page is public.
    let mut page = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = app.call("/api/status", None, json!({})).await;
        assert_eq!(status, 200, "{body}");
        page = body;
        let states: Vec<&str> = page["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["state"].as_str().unwrap())
            .collect();
        if states.len() == 10 && !states.contains(&"unknown") {
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
    assert_eq!(sick["detail"], "answered 500");
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
    assert_eq!(sick["uptime"], 0.0);
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
    let (app, _sandbox) = common::spawn_app_with_sandbox(pool.clone()).await;
    let owner = user(&pool, "owner", true).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": P}),
    )
    .await;
    let spec = with_canary_pause(STATUS, "100ms");
    app.call(
        "/api/services/import",
        Some(&owner.token),
        json!({"spec": spec}),
    )
    .await;
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

    let (_, d) = app
        .call("/api/deployments/create", Some(&owner.token), json!({"project": P, "service": "status-page", "environment": "production", "image": "registry.local/status:1"}))
        .await;
    let done = wait_for_deployment(&app, &owner.token, P, d["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (_, m) = app
        .call("/api/services/metrics", Some(&owner.token), ask.clone())
        .await;
    let rps = m["requests_per_second"].as_array().unwrap();
    // An hour at one point a minute, both ends included.
    assert_eq!(rps.len(), 61, "{m}");
    assert!(
        rps.windows(2)
            .all(|w| w[1][0].as_i64().unwrap() - w[0][0].as_i64().unwrap() == 60)
    );
    // Two ready pods serve 5 requests a second each; the sandbox varies it by at most 12%.
    let now = rps[60][1].as_f64().unwrap();
    assert!((8.8..=11.2).contains(&now), "{now}");
    let latency = m["latency_p95_ms"][0][1].as_f64().unwrap();
    assert!((39.0..=51.0).contains(&latency), "{latency}");
    let errors = m["error_ratio"][0][1].as_f64().unwrap();
    assert!(errors < 0.01, "{errors}");

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
