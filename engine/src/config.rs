//! Typed configuration, layered: built-in defaults < a TOML file < `ENCLII_*` environment variables.
//!
//! Nested keys use a double underscore in the environment (`ENCLII_DATABASE__URL`). Secrets are held
//! in `secrecy` types so that they cannot be logged or serialized by accident.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

/// The file read when `ENCLII_CONFIG` does not name one; its absence is not an error.
pub const DEFAULT_CONFIG_FILE: &str = "enclii.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address the HTTP server binds.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// The origin users reach the dashboard at; cookies are `Secure` unless it is loopback http.
    #[serde(default = "defaults::public_url")]
    pub public_url: String,
    pub database: DatabaseSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub site: SiteSettings,
    /// Sign-in through an OpenID provider (Plinto). Without it, only API tokens authenticate.
    #[serde(default)]
    pub oidc: Option<OidcSettings>,
    #[serde(default)]
    pub session: SessionSettings,
    #[serde(default)]
    pub cluster: ClusterSettings,
    #[serde(default)]
    pub secrets: SecretsSettings,
    #[serde(default)]
    pub canary: CanarySettings,
    #[serde(default)]
    pub pipeline: PipelineSettings,
    #[serde(default)]
    pub domains: DomainSettings,
    #[serde(default)]
    pub status: StatusSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub notifications: NotificationSettings,
    #[serde(default)]
    pub previews: PreviewSettings,
}

/// Notifications' delivery (`notify::deliver`): retries, the per-destination rate limit, the SMTP
/// server email destinations go through.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NotificationSettings {
    /// Deliver from this replica (any number may; each delivery is leased to one).
    pub worker: bool,
    /// Let destinations be private addresses and plain http (local receivers in development and
    /// tests); otherwise only https to public addresses, checked at every connection.
    pub allow_private_destinations: bool,
    /// Attempts per delivery, the first included, before it is given up.
    pub max_attempts: u32,
    /// The wait after a first failed attempt; it doubles with each (with jitter) up to the cap.
    pub retry_base_ms: u64,
    pub retry_cap_secs: u64,
    /// One attempt's limit (connect, send, answer).
    pub timeout_ms: u64,
    /// Messages a destination gets per window; the rest goes out as one digest after it.
    pub per_window: u32,
    pub window_secs: u64,
    /// Failed attempts in a row after which a destination is shown failing.
    pub failing_after: u32,
    /// How long a claimed delivery is this replica's before another may take it.
    pub lease_secs: u64,
    /// Failed probes in a row before a status target is announced unhealthy.
    pub unhealthy_after_probes: usize,
    /// Events (and their deliveries) are kept this long once nothing is left to send.
    pub retention_days: u32,
    /// The platform's SMTP server; without it, email destinations cannot be added.
    pub smtp: Option<SmtpSettings>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            worker: true,
            allow_private_destinations: false,
            max_attempts: 10,
            retry_base_ms: 5_000,
            retry_cap_secs: 3_600,
            timeout_ms: 10_000,
            per_window: 10,
            window_secs: 300,
            failing_after: 5,
            lease_secs: 60,
            unhealthy_after_probes: 2,
            retention_days: 30,
            smtp: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    /// Defaults to 465 (`tls`), 587 (`starttls`) or 25 (`none`).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// The sender: `Enclii <notifications@example.com>`.
    pub from: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS required (a server that does not offer it gets nothing, not plain text).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// Plain text: a relay on the same host or a test server only.
    None,
}

/// Preview environments' background scan (`previews::watch`): sleep, TTL and deletion.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PreviewSettings {
    /// How often each replica looks for previews to sleep or delete (a closed pull request's
    /// preview is deleted at once by the replica that received the webhook, when it can).
    pub scan_secs: u64,
    /// A preview's requests over the window (PromQL with `{namespace}`, `{window}`): none in
    /// `sleepAfterMinutes` (and no deploy or wake) is idle.
    pub request_count_query: String,
}

impl Default for PreviewSettings {
    fn default() -> Self {
        Self {
            scan_secs: 30,
            request_count_query:
                r#"sum(increase(http_requests_total{namespace="{namespace}"}[{window}]))"#.into(),
        }
    }
}

