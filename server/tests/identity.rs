//! Identity end to end: browser sign-in against the real Plinto stand-in (npm oidc-provider, started
//! per test), and Plinto bearer tokens checked against a provider whose keys the test controls.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sqlx::PgPool;
use switchyard_engine::Settings;
use switchyard_engine::config::OidcSettings;
use tokio::sync::RwLock;

const AUDIENCE: &str = "urn:switchyard:api";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn oidc_settings(issuer: &str, refresh_secs: u64) -> OidcSettings {
    OidcSettings {
        issuer: issuer.to_owned(),
        client_id: "switchyard".into(),
        client_secret: Some(secrecy::SecretString::from(
            "switchyard-dev-secret".to_owned(),
        )),
        api_audience: AUDIENCE.into(),
        scopes: ["openid", "email", "profile", "org", "offline_access"]
            .map(String::from)
            .to_vec(),
        platform_admin_emails: vec![],
        platform_admin_role: "admin".into(),
        jwks_min_refresh_secs: refresh_secs,
    }
}

/// A Switchyard on a known address (the provider must know its redirect URI before it starts).
struct Server {
    addr: SocketAddr,
    listener: Option<tokio::net::TcpListener>,
}

impl Server {
    async fn bind() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self {
            addr: listener.local_addr().unwrap(),
            listener: Some(listener),
        }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn start(&mut self, pool: PgPool, oidc: OidcSettings) {
        self.start_with(pool, oidc, |_| {}).await
    }

    /// [`Server::start`], with settings of the test's choosing.
    async fn start_with(
        &mut self,
        pool: PgPool,
        oidc: OidcSettings,
        adjust: impl FnOnce(&mut Settings),
    ) {
        let mut settings = Settings::with_database_url("postgres://unused").unwrap();
        settings.database.migrate = false;
        settings.cluster.worker = false;
        settings.public_url = self.origin();
        settings.oidc = Some(oidc);
        adjust(&mut settings);
        let app = switchyard_server::build_with_pool(settings, pool)
            .await
            .unwrap();
        let listener = self.listener.take().unwrap();
        let service = app
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    }
}

/// The Plinto stand-in, as a child process for the test's lifetime.
struct StandIn {
    child: Child,
    issuer: String,
}

