//! The seed's "Deploy Services" script, run with the real `enclii` binary against a real server on a
//! fresh database: project create, six `service create --file`, six `deploy`, `services list`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use enclii_sandbox::testing::{Cleanup, LocalCluster};
use sqlx::PgPool;
use switchyard_engine::auth::{tokens, users};

const SERVICES: [&str; 6] = [
    "switchyard-api",
    "switchyard-ui",
    "plinto",
    "landing-page",
    "docs-site",
    "status-page",
];

struct Shell {
    engine: switchyard_engine::Engine,
    server: String,
    token: String,
    home: PathBuf,
    fixtures: PathBuf,
}

impl Shell {
    /// Runs one line of the script (`./bin/enclii …`), from the directory that holds `dogfooding/`.
    fn run(&self, line: &str) -> Output {
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        Command::new(env!("CARGO_BIN_EXE_enclii"))
            .args(&args)
            .current_dir(&self.fixtures)
            .env("ENCLII_SERVER", &self.server)
            .env("ENCLII_TOKEN", &self.token)
            .env("XDG_CONFIG_HOME", &self.home)
            .env_remove("ENCLII_PROJECT")
            .output()
            .expect("run enclii")
    }
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn start(pool: PgPool) -> Shell {
    let mut settings = switchyard_engine::Settings::with_database_url("postgres://unused").unwrap();
    settings.cluster.worker = false;
    start_with(pool, settings).await
}

async fn start_with(pool: PgPool, mut settings: switchyard_engine::Settings) -> Shell {
    settings.secrets.key = Some(secrecy::SecretString::from(
        "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=".to_owned(),
    ));
    // Builds' registry tokens are signed for real (the key of server/tests/common/mod.rs).
    settings.pipeline.registry_token.signing_key = Some(secrecy::SecretString::from(
        "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHAKKdbisgKTm0XVF
TQqtU1HtFqzGMuxLmKa8RT9vVGahRANCAAR2Xsi+2o+FeoKB2pBqUZHSGV+XsUh4
HQ04r/84C5gTVLPs2zV486wM95LAgYw/4ptz2JWwWhqq4kNcNaZ3d/qP
-----END PRIVATE KEY-----
"
        .to_owned(),
    ));
    settings.database.migrate = false;
    let user = users::upsert(
        &pool,
        &users::Identity {
            issuer: "http://issuer.test",
            subject: "dev",
            email: Some("dev@example.test"),
            display_name: "Dev",
            platform_admin: false,
        },
    )
    .await
    .unwrap();
    let token = tokens::create(
        &pool,
        user,
        "cli",
        &[tokens::Scope::Read, tokens::Scope::Write],
        None,
    )
    .await
    .unwrap()
    .token;
    let app = switchyard_server::build_with_pool(settings, pool)
        .await
        .unwrap();
    let engine = app.engine.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });
    let home = std::env::temp_dir().join(format!("enclii-seed-{}-{}", std::process::id(), user));
    std::fs::create_dir_all(&home).unwrap();
    // The script says `dogfooding/NAME.yaml`; the fixtures folder is that `dogfooding/`.
    // At run time (`cargo test` sets it): a test binary another checkout built into the shared
    // target dir keeps that checkout's compile-time path, and cargo may reuse it here.
    let fixtures =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../spec/fixtures");
    Shell {
        engine,
        server,
        token,
        home,
        fixtures,
    }
}

/// Settings for a server whose builds and deployments go to the local cluster (`scripts/test.sh`
/// starts it) as Switchyard's ServiceAccount, in namespaces of their own prefix: the fields of
/// `cluster_settings` in server/tests/common/mod.rs, which this crate cannot import.
fn cluster_settings(cluster: &LocalCluster) -> switchyard_engine::Settings {
    let mut s = switchyard_engine::Settings::with_database_url("postgres://unused").unwrap();
    s.cluster.mode = switchyard_engine::config::ClusterMode::Kube;
    s.cluster.kubeconfig = Some(cluster.switchyard_kubeconfig());
    s.cluster.namespace_prefix = LocalCluster::namespace_prefix();
    s.cluster.rollout_timeout_secs = 60;
    // Short enough for `stuck` images to fail within a test, long enough for a busy control plane
    // (several tests at once) to report progress on a healthy rollout in time.
    s.cluster.progress_deadline_secs = 15;
    // Build namespaces of the test's own prefix too (project names repeat across tests).
    s.pipeline.namespace_prefix = format!("{}builds-", s.cluster.namespace_prefix);
    s.cluster.lease_secs = 2;
    s.canary.prometheus_url = Some(cluster.prometheus_url.clone());
    s.canary.interval_ms = 100;
    s.canary.inconclusive_limit = 3;
    s
}