/// The public status page's prober.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StatusSettings {
    /// Probe from this replica. Several replicas may say yes: one probes at a time (it holds a
    /// PostgreSQL advisory lock; another takes over when it goes).
    pub prober: bool,
    /// How often each deployed service's health check is probed.
    pub service_interval_secs: u64,
    /// A probe that has no answer after this long fails.
    pub timeout_ms: u64,
    /// How often the prober reads the specs again for targets added or removed.
    pub refresh_secs: u64,
    /// Probe tenants' targets on loopback, private, link-local and other non-public addresses.
    /// Off: anyone who can create a project could otherwise use the prober (and the public page's
    /// state, code and latency) to reach the platform's own network. The local stack and tests,
    /// whose targets are on 127.0.0.1, turn it on.
    pub allow_private_targets: bool,
    /// Monitoring targets (`monitoring.targets` over all its services) a project may have.
    pub max_targets_per_project: usize,
}

impl Default for StatusSettings {
    fn default() -> Self {
        Self {
            prober: true,
            service_interval_secs: 30,
            timeout_ms: 5000,
            refresh_secs: 10,
            allow_private_targets: false,
            max_targets_per_project: 20,
        }
    }
}

/// The per-service charts: PromQL run as range queries over the last hour. `{namespace}` and
/// `{service}` are replaced per chart. Prometheus is the canary's (`canary.prometheus_url`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// Requests per second.
    pub request_rate_query: String,
    /// The share of requests answered 5xx (0.0–1.0).
    pub error_rate_query: String,
    /// 95th percentile latency in seconds.
    pub latency_query: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            request_rate_query: r#"sum(rate(http_requests_total{namespace="{namespace}",service="{service}"}[5m]))"#.into(),
            error_rate_query: r#"sum(rate(http_requests_total{namespace="{namespace}",service="{service}",code=~"5.."}[5m])) / sum(rate(http_requests_total{namespace="{namespace}",service="{service}"}[5m]))"#.into(),
            latency_query: r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="{namespace}",service="{service}"}[5m])))"#.into(),
        }
    }
}

/// Custom domains: how their TXT records are checked, and where they should point.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DomainSettings {
    /// The DNS resolver (`1.1.1.1:53`); the first nameserver of /etc/resolv.conf when absent.
    pub resolver: Option<std::net::SocketAddr>,
    /// The ingress hostname custom domains should CNAME to, shown in the instructions.
    pub cname_target: Option<String>,
    /// The platform's own DNS zone (a wildcard pointing at the ingress): a spec may route
    /// `{service}.{namespace}.{suffix}` without proving control. Any other hostname must be a
    /// verified custom domain of the project.
    pub generated_suffix: Option<String>,
}

/// Builds: where their Jobs run, which images they use, where they push.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PipelineSettings {
    /// Run the build worker in this process.
    pub worker: bool,
    /// Each project's builds run in a namespace of their own, `{namespace_prefix}{project}`
    /// (`pipeline/job.rs::build_namespace`): builds run untrusted Dockerfile steps, so they share
    /// neither a namespace nor credentials with another project's.
    pub namespace_prefix: String,
    /// Images are pushed to `{registry}/{project}/{service}:{commit}`.
    pub registry: String,
    /// How builds authenticate to the registry: each build gets a credential of its own that
    /// Switchyard's registry token service (`pipeline/registry.rs`) exchanges for a token that can
    /// push only to that build's repository.
    pub registry_token: RegistryTokenSettings,
    /// The `hard` limits of each project's build namespace's ResourceQuota (none when empty).
    pub quota: std::collections::BTreeMap<String, String>,
    pub buildkit_image: String,
    pub git_image: String,
    pub nixpacks_image: String,
    /// A build running longer than this fails (the Job's activeDeadlineSeconds).
    pub timeout_secs: u64,
    /// Builds running at once across all replicas (beyond it, builds wait queued).
    pub max_concurrent: i64,
    /// Attempts for a build that failed on the cluster (not on its own code) before it fails.
    pub max_attempts: i32,
    /// The wait before the second attempt; it doubles for each further one.
    pub retry_base_ms: u64,
    /// Webhook payloads larger than this are refused with 413.
    pub webhook_max_bytes: usize,
    /// Rejected deliveries (bad signature, unknown repository) kept per project, newest first;
    /// anyone can send them, so older ones are dropped.
    pub rejected_deliveries_per_project: i64,
    /// Rejected deliveries kept that belong to no project (an unknown repository), newest first.
    pub rejected_deliveries_unattributed: i64,
    /// Rejected deliveries recorded per minute for one project (or for none); beyond it they are
    /// still refused, but not recorded.
    pub rejected_deliveries_per_minute: u32,
    /// Addresses builds may reach besides the public internet and the cluster's DNS (CIDRs): the
    /// registry and git server when they run inside the cluster or the platform's network. Builds
    /// run untrusted Dockerfile steps, so nothing private is reachable unless listed.
    pub egress_allow: Vec<String>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            worker: true,
            namespace_prefix: "enclii-builds-".into(),
            registry: "registry.enclii.local".into(),
            registry_token: RegistryTokenSettings::default(),
            quota: [("pods".to_owned(), "4".to_owned())].into(),
            buildkit_image: "moby/buildkit:v0.25.1-rootless".into(),
            git_image: "alpine/git:2.49.1".into(),
            nixpacks_image: "ghcr.io/railwayapp/nixpacks:1.39.0".into(),
            timeout_secs: 1800,
            max_concurrent: 2,
            max_attempts: 3,
            retry_base_ms: 10_000,
            webhook_max_bytes: 1024 * 1024,
            rejected_deliveries_per_project: 100,
            rejected_deliveries_unattributed: 1000,
            rejected_deliveries_per_minute: 30,
            egress_allow: Vec::new(),
        }
    }
}

