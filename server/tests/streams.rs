//! Live streams after their caller loses access: a revoked API token, an ended session and a
//! removed member stop receiving within `session.stream_recheck_secs` (a second here); a caller
//! holds at most `session.max_streams_per_caller` streams at once. The deployment event stream
//! needs no cluster (a deployment nobody drives stays pending, so its stream stays open); the
//! plain-text pod log stream runs on the local cluster.

mod common;

use std::time::{Duration, Instant};

use common::{Cleanup, LocalCluster, TestApp, User, user};
use serde_json::json;
use sqlx::PgPool;

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const P: &str = "enclii-platform";

/// A server whose streams check their caller again every second.
async fn spawn(pool: &PgPool, mut settings: switchyard_engine::Settings) -> TestApp {
    settings.session.stream_recheck_secs = 1;
    common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .expect("build app"),
    )
    .await
}

/// The owner of project `P`, which has docs-site.
async fn project(app: &TestApp, pool: &PgPool) -> User {
    let owner = user(pool, "owner", true).await;
    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&owner.token),
            json!({"slug": P}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&owner.token),
            json!({"spec": DOCS}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    owner
}

/// A deployment of docs-site that stays pending (no worker runs), so that its stream stays open.
async fn pending_deployment(app: &TestApp, token: &str) -> i64 {
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(token),
            json!({"project": P, "service": "docs-site", "environment": "production", "image": "ghcr.io/x/docs:1"}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    d["id"].as_i64().unwrap()
}

async fn member(app: &TestApp, pool: &PgPool, owner: &User, name: &str) -> User {
    let member = user(pool, name, true).await;
    let (status, body) = app
        .call(
            "/api/members/set",
            Some(&owner.token),
            json!({"project": P, "email": format!("{name}@example.test"), "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    member
}

/// A stream as it arrives.
struct Stream {
    response: reqwest::Response,
    text: String,
    ended: bool,
}

impl Stream {
    /// Opens `path` with the credential `auth` adds; the stream must be accepted.
    async fn open(
        app: &TestApp,
        path: &str,
        auth: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Self {
        let response = auth(app.client.get(app.url(path))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        Self {
            response,
            text: String::new(),
            ended: false,
        }
    }

    /// Reads for up to `secs` seconds, until `text` holds `needle` or the stream ends.
    async fn read_until(&mut self, needle: &str, secs: f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        while !self.ended && !self.text.contains(needle) {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return,
                Ok(Ok(Some(chunk))) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
            }
        }
    }

    /// Reads until the stream ends, for up to `secs` seconds; whether it did.
    async fn ends_within(&mut self, secs: f64) -> bool {
        // A needle no stream sends: read to the end or the deadline.
        self.read_until("\u{0}never\u{0}", secs).await;
        self.ended
    }
}

fn bearer(token: &str) -> impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder + '_ {
    move |r| r.bearer_auth(token)
}

/// Asserts that `stream` ended with the `end` event saying access was revoked, within the
/// re-check interval (a second) and some slack for a loaded machine.
async fn assert_revoked(stream: &mut Stream, since: Instant) {
    stream.read_until("\n\n", 0.0).await;
    assert!(
        stream.ends_within(4.0).await,
        "the stream still runs after access went:\n{}",
        stream.text
    );
    assert!(
        since.elapsed() < Duration::from_secs(4),
        "{:?}",
        since.elapsed()
    );
    assert!(
        stream.text.contains("event: end\ndata: access revoked: "),
        "a last event says why:\n{}",
        stream.text
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_stream_opened_with_an_api_token_ends_within_the_recheck_interval_after_the_token_is_revoked(
    pool: PgPool,
) {
    let app = spawn(&pool, common::settings()).await;
    let owner = project(&app, &pool).await;
    let id = pending_deployment(&app, &owner.token).await;
    let path = format!("/api/events/deployments/{P}/{id}");
    let mut stream = Stream::open(&app, &path, bearer(&owner.token)).await;
    stream.read_until("event: deployment", 5.0).await;
    assert!(stream.text.contains("event: deployment"), "{}", stream.text);
    // Re-checks of a caller who still has access change nothing.
    assert!(!stream.ends_within(2.5).await, "{}", stream.text);
    assert!(!stream.text.contains("event: end"), "{}", stream.text);

    let token_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens WHERE user_id = $1")
        .bind(owner.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        switchyard_engine::auth::tokens::revoke(&pool, owner.id, token_id)
            .await
            .unwrap()
    );
    let revoked = Instant::now();
    assert_revoked(&mut stream, revoked).await;
    assert!(
        stream
            .text
            .contains("access revoked: this API token is unknown, expired or revoked"),
        "{}",
        stream.text
    );
    // And it cannot be opened again.
    let again = app
        .client
        .get(app.url(&path))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_members_stream_ends_when_they_are_removed_and_the_owners_goes_on(pool: PgPool) {
    let app = spawn(&pool, common::settings()).await;
    let owner = project(&app, &pool).await;
    let viewer = member(&app, &pool, &owner, "viewer").await;
    let id = pending_deployment(&app, &owner.token).await;
    let path = format!("/api/events/deployments/{P}/{id}");
    let mut theirs = Stream::open(&app, &path, bearer(&viewer.token)).await;
    let mut owners = Stream::open(&app, &path, bearer(&owner.token)).await;
    theirs.read_until("event: deployment", 5.0).await;
    owners.read_until("event: deployment", 5.0).await;

    let (status, body) = app
        .call(
            "/api/members/remove",
            Some(&owner.token),
            json!({"project": P, "email": "viewer@example.test"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_revoked(&mut theirs, Instant::now()).await;
    assert!(
        theirs
            .text
            .contains("access revoked: no such project, or you are not a member of it"),
        "{}",
        theirs.text
    );
    assert!(!owners.ends_within(1.5).await, "{}", owners.text);
    assert!(!owners.text.contains("event: end"), "{}", owners.text);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_stream_opened_from_a_session_ends_when_the_session_does(pool: PgPool) {
    use switchyard_engine::auth::sessions;
    let app = spawn(&pool, common::settings()).await;
    let owner = project(&app, &pool).await;
    let id = pending_deployment(&app, &owner.token).await;
    let secret = sessions::create(&pool, owner.id, 1, None, None)
        .await
        .unwrap();
    let cookie = format!("{}={secret}", sessions::COOKIE);
    let path = format!("/api/events/deployments/{P}/{id}");
    let mut stream = Stream::open(&app, &path, |r| r.header("cookie", cookie.clone())).await;
    stream.read_until("event: deployment", 5.0).await;
    assert!(stream.text.contains("event: deployment"), "{}", stream.text);

    assert!(sessions::end(&pool, &secret).await.unwrap(), "signed out");
    assert_revoked(&mut stream, Instant::now()).await;
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_caller_holds_at_most_eight_streams_at_once_and_a_closed_one_frees_its_place(
    pool: PgPool,
) {
    let settings = common::settings();
    assert_eq!(settings.session.max_streams_per_caller, 8, "the default");
    let app = spawn(&pool, settings).await;
    let owner = project(&app, &pool).await;
    let viewer = member(&app, &pool, &owner, "viewer").await;
    let id = pending_deployment(&app, &owner.token).await;
    let path = format!("/api/events/deployments/{P}/{id}");
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(Stream::open(&app, &path, bearer(&owner.token)).await);
    }
    let ninth = || async {
        let r = app
            .client
            .get(app.url(&path))
            .bearer_auth(&owner.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        // A stream let in is dropped at once (reading it would wait for its end).
        if status == 200 {
            return (status, String::new());
        }
        (status, r.text().await.unwrap_or_default())
    };
    let (status, body) = ninth().await;
    assert_eq!(status, 429, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "too_many");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("you have 8 live streams open"),
        "{body}"
    );
    // The bound is the user's, whatever the credential: a session of theirs is refused too.
    let secret = switchyard_engine::auth::sessions::create(&pool, owner.id, 1, None, None)
        .await
        .unwrap();
    let by_session = app
        .client
        .get(app.url(&path))
        .header("cookie", format!("enclii_session={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_session.status(), 429);
    // Others are not affected.
    Stream::open(&app, &path, bearer(&viewer.token)).await;

    // A stream the client closes gives its place back (once the server sees the connection go).
    drop(open.pop());
    let mut status = 0;
    for _ in 0..50 {
        let (s, _) = ninth().await;
        status = s;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the closed stream's place was not freed");
}

/// The plain-text pod log stream (`enclii logs -f`) just ends when its token is revoked.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_followed_pod_log_stream_ends_after_its_token_is_revoked(pool: PgPool) {
    let cluster = LocalCluster::from_env().await;
    let mut settings = common::cluster_settings(&cluster);
    settings.cluster.worker = true;
    let _cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    let app = spawn(&pool, settings).await;
    let owner = project(&app, &pool).await;
    common::prove_domains(&pool, P, DOCS).await;
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(&owner.token),
            json!({"project": P, "service": "docs-site", "environment": "production", "image": "ghcr.io/madfam-io/docs:1"}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    let id = d["id"].as_i64().unwrap();
    let mut state = String::new();
    for _ in 0..450 {
        let (_, page) = app
            .call(
                "/api/deployments/list",
                Some(&owner.token),
                json!({"project": P}),
            )
            .await;
        state = page["items"]
            .as_array()
            .and_then(|items| items.iter().find(|d| d["id"] == id))
            .and_then(|d| d["state"].as_str())
            .unwrap_or_default()
            .to_owned();
        if !matches!(state.as_str(), "pending" | "in_progress") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(state, "succeeded");

    let path = format!("/api/logs/{P}/docs-site/production?follow=true&tail=2");
    let mut logs = Stream::open(&app, &path, bearer(&owner.token)).await;
    logs.read_until(" | ", 20.0).await;
    assert!(logs.text.contains("docs-site GET /health"), "{}", logs.text);
    sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1")
        .bind(owner.id)
        .execute(&pool)
        .await
        .unwrap();
    let revoked = Instant::now();
    assert!(
        logs.ends_within(5.0).await,
        "still streaming:\n{}",
        logs.text
    );
    assert!(revoked.elapsed() < Duration::from_secs(4));
    assert!(!logs.text.contains("event: end"), "plain text just ends");
}