/// The seed's script as written: no `--image`, so each `deploy` builds the service from its
/// repository (a build Job on the local cluster) and deploys the image when the build succeeds.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn the_seed_script_creates_the_project_imports_all_six_services_and_deploys_them(
    pool: PgPool,
) {
    let cluster = LocalCluster::from_env().await;
    let mut settings = cluster_settings(&cluster);
    settings.pipeline.max_concurrent = 6;
    let prefix = settings.cluster.namespace_prefix.clone();
    let _cleanup = Cleanup(prefix.clone());
    let sh = start_with(pool.clone(), settings).await;
    let sh = std::sync::Arc::new(sh);
    let script = sh.clone();
    let out = tokio::task::spawn_blocking(move || {
        let sh = script;
        let mut log = Vec::new();
        log.push(ok(&sh.run("./bin/enclii project create enclii-platform")));
        for name in SERVICES {
            log.push(ok(&sh.run(&format!(
                "./bin/enclii service create --file dogfooding/{name}.yaml"
            ))));
        }
        for name in SERVICES {
            log.push(ok(&sh.run(&format!(
                "./bin/enclii deploy --service {name} --env production"
            ))));
        }
        log.push(ok(&sh.run("./bin/enclii services list")));
        log
    })
    .await
    .unwrap();
    assert!(
        out[0].contains(&format!(
            "Created project enclii-platform with environments production ({prefix}enclii-platform--production), staging ({prefix}enclii-platform--staging)"
        )),
        "{}",
        out[0]
    );
    assert!(
        out[1].starts_with("Created enclii-platform/switchyard-api (revision 1)"),
        "{}",
        out[1]
    );
    for (i, name) in SERVICES.iter().enumerate() {
        let line = &out[7 + i];
        assert!(
            line.contains(&format!("of {name} (https://github.com/madfam-io/"))
                && line.contains("queued"),
            "{line}"
        );
    }
    let table = out.last().unwrap();
    assert_eq!(table.lines().count(), 7, "{table}");

    // Every build finishes on the cluster and every service ends up running its built image.
    let mut done = 0;
    for _ in 0..300 {
        done = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM deployments d JOIN releases r ON r.id = d.release_id
               WHERE d.state = 'succeeded' AND r.image_digest IS NOT NULL AND r.sbom_ref IS NOT NULL"#
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if done == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done, 6, "six built releases deployed");
    let listed = tokio::task::spawn_blocking(move || {
        (
            ok(&sh.run("./bin/enclii services list")),
            ok(&sh.run("./bin/enclii services list -o json")),
            ok(&sh.run("./bin/enclii builds")),
        )
    })
    .await
    .unwrap();
    for name in SERVICES {
        let row = listed
            .0
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{}", listed.0));
        assert!(row.contains("production:succeeded"), "{row}");
    }
    let json: serde_json::Value = serde_json::from_str(&listed.1).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 6);
    assert_eq!(
        listed.2.lines().filter(|l| l.contains("succeeded")).count(),
        6,
        "{}",
        listed.2
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn an_invalid_spec_is_refused_with_located_errors_and_exit_1(pool: PgPool) {
    let sh = start(pool).await;
    let bad = sh.home.join("bad.yaml");
    std::fs::write(
        &bad,
        include_str!("../../spec/fixtures/dogfooding/docs-site.yaml")
            .replace("port: 3000", "port: 0"),
    )
    .unwrap();
    let bad_name = bad.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        ok(&sh.run("./bin/enclii project create enclii-platform"));
        sh.run(&format!("./bin/enclii service create --file {bad_name}"))
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("enclii: the spec has 1 error"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:23:11: `spec.runtime.port` must be at least 1, found 0",
            bad.display()
        )),
        "{stderr}"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn without_a_token_the_cli_says_how_to_sign_in_and_exits_4(pool: PgPool) {
    let mut sh = start(pool).await;
    sh.token = String::new();
    let out = tokio::task::spawn_blocking(move || sh.run("./bin/enclii projects"))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint: run `enclii login`"));
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn secrets_are_set_listed_masked_and_unset_from_the_cli(pool: PgPool) {
    let sh = start(pool).await;
    let out = tokio::task::spawn_blocking(move || {
        ok(&sh.run("./bin/enclii project create enclii-platform"));
        ok(&sh.run("./bin/enclii service create --file dogfooding/docs-site.yaml"));
        ok(&sh.run(
            "./bin/enclii secrets set API_TOKEN=t0ps3cret --service docs-site --env production",
        ));
        ok(&sh.run(
            "./bin/enclii secrets set MODE=fast --plain --service docs-site --env production",
        ));
        let list = ok(&sh.run("./bin/enclii secrets list --service docs-site --env production"));
        ok(&sh.run("./bin/enclii secrets unset MODE --service docs-site --env production"));
        let after =
            ok(&sh.run("./bin/enclii secrets list --service docs-site --env production -o json"));
        (list, after)
    })
    .await
    .unwrap();
    assert!(
        out.0.contains("API_TOKEN") && out.0.contains("••••••••") && !out.0.contains("t0ps3cret"),
        "{}",
        out.0
    );
    assert!(
        out.0.contains("MODE") && out.0.contains("fast"),
        "{}",
        out.0
    );
    let after: serde_json::Value = serde_json::from_str(&out.1).unwrap();
    assert_eq!(after.as_array().unwrap().len(), 1);
}

/// A canary clock real Prometheus can feed, as server/tests/canary.rs sets it: each analysis looks
/// back 6 s (six scrapes), one a second; a canary pod is scraped only once Prometheus' discovery
/// has caught up with it (up to ~10 s), and the analyses before that are inconclusive, so a step
/// tolerates 20 of them.
fn canary_settings(cluster: &LocalCluster) -> switchyard_engine::Settings {
    let mut s = cluster_settings(cluster);
    s.canary.window_secs = 6;
    s.canary.interval_ms = 1000;
    s.canary.inconclusive_limit = 20;
    s
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn deploy_wait_shows_each_canary_step_and_analysis_and_exits_1_on_a_rollback(pool: PgPool) {
    let cluster = LocalCluster::from_env().await;
    let settings = canary_settings(&cluster);
    let _cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    let sh = start_with(pool, settings).await;
    let spec = sh.home.join("docs-site.yaml");
    // A pause far longer than the test: only a breach ends the canary in time. The canary pod
    // serves 5 requests a second at 10%, so a window holds about 30: 20 are enough to judge.
    std::fs::write(
        &spec,
        include_str!("../../spec/fixtures/dogfooding/docs-site.yaml").replacen(
            "\nspec:\n",
            "\nspec:\n  rollout:\n    minRequests: 20\n    steps:\n      - weight: 10\n        pause: 10m\n      - weight: 100\n",
            1,
        ),
    )
    .unwrap();
    let spec = spec.display().to_string();
    let (first, bad, shown) = tokio::task::spawn_blocking(move || {
        ok(&sh.run("./bin/enclii project create enclii-platform"));
        ok(&sh.run(&format!("./bin/enclii service create --file {spec}")));
        let first = ok(&sh.run(
            "./bin/enclii deploy --service docs-site --env production --image ghcr.io/madfam-io/docs:1 --wait",
        ));
        let bad = sh.run(
            "./bin/enclii deploy --service docs-site --env production --image ghcr.io/madfam-io/docs:errors --wait",
        );
        let shown = ok(&sh.run("./bin/enclii deployment 2"));
        (first, bad, shown)
    })
    .await
    .unwrap();
    assert!(first.contains("rollout 100%: succeeded"), "{first}");
    assert!(first.contains("Deployment #1 succeeded"), "{first}");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    // The simulated 8%, as Prometheus measured it over a few seconds of whole requests: the step
    // says the rate its breaching analysis measured.
    let rate = out
        .split_once("canary 10%: failed error rate ")
        .and_then(|(_, rest)| rest.split_once("% exceeded 2%"))
        .map(|(rate, _)| rate)
        .unwrap_or_else(|| panic!("no failed canary step in:\n{out}"));
    let measured: f64 = rate.parse().unwrap_or_else(|_| panic!("{rate} in:\n{out}"));
    assert!(measured > 2.0 && measured <= 20.0, "{out}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("analysis #")
            && l.contains(&format!(" at 10%: {rate}% errors, "))
            && l.contains(": breach (")),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("deployment #2 ended rolled_back"));
    assert!(shown.contains("traffic: replica ratio"), "{shown}");
    assert!(
        shown.contains("withdraw: succeeded canary removed"),
        "{shown}"
    );
}

/// `enclii run` on the local cluster: the command's log on standard output, its exit code as the
/// CLI's; `enclii jobs list` shows the service's scheduled job.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn enclii_run_prints_the_commands_log_and_exits_with_its_code(pool: PgPool) {
    let cluster = LocalCluster::from_env().await;
    let settings = cluster_settings(&cluster);
    let _cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    let shell = start_with(pool, settings).await;
    let spec = shell.home.join("billing.yaml");
    std::fs::write(
        &spec,
        "apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: billing\nspec:\n  build:\n    type: dockerfile\n  runtime:\n    port: 8080\n  rollout:\n    strategy: rolling\n  jobs:\n    - name: invoices\n      schedule: \"0 3 * * *\"\n      command: [./billing, invoices]\n",
    )
    .unwrap();
    // The CLI blocks; the server runs on this test's runtime: the script runs beside it.
    tokio::task::spawn_blocking(move || {
        let enclii = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_enclii"))
                .args(args)
                .env("ENCLII_SERVER", &shell.server)
                .env("ENCLII_TOKEN", &shell.token)
                .env("XDG_CONFIG_HOME", &shell.home)
                .env("ENCLII_PROJECT", "acme")
                .output()
                .expect("run enclii")
        };
        ok(&enclii(&["project", "create", "acme"]));
        ok(&enclii(&[
            "service",
            "create",
            "--file",
            spec.to_str().unwrap(),
        ]));
        ok(&enclii(&[
            "deploy",
            "--service",
            "billing",
            "--env",
            "production",
            "--image",
            "registry.local/acme/billing:1",
            "--wait",
        ]));
        let run = |command: &str| {
            enclii(&[
                "run",
                "--service",
                "billing",
                "--env",
                "production",
                "--",
                "sh",
                "-c",
                command,
            ])
        };
        let failed = run("echo checking invoices; echo 'error: 3 unpaid'; exit 7");
        let stdout = String::from_utf8_lossy(&failed.stdout);
        assert_eq!(
            failed.status.code(),
            Some(7),
            "{stdout}\n{}",
            String::from_utf8_lossy(&failed.stderr)
        );
        assert!(
            stdout.contains("checking invoices\nerror: 3 unpaid"),
            "{stdout}"
        );
        let fine = run("echo all paid");
        assert!(ok(&fine).contains("all paid"));
        let jobs = ok(&enclii(&["jobs", "list", "--service", "billing"]));
        let row = jobs
            .lines()
            .find(|l| l.contains("invoices"))
            .unwrap_or_else(|| panic!("{jobs}"));
        for part in ["production", "0 3 * * * UTC", "never", " 03:00 UTC", "ok"] {
            assert!(row.contains(part), "{part} in {row}");
        }
    })
    .await
    .unwrap();
}

