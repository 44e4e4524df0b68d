//! The public status page's prober: every endpoint a status spec lists under `monitoring.targets`
//! and the health check of every service where it is deployed, probed on their intervals, each
//! result stored (and counted per day) in PostgreSQL for the page's state and 90-day uptime bars.
//!
//! One replica probes at a time: the prober holds a session advisory lock on a connection of its
//! own, so another replica takes over as soon as that connection goes (a probe is repeatable and
//! losing one is harmless, unlike a deployment step, so a lock that dies with its session is the
//! right tool here). Service health checks go through the Kubernetes API server's service proxy,
//! which reaches the Service from outside the cluster as well as from inside.
//!
//! Targets are written by tenants, strangers to the platform (issue #18), so the prober must not be
//! a window into the platform's network: a target's address must be public (`non_public`), checked
//! when its spec is imported and again at every probe on the address actually connected to (the
//! prober resolves names itself and hands the connector only addresses it checked, so a name that
//! resolves differently later, DNS rebinding, gains nothing); redirects are not followed (a 3xx is
//! the answer); a project has at most `status.max_targets_per_project`; and a project's targets
//! are probed and listed on the public page only when it opts in (`status_public_projects`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use enclii_api::{ApiError, StatusOverview, StatusTarget};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::broadcast;

use crate::auth::{Action, Caller};
use crate::config::StatusSettings;

/// Days of uptime bars on the page; older probes are deleted.
pub const DAYS: u32 = 90;
/// The advisory lock key the prober holds (any constant unique to this use).
const LOCK_KEY: i64 = 0x656e_636c_6969_5354; // "encliiST"

/// What to probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// GET `url`, up when it answers `expected_status`.
    Http { url: String, expected_status: u16 },
    /// GET the service's health check path through the API server's service proxy; up on 2xx.
    Service {
        environment: String,
        namespace: String,
        service: String,
        path: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Stable key the probes are stored under.
    pub key: String,
    /// The name the public page shows.
    pub name: String,
    pub interval: Duration,
    pub probe: Probe,
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self.probe {
            Probe::Http { .. } => "endpoint",
            Probe::Service { .. } => "service",
        }
    }
}

/// A service's current spec and the environments it is deployed to (name, namespace).
pub struct Deployed {
    pub project: String,
    pub service: String,
    pub spec: enclii_spec::ServiceSpec,
    pub environments: Vec<(String, String)>,
}

/// Every target, in the order the page lists them: monitored endpoints first (as their specs list
/// them), then service health checks by project, service and environment. A project's endpoints
/// beyond `max_per_project` are left out (imports refuse more; this holds when the limit is
/// lowered later, or two imports raced).
pub fn targets(
    services: &[Deployed],
    service_interval: Duration,
    max_per_project: usize,
) -> Vec<Target> {
    let mut endpoints = Vec::new();
    let mut checks = Vec::new();
    let mut per_project: HashMap<&str, usize> = HashMap::new();
    for s in services {
        if let Some(m) = &s.spec.spec.monitoring {
            for t in &m.targets {
                let count = per_project.entry(s.project.as_str()).or_default();
                if *count >= max_per_project {
                    break;
                }
                *count += 1;
                endpoints.push(Target {
                    key: format!("target:{}/{}/{}", s.project, s.service, t.name),
                    name: t.name.clone(),
                    interval: t.interval.0.max(Duration::from_secs(1)),
                    probe: Probe::Http {
                        url: t.url.clone(),
                        expected_status: t.expected_status,
                    },
                });
            }
        }
        let rt = &s.spec.spec.runtime;
        let path = rt
            .readiness_probe
            .as_ref()
            .map(|p| p.path.clone())
            .or_else(|| rt.health_check.clone());
        let Some(path) = path else { continue };
        for (environment, namespace) in &s.environments {
            checks.push(Target {
                key: format!("service:{}/{}/{environment}", s.project, s.service),
                name: format!("{}/{} ({environment})", s.project, s.service),
                interval: service_interval,
                probe: Probe::Service {
                    environment: environment.clone(),
                    namespace: namespace.clone(),
                    service: s.service.clone(),
                    path: path.clone(),
                },
            });
        }
    }
    checks.sort_by(|a, b| a.key.cmp(&b.key));
    endpoints.extend(checks);
    endpoints
}