/// Switchyard as the registry's token service (the Docker/OCI distribution token protocol): the
/// registry is configured with `auth.token` whose `realm` is `{public_url}/registry/token`, whose
/// `service` and `issuer` are these, and whose `jwks` file holds `{public_url}/registry/jwks.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RegistryTokenSettings {
    /// An EC P-256 private key (PEM) that signs the tokens (ES256). Without it builds cannot be
    /// given credentials and fail saying so.
    pub signing_key: Option<SecretString>,
    /// The registry's name in the tokens' audience (the registry's `auth.token.service`).
    pub service: String,
    /// The tokens' issuer (the registry's `auth.token.issuer`).
    pub issuer: String,
    /// How long a token lives; a build asks again when it expires.
    pub ttl_secs: u64,
    /// The password of the account `enclii-nodes`, which may pull (never push) every image of the
    /// platform's registry: for the nodes' kubelets (their registry credentials), so that
    /// environments can run what builds pushed. Tenants cannot use it to read each other's
    /// images: a deployment's image must be in its own project's path (`image_in_project`).
    pub node_pull_password: Option<SecretString>,
}

impl Default for RegistryTokenSettings {
    fn default() -> Self {
        Self {
            signing_key: None,
            service: "enclii-registry".into(),
            issuer: "switchyard".into(),
            ttl_secs: 300,
            node_pull_password: None,
        }
    }
}

/// How canary steps are analysed. `{namespace}`, `{service}`, `{track}` and `{window}` in the
/// queries are replaced per analysis; the defaults read the usual `http_requests_total` counter
/// labelled by the pods' `track`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CanarySettings {
    /// Prometheus base URL (`http://prometheus:9090`). Without it (and outside the sandbox, which
    /// brings its own), canary deployments fail at once with a message saying so.
    pub prometheus_url: Option<String>,
    /// The canary track's error rate as a ratio (0.0–1.0).
    pub error_rate_query: String,
    /// The canary track's request count over the window: below the spec's `minRequests` the
    /// analysis is inconclusive, never a pass.
    pub request_count_query: String,
    /// The range each analysis looks back over.
    pub window_secs: u64,
    /// Time between analyses within a step (and the longest a manual promote or abort waits).
    pub interval_ms: u64,
    /// Inconclusive analyses in a row a step tolerates before the deployment fails.
    pub inconclusive_limit: u32,
    /// Split canary traffic by Gateway API HTTPRoute weights through this Gateway, when the cluster
    /// serves the Gateway API; otherwise (or without it) by the canary/stable replica ratio.
    pub gateway: Option<GatewaySettings>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GatewaySettings {
    pub name: String,
    pub namespace: String,
}