/// `enclii previews list|wake|delete` against a preview a signed `pull_request` delivery made
/// (no cluster: the build stays queued, and the delete is left for a connected replica to finish).
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn previews_are_listed_woken_and_deleted_from_the_cli(pool: PgPool) {
    let sh = start(pool).await;
    let spec = "apiVersion: enclii.dev/v1
kind: Service
metadata:
  name: web
  project: shop
spec:
  build:
    type: dockerfile
    source:
      git:
        repository: https://github.com/madfam-io/enclii
  runtime:
    port: 8080
  previews:
    enabled: true
";
    let dir = sh.home.join("previews");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("web.yaml"), spec).unwrap();
    let file = dir.join("web.yaml");
    let out = tokio::task::spawn_blocking(move || {
        ok(&sh.run("./bin/enclii project create shop"));
        ok(&sh.run(&format!(
            "./bin/enclii service create --file {}",
            file.display()
        )));
        let repo: serde_json::Value = serde_json::from_str(&ok(
            &sh.run("./bin/enclii repos connect https://github.com/madfam-io/enclii -o json")
        ))
        .unwrap();
        open_pull_request(&sh, repo["secret"].as_str().unwrap(), 5, &"a".repeat(40));
        let list = ok(&sh.run("./bin/enclii previews list"));
        let woken = ok(&sh.run("./bin/enclii previews wake 5"));
        let deleted = ok(&sh.run("./bin/enclii previews delete 5 -o json"));
        let missing = sh.run("./bin/enclii previews wake 99");
        (list, woken, deleted, missing)
    })
    .await
    .unwrap();
    let (list, woken, deleted, missing) = out;
    assert!(
        list.contains("#5") && list.contains("awake") && list.contains("aaaaaaaaaaaa"),
        "{list}"
    );
    assert!(
        list.contains("created for aaaaaaaaaaaa (opened): building web"),
        "{list}"
    );
    assert!(
        woken.contains("awake"),
        "an awake preview is answered as it is: {woken}"
    );
    let deleted: Vec<serde_json::Value> = serde_json::from_str(&deleted).unwrap();
    assert_eq!(
        deleted[0]["state"], "deleting",
        "no cluster here to finish it"
    );
    assert_eq!(missing.status.code(), Some(5), "not found");
}

