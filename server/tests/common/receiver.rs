//! A local HTTP receiver for outgoing webhooks (notifications): records every request and
//! answers with the status it is told.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

/// A local HTTP receiver: records every request, answers with `status`.
pub struct Receiver {
    pub addr: SocketAddr,
    pub captured: Arc<Mutex<Vec<Captured>>>,
    /// What it answers; change it to play a receiver in trouble.
    pub status: Arc<AtomicU16>,
}

#[derive(Clone)]
struct ReceiverState {
    captured: Arc<Mutex<Vec<Captured>>>,
    status: Arc<AtomicU16>,
}

async fn receive(
    State(s): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    s.captured.lock().unwrap().push(Captured {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    StatusCode::from_u16(s.status.load(Ordering::SeqCst)).unwrap()
}

pub async fn receiver_on(listener: tokio::net::TcpListener) -> Receiver {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(AtomicU16::new(200));
    let state = ReceiverState {
        captured: captured.clone(),
        status: status.clone(),
    };
    let router = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(state);
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Receiver {
        addr,
        captured,
        status,
    }
}

pub async fn receiver() -> Receiver {
    receiver_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

impl Receiver {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn at(&self, path: &str) -> Vec<Captured> {
        self.captured
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }

    /// Waits (test-only polling) until `path` has received `n` requests; returns them.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Captured> {
        for _ in 0..1200 {
            let got = self.at(path);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} received {} of {n} requests", self.at(path).len());
    }
}