impl Default for CanarySettings {
    fn default() -> Self {
        Self {
            prometheus_url: None,
            error_rate_query: r#"sum(rate(http_requests_total{namespace="{namespace}",service="{service}",track="{track}",code=~"5.."}[{window}])) / sum(rate(http_requests_total{namespace="{namespace}",service="{service}",track="{track}"}[{window}]))"#.into(),
            request_count_query: r#"sum(increase(http_requests_total{namespace="{namespace}",service="{service}",track="{track}"}[{window}]))"#.into(),
            window_secs: 60,
            interval_ms: 10_000,
            inconclusive_limit: 6,
            gateway: None,
        }
    }
}

/// Encryption of secret environment values at rest.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecretsSettings {
    /// 32 random bytes, base64: the AES-256-GCM key. Without it, secret values cannot be stored.
    pub key: Option<SecretString>,
}

/// Which Kubernetes cluster deployments go to.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterSettings {
    #[serde(default)]
    pub mode: ClusterMode,
    /// The API server URL for `mode = "url"`.
    pub url: Option<String>,
    /// The kubeconfig file for `mode = "kube"`; without it, `KUBECONFIG`, `~/.kube/config` or
    /// the in-cluster ServiceAccount.
    pub kubeconfig: Option<String>,
    /// Put before every environment's namespace (`{prefix}{project}--{environment}`), so that
    /// several Switchyards (or test runs) can share one cluster without meeting.
    #[serde(default)]
    pub namespace_prefix: String,
    /// Shown on every page of the dashboard when set: what kind of cluster this is when it is not
    /// a production one (the embedded default says "Local cluster (simulated nodes)").
    pub label: Option<String>,
    /// The Deployments' `progressDeadlineSeconds`: the cluster's Deployment controller declares a
    /// rollout that made no progress for this long failed (ProgressDeadlineExceeded).
    #[serde(default = "defaults::progress_deadline_secs")]
    pub progress_deadline_secs: i32,
    /// A rollout that has not finished after this long fails.
    #[serde(default = "defaults::rollout_timeout_secs")]
    pub rollout_timeout_secs: u64,
    /// Run the deployment worker in this process.
    #[serde(default = "defaults::yes")]
    pub worker: bool,
    /// Environments whose deployments go to another cluster than the one above, by environment
    /// name (`[cluster.environments.staging] mode = "kube", context = "staging"`).
    #[serde(default)]
    pub environments: std::collections::BTreeMap<String, EnvironmentCluster>,
    /// A driver that stops renewing its deployment's lease (a dead replica) hands it over after this long.
    #[serde(default = "defaults::lease_secs")]
    pub lease_secs: u64,
    /// What every tenant namespace gets from the platform.
    #[serde(default)]
    pub tenancy: TenancySettings,
}

/// What the platform puts in every environment's namespace (`deploy/tenancy.rs`). Set per
/// platform, never per tenant: a project owner is a stranger to the cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TenancySettings {
    /// The Pod Security Standard enforced (and audited, and warned about) in tenant namespaces.
    pub pod_security: PodSecurityLevel,
    /// Namespaces whose pods may reach tenants' pods besides their own namespace's: the ingress
    /// controller, Prometheus, Switchyard itself (the configured Gateway's namespace is added).
    pub allow_from_namespaces: Vec<String>,
    /// The `hard` limits of each tenant namespace's ResourceQuota (none when empty).
    pub quota: std::collections::BTreeMap<String, String>,
    /// Requests given to containers that set none (a LimitRange), so the quota can count them.
    pub default_request: std::collections::BTreeMap<String, String>,
}

impl Default for TenancySettings {
    fn default() -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Self {
            pod_security: PodSecurityLevel::Restricted,
            allow_from_namespaces: vec![
                "ingress-nginx".into(),
                "monitoring".into(),
                "enclii-system".into(),
            ],
            quota: map(&[
                ("pods", "500"),
                ("requests.cpu", "64"),
                ("requests.memory", "256Gi"),
                ("persistentvolumeclaims", "50"),
                ("requests.storage", "1Ti"),
                // A NodePort or LoadBalancer Service opens the tenant to the world beside the
                // platform's ingress; specs render ClusterIP Services only.
                ("services.nodeports", "0"),
                ("services.loadbalancers", "0"),
            ]),
            default_request: map(&[("cpu", "50m"), ("memory", "64Mi")]),
        }
    }
}

/// Kubernetes' Pod Security Standards.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    Privileged,
    Baseline,
    #[default]
    Restricted,
}

