//! The HTTP surface against a real server and a fresh PostgreSQL database per test.

mod common;

use common::{spawn_app, spawn_app_with_site};
use leptos::prelude::LeptosOptions;
use sqlx::PgPool;

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn health_endpoints_report_a_ready_database(pool: PgPool) {
    let app = spawn_app(pool).await;
    for path in ["/health", "/health/ready", "/api/health"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok", "{path}");
        assert_eq!(body["checks"]["database"], "ok", "{path}");
    }
    let live: serde_json::Value = app.get("/health/live").await.json().await.unwrap();
    assert_eq!(live["status"], "ok");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn readiness_fails_when_the_database_is_gone_but_liveness_does_not(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.engine.pool.close().await;
    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "down");
    assert_eq!(app.get("/health/live").await.status(), 200);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn the_overview_is_rendered_on_the_server_with_navigation(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("<title>Overview · Enclii</title>"), "{html}");
    for label in ["Overview", "Projects", "Deployments", "Activity", "Status"] {
        assert!(
            html.contains(&format!(">{label}</a>")),
            "nav link {label} missing"
        );
    }
    // The hydration bootstrap names the wasm bundle.
    assert!(html.contains("/pkg/switchyard"), "no hydration script");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn every_response_carries_a_request_id_and_security_headers(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.get("/health/live").await;
    let headers = response.headers();
    assert_eq!(
        headers["x-request-id"].to_str().unwrap().len(),
        36,
        "a UUID"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    // No development reload socket in what production serves, and no inline script runs.
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("ws:"), "{csp}");
    assert!(!script_src(csp).contains("'unsafe-inline'"), "{csp}");
    // Plain http on loopback: HSTS would be wrong here.
    assert!(headers.get("strict-transport-security").is_none());

    let given = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-123");
}

/// The `script-src` directive of a policy.
fn script_src(csp: &str) -> &str {
    csp.split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap_or_default()
}

/// A page's inline scripts run only by the response's nonce (#18, finding 12): an injected
/// `<script>` without it would not.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_pages_inline_scripts_run_only_by_this_responses_nonce(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut nonces = Vec::new();
    for path in ["/", "/status", "/definitely/not/here"] {
        let response = app.get(path).await;
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let script = script_src(&csp);
        assert!(!script.contains("'unsafe-inline'"), "{path}: {csp}");
        let nonce = script
            .split_whitespace()
            .find_map(|s| s.strip_prefix("'nonce-")?.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{path}: no nonce in {csp}"))
            .to_owned();
        assert!(nonce.len() >= 16, "{nonce}");
        let html = response.text().await.unwrap();
        let scripts: Vec<&str> = html.split("<script").skip(1).collect();
        assert!(
            !scripts.is_empty(),
            "{path}: the page has its inline scripts"
        );
        for tag in scripts {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(
                open.contains(&format!("nonce=\"{nonce}\"")),
                "{path}: a script without the response's nonce: <script{open}>"
            );
        }
        nonces.push(nonce);
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "a new nonce for every response");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn an_unknown_path_is_a_404_page(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.get("/definitely/not/here").await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("Page not found"));
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn pages_are_compressed_for_clients_that_accept_it(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app
        .client
        .get(app.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn metrics_count_requests_by_route_pattern_and_show_the_pool(pool: PgPool) {
    let mut settings = common::settings();
    settings.http.metrics_token = Some("scrape-token".into());
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool)
            .await
            .unwrap(),
    )
    .await;
    app.get("/health/live").await;
    app.get("/no/such/page").await;
    let scrape = |path: &'static str, token: Option<&'static str>| {
        let mut req = app.client.get(app.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    // Not for the internet: without the token, or with another, nothing is shown.
    for token in [None, Some("guess"), Some("")] {
        let refused = scrape("/metrics", token).await.unwrap();
        assert_eq!(refused.status(), 401, "{token:?}");
        assert!(
            !refused
                .text()
                .await
                .unwrap()
                .contains("http_requests_total")
        );
    }
    let response = scrape("/metrics", Some("scrape-token")).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let live = text
        .lines()
        .find(|l| l.starts_with("http_requests_total{") && l.contains("route=\"/health/live\""))
        .unwrap_or_else(|| panic!("no counter for /health/live in:\n{text}"));
    assert!(
        live.contains("code=\"200\"") && live.contains("method=\"GET\""),
        "{live}"
    );
    assert!(
        text.contains("route=\"unmatched\""),
        "unknown paths share one label"
    );
    assert!(
        !text.contains("/no/such/page"),
        "raw paths must not become labels"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains("db_pool_connections{state=\"idle\"}"));
    assert_eq!(app.get("/api/metrics").await.status(), 401);
    assert_eq!(
        scrape("/api/metrics", Some("scrape-token"))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn metrics_are_off_until_a_token_is_configured(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.text().await.unwrap(),
        "metrics are off: configure http.metrics_token and give it to Prometheus"
    );
}

fn site_with_css(hash_files: bool) -> (LeptosOptions, std::path::PathBuf) {
    let root =
        std::env::temp_dir().join(format!("enclii-site-{}-{hash_files}", std::process::id()));
    let pkg = root.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("switchyard.css"), "body{color:red}").unwrap();
    std::fs::write(
        pkg.join("switchyard.css.br"),
        b"\x0b\x07\x80body{color:red}\x03",
    )
    .unwrap();
    let options = LeptosOptions::builder()
        .output_name("switchyard")
        .site_root(root.to_str().unwrap())
        .hash_files(hash_files)
        .build();
    (options, root)
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn hashed_assets_are_served_precompressed_and_cached_for_a_year(pool: PgPool) {
    let (options, root) = site_with_css(true);
    let app = spawn_app_with_site(pool, options).await;
    let response = app
        .client
        .get(app.url("/pkg/switchyard.css"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "br");
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let plain = app.get("/pkg/switchyard.css").await;
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.text().await.unwrap(), "body{color:red}");
    std::fs::remove_dir_all(root).ok();
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn unhashed_assets_must_be_revalidated(pool: PgPool) {
    let (options, root) = site_with_css(false);
    let app = spawn_app_with_site(pool, options).await;
    let response = app.get("/pkg/switchyard.css").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(app.get("/pkg/missing.js").await.status(), 404);
    std::fs::remove_dir_all(root).ok();
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn migrations_create_the_audit_log(pool: PgPool) {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}