impl StandIn {
    async fn start(rp_origin: &str) -> Self {
        let port = free_port();
        // At run time: see cli/tests/seed_script.rs.
        let root = format!("{}/..", std::env::var("CARGO_MANIFEST_DIR").unwrap());
        let child = Command::new("node")
            .arg("standin/plinto.mjs")
            .current_dir(root)
            .env("OP_PORT", port.to_string())
            .env("RP_ORIGIN", rp_origin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node must be installed (scripts/test.sh installs the stand-in's packages)");
        let issuer = format!("http://127.0.0.1:{port}");
        let probe = format!("{issuer}/.well-known/openid-configuration");
        for _ in 0..100 {
            if reqwest::get(&probe)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Self { child, issuer };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the Plinto stand-in did not start on port {port}");
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no redirect from {} ({})", r.url(), r.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Resolves a possibly relative Location against the URL that sent it.
fn absolute(base: &reqwest::Url, location: &str) -> String {
    base.join(location).unwrap().to_string()
}

/// Signs in as `login` through the provider's real login form; returns the callback URL the
/// provider sent the browser to (not yet visited).
async fn through_provider(client: &reqwest::Client, server: &str, login: &str) -> String {
    through_provider_to(client, server, login, "/projects").await
}

/// [`through_provider`], asking to come back to `return_to` (percent-encoded into the query here).
async fn through_provider_to(
    client: &reqwest::Client,
    server: &str,
    login: &str,
    return_to: &str,
) -> String {
    let mut start = reqwest::Url::parse(&format!("{server}/auth/login")).unwrap();
    start.query_pairs_mut().append_pair("return_to", return_to);
    let r = client.get(start).send().await.unwrap();
    assert_eq!(r.status(), 303, "login redirects to the provider");
    let mut url = location(&r);
    assert!(
        url.contains("code_challenge_method=S256")
            && url.contains("nonce=")
            && url.contains("state="),
        "{url}"
    );
    loop {
        let r = client.get(&url).send().await.unwrap();
        if r.status().is_redirection() {
            let next = absolute(r.url(), &location(&r));
            if next.starts_with(server) {
                return next;
            }
            url = next;
            continue;
        }
        // The provider's login form (devInteractions): any login is accepted.
        let page_url = r.url().clone();
        let html = r.text().await.unwrap();
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a login form");
        let r = client
            .post(absolute(&page_url, action))
            .form(&[
                ("prompt", "login"),
                ("login", login),
                ("password", "anything"),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_redirection(),
            "login form answered {}",
            r.status()
        );
        url = absolute(r.url(), &location(&r));
    }
}

async fn whoami(client: &reqwest::Client, server: &str) -> (u16, Value) {
    // As the dashboard's own fetch would: browsers mark same-origin requests.
    let r = client
        .post(format!("{server}/api/whoami"))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut parsed = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = parsed.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    parsed.to_string()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_full_sign_in_starts_a_session_and_sign_out_ends_it(pool: PgPool) {
    let mut server = Server::bind().await;
    let standin = StandIn::start(&server.origin()).await;
    server
        .start(pool.clone(), oidc_settings(&standin.issuer, 30))
        .await;
    let origin = server.origin();
    let client = browser();

    let callback = through_provider(&client, &origin, "alice").await;
    assert!(
        callback.contains("iss="),
        "the provider sends iss (RFC 9207): {callback}"
    );
    let r = client.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(
        location(&r),
        "/projects",
        "back to the page the user wanted"
    );
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with("enclii_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback cannot carry Secure cookies"
    );
    assert!(
        !callback.contains("access_token") && !cookie.contains("eyJ"),
        "no token reaches the browser"
    );

    let (status, me) = whoami(&client, &origin).await;
    assert_eq!(
        (status, me["display_name"].as_str(), me["via"].as_str()),
        (200, Some("Test alice"), Some("session")),
        "{me}"
    );
    let email: Option<String> =
        sqlx::query_scalar!("SELECT email FROM users WHERE subject = 'alice'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(email.as_deref(), Some("alice@example.test"));

    // A mutation from another site, riding on the cookie, is refused.
    let r = client
        .post(format!("{origin}/api/projects/create"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"slug": "evil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .post(format!("{origin}/api/projects/create"))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"slug": "good"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = client
        .post(format!("{origin}/auth/logout"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).starts_with(&format!(
            "{}/session/end?client_id=switchyard",
            standin.issuer
        )),
        "{}",
        location(&r)
    );
    let (status, _) = whoami(&client, &origin).await;
    assert_eq!(status, 401, "refused after signing out");

    let actions: Vec<String> = sqlx::query_scalar!(
        "SELECT action FROM audit_events WHERE action LIKE 'auth.%' ORDER BY id"
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(actions, ["auth.sign_in", "auth.sign_out"]);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn tampered_state_replayed_callbacks_and_foreign_issuers_are_refused(pool: PgPool) {
    let mut server = Server::bind().await;
    let standin = StandIn::start(&server.origin()).await;
    server
        .start(pool.clone(), oidc_settings(&standin.issuer, 30))
        .await;
    let origin = server.origin();
    let client = browser();

    let callback = through_provider(&client, &origin, "mallory").await;
    for (what, url) in [
        (
            "tampered state",
            with_param(&callback, "state", Some("forged")),
        ),
        (
            "wrong issuer",
            with_param(&callback, "iss", Some("http://evil.example")),
        ),
    ] {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{what}");
    }
    // The wrong-issuer attempt consumed the state: even the genuine callback is now refused.
    let r = client.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("unknown, used or expired"));

    // A fresh sign-in succeeds once; replaying its callback does not.
    let callback = through_provider(&client, &origin, "mallory").await;
    let missing_iss = with_param(&callback, "iss", None);
    assert_eq!(
        client.get(&missing_iss).send().await.unwrap().status(),
        400,
        "the provider promises iss; its absence is refused"
    );
    let callback = through_provider(&client, &origin, "mallory").await;
    assert_eq!(client.get(&callback).send().await.unwrap().status(), 303);
    assert_eq!(
        client.get(&callback).send().await.unwrap().status(),
        400,
        "a callback works once"
    );

    // An old code with a fresh state: the provider refuses the replayed code.
    let old_code = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let fresh = through_provider(&client, &origin, "mallory").await;
    let r = client
        .get(with_param(&fresh, "code", Some(&old_code)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("could not be verified"));

    let failures: i64 = sqlx::query_scalar!(
        "SELECT count(*) AS \"n!\" FROM audit_events WHERE action = 'auth.sign_in_failed'"
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(failures, 6);
}

/// A provider whose signing keys the test controls: discovery and a JWKS that can rotate.
struct KeyedProvider {
    issuer: String,
    jwks: Arc<RwLock<Value>>,
    fetches: Arc<AtomicUsize>,
}

fn jwk(name: &str) -> Value {
    let text = match name {
        "a" => include_str!("../../engine/tests/keys/test-a.jwk.json"),
        _ => include_str!("../../engine/tests/keys/test-b.jwk.json"),
    };
    serde_json::from_str(text).unwrap()
}

fn key(name: &str) -> EncodingKey {
    let pem = match name {
        "a" => include_str!("../../engine/tests/keys/test-a.pem"),
        _ => include_str!("../../engine/tests/keys/test-b.pem"),
    };
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

impl KeyedProvider {
    async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(RwLock::new(json!({ "keys": keys })));
        let fetches = Arc::new(AtomicUsize::new(0));
        let discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let (j, f) = (jwks.clone(), fetches.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/jwks",
                get(move || async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    axum::Json(j.read().await.clone())
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            issuer,
            jwks,
            fetches,
        }
    }

    fn token(&self, key_name: &str, kid: Option<&str>, claims: Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, &key(key_name)).unwrap()
    }

    fn claims(&self, overrides: Value) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({
            "iss": self.issuer, "aud": AUDIENCE, "sub": "carol", "exp": now + 900, "nbf": now - 5, "iat": now,
            "jti": "j1", "type": "access", "email": "carol@example.test", "name": "Carol", "tid": "t1", "roles": ["member"],
        });
        for (k, v) in overrides.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }
}

async fn bearer(server: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{server}/api/whoami"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn plinto_access_tokens_are_accepted_and_everything_else_is_not(pool: PgPool) {
    let provider = KeyedProvider::start(vec![jwk("a")]).await;
    let mut server = Server::bind().await;
    server
        .start(pool.clone(), oidc_settings(&provider.issuer, 3600))
        .await;
    let origin = server.origin();

    let good = provider.token("a", Some("test-a"), provider.claims(json!({})));
    let (status, me) = bearer(&origin, &good).await;
    assert_eq!(
        (status, me["via"].as_str(), me["display_name"].as_str()),
        (200, Some("plinto_token"), Some("Carol")),
        "{me}"
    );
    // A single-key set needs no kid.
    let (status, _) = bearer(
        &origin,
        &provider.token("a", None, provider.claims(json!({}))),
    )
    .await;
    assert_eq!(status, 200);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cases = [
        (
            "wrong audience",
            provider.token(
                "a",
                Some("test-a"),
                provider.claims(json!({"aud": "someone-else"})),
            ),
            "another audience",
        ),
        (
            "wrong issuer",
            provider.token(
                "a",
                Some("test-a"),
                provider.claims(json!({"iss": "http://evil.example"})),
            ),
            "another issuer",
        ),
        (
            "expired",
            provider.token(
                "a",
                Some("test-a"),
                provider.claims(json!({"exp": now - 120})),
            ),
            "expired",
        ),
        (
            "not yet valid",
            provider.token(
                "a",
                Some("test-a"),
                provider.claims(json!({"nbf": now + 600})),
            ),
            "not yet valid",
        ),
        (
            "refresh token",
            provider.token(
                "a",
                Some("test-a"),
                provider.claims(json!({"type": "refresh"})),
            ),
            "only access tokens",
        ),
        (
            "ID token",
            provider.token("a", Some("test-a"), provider.claims(json!({"type": null}))),
            "only access tokens",
        ),
        (
            "signed by another key",
            provider.token("b", Some("test-a"), provider.claims(json!({}))),
            "signature",
        ),
    ];
    for (what, token, expected) in cases {
        let (status, body) = bearer(&origin, &token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(expected),
            "{what}: {body}"
        );
    }

    // alg: none, and HS256 keyed with the public key (the classic confusion attack).
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&provider.claims(json!({})))
    );
    let (status, body) = bearer(&origin, &none).await;
    assert_eq!(status, 401, "{body}");
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &provider.claims(json!({})),
        &EncodingKey::from_secret(jwk("a")["n"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    let (status, body) = bearer(&origin, &hs).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("only RS256-signed tokens are accepted"))
    );

    // An unknown kid does not make the server refetch keys more than once per interval.
    let before = provider.fetches.load(Ordering::SeqCst);
    let rotated = provider.token("b", Some("test-b"), provider.claims(json!({})));
    for _ in 0..3 {
        assert_eq!(bearer(&origin, &rotated).await.0, 401);
    }
    assert_eq!(
        provider.fetches.load(Ordering::SeqCst),
        before,
        "no refetch within the interval"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_key_rotation_is_picked_up_through_an_unknown_kid(pool: PgPool) {
    let provider = KeyedProvider::start(vec![jwk("a")]).await;
    let mut server = Server::bind().await;
    server.start(pool, oidc_settings(&provider.issuer, 0)).await;
    let origin = server.origin();
    assert_eq!(
        bearer(
            &origin,
            &provider.token("a", Some("test-a"), provider.claims(json!({})))
        )
        .await
        .0,
        200
    );
    let rotated = provider.token("b", Some("test-b"), provider.claims(json!({})));
    assert_eq!(
        bearer(&origin, &rotated).await.0,
        401,
        "key b is not published yet"
    );
    *provider.jwks.write().await = json!({ "keys": [jwk("a"), jwk("b")] });
    assert_eq!(
        bearer(&origin, &rotated).await.0,
        200,
        "the rotation is picked up"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn platform_admins_come_from_the_roles_claim_or_the_configured_verified_emails(pool: PgPool) {
    let provider = KeyedProvider::start(vec![jwk("a")]).await;
    let mut server = Server::bind().await;
    let mut settings = oidc_settings(&provider.issuer, 3600);
    settings.platform_admin_emails = vec!["Boss@Example.test".into()];
    server.start(pool.clone(), settings).await;
    let origin = server.origin();
    // An account whose address was verified at its browser sign-in (the ID token said so).
    switchyard_engine::auth::users::upsert(
        &pool,
        &switchyard_engine::auth::users::Identity {
            issuer: &provider.issuer,
            subject: "signed-in-boss",
            email: Some("boss@example.test"),
            display_name: "Boss",
            platform_admin: false,
        },
    )
    .await
    .unwrap();
    let boss = Some("boss@example.test");
    // (claims, platform admin, the email the caller is known by)
    let cases = [
        (
            json!({"sub": "member", "email": "member@example.test", "roles": ["member"]}),
            false,
            None,
        ),
        (
            json!({"sub": "by-role", "email": "r@example.test", "roles": ["admin"]}),
            true,
            None,
        ),
        (
            json!({"sub": "by-email", "email": "boss@example.test", "email_verified": true, "roles": []}),
            true,
            boss,
        ),
        // Anyone can put the boss's address in an unverified claim.
        (
            json!({"sub": "claims-boss", "email": "boss@example.test", "roles": []}),
            false,
            None,
        ),
        (
            json!({"sub": "claims-boss-2", "email": "boss@example.test", "email_verified": false, "roles": []}),
            false,
            None,
        ),
        (
            json!({"sub": "claims-boss-3", "email": "boss@example.test", "email_verified": "true", "roles": []}),
            false,
            None,
        ),
        // A token silent about verification: the address verified at sign-in stands.
        (
            json!({"sub": "signed-in-boss", "email": "boss@example.test", "roles": []}),
            true,
            boss,
        ),
    ];
    for (claims, admin, email) in cases {
        let token = provider.token("a", Some("test-a"), provider.claims(claims.clone()));
        let (status, me) = bearer(&origin, &token).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["platform_admin"], admin, "{claims}");
        assert_eq!(
            me["email"].as_str(),
            email,
            "{claims}: only verified emails"
        );
    }
    let unverified: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT email FROM users WHERE subject LIKE 'claims-boss%' OR subject = 'member'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        unverified,
        [None, None, None, None],
        "unverified emails are not kept"
    );
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// An API call as the dashboard makes it, riding on `client`'s session cookie.
async fn as_session(client: &reqwest::Client, server: &str, path: &str, body: Value) -> u16 {
    client
        .post(format!("{server}{path}"))
        .header("sec-fetch-site", "same-origin")
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Signs `client` in as `login` and checks that it worked.
async fn sign_in(client: &reqwest::Client, server: &str, login: &str) {
    let callback = through_provider(client, server, login).await;
    let r = client.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303, "{login}: {}", r.text().await.unwrap());
}

/// Login CSRF: Mallory starts a sign-in, signs in at the provider, and sends the callback URL to
/// Alice instead of visiting it. Were it to complete in Alice's browser, Alice would work in
/// Mallory's account (and, say, add her secrets to Mallory's project).
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_callback_completes_only_in_the_browser_that_started_the_sign_in(pool: PgPool) {
    let mut server = Server::bind().await;
    let standin = StandIn::start(&server.origin()).await;
    server
        .start(pool.clone(), oidc_settings(&standin.issuer, 30))
        .await;
    let origin = server.origin();

    let (mallory, alice) = (browser(), browser());
    let planted = through_provider(&mallory, &origin, "mallory").await;
    let r = alice.get(&planted).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        set_cookies(&r)
            .iter()
            .all(|c| !c.starts_with("enclii_session=")),
        "no session for Alice"
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("this sign-in was started in another browser"),
        "the page says why"
    );
    assert_eq!(whoami(&alice, &origin).await.0, 401, "Alice is not Mallory");

    // Nor when Alice has a sign-in of her own under way: the cookies differ.
    let r = alice
        .get(format!("{origin}/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let planted = through_provider(&mallory, &origin, "mallory").await;
    assert_eq!(alice.get(&planted).send().await.unwrap().status(), 400);
    assert_eq!(whoami(&alice, &origin).await.0, 401, "Alice is not Mallory");

    // The sign-in cookie: for `/auth` only, for the server only, as long as the attempt.
    let r = browser()
        .get(format!("{origin}/auth/login"))
        .send()
        .await
        .unwrap();
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("enclii_login="))
        .expect("a sign-in cookie");
    for part in ["HttpOnly", "SameSite=Lax", "Path=/auth", "Max-Age=600"] {
        assert!(cookie.contains(part), "{part}: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );

    // In the browser that started it, the sign-in completes and spends its cookie.
    let callback = through_provider(&mallory, &origin, "mallory").await;
    let r = mallory.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookies = set_cookies(&r);
    assert!(cookies[0].starts_with("enclii_session="), "{cookies:?}");
    assert!(
        cookies.iter().any(|c| c.starts_with("enclii_login=;")
            && c.contains("Max-Age=0")
            && c.contains("Path=/auth")),
        "{cookies:?}"
    );
    assert_eq!(whoami(&mallory, &origin).await.0, 200);
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sessions, 1, "only Mallory's own sign-in started a session");
}

/// `return_to` survives the trip through the provider only as a path of this site: whatever
/// else was asked for, the callback sends the browser home, and never answers 500.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_sign_in_returns_only_to_this_site_whatever_return_to_says(pool: PgPool) {
    let mut server = Server::bind().await;
    let standin = StandIn::start(&server.origin()).await;
    // Two requests a case, more than the per-address limit of sign-ins a minute.
    server
        .start_with(pool.clone(), oidc_settings(&standin.issuer, 30), |s| {
            s.session.login_attempts_per_minute = 100
        })
        .await;
    let origin = server.origin();
    let client = browser();
    // Each as the handler receives it, after the query string's own percent-decoding.
    for (return_to, expected) in [
        ("/projects/shop?tab=logs#end", "/projects/shop?tab=logs#end"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/%09/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/%2F/evil.example", "/"),
        ("/%5Cevil.example", "/"),
        ("/.//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(document.cookie)", "/"),
        ("/\r\nSet-Cookie: enclii_session=planted", "/"),
        ("/%0D%0ASet-Cookie:%20enclii_session=planted", "/"),
    ] {
        let callback = through_provider_to(&client, &origin, "alice", return_to).await;
        let r = client.get(&callback).send().await.unwrap();
        assert_eq!(r.status(), 303, "{return_to:?}");
        assert_eq!(
            r.headers().get("location").map(|l| l.as_bytes()),
            Some(expected.as_bytes()),
            "{return_to:?}"
        );
    }
}

/// Anyone can claim any address at the provider until they verify it: a configured admin email
/// makes a platform admin only of an account that verified it.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_configured_admin_email_counts_only_when_the_provider_verified_it(pool: PgPool) {
    let mut server = Server::bind().await;
    let standin = StandIn::start(&server.origin()).await;
    let mut settings = oidc_settings(&standin.issuer, 30);
    settings.platform_admin_emails = vec!["boss@example.test".into()];
    server.start(pool.clone(), settings).await;
    let origin = server.origin();

    let pretender = browser();
    sign_in(&pretender, &origin, "unverified:boss@example.test").await;
    let (status, me) = whoami(&pretender, &origin).await;
    assert_eq!(
        (status, me["platform_admin"].as_bool(), me["email"].as_str()),
        (200, Some(false), None),
        "{me}"
    );
    let kept: Option<String> = sqlx::query_scalar(
        "SELECT email FROM users WHERE subject = 'unverified:boss@example.test'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(kept, None, "an unverified email is not kept");

    let boss = browser();
    sign_in(&boss, &origin, "boss@example.test").await;
    let (status, me) = whoami(&boss, &origin).await;
    assert_eq!(
        (status, me["platform_admin"].as_bool(), me["email"].as_str()),
        (200, Some(true), Some("boss@example.test")),
        "{me}"
    );
}

/// Adding a member by email binds the membership to the account that verified the address first
/// (its issuer and subject), never to one that merely claims it, nor to one that verifies it later.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn an_email_adds_only_the_account_that_verified_it_first(pool: PgPool) {
    let mut server = Server::bind().await;
    let standin = StandIn::start(&server.origin()).await;
    server
        .start(pool.clone(), oidc_settings(&standin.issuer, 30))
        .await;
    let origin = server.origin();
    let owner = common::user(&pool, "owner", true).await;
    let as_owner = |path: &'static str, body: Value| {
        let (origin, token) = (origin.clone(), owner.token.clone());
        async move {
            let r = reqwest::Client::new()
                .post(format!("{origin}{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, _) = as_owner("/api/projects/create", json!({"slug": "shop"})).await;
    assert_eq!(status, 200);
    let add = json!({"project": "shop", "email": "victim@example.test", "role": "developer"});
    let list = json!({"project": "shop"});

    let mallory = browser();
    sign_in(&mallory, &origin, "unverified:victim@example.test").await;
    let (status, body) = as_owner("/api/members/set", add.clone()).await;
    assert_eq!(status, 404, "an unverified claim names nobody: {body}");
    assert_eq!(
        as_session(&mallory, &origin, "/api/members/list", list.clone()).await,
        404
    );

    let (victim, latecomer) = (browser(), browser());
    sign_in(&victim, &origin, "victim@example.test").await;
    // Another account, verifying the same address after the victim did.
    sign_in(&latecomer, &origin, "victim").await;
    let (status, member) = as_owner("/api/members/set", add.clone()).await;
    assert_eq!(
        (status, member["display_name"].as_str()),
        (200, Some("Test victim@example.test")),
        "{member}"
    );
    for (who, client, expected) in [
        ("victim", &victim, 200),
        ("the later account", &latecomer, 404),
        ("the pretender", &mallory, 404),
    ] {
        assert_eq!(
            as_session(client, &origin, "/api/members/list", list.clone()).await,
            expected,
            "{who}"
        );
    }
    let bound: Vec<String> = sqlx::query_scalar(
        "SELECT u.subject FROM memberships m JOIN users u ON u.id = m.user_id
         JOIN projects p ON p.id = m.project_id WHERE p.slug = 'shop' ORDER BY u.subject",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(bound, ["owner", "victim@example.test"]);
}

/// A dashboard session creating a token (the only way to create one: tokens never mint tokens).
fn session_of(user: &common::User) -> switchyard_engine::auth::Caller {
    switchyard_engine::auth::Caller {
        user_id: user.id,
        display_name: "ada".into(),
        email: None,
        platform_admin: false,
        via: switchyard_engine::auth::Via::Session,
        client_addr: None,
        projects: Default::default(),
    }
}

/// Issue #18, finding 12: a token asked for without an expiry lived for ever. It now gets the
/// platform's maximum (`session.api_token_max_days`), and a longer one is refused, saying so.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn api_tokens_live_at_most_the_platform_maximum(pool: PgPool) {
    use switchyard_engine::auth::tokens::manage;
    let user = common::user(&pool, "ada", false).await;
    let caller = session_of(&user);
    let limits = common::settings().session;
    assert_eq!(limits.api_token_max_days, 90);

    let created = manage::create(&pool, &limits, Some(&caller), "ci", false, None)
        .await
        .unwrap();
    assert!(
        created.token.expires_at.is_some(),
        "no expiry means the maximum, not for ever"
    );
    let id: uuid::Uuid = created.token.id.parse().unwrap();
    let in_window: bool = sqlx::query_scalar(
        "SELECT expires_at BETWEEN now() + interval '89 days 23 hours' AND now() + interval '90 days'
         FROM api_tokens WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(in_window, "expires in 90 days");

    let err = manage::create(&pool, &limits, Some(&caller), "ci", false, Some(365))
        .await
        .unwrap_err()
        .into_api();
    assert!(
        matches!(err, enclii_api::ApiError::Invalid { .. }),
        "{err:?}"
    );
    assert!(
        err.message().contains("at most 90 days"),
        "{}",
        err.message()
    );
    assert!(
        manage::create(&pool, &limits, Some(&caller), "ci", false, Some(90))
            .await
            .is_ok()
    );
}

/// A token older than the maximum stops, whatever it was created with (tokens made before the
/// maximum existed have no expiry at all).
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_token_older_than_the_maximum_lifetime_stops_working(pool: PgPool) {
    let app = common::spawn_app(pool.clone()).await;
    let user = common::user(&pool, "ada", false).await;
    let (status, _) = bearer(&app.url(""), &user.token).await;
    assert_eq!(status, 200);
    sqlx::query(
        "UPDATE api_tokens SET created_at = now() - interval '91 days', expires_at = NULL
         WHERE user_id = $1",
    )
    .bind(user.id)
    .execute(&pool)
    .await
    .unwrap();
    let (status, body) = bearer(&app.url(""), &user.token).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("expired"), "{body}");
}

/// A token follows its user's standing at Plinto: without a sign-in through Plinto within
/// `session.api_token_sign_in_within_days` (a user disabled there cannot sign in) it stops, with a
/// 401 that says to sign in again; the next sign-in brings it back.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_token_stops_when_its_user_has_not_signed_in_through_plinto_recently(pool: PgPool) {
    let app = common::spawn_app(pool.clone()).await;
    let user = common::user(&pool, "ada", false).await;
    sqlx::query("UPDATE users SET signed_in_at = now() - interval '29 days' WHERE id = $1")
        .bind(user.id)
        .execute(&pool)
        .await
        .unwrap();
    let (status, _) = bearer(&app.url(""), &user.token).await;
    assert_eq!(status, 200, "signed in 29 days ago: within the window");

    sqlx::query("UPDATE users SET signed_in_at = now() - interval '31 days' WHERE id = $1")
        .bind(user.id)
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = bearer(&app.url(""), &user.token).await;
    assert_eq!(status, 401, "{body}");
    let message = body.to_string();
    assert!(
        message.contains("has not signed in") && message.contains("sign in to the dashboard again"),
        "{message}"
    );

    // What a sign-in through Plinto does to the user's row.
    switchyard_engine::auth::users::upsert(
        &pool,
        &switchyard_engine::auth::users::Identity {
            issuer: "http://issuer.test",
            subject: "ada",
            email: Some("ada@example.test"),
            display_name: "ada",
            platform_admin: false,
        },
    )
    .await
    .unwrap();
    let (status, _) = bearer(&app.url(""), &user.token).await;
    assert_eq!(status, 200, "a fresh sign-in brings the token back");
}

/// A server with sign-in unconfigured (the limiter still counts `/auth/login`), on connection info
/// from loopback: the test client plays the ingress.
async fn serve_with(pool: PgPool, adjust: impl FnOnce(&mut Settings)) -> String {
    let mut settings = common::settings();
    adjust(&mut settings);
    let app = switchyard_server::build_with_pool(settings, pool)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let service = app
        .router
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    origin
}

async fn login_from(origin: &str, forwarded_for: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{origin}/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Issue #18, finding 12: behind an ingress every client shares the proxy's address, so one
/// script's attempts locked every user out of signing in. From a trusted proxy, the limiter counts
/// the client it forwarded.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_sign_in_limit(pool: PgPool) {
    let origin = serve_with(pool, |s| {
        s.session.login_attempts_per_minute = 2;
        s.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    assert_ne!(login_from(&origin, "203.0.113.1").await, 429);
    assert_ne!(login_from(&origin, "203.0.113.1").await, 429);
    assert_eq!(
        login_from(&origin, "203.0.113.1").await,
        429,
        "third in the minute"
    );
    assert_ne!(
        login_from(&origin, "203.0.113.2").await,
        429,
        "another client behind the same proxy is not affected"
    );
    assert_eq!(
        login_from(&origin, "198.51.100.7, 203.0.113.1").await,
        429,
        "a client cannot escape its limit by forging entries left of what the proxy appended"
    );
}

/// Without trusted proxies the header is never read: a client cannot pick a fresh key per request.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn an_untrusted_peer_cannot_choose_its_sign_in_limit_with_x_forwarded_for(pool: PgPool) {
    let origin = serve_with(pool, |s| s.session.login_attempts_per_minute = 2).await;
    assert_ne!(login_from(&origin, "203.0.113.1").await, 429);
    assert_ne!(login_from(&origin, "203.0.113.2").await, 429);
    assert_eq!(login_from(&origin, "203.0.113.3").await, 429);
}
