//! Three Switchyard processes started together on one empty database, as three replicas of a new
//! installation are: they migrate it once between them (sqlx's migrator holds a PostgreSQL
//! advisory lock while it applies, so the others wait and then find nothing left to do), and all
//! three become ready. Without the lock (tried: `Migrator { locking: false, .. }`), two of them
//! apply the first migration at once and one exits: `relation "audit_events" already exists`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// The URL of the test's own database (`#[sqlx::test]` made it beside `DATABASE_URL`'s).
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

fn start(url: &str, n: usize) -> Replica {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("replica-{}-{n}.log", std::process::id()));
    let file = std::fs::File::create(&log).expect("a log file");
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .env("ENCLII_LISTEN", format!("127.0.0.1:{port}"))
        .env("ENCLII_DATABASE__URL", url)
        .env("ENCLII_CLUSTER__WORKER", "false")
        .env("ENCLII_STATUS__PROBER", "false")
        .env("ENCLII_LOG__FILTER", "info")
        .stdout(file.try_clone().expect("a log handle"))
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .expect("the binary starts");
    Replica { child, port, log }
}

#[sqlx::test(migrations = false)]
async fn three_replicas_starting_together_migrate_an_empty_database_once_and_all_serve(
    pool: PgPool,
) {
    let url = database_url(&pool);
    let mut replicas: Vec<Replica> = (0..3).map(|n| start(&url, n)).collect();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for r in &mut replicas {
        loop {
            let ready = client
                .get(format!("http://127.0.0.1:{}/health/ready", r.port))
                .send()
                .await
                .is_ok_and(|resp| resp.status() == 200);
            if ready {
                break;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!(
                    "a replica exited ({status}):\n{}",
                    std::fs::read_to_string(&r.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "a replica was not ready within 60 s:\n{}",
                std::fs::read_to_string(&r.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Every migration applied, once, successfully.
    let (rows, versions, failed): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT version), count(*) FILTER (WHERE NOT success) FROM _sqlx_migrations",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let expected = switchyard_engine::db::MIGRATOR.iter().count() as i64;
    assert_eq!((rows, versions, failed), (expected, expected, 0));
    // None of them failed on the way (a replica that lost a migration race exits, caught above).
    for r in &mut replicas {
        assert!(r.child.try_wait().unwrap().is_none(), "a replica stopped");
    }
}