/// Sends GitHub's `pull_request` `opened` delivery, signed with the repository's secret.
fn open_pull_request(sh: &Shell, secret: &str, number: u32, sha: &str) {
    let body = serde_json::json!({
        "action": "opened", "number": number,
        "pull_request": {"number": number, "labels": [],
            "head": {"sha": sha, "ref": "feature", "repo": {"id": 1}},
            "base": {"sha": "b".repeat(40), "ref": "main", "repo": {"id": 1}}},
        "repository": {"id": 1, "html_url": "https://github.com/madfam-io/enclii"}
    })
    .to_string();
    let signature = switchyard_engine::pipeline::github::sign(secret.as_bytes(), body.as_bytes());
    let status = reqwest::blocking::Client::new()
        .post(format!("{}/webhooks/github", sh.server))
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", format!("cli-pr-{number}"))
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 202);
}

/// `enclii previews wake N --wait` on the local cluster: returns once the slept preview serves.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn previews_wake_wait_returns_once_the_preview_serves_again(pool: PgPool) {
    let cluster = LocalCluster::from_env().await;
    let settings = cluster_settings(&cluster);
    let _cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    let sh = std::sync::Arc::new(start_with(pool.clone(), settings).await);
    // `no-traffic`: Prometheus counts no request to it, so the scan may put it to sleep.
    let spec = "apiVersion: enclii.dev/v1
