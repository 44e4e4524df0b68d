//! Readiness and liveness probes, done for real against the pod's own address: an HTTP GET (any
//! status from 200 to 399 passes) or a TCP connect. Exec and gRPC probes cannot be run here and
//! count as passing. Periods are capped at 10 s, so a simulation does not wait as long as a
//! cluster would.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Http { port: u16, path: String },
    Tcp { port: u16 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub target: Target,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
}

const MAX_PERIOD: Duration = Duration::from_secs(10);

impl Plan {
    /// The probe as the simulator runs it; `None` for one it cannot run (exec, gRPC, a port name
    /// the container does not declare).
    pub fn of(probe: &Probe, container: &Container) -> Option<Self> {
        let target = if let Some(h) = &probe.http_get {
            Target::Http {
                port: resolve_port(&h.port, container)?,
                path: h
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".into()),
            }
        } else if let Some(t) = &probe.tcp_socket {
            Target::Tcp {
                port: resolve_port(&t.port, container)?,
            }
        } else {
            return None;
        };
        let seconds = |v: Option<i32>, default: u64| {
            Duration::from_secs(v.map_or(default, |s| s.max(1) as u64))
        };
        Some(Self {
            target,
            period: seconds(probe.period_seconds, 10).min(MAX_PERIOD),
            timeout: seconds(probe.timeout_seconds, 1),
            failure_threshold: probe.failure_threshold.map_or(3, |n| n.max(1) as u32),
        })
    }

    pub fn port(&self) -> u16 {
        match self.target {
            Target::Http { port, .. } | Target::Tcp { port } => port,
        }
    }

    /// Whether the probe passes against the pod at `ip` now.
    pub async fn passes(&self, ip: Ipv4Addr) -> bool {
        let address = SocketAddr::from((ip, self.port()));
        let attempt = async {
            let mut stream = TcpStream::connect(address).await.ok()?;
            let Target::Http { path, .. } = &self.target else {
                return Some(true);
            };
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: kube-probe/1.37\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut head = Vec::with_capacity(64);
            let mut buf = [0u8; 256];
            while !head.contains(&b'\n') && head.len() < 4096 {
                let n = stream.read(&mut buf).await.ok()?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            status_code(&head).map(|code| (200..400).contains(&code))
        };
        matches!(
            tokio::time::timeout(self.timeout, attempt).await,
            Ok(Some(true))
        )
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// The status code of an HTTP response's status line (`HTTP/1.1 200 OK`).
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, TCPSocketAction};

    fn web() -> Container {
        Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn probes_resolve_named_ports_and_cap_their_period() {
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            period_seconds: Some(30),
            ..Default::default()
        };
        let plan = Plan::of(&probe, &web()).unwrap();
        assert_eq!(
            plan.target,
            Target::Http {
                port: 8080,
                path: "/healthz".into()
            }
        );
        assert_eq!(plan.period, Duration::from_secs(10));
        assert_eq!(plan.failure_threshold, 3);
        assert_eq!(plan.timeout, Duration::from_secs(1));
        let tcp = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(9000),
                ..Default::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(1),
            ..Default::default()
        };
        let plan = Plan::of(&tcp, &web()).unwrap();
        assert_eq!(plan.target, Target::Tcp { port: 9000 });
        assert_eq!(plan.period, Duration::from_secs(5));
        let unknown = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("admin".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(Plan::of(&unknown, &web()), None);
        assert_eq!(Plan::of(&Probe::default(), &web()), None);
    }

    #[test]
    fn status_lines_give_their_code() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\nx: y\r\n"), Some(200));
        assert_eq!(
            status_code(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_code(b"garbage"), None);
        assert_eq!(status_code(b""), None);
    }

    #[tokio::test]
    async fn a_probe_gets_its_answer_over_the_network() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no") });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let plan = |path: &str| Plan {
            target: Target::Http {
                port,
                path: path.into(),
            },
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failure_threshold: 1,
        };
        let localhost = Ipv4Addr::LOCALHOST;
        assert!(plan("/ok").passes(localhost).await);
        assert!(!plan("/other").passes(localhost).await);
        let tcp = Plan {
            target: Target::Tcp { port },
            ..plan("/")
        };
        assert!(tcp.passes(localhost).await);
        drop(tcp);
    }
}