/// Why the prober will not connect to `ip` for a tenant, or `None` for a public address: the
/// machine itself, private networks (the cluster's pods and services, the cloud's metadata service
/// at 169.254.169.254) and addresses that are not one host's. IPv4 addresses written as IPv6
/// (mapped, compatible, NAT64, 6to4) are judged as the IPv4 address they reach.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => non_public_v4(v4),
            None => non_public_v6(v6),
        },
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        // 0.0.0.0 reaches the local machine on Linux; the rest of 0/8 is "this network".
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "carrier-grade NAT",
        (192, 0, 0) => "IETF protocol",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if first & 0xffc0 == 0xfe80 {
        "link-local"
    } else if first & 0xffc0 == 0xfec0 {
        "site-local"
    } else if first & 0xfe00 == 0xfc00 {
        "unique local (private)"
    } else if first & 0xff00 == 0xff00 {
        "multicast"
    } else {
        return None;
    })
}

/// The IPv4 address an IPv6 address carries, for the forms that reach it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // IPv4-compatible (::a.b.c.d); `::` and `::1` are IPv6's own.
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) > (0, 1) => Some(v4(hi, lo)),
        // NAT64's well-known prefix (64:ff9b::/96).
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        // 6to4 (2002:AABB:CCDD::/48).
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

/// A target URL the prober will not probe, and why, in words for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedTarget {
    #[error("`{0}` is not a URL")]
    NotAUrl(String),
    #[error(
        "`{host}` is a {kind} address; the status page probes only public addresses (an operator may allow others with status.allow_private_targets)"
    )]
    Address { host: String, kind: &'static str },
    #[error(
        "`{0}` resolves to an address that is not public; the status page probes only public addresses (an operator may allow others with status.allow_private_targets)"
    )]
    Resolves(String),
}

/// How long an import waits for a target's name to resolve. A name that does not resolve (yet) is
/// accepted: every probe checks the addresses it connects to again.
const IMPORT_LOOKUP: Duration = Duration::from_secs(2);

/// Checks one target URL's address at import: an IP address by its kind, a name by every address
/// it resolves to now (the kind is not said for a name, whose addresses are the resolver's).
pub async fn check_url(url: &str) -> Result<(), RefusedTarget> {
    let parsed = url::Url::parse(url).map_err(|_| RefusedTarget::NotAUrl(url.to_owned()))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    match parsed.host() {
        None => Err(RefusedTarget::NotAUrl(url.to_owned())),
        Some(url::Host::Ipv4(ip)) => check_ip(&parsed, ip.into()),
        Some(url::Host::Ipv6(ip)) => check_ip(&parsed, ip.into()),
        Some(url::Host::Domain(name)) => {
            match tokio::time::timeout(IMPORT_LOOKUP, tokio::net::lookup_host((name, port))).await {
                Ok(Ok(addrs)) => {
                    let mut addrs = addrs;
                    if addrs.any(|a| non_public(a.ip()).is_some()) {
                        return Err(RefusedTarget::Resolves(name.to_owned()));
                    }
                    Ok(())
                }
                Ok(Err(_)) | Err(_) => Ok(()),
            }
        }
    }
}

fn check_ip(url: &url::Url, ip: IpAddr) -> Result<(), RefusedTarget> {
    match non_public(ip) {
        None => Ok(()),
        Some(kind) => Err(RefusedTarget::Address {
            host: url.host_str().unwrap_or_default().to_owned(),
            kind,
        }),
    }
}

/// Refuses a spec whose monitoring targets are not on public addresses (unless the platform allows
/// them), or that has more of them than a project may. Called by the import before it writes.
pub async fn check_spec_targets(
    settings: &StatusSettings,
    spec: &enclii_spec::ServiceSpec,
) -> Result<(), ApiError> {
    let Some(monitoring) = &spec.spec.monitoring else {
        return Ok(());
    };
    let max = settings.max_targets_per_project;
    if monitoring.targets.len() > max {
        return Err(too_many(max, monitoring.targets.len()));
    }
    if settings.allow_private_targets {
        return Ok(());
    }
    for t in &monitoring.targets {
        if let Err(why) = check_url(&t.url).await {
            return Err(ApiError::invalid(format!(
                "monitoring target `{}`: {why}",
                t.name
            )));
        }
    }
    Ok(())
}

fn too_many(max: usize, total: usize) -> ApiError {
    ApiError::invalid(format!(
        "a project may have at most {max} monitoring targets (status.max_targets_per_project); with this spec it would have {total}: remove some"
    ))
}