impl PodSecurityLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

/// The cluster of one environment: a kubeconfig context (`mode = "kube"`, `context`) or an API
/// server URL (`mode = "url"`, `url`).
#[derive(Debug, Clone, Deserialize)]
pub struct EnvironmentCluster {
    #[serde(default)]
    pub mode: ClusterMode,
    pub url: Option<String>,
    /// The kubeconfig context to use; the current one when absent.
    pub context: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMode {
    /// kubeconfig or in-cluster service account (`kube::Client::try_default`): production.
    #[default]
    Kube,
    /// An API server at `url`, without credentials (`kubectl proxy`).
    Url,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            mode: ClusterMode::default(),
            url: None,
            kubeconfig: None,
            namespace_prefix: String::new(),
            label: None,
            progress_deadline_secs: defaults::progress_deadline_secs(),
            rollout_timeout_secs: defaults::rollout_timeout_secs(),
            worker: true,
            environments: Default::default(),
            lease_secs: defaults::lease_secs(),
            tenancy: TenancySettings::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct OidcSettings {
    /// The issuer; its discovery document is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// `aud` that Plinto access tokens must carry to be accepted as bearers.
    pub api_audience: String,
    #[serde(default = "defaults::scopes")]
    pub scopes: Vec<String>,
    /// Users with these (verified) emails are platform admins.
    #[serde(default)]
    pub platform_admin_emails: Vec<String>,
    /// …as are users whose access token's `roles` claim holds this role.
    #[serde(default = "defaults::admin_role")]
    pub platform_admin_role: String,
    /// An unknown `kid` refetches the provider's keys at most this often.
    #[serde(default = "defaults::jwks_refresh_secs")]
    pub jwks_min_refresh_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    #[serde(default = "defaults::session_hours")]
    pub lifetime_hours: u32,
    /// Sign-in attempts allowed per client address per minute.
    #[serde(default = "defaults::login_rate")]
    pub login_attempts_per_minute: u32,
    /// How often a live stream (logs, events) checks again that its caller may still read it: a
    /// revoked token, an ended session or a removed member stops receiving within this. At least 1.
    #[serde(default = "defaults::stream_recheck_secs")]
    pub stream_recheck_secs: u64,
    /// Live streams one user may hold open at once (per replica); more are answered 429.
    #[serde(default = "defaults::max_streams_per_caller")]
    pub max_streams_per_caller: usize,
    /// The longest an API token may live, in days (1 to 3650): a token asked for without an expiry
    /// gets this one, a longer one is refused, and tokens older than this stop working.
    #[serde(default = "defaults::api_token_max_days")]
    pub api_token_max_days: u32,
    /// An API token works only while its user has signed in through Plinto within this many days
    /// (1 to 3650): a user disabled at Plinto cannot sign in, so their tokens stop within it.
    #[serde(default = "defaults::api_token_sign_in_within_days")]
    pub api_token_sign_in_within_days: u32,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            lifetime_hours: defaults::session_hours(),
            login_attempts_per_minute: defaults::login_rate(),
            stream_recheck_secs: defaults::stream_recheck_secs(),
            max_streams_per_caller: defaults::max_streams_per_caller(),
            api_token_max_days: defaults::api_token_max_days(),
            api_token_sign_in_within_days: defaults::api_token_sign_in_within_days(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SiteSettings {
    /// Folder cargo-leptos writes the site to (`pkg/` with the wasm, JS and CSS, plus `public/`).
    #[serde(default = "defaults::site_root")]
    pub root: String,
}

impl Default for SiteSettings {
    fn default() -> Self {
        Self {
            root: defaults::site_root(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://` URL. Required: there is no sensible default for where the data lives.
    pub url: SecretString,
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// Apply pending migrations at start-up.
    #[serde(default = "defaults::yes")]
    pub migrate: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info,switchyard=debug`. `RUST_LOG` wins when set.
    #[serde(default = "defaults::log_filter")]
    pub filter: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// Requests that take longer are answered 408, so a stuck handler cannot pin a connection.
    #[serde(default = "defaults::request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Largest request body accepted, in bytes.
    #[serde(default = "defaults::body_limit_bytes")]
    pub body_limit_bytes: usize,
    /// `/metrics` answers only requests bearing this token (Prometheus' `authorization`); without
    /// it, `/metrics` is off. It names routes, pool sizes and traffic: not for the internet.
    #[serde(default)]
    pub metrics_token: Option<SecretString>,
    /// Proxies (CIDRs, e.g. the ingress controller's pods) whose `X-Forwarded-For` is believed:
    /// behind them every client arrives from a proxy's address, so the sign-in limiter keys by the
    /// address they forwarded. Empty (the default): the header is never read.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            filter: defaults::log_filter(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout_secs: defaults::request_timeout_secs(),
            body_limit_bytes: defaults::body_limit_bytes(),
            metrics_token: None,
            trusted_proxies: Vec::new(),
        }
    }
}

mod defaults {
    use std::net::SocketAddr;
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 3000))
    }
    pub fn public_url() -> String {
        "http://127.0.0.1:3000".into()
    }
    pub fn max_connections() -> u32 {
        10
    }
    pub fn yes() -> bool {
        true
    }
    pub fn log_filter() -> String {
        "info".into()
    }
    pub fn request_timeout_secs() -> u64 {
        30
    }
    pub fn progress_deadline_secs() -> i32 {
        enclii_spec::render::DEFAULT_PROGRESS_DEADLINE_SECS
    }
    pub fn rollout_timeout_secs() -> u64 {
        900
    }
    pub fn lease_secs() -> u64 {
        30
    }
    pub fn scopes() -> Vec<String> {
        ["openid", "email", "profile", "org", "offline_access"]
            .map(String::from)
            .to_vec()
    }
    pub fn admin_role() -> String {
        "admin".into()
    }
    pub fn jwks_refresh_secs() -> u64 {
        30
    }
    pub fn session_hours() -> u32 {
        12
    }
    pub fn login_rate() -> u32 {
        20
    }
    pub fn stream_recheck_secs() -> u64 {
        30
    }
    pub fn max_streams_per_caller() -> usize {
        8
    }
    pub fn api_token_max_days() -> u32 {
        90
    }
    pub fn api_token_sign_in_within_days() -> u32 {
        30
    }
    pub fn site_root() -> String {
        "target/site".into()
    }
    pub fn body_limit_bytes() -> usize {
        2 * 1024 * 1024
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {} does not exist (named by ENCLII_CONFIG)", path.display())]
    MissingFile { path: PathBuf },
    /// figment's message names the key and where the bad value came from (file or variable).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Loads from `ENCLII_CONFIG` (or `enclii.toml` if present) and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("ENCLII_CONFIG")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()));
        Self::load_from(
            file.as_deref(),
            Env::prefixed("ENCLII_").ignore(&["config"]).split("__"),
        )
    }

    /// The layering itself: `file` (which must exist when named) under the environment provider.
    pub fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile {
                    path: path.to_owned(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let settings: Settings = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Invalid(flatten(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Built-in defaults with only the database named: for tests and tools that embed the server.
    pub fn with_database_url(url: &str) -> Result<Self, ConfigError> {
        let figment =
            Figment::new().merge(figment::providers::Serialized::default("database.url", url));
        figment
            .extract()
            .map_err(|e| ConfigError::Invalid(flatten(e)))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "public_url must start with http:// or https://, got {:?}",
                self.public_url
            )));
        }
        // The listeners keep their connections; requests and workers need at least two more.
        let least = crate::db::LISTENER_CONNECTIONS + 2;
        if self.database.max_connections < least {
            return Err(ConfigError::Invalid(format!(
                "database.max_connections must be at least {least} ({} stay open for LISTEN), got {}",
                crate::db::LISTENER_CONNECTIONS,
                self.database.max_connections
            )));
        }
        // Zero would lock every token out; beyond ten years the interval arithmetic overflows.
        for (key, days) in [
            (
                "session.api_token_max_days",
                self.session.api_token_max_days,
            ),
            (
                "session.api_token_sign_in_within_days",
                self.session.api_token_sign_in_within_days,
            ),
        ] {
            if !(1..=3650).contains(&days) {
                return Err(ConfigError::Invalid(format!(
                    "{key} must be from 1 to 3650 days, got {days}"
                )));
            }
        }
        Ok(())
    }

    /// Cookies may only drop `Secure` when the dashboard is served over plain http on loopback.
    pub fn is_loopback_http(&self) -> bool {
        let rest = match self.public_url.strip_prefix("http://") {
            Some(rest) => rest,
            None => return false,
        };
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        matches!(host, "127.0.0.1" | "localhost" | "[::1]")
    }
}

/// figment reports every problem it found; keep them all, one per line.
fn flatten(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::io::Write;

    fn env(vars: &[(&str, &str)]) -> Env {
        // figment's Env reads the real environment; give each call a prefix no other test uses.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("ENCLII_TEST{n}_");
        for (k, v) in vars {
            // SAFETY: each test uses its own prefix, so concurrent tests never touch these keys.
            unsafe { std::env::set_var(format!("{prefix}{k}"), v) };
        }
        Env::prefixed(&prefix).split("__")
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let mut file = tempfile(
            "listen = \"127.0.0.1:4000\"\n[database]\nurl = \"postgres://file\"\nmax_connections = 7\n",
        );
        file.flush().unwrap();
        let settings = Settings::load_from(
            Some(&file.path),
            env(&[("DATABASE__URL", "postgres://env")]),
        )
        .unwrap();
        assert_eq!(settings.listen.port(), 4000);
        assert_eq!(settings.database.url.expose_secret(), "postgres://env");
        assert_eq!(settings.database.max_connections, 7);
        assert_eq!(settings.http.request_timeout_secs, 30);
    }

    #[test]
    fn missing_database_url_is_reported_by_name() {
        let err = Settings::load_from(None, env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("missing field") && err.contains("database"),
            "{err}"
        );
    }

    #[test]
    fn malformed_value_names_the_key() {
        let err = Settings::load_from(
            None,
            env(&[
                ("DATABASE__URL", "postgres://x"),
                ("DATABASE__MAX_CONNECTIONS", "many"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.to_lowercase().contains("database.max_connections"),
            "{err}"
        );
        assert!(err.contains("\"many\""), "{err}");
    }

    #[test]
    fn a_pool_the_listeners_would_fill_is_refused() {
        let err = Settings::load_from(
            None,
            env(&[
                ("DATABASE__URL", "postgres://x"),
                ("DATABASE__MAX_CONNECTIONS", "4"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("database.max_connections must be at least 5") && err.contains("got 4"),
            "{err}"
        );
        let fits = Settings::load_from(
            None,
            env(&[
                ("DATABASE__URL", "postgres://x"),
                ("DATABASE__MAX_CONNECTIONS", "5"),
            ]),
        );
        assert_eq!(fits.unwrap().database.max_connections, 5);
    }

    #[test]
    fn trusted_proxies_and_token_limits_come_from_the_environment_and_are_checked() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("DATABASE__URL", "postgres://x"),
                ("HTTP__TRUSTED_PROXIES", "[10.0.0.0/8, \"fd00::/8\"]"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.http.trusted_proxies.len(), 2);
        assert_eq!(settings.session.api_token_max_days, 90);
        assert_eq!(settings.session.api_token_sign_in_within_days, 30);
        let err = Settings::load_from(
            None,
            env(&[
                ("DATABASE__URL", "postgres://x"),
                ("SESSION__API_TOKEN_MAX_DAYS", "0"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("session.api_token_max_days"), "{err}");
    }

    #[test]
    fn a_named_file_that_does_not_exist_is_an_error() {
        let err =
            Settings::load_from(Some(Path::new("/nonexistent/enclii.toml")), env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile { .. }));
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let settings =
            Settings::load_from(None, env(&[("DATABASE__URL", "postgres://u:hunter2@h/db")]))
                .unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn only_plain_http_on_loopback_counts_as_loopback() {
        let mut s = Settings::load_from(None, env(&[("DATABASE__URL", "postgres://x")])).unwrap();
        assert!(s.is_loopback_http());
        s.public_url = "https://app.enclii.io".into();
        assert!(!s.is_loopback_http());
        s.public_url = "http://localhost.evil.example".into();
        assert!(!s.is_loopback_http());
    }

    struct TempFile {
        path: PathBuf,
        file: std::fs::File,
    }
    impl Write for TempFile {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.file.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.file.flush()
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
    fn tempfile(contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "enclii-config-{}-{:p}.toml",
            std::process::id(),
            contents
        ));
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        TempFile { path, file }
    }
}