kind: Service
metadata:
  name: web-no-traffic
  project: shop
spec:
  build:
    type: dockerfile
    source:
      git:
        repository: https://github.com/madfam-io/enclii
  runtime:
    port: 8080
  previews:
    enabled: true
    sleepAfterMinutes: 30
";
    let dir = sh.home.join("wake");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("web.yaml"), spec).unwrap();
    let file = dir.join("web.yaml");
    let script = sh.clone();
    tokio::task::spawn_blocking(move || {
        let sh = script;
        ok(&sh.run("./bin/enclii project create shop"));
        ok(&sh.run(&format!(
            "./bin/enclii service create --file {}",
            file.display()
        )));
        let repo: serde_json::Value = serde_json::from_str(&ok(
            &sh.run("./bin/enclii repos connect https://github.com/madfam-io/enclii -o json")
        ))
        .unwrap();
        open_pull_request(&sh, repo["secret"].as_str().unwrap(), 6, &"c".repeat(40));
    })
    .await
    .unwrap();
    // Built and deployed by the server's workers.
    let mut state = String::new();
    for _ in 0..600 {
        state = sqlx::query_scalar::<_, String>(
            "SELECT state FROM deployments ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&pool)
        .await
        .unwrap()
        .unwrap_or_default();
        if !matches!(state.as_str(), "" | "pending" | "in_progress") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(state, "succeeded");
    let slept = switchyard_engine::previews::scan(
        &sh.engine,
        chrono::Utc::now() + chrono::Duration::minutes(31),
    )
    .await
    .unwrap();
    assert_eq!(slept.slept, 1);
    let script = sh.clone();
    let out =
        tokio::task::spawn_blocking(move || script.run("./bin/enclii previews wake 6 --wait"))
            .await
            .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("awake"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("web-no-traffic: 1 ready"),
        "{out:?}"
    );
}