/// Refuses an import that would give the project more monitoring targets than it may have, counting
/// its other services' current specs. In the import's transaction.
pub async fn check_project_targets(
    tx: &mut sqlx::PgConnection,
    settings: &StatusSettings,
    project: uuid::Uuid,
    service: &str,
    spec: &enclii_spec::ServiceSpec,
) -> crate::Result<()> {
    let mine = spec.spec.monitoring.as_ref().map_or(0, |m| m.targets.len());
    if mine == 0 {
        return Ok(());
    }
    // Two services of one project imported at once would each count the other's old list; one
    // at a time per project (the two-key form: a key space of its own).
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(1398030676, hashtext($1::text))",
        project.to_string()
    )
    .execute(&mut *tx)
    .await?;
    let others = sqlx::query_scalar!(
        r#"SELECT COALESCE(sum(jsonb_array_length(r.spec #> '{spec,monitoring,targets}')), 0)::bigint AS "n!"
           FROM services s JOIN spec_revisions r ON r.service_id = s.id AND r.revision = s.current_revision
           WHERE s.project_id = $1 AND s.name <> $2
             AND jsonb_typeof(r.spec #> '{spec,monitoring,targets}') = 'array'"#,
        project,
        service
    )
    .fetch_one(&mut *tx)
    .await?;
    let total = mine + usize::try_from(others).unwrap_or(usize::MAX);
    if total > settings.max_targets_per_project {
        return Err(too_many(settings.max_targets_per_project, total).into());
    }
    Ok(())
}

/// Why a probe was refused before connecting; found in reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("the target does not resolve to public addresses only")]
struct NotPublic;

/// The prober's resolver when private targets are not allowed: every address a name resolves to
/// must be public, and those checked addresses are the ones the connector dials (it has no other
/// source), so the check holds for the connection itself, whatever the name resolves to next.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| non_public(a.ip()).is_some()) {
                return Err(Box::new(NotPublic) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The prober's HTTP client: follows no redirects (a 3xx is the answer: a redirect to a private
/// address must not be followed, and the target is what its spec says), uses no proxy (the
/// address checked must be the one connected to), and resolves through [`PublicOnly`] unless
/// `status.allow_private_targets`.
pub fn http_client(settings: &StatusSettings) -> reqwest::Result<reqwest::Client> {
    outbound_client(
        settings.allow_private_targets,
        Duration::from_millis(settings.timeout_ms),
        "enclii-status/1",
    )
    .build()
}

/// A client for requests to addresses a tenant chose (status targets, notification webhooks): no
/// redirects, no proxy, and through [`PublicOnly`] unless `allow_private`.
pub fn outbound_client(
    allow_private: bool,
    connect_timeout: Duration,
    user_agent: &'static str,
) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(user_agent)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly))
    }
}

/// Whether a probe was refused by [`PublicOnly`].
fn refused_by_resolver(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<NotPublic>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// A target URL naming a non-public IP address, which the connector dials without resolving.
pub(crate) fn literal_non_public(url: &str) -> bool {
    match reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Ipv4(ip)) => non_public(ip.into()).is_some(),
        Some(url::Host::Ipv6(ip)) => non_public(ip.into()).is_some(),
        _ => false,
    }
}

/// Whether a tenant's health check path climbs out of its Service's proxy path (`..`, also
/// percent-encoded, or a backslash) toward the rest of the API server, which the prober reaches
/// with the platform's credentials.
fn leaves_the_proxy(path: &str) -> bool {
    let decoded = path
        .to_ascii_lowercase()
        .replace("%2e", ".")
        .replace("%2f", "/")
        .replace("%5c", "\\");
    decoded.contains('\\') || decoded.split('/').any(|segment| segment == "..")
}

/// What the public page says about a refused probe (no address: the page is public).
const REFUSED: &str = "refused: not a public address";

