//! Real Switchyard processes as the replicas, driving canaries on the local cluster (real API
//! server, simulated nodes, real Prometheus): PostgreSQL restarted under a canary in flight (the
//! driver keeps its lease and resumes its own work once the database answers; the replica reports
//! not ready meanwhile and recovers without a restart), and SIGTERM handing a canary over to the
//! other replica at once rather than after the lease expires.
//!
//! The leases here are 30 s, far longer than either scenario takes: anything that waited for a
//! lease to expire would blow the time limits these tests set.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cleanup, LocalCluster, user, with_canary_pause};
use serde_json::json;
use sqlx::PgPool;

const DOCS: &str = include_str!("../../spec/fixtures/dogfooding/docs-site.yaml");
const SWITCHYARD: &str = include_str!("../../deploy/enclii/switchyard.yaml");
const P: &str = "enclii-platform";
const SVC: &str = "docs-site";
const LEASE_SECS: u64 = 30;

/// A Switchyard binary, its worker on, configured through the environment as in production.
struct Replica {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Replica {
    /// `builds`: the build worker runs too.
    fn start(url: &str, cluster: &LocalCluster, prefix: &str, name: &str, builds: bool) -> Self {
        let port = free_port();
        // The tests of this binary run at once and name their replicas alike: a log each.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log =
            std::env::temp_dir().join(format!("handover-{}-{n}-{name}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .env("ENCLII_LISTEN", format!("127.0.0.1:{port}"))
            .env("ENCLII_DATABASE__URL", url)
            .env("ENCLII_CLUSTER__WORKER", "true")
            .env("ENCLII_CLUSTER__MODE", "kube")
            .env(
                "ENCLII_CLUSTER__KUBECONFIG",
                cluster.switchyard_kubeconfig(),
            )
            .env("ENCLII_CLUSTER__NAMESPACE_PREFIX", prefix)
            .env("ENCLII_CLUSTER__LEASE_SECS", LEASE_SECS.to_string())
            .env("ENCLII_CLUSTER__ROLLOUT_TIMEOUT_SECS", "60")
            .env("ENCLII_CLUSTER__PROGRESS_DEADLINE_SECS", "15")
            .env("ENCLII_PIPELINE__WORKER", builds.to_string())
            .env(
                "ENCLII_PIPELINE__NAMESPACE_PREFIX",
                format!("{prefix}builds-"),
            )
            .env(
                "ENCLII_PIPELINE__REGISTRY_TOKEN__SIGNING_KEY",
                common::TEST_REGISTRY_KEY,
            )
            .env("ENCLII_CANARY__PROMETHEUS_URL", &cluster.prometheus_url)
            .env("ENCLII_CANARY__WINDOW_SECS", "6")
            .env("ENCLII_CANARY__INTERVAL_MS", "1000")
            .env("ENCLII_CANARY__INCONCLUSIVE_LIMIT", "20")
            .env("ENCLII_STATUS__PROBER", "false")
            .env(
                "ENCLII_SECRETS__KEY",
                "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=",
            )
            .env("ENCLII_LOG__FILTER", "info")
            .stdout(file.try_clone().expect("a log handle"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("the binary starts");
        Replica { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `lease_owner` starts with the replica's name, `{hostname}-{pid}`.
    fn owns(&self, lease_owner: &str) -> bool {
        lease_owner
            .split('/')
            .next()
            .is_some_and(|name| name.ends_with(&format!("-{}", self.child.id())))
    }

    async fn ready(&self, client: &reqwest::Client) -> Option<u16> {
        client
            .get(self.url("/health/ready"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.ready(client).await != Some(200) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("a replica exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "not ready within 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, path: &str, token: &str, body: serde_json::Value) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

/// The docs-site spec with canary steps of 10% and 50% held `pause` each, judged on at least 20
/// requests in the window (canary.rs says why these numbers).
fn spec(source: &str, pause: &str) -> String {
    with_canary_pause(source, pause).replacen(
        "\n  rollout:\n",
        "\n  rollout:\n    minRequests: 20\n",
        1,
    )
}

async fn setup(replica: &Replica, pool: &PgPool) -> String {
    setup_with(replica, pool, DOCS).await
}

async fn setup_with(replica: &Replica, pool: &PgPool, source: &str) -> String {
    let owner = user(pool, "owner", true).await;
    replica
        .call("/api/projects/create", &owner.token, json!({"slug": P}))
        .await;
    replica
        .call(
            "/api/services/import",
            &owner.token,
            json!({"spec": spec(source, "4s")}),
        )
        .await;
    owner.token
}

async fn request(replica: &Replica, token: &str, image: &str) -> i64 {
    request_of(replica, token, SVC, image).await
}

async fn request_of(replica: &Replica, token: &str, service: &str, image: &str) -> i64 {
    let d = replica
        .call(
            "/api/deployments/create",
            token,
            json!({"project": P, "service": service, "environment": "production", "image": image}),
        )
        .await;
    d["id"].as_i64().expect("a deployment id")
}

struct Row {
    state: String,
    lease_owner: Option<String>,
}

async fn row(pool: &PgPool, id: i64) -> sqlx::Result<Row> {
    let (state, lease_owner) = sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT state, lease_owner FROM deployments WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    Ok(Row { state, lease_owner })
}

async fn wait_for(
    pool: &PgPool,
    id: i64,
    what: &str,
    limit: Duration,
    pred: impl Fn(&Row) -> bool,
) -> Row {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(r) = row(pool, id).await
            && pred(&r)
        {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "deployment {id}: not {what} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn analyses_at(pool: &PgPool, id: i64, weight: i32) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM canary_analyses WHERE deployment_id = $1 AND weight = $2",
    )
    .bind(id)
    .bind(weight)
    .fetch_one(pool)
    .await
    .unwrap_or(0)
}

/// Every step once, in order, succeeded; every analysis run numbered once.
async fn one_run_of_each_step(pool: &PgPool, id: i64) {
    let steps: Vec<(String, Option<i32>, String)> = sqlx::query_as(
        "SELECT kind, weight, state FROM deployment_steps WHERE deployment_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap();
    let line: Vec<String> = steps
        .iter()
        .map(|(k, w, s)| match w {
            Some(w) => format!("{k}@{w}:{s}"),
            None => format!("{k}:{s}"),
        })
        .collect();
    assert_eq!(
        line,
        [
            "canary@10:succeeded",
            "canary@50:succeeded",
            "apply:succeeded",
            "rollout@100:succeeded",
            "prune:succeeded"
        ],
        "each step once"
    );
    let duplicated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT step_seq, run FROM canary_analyses WHERE deployment_id = $1
         GROUP BY step_seq, run HAVING count(*) > 1) d",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(duplicated, 0, "no analysis run recorded twice");
}

async fn claims(pool: &PgPool, id: i64) -> Vec<String> {
    sqlx::query_scalar("SELECT DISTINCT replica FROM canary_analyses WHERE deployment_id = $1")
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A PostgreSQL cluster of the test's own, so that it can be stopped and started again.
struct PrivatePostgres {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    port: u16,
}

/// PostgreSQL refuses to run as root; as root, its tools run as `postgres` (scripts/lib.sh).
fn as_pg_user(program: &std::path::Path) -> Command {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(program)
            .current_dir("/");
        c
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    fn create() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("initdb");
        let dir = std::env::temp_dir().join(format!("handover-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown").arg("postgres").arg(&dir).status();
        let ok = as_pg_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&dir)
            .args([
                "--username=enclii",
                "--auth=trust",
                "--no-sync",
                "--no-locale",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs")
            .success();
        assert!(ok, "initdb");
        let pg = Self {
            dir,
            bin,
            port: free_port(),
        };
        pg.start();
        pg
    }

    fn url(&self) -> String {
        format!("postgres://enclii@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off",
            self.port,
            self.dir.display()
        );
        let ok = as_pg_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-o", &opts, "start"])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs")
            .success();
        assert!(ok, "PostgreSQL starts");
    }

    /// As an administrator restarting it would: connections are closed, nothing is lost.
    fn stop(&self) {
        let ok = as_pg_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs")
            .success();
        assert!(ok, "PostgreSQL stops");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_pg_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn postgresql_restarted_mid_canary_the_replica_is_not_ready_meanwhile_and_its_driver_resumes_the_canary_once()
 {
    let cluster = LocalCluster::from_env().await;
    let prefix = LocalCluster::namespace_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let pg = PrivatePostgres::create();
    let client = reqwest::Client::new();
    let mut a = Replica::start(&pg.url(), &cluster, &prefix, "a", true);
    a.wait_ready(&client).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&pg.url())
        .await
        .unwrap();
    let token = setup(&a, &pool).await;
    let first = request(&a, &token, "ghcr.io/madfam-io/docs:1").await;
    let r = wait_for(&pool, first, "finished", Duration::from_secs(60), |r| {
        r.state != "pending" && r.state != "in_progress"
    })
    .await;
    assert_eq!(r.state, "succeeded");

    let id = request(&a, &token, "ghcr.io/madfam-io/docs:2").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while analyses_at(&pool, id, 10).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the canary never analysed at 10%:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A build of the same service for staging, in flight when the database goes.
    a.call(
        "/api/repositories/connect",
        &token,
        json!({"project": P, "url": "https://github.com/madfam-io/enclii"}),
    )
    .await;
    let build = a
        .call(
            "/api/builds/create",
            &token,
            json!({"project": P, "service": SVC, "environment": "staging"}),
        )
        .await["id"]
        .as_i64()
        .expect("a build id");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state: String = sqlx::query_scalar("SELECT state FROM builds WHERE id = $1")
            .bind(build)
            .fetch_one(&pool)
            .await
            .unwrap();
        if state == "running" {
            break;
        }
        assert_eq!(state, "queued", "the build ended before the restart");
        assert!(Instant::now() < deadline, "the build never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.close().await;

    pg.stop();
    let down = Instant::now();
    // Not ready while the database is away, answered within a probe's timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let asked = Instant::now();
        let status = a.ready(&client).await;
        if status == Some(503) {
            assert!(
                // The server gives up at 800 ms; the rest is room for a loaded test machine.
                asked.elapsed() < Duration::from_millis(1500),
                "a readiness answer took {:?}",
                asked.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status:?} with PostgreSQL stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Longer than the pool waits for a connection (5 s), so the drivers' queries fail rather
    // than wait it out.
    tokio::time::sleep(Duration::from_secs(7).saturating_sub(down.elapsed())).await;
    pg.start();
    // Ready again, the same process.
    let deadline = Instant::now() + Duration::from_secs(15);
    while a.ready(&client).await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not ready again within 15 s:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "the replica was not restarted"
    );
    eprintln!("ready again {:?} after PostgreSQL stopped", down.elapsed());

    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&pg.url())
        .await
        .unwrap();
    // Well within the 30 s lease: the driver resumed its own work, nobody waited for it to expire.
    let r = wait_for(&pool, id, "finished", Duration::from_secs(45), |r| {
        r.state != "pending" && r.state != "in_progress"
    })
    .await;
    assert_eq!(r.state, "succeeded", "{}", a.log());
    one_run_of_each_step(&pool, id).await;
    assert_eq!(
        claims(&pool, id).await.len(),
        1,
        "one claim drove it throughout: the lease was kept, not lost and claimed again"
    );

    // The build: done once, on its first attempt, one release and one deployment of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (state, attempts, release, deployment) = loop {
        let b: (String, i32, Option<uuid::Uuid>, Option<i64>) = sqlx::query_as(
            "SELECT state, attempts, release_id, deployment_id FROM builds WHERE id = $1",
        )
        .bind(build)
        .fetch_one(&pool)
        .await
        .unwrap();
        if b.0 != "queued" && b.0 != "running" {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "the build did not finish:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((state.as_str(), attempts), ("succeeded", 1), "{}", a.log());
    let releases: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM releases r JOIN builds b ON b.image_ref = r.image_ref WHERE b.id = $1",
    )
    .bind(build)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(releases, 1, "one release of the build");
    let deployments: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM deployments WHERE release_id = $1")
            .bind(release.expect("a release"))
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(deployments, [deployment.expect("a deployment")]);
    let r = wait_for(
        &pool,
        deployments[0],
        "finished",
        Duration::from_secs(30),
        |r| r.state != "pending" && r.state != "in_progress",
    )
    .await;
    assert_eq!(r.state, "succeeded");
    // The outage did reach the canary's driver (an analysis a second): it failed on the
    // database and resumed. (The build's driver meets it only if its Job ends while the database
    // is away; either way it must finish once, on its first attempt, as asserted above.)
    let log = a.log();
    assert!(
        log.lines()
            .any(|l| l.contains("the database failed this work") && l.contains("deployment")),
        "the deployment driver never met the outage:\n{log}"
    );
}

/// The test's own database on the server `DATABASE_URL` names (`#[sqlx::test]` made it).
fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let database = pool
        .connect_options()
        .get_database()
        .expect("a database name")
        .to_owned();
    let (server, _) = base.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{database}")
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn sigterm_hands_the_canary_over_and_the_other_replica_finishes_it_long_before_the_lease_would_expire(
    pool: PgPool,
) {
    let cluster = LocalCluster::from_env().await;
    let prefix = LocalCluster::namespace_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let url = database_url(&pool);
    let client = reqwest::Client::new();
    let mut a = Replica::start(&url, &cluster, &prefix, "a", false);
    let mut b = Replica::start(&url, &cluster, &prefix, "b", false);
    a.wait_ready(&client).await;
    b.wait_ready(&client).await;
    let token = setup(&a, &pool).await;
    let first = request(&a, &token, "ghcr.io/madfam-io/docs:1").await;
    let r = wait_for(&pool, first, "finished", Duration::from_secs(60), |r| {
        r.state != "pending" && r.state != "in_progress"
    })
    .await;
    assert_eq!(r.state, "succeeded");

    let id = request(&b, &token, "ghcr.io/madfam-io/docs:2").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while analyses_at(&pool, id, 10).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the canary never analysed at 10%"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let owner = row(&pool, id).await.unwrap().lease_owner.expect("a lease");
    let (mut driving, mut other) = if a.owns(&owner) { (a, b) } else { (b, a) };
    assert!(driving.owns(&owner), "{owner}");

    // A live stream of the deployment open on the replica that drives it, as a dashboard keeps.
    let mut stream = client
        .get(driving.url(&format!("/api/events/deployments/{P}/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.chunk().await.unwrap().is_some(), "the stream sends");
    let terminated = Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &driving.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let taken = wait_for(&pool, id, "taken over", Duration::from_secs(10), |r| {
        r.lease_owner.as_deref().is_some_and(|o| other.owns(o)) || r.state == "succeeded"
    })
    .await;
    let handover = terminated.elapsed();
    eprintln!("taken over {handover:?} after SIGTERM");
    assert!(
        handover < Duration::from_secs(LEASE_SECS / 3),
        "taken over after {handover:?} ({:?})",
        taken.lease_owner
    );
    // The stopped replica exits on its own.
    let deadline = Instant::now() + Duration::from_secs(25);
    let status = loop {
        if let Some(s) = driving.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the stopped replica did not exit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}\n{}", driving.log());
    // The stream ended rather than held the shutdown for its 20 s grace.
    let exited = terminated.elapsed();
    eprintln!("exited {exited:?} after SIGTERM");
    assert!(exited < Duration::from_secs(5), "exited after {exited:?}");
    while let Ok(Some(_)) = stream.chunk().await {}
    assert!(
        driving.log().contains("handed the deployment over"),
        "{}",
        driving.log()
    );

    let r = wait_for(&pool, id, "finished", Duration::from_secs(60), |r| {
        r.state != "pending" && r.state != "in_progress"
    })
    .await;
    assert_eq!(r.state, "succeeded", "{}", other.log());
    one_run_of_each_step(&pool, id).await;
    let claims = claims(&pool, id).await;
    assert_eq!(
        claims.len(),
        2,
        "one claim each, one after the other: {claims:?}"
    );
    let _ = other.child.kill();
}

async fn steps(pool: &PgPool, id: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT kind || coalesce('@' || weight, '') || ':' || state FROM deployment_steps WHERE deployment_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap_or_default()
}

/// SIGTERM, as Kubernetes stops a pod it replaces; waits for the process to exit.
async fn terminate(replica: &mut Replica) {
    let sent = Command::new("kill")
        .args(["-TERM", &replica.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(25);
    let status = loop {
        if let Some(s) = replica.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "a stopped replica did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}\n{}", replica.log());
}

/// Self-upgrade, as the local stack can show it: Switchyard's own spec (deploy/enclii/switchyard.yaml)
/// in `enclii-platform`, its replicas real Switchyard processes (the pods are simulated, so the
/// processes stand beside them). A new image goes through the normal canary; its canary pod joins
/// as a replica; at promotion the rolling update replaces the old replicas one at a time (SIGTERM),
/// among them whichever drives the upgrade; the new replica finishes it, once.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_new_switchyard_image_goes_through_its_canary_and_finishes_once_while_its_drivers_are_replaced(
    pool: PgPool,
) {
    const SELF: &str = "switchyard";
    let cluster = LocalCluster::from_env().await;
    let prefix = LocalCluster::namespace_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let url = database_url(&pool);
    let client = reqwest::Client::new();
    let mut old = vec![
        Replica::start(&url, &cluster, &prefix, "old-1", false),
        Replica::start(&url, &cluster, &prefix, "old-2", false),
    ];
    for r in &mut old {
        r.wait_ready(&client).await;
    }
    let token = setup_with(&old[0], &pool, SWITCHYARD).await;
    let first = request_of(&old[0], &token, SELF, "ghcr.io/madfam-io/switchyard:1").await;
    let r = wait_for(&pool, first, "finished", Duration::from_secs(60), |r| {
        r.state != "pending" && r.state != "in_progress"
    })
    .await;
    assert_eq!(r.state, "succeeded", "{:?}", steps(&pool, first).await);

    let id = request_of(&old[1], &token, SELF, "ghcr.io/madfam-io/switchyard:2").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while analyses_at(&pool, id, 10).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the canary never analysed at 10%"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The canary pod runs the new release: a replica of the new version joins.
    let mut new = Replica::start(&url, &cluster, &prefix, "new", false);
    new.wait_ready(&client).await;

    // Promotion: the stable Deployment's rolling update starts replacing the old pods.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = steps(&pool, id).await;
        if line
            .iter()
            .any(|s| s.starts_with("apply:") || s.starts_with("rollout@100:"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "never promoted: {line:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The driver first if it is an old replica, then the other, one at a time.
    let owner = row(&pool, id).await.unwrap().lease_owner;
    assert!(
        old.iter()
            .any(|r| owner.as_deref().is_some_and(|o| r.owns(o))),
        "an old replica drives the promotion: {owner:?}"
    );
    old.sort_by_key(|r| !owner.as_deref().is_some_and(|o| r.owns(o)));
    for r in &mut old {
        terminate(r).await;
    }
    let r = wait_for(&pool, id, "finished", Duration::from_secs(60), |r| {
        r.state != "pending" && r.state != "in_progress"
    })
    .await;
    assert_eq!(
        r.state,
        "succeeded",
        "{:?}\n{}",
        steps(&pool, id).await,
        new.log()
    );
    one_run_of_each_step(&pool, id).await;
    let image = cluster
        .object(
            "apps/v1",
            "Deployment",
            Some(&format!("{prefix}{P}--production")),
            SELF,
        )
        .await
        .expect("Switchyard's Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .map(str::to_owned);
    assert_eq!(image.as_deref(), Some("ghcr.io/madfam-io/switchyard:2"));
    assert!(
        new.log().contains("deployment finished"),
        "the new replica finished the upgrade:\n{}",
        new.log()
    );
    let _ = new.child.kill();
}
