//! Test fixtures: a real server on an ephemeral loopback port, on the fresh database `#[sqlx::test]`
//! made for the test.

use std::net::SocketAddr;

use leptos::prelude::LeptosOptions;
use sqlx::PgPool;
use switchyard_engine::{Engine, Settings};

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub engine: Engine,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
    }
}

fn settings() -> Settings {
    // The pool comes from sqlx::test; this URL is never dialled.
    let mut settings = Settings::with_database_url("postgres://unused").expect("default settings");
    settings.database.migrate = false; // sqlx::test already applied the migrations
    settings
}

pub async fn spawn_app(pool: PgPool) -> TestApp {
    let app = switchyard_server::build_with_pool(settings(), pool)
        .await
        .expect("build app");
    serve(app.router, app.engine).await
}

/// Like [`spawn_app`] with leptos options of the test's choosing (a site root, hashed names).
pub async fn spawn_app_with_site(pool: PgPool, options: LeptosOptions) -> TestApp {
    let engine = Engine {
        pool,
        settings: std::sync::Arc::new(settings()),
    };
    let router = switchyard_server::http::router(engine.clone(), options);
    serve(router, engine).await
}

async fn serve(router: axum::Router, engine: Engine) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        addr,
        client,
        engine,
    }
}