/// Lists a project's targets on the public status page, or stops listing them (project admin).
/// Only listed projects' targets are probed at all.
pub async fn set_public(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    public: bool,
) -> crate::Result<()> {
    let project =
        crate::platform::project_access(pool, caller, project, Action::PublishStatus).await?;
    let mut tx = pool.begin().await?;
    if public {
        sqlx::query!(
            "INSERT INTO status_public_projects (project_id, published_by) VALUES ($1, $2)
             ON CONFLICT (project_id) DO NOTHING",
            project.id,
            caller.map(|c| c.user_id)
        )
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query!(
            "DELETE FROM status_public_projects WHERE project_id = $1",
            project.id
        )
        .execute(&mut *tx)
        .await?;
    }
    crate::audit::record(
        &mut *tx,
        caller,
        crate::audit::Event::new(if public {
            "status.publish"
        } else {
            "status.unpublish"
        })
        .target("project", project.slug.clone())
        .project(project.id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether a target is due: never probed, or its interval has passed.
pub fn due(last: Option<Instant>, interval: Duration, now: Instant) -> bool {
    last.is_none_or(|l| now.duration_since(l) >= interval)
}

/// The page's headline from the targets' states.
pub fn overall(states: &[&str]) -> &'static str {
    let up = states.iter().filter(|s| **s == "up").count();
    let down = states.iter().filter(|s| **s == "down").count();
    overall_of(up, down)
}

/// The headline from counts of targets up and down (the rest not probed yet).
fn overall_of(up: usize, down: usize) -> &'static str {
    match (up, down) {
        (0, 0) => "unknown",
        (_, 0) => "operational",
        (0, _) => "outage",
        _ => "degraded",
    }
}

/// `days` bars from `first_day`, filled from per-day counts (days without probes are (0, 0)).
pub fn bars(first_day: NaiveDate, days: u32, counts: &[(NaiveDate, i32, i32)]) -> Vec<(i32, i32)> {
    let mut out = vec![(0, 0); days as usize];
    for (day, ok, total) in counts {
        let i = (*day - first_day).num_days();
        if (0..days as i64).contains(&i) {
            out[i as usize] = (*ok, *total);
        }
    }
    out
}

/// Share of successful probes over the bars, when there were any.
pub fn uptime(bars: &[(i32, i32)]) -> Option<f64> {
    let (ok, total) = bars.iter().fold((0i64, 0i64), |(o, t), (ok, total)| {
        (o + *ok as i64, t + *total as i64)
    });
    (total > 0).then(|| ok as f64 / total as f64)
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub detail: String,
}

/// The status page's content. Public: it shows names, states and uptime only (no URLs, no
/// internal addresses).
pub async fn overview(pool: &PgPool) -> crate::Result<StatusOverview> {
    let today = Utc::now().date_naive();
    let first_day = today - chrono::Days::new(u64::from(DAYS) - 1);
    let rows = sqlx::query!(
        r#"SELECT t.target, t.name, t.kind, p.ok AS "ok?", p.checked_at AS "checked_at?",
                  p.latency_ms AS "latency_ms?", p.detail AS "detail?"
           FROM status_targets t
                LEFT JOIN LATERAL (SELECT ok, checked_at, latency_ms, detail FROM status_probes
                                   WHERE target = t.target ORDER BY checked_at DESC LIMIT 1) p ON true
           ORDER BY t.position"#
    )
    .fetch_all(pool)
    .await?;
    let days = sqlx::query!(
        "SELECT target, day, ok, total FROM status_daily WHERE day >= $1 ORDER BY target, day",
        first_day
    )
    .fetch_all(pool)
    .await?;
    let mut per_target: HashMap<String, Vec<(NaiveDate, i32, i32)>> = HashMap::new();
    for d in days {
        per_target
            .entry(d.target)
            .or_default()
            .push((d.day, d.ok, d.total));
    }
    let targets: Vec<StatusTarget> = rows
        .into_iter()
        .map(|r| {
            let daily = bars(
                first_day,
                DAYS,
                per_target.get(&r.target).map(Vec::as_slice).unwrap_or(&[]),
            );
            StatusTarget {
                name: r.name,
                kind: r.kind,
                state: match r.ok {
                    Some(true) => "up",
                    Some(false) => "down",
                    None => "unknown",
                }
                .into(),
                checked_at: r.checked_at,
                latency_ms: r.latency_ms,
                detail: r.detail.unwrap_or_default(),
                uptime: uptime(&daily),
                daily,
            }
        })
        .collect();
    let states: Vec<&str> = targets.iter().map(|t| t.state.as_str()).collect();
    Ok(StatusOverview {
        overall: overall(&states).into(),
        first_day,
        days: DAYS,
        targets,
    })
}

/// The headline alone: each target's latest probe, no bars.
pub async fn headline(pool: &PgPool) -> crate::Result<enclii_api::StatusHeadline> {
    let r = sqlx::query!(
        r#"SELECT count(*) AS "targets!", count(*) FILTER (WHERE p.ok) AS "up!",
                  count(*) FILTER (WHERE NOT p.ok) AS "down!"
           FROM status_targets t
                LEFT JOIN LATERAL (SELECT ok FROM status_probes WHERE target = t.target
                                   ORDER BY checked_at DESC LIMIT 1) p ON true"#
    )
    .fetch_one(pool)
    .await?;
    Ok(enclii_api::StatusHeadline {
        overall: overall_of(r.up as usize, r.down as usize).into(),
        targets: r.targets,
        down: r.down,
    })
}

/// Reads the current spec of every service of the projects listed on the public page, and where
/// it is deployed (a succeeded deployment).
async fn deployed(pool: &PgPool) -> crate::Result<Vec<Deployed>> {
    let rows = sqlx::query!(
        r#"SELECT p.slug AS project, s.name AS service, r.spec,
                  COALESCE((SELECT json_agg(json_build_array(e.name, e.namespace) ORDER BY e.name)
                            FROM environments e
                            WHERE e.project_id = s.project_id
                              AND EXISTS (SELECT 1 FROM deployments d
                                          WHERE d.service_id = s.id AND d.environment_id = e.id
                                            AND d.state = 'succeeded')), '[]') AS "environments!"
           FROM services s
                JOIN projects p ON p.id = s.project_id
                JOIN status_public_projects sp ON sp.project_id = s.project_id
                JOIN spec_revisions r ON r.service_id = s.id AND r.revision = s.current_revision
           ORDER BY p.slug, s.name"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            // Stored specs were valid when imported; one that no longer reads is skipped, not fatal.
            let spec = serde_json::from_value(r.spec).ok()?;
            let environments = serde_json::from_value(r.environments).unwrap_or_default();
            Some(Deployed {
                project: r.project,
                service: r.service,
                spec,
                environments,
            })
        })
        .collect())
}

