//! The registry token service (`engine/src/pipeline/registry.rs`) with a real registry (CNCF
//! distribution v3, `scripts/lib.sh registry_build`, configured with `auth.token` as
//! docs/security.md tells an operator) and a real registry client (`oci-client`): a build's
//! credential pushes to its own repository and to nothing of another project's, and dies with the
//! build.

mod common;

use std::process::{Child, Command, Stdio};

use common::{TestApp, user};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;
use sqlx::PgPool;
use switchyard_engine::pipeline::registry;

const API: &str = include_str!("../../spec/fixtures/dogfooding/switchyard-api.yaml");

/// A registry process, killed on drop, with its storage.
struct Registry {
    child: Child,
    dir: std::path::PathBuf,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the registry trusting `app`'s token service (its realm and its JWKS).
async fn start_registry(app: &TestApp, port: u16) -> Registry {
    let bin = std::env::var("ENCLII_TEST_REGISTRY_BIN").expect(
        "ENCLII_TEST_REGISTRY_BIN names the registry binary (scripts/test.sh builds and sets it)",
    );
    let dir = std::env::temp_dir().join(format!("enclii-registry-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("storage")).unwrap();
    let jwks = app.get("/registry/jwks.json").await;
    assert_eq!(jwks.status(), 200);
    std::fs::write(dir.join("jwks.json"), jwks.bytes().await.unwrap()).unwrap();
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {storage}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  token:\n    realm: {realm}\n    service: enclii-registry\n    issuer: switchyard\n    jwks: {jwks}\n",
        storage = dir.join("storage").display(),
        realm = app.url("/registry/token"),
        jwks = dir.join("jwks.json").display(),
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the registry");
    let addr = format!("127.0.0.1:{port}");
    let registry = Registry { child, dir, addr };
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("http://{}/v2/", registry.addr)).await {
            // Up, and asking for a token.
            assert_eq!(r.status(), 401);
            return registry;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the registry did not start on {}", registry.addr);
}

/// A build of `project`'s `switchyard-api` in state `running`, pushing to `image`, with its own
/// credential (as the build worker mints it).
async fn running_build(pool: &PgPool, project: &str, image: &str) -> (i64, String) {
    let credential = registry::mint();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO builds (service_id, environment_id, spec_revision, git_repository, git_ref, state, image_ref, push_credential_hash)
         SELECT s.id, e.id, 1, 'https://github.com/madfam-io/enclii', 'main', 'running', $3, $4
         FROM services s JOIN projects p ON p.id = s.project_id JOIN environments e ON e.project_id = p.id
         WHERE p.slug = $1 AND s.name = $2 AND e.name = 'production'
         RETURNING id",
    )
    .bind(project)
    .bind("switchyard-api")
    .bind(image)
    .bind(&credential.hash)
    .fetch_one(pool)
    .await
    .unwrap();
    (id, credential.password)
}

/// Pushes a one-layer image to `reference` with a fresh client (no token cached from before).
async fn push(reference: &str, auth: &RegistryAuth) -> Result<(), String> {
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let reference: Reference = reference.parse().unwrap();
    let layer = ImageLayer::new(
        format!("layer of {reference}").into_bytes(),
        IMAGE_LAYER_MEDIA_TYPE.to_owned(),
        None,
    );
    let config = Config::new(
        br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
        IMAGE_CONFIG_MEDIA_TYPE.to_owned(),
        None,
    );
    client
        .push(&reference, &[layer], config, auth, None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn pull(reference: &str, auth: &RegistryAuth) -> Result<(), String> {
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    client
        .pull(
            &reference.parse().unwrap(),
            auth,
            vec![IMAGE_LAYER_MEDIA_TYPE],
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn basic(id: i64, password: &str) -> RegistryAuth {
    RegistryAuth::Basic(registry::build_account(id), password.to_owned())
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_builds_credential_pushes_only_to_its_own_repository_and_dies_with_the_build(
    pool: PgPool,
) {
    // oci-client's TLS stack has no provider of its own (the registry is plain HTTP anyway).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port();
    let mut settings = common::settings();
    settings.pipeline.worker = false;
    settings.pipeline.registry = format!("127.0.0.1:{port}");
    settings.pipeline.registry_token.node_pull_password =
        Some(secrecy::SecretString::from("the-nodes-password".to_owned()));
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .unwrap(),
    )
    .await;
    let registry = start_registry(&app, port).await;
    let r = &registry.addr;

    // Two strangers, each with a project and a service of the same name.
    for project in ["acme", "rival"] {
        let owner = user(&pool, &format!("owner-{project}"), true).await;
        let (status, body) = app
            .call(
                "/api/projects/create",
                Some(&owner.token),
                json!({"slug": project}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let spec = API.replace("project: enclii-platform", &format!("project: {project}"));
        let (status, body) = app
            .call(
                "/api/services/import",
                Some(&owner.token),
                json!({ "spec": spec }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (acme, acme_password) =
        running_build(&pool, "acme", &format!("{r}/acme/switchyard-api:t1")).await;
    let (rival, rival_password) =
        running_build(&pool, "rival", &format!("{r}/rival/switchyard-api:t1")).await;
    let acme_auth = basic(acme, &acme_password);

    // Its own repository: pushed, and pulled back.
    push(&format!("{r}/acme/switchyard-api:t1"), &acme_auth)
        .await
        .expect("a build pushes to its own repository");
    pull(&format!("{r}/acme/switchyard-api:t1"), &acme_auth)
        .await
        .expect("and pulls it");
    push(
        &format!("{r}/rival/switchyard-api:t1"),
        &basic(rival, &rival_password),
    )
    .await
    .expect("the other project's build pushes to its own");

    // Another project's repository: neither overwritten nor read; nor a look-alike path.
    for target in [
        format!("{r}/rival/switchyard-api:t1"),
        format!("{r}/rival/switchyard-api:evil"),
        format!("{r}/acme-evil/switchyard-api:t1"),
    ] {
        let e = push(&target, &acme_auth)
            .await
            .expect_err("no push outside the build's repository");
        assert!(
            e.to_lowercase().contains("denied") || e.contains("401") || e.contains("UNAUTHORIZED"),
            "{target}: {e}"
        );
    }
    assert!(
        pull(&format!("{r}/rival/switchyard-api:t1"), &acme_auth)
            .await
            .is_err(),
        "another project's image is not readable"
    );

    // What the token service signs for it: nothing of the rival's, asked directly.
    let token: serde_json::Value = app
        .client
        .get(app.url(&format!(
            "/registry/token?service=enclii-registry&scope=repository:rival/switchyard-api:pull,push&scope=repository:acme/switchyard-api:pull,push,delete"
        )))
        .basic_auth(registry::build_account(acme), Some(&acme_password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    use base64::Engine as _;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token["token"].as_str().unwrap().split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "acme/switchyard-api", "actions": ["pull", "push"]}])
    );

    // Wrong password, no credential, another build's password: refused by the token service.
    for auth in [
        basic(acme, "guess"),
        basic(acme, &rival_password),
        RegistryAuth::Anonymous,
    ] {
        assert!(
            push(&format!("{r}/acme/switchyard-api:t2"), &auth)
                .await
                .is_err()
        );
    }
    let anonymous = app
        .get("/registry/token?service=enclii-registry&scope=repository:acme/switchyard-api:pull")
        .await;
    assert_eq!(anonymous.status(), 401);

    // The nodes' kubelets pull what builds pushed, and push nothing.
    let nodes = RegistryAuth::Basic(registry::NODE_ACCOUNT.into(), "the-nodes-password".into());
    pull(&format!("{r}/acme/switchyard-api:t1"), &nodes)
        .await
        .expect("the nodes pull a built image");
    pull(&format!("{r}/rival/switchyard-api:t1"), &nodes)
        .await
        .expect("of any project");
    assert!(
        push(&format!("{r}/acme/switchyard-api:t9"), &nodes)
            .await
            .is_err()
    );
    let wrong = RegistryAuth::Basic(registry::NODE_ACCOUNT.into(), "guess".into());
    assert!(
        pull(&format!("{r}/acme/switchyard-api:t1"), &wrong)
            .await
            .is_err()
    );

    // The build ends: its credential with it.
    sqlx::query("UPDATE builds SET state = 'succeeded' WHERE id = $1")
        .bind(acme)
        .execute(&pool)
        .await
        .unwrap();
    let e = push(&format!("{r}/acme/switchyard-api:t3"), &acme_auth)
        .await
        .expect_err("a finished build's credential is dead");
    assert!(
        !e.contains(&acme_password),
        "the password is never echoed: {e}"
    );
}