/// What the target list depends on besides deployments (whose changes arrive as events): the
/// newest spec revision, the services and environments that exist, and which projects are listed.
#[derive(Debug, PartialEq)]
struct TargetsFingerprint {
    newest_revision: Option<DateTime<Utc>>,
    services: i64,
    environments: i64,
    public_projects: Option<String>,
}

async fn what_changes_targets(pool: &PgPool) -> crate::Result<TargetsFingerprint> {
    let r = sqlx::query!(
        r#"SELECT (SELECT max(created_at) FROM spec_revisions) AS newest_revision,
                  (SELECT count(*) FROM services) AS "services!",
                  (SELECT count(*) FROM environments) AS "environments!",
                  (SELECT md5(string_agg(project_id::text, ',' ORDER BY project_id))
                   FROM status_public_projects) AS public_projects"#
    )
    .fetch_one(pool)
    .await?;
    Ok(TargetsFingerprint {
        newest_revision: r.newest_revision,
        services: r.services,
        environments: r.environments,
        public_projects: r.public_projects,
    })
}

/// Replaces the listed targets (in one transaction, so the page never sees half a list).
async fn publish(pool: &PgPool, targets: &[Target]) -> crate::Result<()> {
    let keys: Vec<String> = targets.iter().map(|t| t.key.clone()).collect();
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let kinds: Vec<String> = targets.iter().map(|t| t.kind().to_owned()).collect();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "DELETE FROM status_targets WHERE NOT (target = ANY($1))",
        &keys
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        r#"INSERT INTO status_targets (target, name, kind, position)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY
           ON CONFLICT (target) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
                                              position = EXCLUDED.position"#,
        &keys,
        &names,
        &kinds
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Stores a probe, and announces the target unhealthy or recovered when this probe makes it so
/// (`notify::policy::status_alert`), in the same transaction.
async fn record(
    pool: &PgPool,
    target: &str,
    o: &Outcome,
    at: DateTime<Utc>,
    failures_to_alert: usize,
) -> crate::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO status_probes (target, checked_at, ok, status_code, latency_ms, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
        target,
        at,
        o.ok,
        o.status_code,
        o.latency_ms,
        o.detail
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO status_daily (target, day, ok, total) VALUES ($1, $2, $3, 1)
         ON CONFLICT (target, day) DO UPDATE SET ok = status_daily.ok + EXCLUDED.ok,
                                                 total = status_daily.total + 1",
        target,
        at.date_naive(),
        i32::from(o.ok)
    )
    .execute(&mut *tx)
    .await?;
    let recent: Vec<bool> = sqlx::query_scalar!(
        "SELECT ok FROM status_probes WHERE target = $1 ORDER BY checked_at DESC, id DESC LIMIT $2",
        target,
        failures_to_alert.max(1) as i64
    )
    .fetch_all(&mut *tx)
    .await?;
    let open = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM status_alerts WHERE target = $1) AS "open!""#,
        target
    )
    .fetch_one(&mut *tx)
    .await?;
    if let Some(alert) = crate::notify::policy::status_alert(open, &recent, failures_to_alert) {
        let name = sqlx::query_scalar!("SELECT name FROM status_targets WHERE target = $1", target)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_else(|| target.to_owned());
        // Announced by whoever changes the alert's row: a second prober (during a handover of
        // the lock) finds it changed and says nothing.
        let changed = match alert {
            crate::notify::policy::Alert::Unhealthy => sqlx::query!(
                "INSERT INTO status_alerts (target, unhealthy_since) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                target,
                at
            )
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            crate::notify::policy::Alert::Recovered => {
                sqlx::query!("DELETE FROM status_alerts WHERE target = $1", target)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
        };
        if changed == 1 {
            crate::notify::facts::status(&mut tx, target, &name, alert, &o.detail).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes what the page no longer shows.
async fn expire(pool: &PgPool) -> crate::Result<()> {
    // An alert of a target the page no longer lists will never see its recovery.
    sqlx::query!(
        "DELETE FROM status_alerts WHERE target NOT IN (SELECT target FROM status_targets)"
    )
    .execute(pool)
    .await?;
    let horizon = Utc::now() - chrono::Duration::days(i64::from(DAYS));
    sqlx::query!("DELETE FROM status_probes WHERE checked_at < $1", horizon)
        .execute(pool)
        .await?;
    sqlx::query!(
        "DELETE FROM status_daily WHERE day < $1",
        horizon.date_naive()
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Probes one target once, through `http` (the prober's [`http_client`]).
pub async fn probe(
    engine: &crate::Engine,
    http: &reqwest::Client,
    target: &Target,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let result: Result<u16, String> = match &target.probe {
        Probe::Http { url, .. }
            if !engine.settings.status.allow_private_targets && literal_non_public(url) =>
        {
            Err(REFUSED.into())
        }
        Probe::Http { url, .. } => match http.get(url).timeout(timeout).send().await {
            Ok(r) => Ok(r.status().as_u16()),
            Err(e) if refused_by_resolver(&e) => Err(REFUSED.into()),
            Err(e) if e.is_timeout() => Err(format!("no answer within {} ms", timeout.as_millis())),
            Err(e) if e.is_connect() => Err("could not connect".into()),
            Err(_) => Err("the request failed".into()),
        },
        Probe::Service {
            environment,
            namespace,
            service,
            path,
        } => match engine.cluster(environment) {
            Err(_) => Err("not connected to the cluster".into()),
            Ok(client) => {
                let uri = format!(
                    "/api/v1/namespaces/{namespace}/services/{service}:80/proxy/{}",
                    path.trim_start_matches('/')
                );
                let request = if leaves_the_proxy(path) {
                    Err(())
                } else {
                    http::Request::get(uri).body(Vec::new()).map_err(|_| ())
                };
                match request {
                    Err(_) => Err("the health check path is not a valid URL path".into()),
                    Ok(request) => {
                        match tokio::time::timeout(timeout, client.request_text(request)).await {
                            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                            Ok(Ok(_)) => Ok(200),
                            Ok(Err(kube::Error::Api(e))) => Ok(e.code),
                            Ok(Err(_)) => Err("the cluster did not answer".into()),
                        }
                    }
                }
            }
        },
    };
    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    match result {
        Ok(code) => {
            let ok = match &target.probe {
                Probe::Http {
                    expected_status, ..
                } => code == *expected_status,
                Probe::Service { .. } => (200..300).contains(&code),
            };
            Outcome {
                ok,
                status_code: Some(i32::from(code)),
                latency_ms,
                detail: if ok {
                    String::new()
                } else {
                    format!("answered {code}")
                },
            }
        }
        Err(detail) => Outcome {
            ok: false,
            status_code: None,
            latency_ms,
            detail,
        },
    }
}

/// Probes until the process stops, while this replica holds the prober's lock.
pub async fn run(engine: crate::Engine) {
    let settings = engine.settings.status.clone();
    // Without this client's guards the prober would reach private addresses: no fallback client.
    let http = match http_client(&settings) {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "status prober: could not build its HTTP client; not probing");
            return;
        }
    };
    loop {
        // The lock lives with this connection: detached from the pool so that it is never handed
        // to another task while held, and closed (releasing the lock) when the loop ends.
        let mut conn = match engine.pool.acquire().await {
            Ok(c) => c.detach(),
            Err(error) => {
                tracing::warn!(%error, "status prober: no database connection");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let locked: Result<bool, sqlx::Error> =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(&mut conn)
                .await;
        match locked {
            Ok(true) => {
                tracing::info!("status prober: probing from this replica");
                lead(&engine, &http, &settings, &mut conn).await;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "status prober: could not take the lock"),
        }
        drop(conn);
        tokio::time::sleep(Duration::from_secs(settings.refresh_secs.max(1))).await;
    }
}

/// Probes while the lock's connection is alive.
async fn lead(
    engine: &crate::Engine,
    http: &reqwest::Client,
    settings: &crate::config::StatusSettings,
    lock: &mut sqlx::PgConnection,
) {
    use sqlx::Connection;
    let timeout = Duration::from_millis(settings.timeout_ms);
    let refresh = Duration::from_secs(settings.refresh_secs.max(1));
    let mut last: HashMap<String, Instant> = HashMap::new();
    let mut list: Vec<Target> = Vec::new();
    let mut read_at: Option<Instant> = None;
    let mut seen: Option<TargetsFingerprint> = None;
    let mut deployment_changes = engine.deployment_events.subscribe();
    let mut expired_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if due(read_at, refresh, now) {
            if lock.ping().await.is_err() {
                tracing::warn!("status prober: lost the lock's connection");
                return;
            }
            // The specs are read (and parsed) again only when something they depend on changed: a
            // deployment (its events; a lagging receiver counts as a change), or the fingerprint.
            let mut deployments_changed = false;
            loop {
                match deployment_changes.try_recv() {
                    Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {
                        deployments_changed = true
                    }
                    Err(_) => break,
                }
            }
            let now_seen = match what_changes_targets(&engine.pool).await {
                Ok(f) => Some(f),
                Err(error) => {
                    tracing::warn!(%error, "status prober: could not check for changes");
                    None
                }
            };
            let unchanged = !deployments_changed && now_seen.is_some() && now_seen == seen;
            seen = now_seen;
            read_at = Some(now);
            match if unchanged {
                Ok(None)
            } else {
                deployed(&engine.pool).await.map(Some)
            } {
                Ok(None) => {}
                Ok(Some(services)) => {
                    list = targets(
                        &services,
                        Duration::from_secs(settings.service_interval_secs),
                        settings.max_targets_per_project,
                    );
                    if let Err(error) = publish(&engine.pool, &list).await {
                        tracing::warn!(%error, "status prober: could not publish the targets");
                    }
                    last.retain(|k, _| list.iter().any(|t| &t.key == k));
                }
                Err(error) => {
                    // Read again next time.
                    seen = None;
                    tracing::warn!(%error, "status prober: could not read the specs");
                }
            }
        }
        if due(expired_at, Duration::from_secs(3600), now) {
            if let Err(error) = expire(&engine.pool).await {
                tracing::warn!(%error, "status prober: could not expire old probes");
            }
            expired_at = Some(now);
        }
        // Owned copies: a stream of futures borrowing the list trips the spawn's `Send` check.
        let batch: Vec<Target> = list
            .iter()
            .filter(|t| due(last.get(&t.key).copied(), t.interval, now))
            .cloned()
            .collect();
        for t in &batch {
            last.insert(t.key.clone(), now);
        }
        let results: Vec<(String, Outcome, DateTime<Utc>)> = futures::stream::iter(batch)
            .map(|t| async move {
                let at = Utc::now();
                let outcome = probe(engine, http, &t, timeout).await;
                (t.key, outcome, at)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (key, outcome, at) in results {
            let failures = engine.settings.notifications.unhealthy_after_probes;
            if let Err(error) = record(&engine.pool, &key, &outcome, at, failures).await {
                tracing::warn!(%error, target = %key, "status prober: could not store a probe");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> enclii_spec::ServiceSpec {
        enclii_spec::parse(yaml).expect("valid spec").service
    }

    const STATUS: &str = "apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: status-page\n  project: p\nspec:\n  build:\n    type: dockerfile\n  runtime:\n    port: 3000\n    healthCheck: /health\n  monitoring:\n    targets:\n      - name: API\n        url: https://api.example/health\n        interval: 30s\n      - name: Docs\n        url: https://docs.example/\n        expectedStatus: 204\n";
    const API: &str = "apiVersion: enclii.dev/v1\nkind: Service\nmetadata:\n  name: api\n  project: p\nspec:\n  build:\n    type: dockerfile\n  runtime:\n    port: 8080\n";

    #[test]
    fn endpoints_come_first_then_health_checks_where_deployed() {
        let services = vec![
            Deployed {
                project: "p".into(),
                service: "status-page".into(),
                spec: spec(STATUS),
                environments: vec![
                    ("staging".into(), "p-staging".into()),
                    ("production".into(), "p-production".into()),
                ],
            },
            // No health check: nothing to probe.
            Deployed {
                project: "p".into(),
                service: "api".into(),
                spec: spec(API),
                environments: vec![("production".into(), "p-production".into())],
            },
        ];
        let t = targets(&services, Duration::from_secs(15), 20);
        let keys: Vec<&str> = t.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "target:p/status-page/API",
                "target:p/status-page/Docs",
                "service:p/status-page/production",
                "service:p/status-page/staging",
            ]
        );
        assert_eq!(t[0].interval, Duration::from_secs(30));
        assert_eq!(t[1].interval, Duration::from_secs(60), "the spec's default");
        assert_eq!(
            t[1].probe,
            Probe::Http {
                url: "https://docs.example/".into(),
                expected_status: 204
            }
        );
        assert_eq!(t[2].name, "p/status-page (production)");
        assert_eq!(t[2].interval, Duration::from_secs(15));
        assert_eq!(
            t[2].probe,
            Probe::Service {
                environment: "production".into(),
                namespace: "p-production".into(),
                service: "status-page".into(),
                path: "/health".into(),
            }
        );
        assert_eq!((t[0].kind(), t[3].kind()), ("endpoint", "service"));
    }

    #[test]
    fn a_project_has_at_most_its_share_of_endpoints_however_many_its_specs_list() {
        let services = vec![
            Deployed {
                project: "p".into(),
                service: "status-page".into(),
                spec: spec(STATUS),
                environments: vec![],
            },
            Deployed {
                project: "p".into(),
                service: "status-canary".into(),
                spec: spec(&STATUS.replace("status-page", "status-canary")),
                environments: vec![],
            },
            Deployed {
                project: "q".into(),
                service: "status-page".into(),
                spec: spec(&STATUS.replace("project: p", "project: q")),
                environments: vec![],
            },
        ];
        let keys: Vec<String> = targets(&services, Duration::from_secs(15), 3)
            .into_iter()
            .map(|t| t.key)
            .collect();
        assert_eq!(
            keys,
            [
                "target:p/status-page/API",
                "target:p/status-page/Docs",
                "target:p/status-canary/API",
                "target:q/status-page/API",
                "target:q/status-page/Docs",
            ]
        );
    }

    #[test]
    fn only_public_addresses_are_probed_in_every_spelling() {
        let refused = [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("10.96.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("fd00::1", "unique local (private)"),
            ("fc00::1", "unique local (private)"),
            ("ff02::1", "multicast"),
            // IPv4 in IPv6: judged as the IPv4 address it reaches.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
        ];
        for (ip, kind) in refused {
            assert_eq!(non_public(ip.parse().unwrap()), Some(kind), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "93.184.215.14",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert_eq!(non_public(ip.parse().unwrap()), None, "{ip}");
        }
        // URLs: the host as the connector will read it (decimal and hex IPv4 are loopback too).
        for url in [
            "http://127.0.0.1:8080/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]:9/",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            assert!(literal_non_public(url), "{url}");
        }
        assert!(!literal_non_public("https://api.example.com/health"));
        for path in [
            "/../../api/v1/secrets",
            "/a/%2E%2E/%2e%2e/x",
            "/..%2f..%2fapi",
            "/a\\..\\b",
        ] {
            assert!(leaves_the_proxy(path), "{path}");
        }
        for path in [
            "/health",
            "/healthz?full=1",
            "/a..b/c",
            "/.well-known/ready",
        ] {
            assert!(!leaves_the_proxy(path), "{path}");
        }
        assert!(!literal_non_public("http://1.1.1.1/"));
    }

    #[tokio::test]
    async fn imports_refuse_private_addresses_and_names_that_resolve_to_them() {
        assert_eq!(
            check_url("http://169.254.169.254/").await,
            Err(RefusedTarget::Address {
                host: "169.254.169.254".into(),
                kind: "link-local"
            })
        );
        assert_eq!(
            check_url("http://localhost:8080/health").await,
            Err(RefusedTarget::Resolves("localhost".into()))
        );
        // `.invalid` never resolves: accepted now, checked again at every probe.
        assert_eq!(check_url("https://status.example.invalid/").await, Ok(()));
        assert_eq!(check_url("http://1.1.1.1/").await, Ok(()));
    }

    #[test]
    fn due_after_the_interval_or_when_never_probed() {
        let now = Instant::now();
        let i = Duration::from_secs(30);
        assert!(due(None, i, now));
        assert!(!due(Some(now), i, now));
        assert!(due(Some(now), i, now + i));
        assert!(!due(Some(now), i, now + i - Duration::from_millis(1)));
    }

    #[test]
    fn the_headline_follows_the_states() {
        assert_eq!(overall(&[]), "unknown");
        assert_eq!(overall(&["unknown"]), "unknown");
        assert_eq!(overall(&["up", "up", "unknown"]), "operational");
        assert_eq!(overall(&["up", "down"]), "degraded");
        assert_eq!(overall(&["down", "down", "unknown"]), "outage");
    }

    #[test]
    fn bars_cover_every_day_and_uptime_counts_probes() {
        let d = |n: u32| NaiveDate::from_ymd_opt(2026, 11, n).unwrap();
        let b = bars(
            d(1),
            5,
            &[
                (d(2), 9, 10),
                (d(5), 10, 10),
                (d(9), 1, 1),
                (d(0 + 1) - chrono::Days::new(1), 1, 1),
            ],
        );
        assert_eq!(b, [(0, 0), (9, 10), (0, 0), (0, 0), (10, 10)]);
        assert_eq!(uptime(&b), Some(0.95));
        assert_eq!(uptime(&[(0, 0), (0, 0)]), None);
    }
}
