//! The JSON API's wire types: what the server functions take and return, and the one error body
//! every endpoint uses. No I/O, no framework: the CLI depends on this crate alone.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod notifications;
pub mod timestamp;

pub use notifications::{
    DeliveryState, Destination, DestinationCreated, DestinationKind, EventKind, NewDestination,
    NotificationDelivery,
};

/// A problem in a spec at a place in the file (the wire form of `enclii_spec::Diagnostic`; this
/// crate stays free of the parser so that the dashboard's wasm does not carry it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col: message`, as `enclii spec validate` prints it.
    pub fn located(&self, file: &str) -> String {
        let prefix = if self.severity == Severity::Warning {
            "warning: "
        } else {
            ""
        };
        format!(
            "{file}:{}:{}: {prefix}{}",
            self.pos.line, self.pos.col, self.message
        )
    }
}

/// Endpoint paths, stable and explicit (documented in docs/api.md). All take and return JSON by POST.
pub mod paths {
    pub const WHOAMI: &str = "/api/whoami";
    pub const PROJECTS_CREATE: &str = "/api/projects/create";
    pub const PROJECTS_LIST: &str = "/api/projects/list";
    pub const ENVIRONMENTS_CREATE: &str = "/api/environments/create";
    pub const SERVICES_IMPORT: &str = "/api/services/import";
    pub const SERVICES_LIST: &str = "/api/services/list";
    pub const SERVICES_GET: &str = "/api/services/get";
    pub const SPEC_REVISIONS: &str = "/api/services/revisions";
    pub const DEPLOY: &str = "/api/deployments/create";
    pub const DEPLOYMENTS_LIST: &str = "/api/deployments/list";
    pub const DEPLOYMENT_GET: &str = "/api/deployments/get";
    pub const PROMOTE: &str = "/api/deployments/promote";
    pub const RELEASES_LIST: &str = "/api/releases/list";
    pub const DOMAINS_ADD: &str = "/api/domains/add";
    pub const DOMAINS_VERIFY: &str = "/api/domains/verify";
    pub const DOMAINS_LIST: &str = "/api/domains/list";
    pub const DOMAINS_REMOVE: &str = "/api/domains/remove";
    pub const BUILDS_CREATE: &str = "/api/builds/create";
    pub const BUILDS_LIST: &str = "/api/builds/list";
    pub const RUNS_CREATE: &str = "/api/runs/create";
    pub const RUNS_GET: &str = "/api/runs/get";
    pub const JOBS_LIST: &str = "/api/jobs/list";
    pub const PREVIEWS_LIST: &str = "/api/previews/list";
    pub const PREVIEWS_WAKE: &str = "/api/previews/wake";
    pub const PREVIEWS_DELETE: &str = "/api/previews/delete";
    pub const BUILDS_CANCEL: &str = "/api/builds/cancel";
    pub const DELIVERIES_LIST: &str = "/api/deliveries/list";
    pub const REPOSITORIES_CONNECT: &str = "/api/repositories/connect";
    pub const REPOSITORIES_LIST: &str = "/api/repositories/list";
    pub const ABORT: &str = "/api/deployments/abort";
    pub const ROLLBACK: &str = "/api/deployments/rollback";
    pub const AUDIT_LIST: &str = "/api/audit/list";
    pub const TOKENS_CREATE: &str = "/api/tokens/create";
    pub const TOKENS_LIST: &str = "/api/tokens/list";
    pub const TOKENS_REVOKE: &str = "/api/tokens/revoke";
    pub const STATUS: &str = "/api/services/status";
    pub const ENV_SET: &str = "/api/env/set";
    pub const ENV_LIST: &str = "/api/env/list";
    pub const ENV_UNSET: &str = "/api/env/unset";
    pub const NOTIFICATIONS_LIST: &str = "/api/notifications/list";
    pub const NOTIFICATIONS_ADD: &str = "/api/notifications/add";
    pub const NOTIFICATIONS_REMOVE: &str = "/api/notifications/remove";
    pub const NOTIFICATIONS_TEST: &str = "/api/notifications/test";
    pub const NOTIFICATIONS_LOG: &str = "/api/notifications/log";
    pub const ENV_REVEAL: &str = "/api/env/reveal";
    pub const MEMBERS_LIST: &str = "/api/members/list";
    pub const MEMBERS_SET: &str = "/api/members/set";
    pub const MEMBERS_REMOVE: &str = "/api/members/remove";
    /// Deploy the release running in one environment to another (not a canary's `PROMOTE`).
    pub const PROMOTIONS_CREATE: &str = "/api/promotions/create";
    pub const APPROVE: &str = "/api/deployments/approve";
    pub const REJECT: &str = "/api/deployments/reject";
    /// A platform admin lets a deployment held by a freeze window through.
    pub const FORCE: &str = "/api/deployments/force";
    pub const ENVIRONMENTS_LIST: &str = "/api/environments/list";
    pub const ENVIRONMENTS_SET: &str = "/api/environments/set";
    pub const FREEZES_ADD: &str = "/api/freezes/add";
    pub const FREEZES_REMOVE: &str = "/api/freezes/remove";
}

/// Roles on a project, weakest first: each includes what the ones before it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Developer, Role::Admin, Role::Owner]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub display_name: String,
    pub email: Option<String>,
    pub platform_admin: bool,
    /// How the request was authenticated: `session`, `api_token` or `plinto_token`.
    pub via: String,
    /// What kind of cluster deployments go to, when it is not a production one (the embedded
    /// default's "Local cluster (simulated nodes)").
    #[serde(default)]
    pub cluster_label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub name: String,
    pub namespace: String,
    pub cluster: String,
    pub deploy_branch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub slug: String,
    pub description: String,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    /// The caller's role on it (platform admins see every project, possibly without a role).
    pub role: Option<Role>,
    pub environments: Vec<Environment>,
    pub service_count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSummary {
    pub project: String,
    pub name: String,
    pub description: String,
    pub revision: i32,
    pub auto_deploy: bool,
    pub git_repository: Option<String>,
    pub git_branch: Option<String>,
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
    /// The newest deployment per environment, by environment name.
    pub latest: Vec<DeploymentSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportOutcome {
    pub project: String,
    pub service: String,
    pub revision: i32,
    /// The service did not exist before this import.
    pub created: bool,
    /// False when the file was identical to the current revision: nothing was recorded.
    pub changed: bool,
    /// Unified diff against the previous revision, when there was one and it changed.
    pub diff: Option<String>,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecRevision {
    pub revision: i32,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub source: String,
    /// Diff against the revision before it (none for the first).
    pub diff: Option<String>,
}

/// Where a deployment is. `AwaitingApproval` comes before `Pending` for an environment that
/// requires approvals (no worker claims it); `Rejected` ends one an approver refused. A deployment
/// held by a freeze window is `Pending` with `DeploymentDetail::held_until` set (the worker's
/// claim skips it until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    AwaitingApproval,
    Pending,
    InProgress,
    Succeeded,
    Failed,
    RolledBack,
    Aborted,
    Superseded,
    Rejected,
}

impl DeploymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "awaiting_approval",
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Aborted => "aborted",
            Self::Superseded => "superseded",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use DeploymentState::*;
        [
            AwaitingApproval,
            Pending,
            InProgress,
            Succeeded,
            Failed,
            RolledBack,
            Aborted,
            Superseded,
            Rejected,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            Self::AwaitingApproval | Self::Pending | Self::InProgress
        )
    }
}

/// The state as a person reads it (`as_str` is the stored and wire form).
impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AwaitingApproval => "awaiting approval",
            Self::Pending => "pending",
            Self::InProgress => "in progress",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled back",
            Self::Aborted => "aborted",
            Self::Superseded => "superseded",
            Self::Rejected => "rejected",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentSummary {
    pub id: i64,
    pub project: String,
    pub service: String,
    pub environment: String,
    pub state: DeploymentState,
    pub state_reason: Option<String>,
    pub strategy: String,
    pub image: String,
    pub spec_revision: i32,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// An image of a service at a spec revision, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub service: String,
    pub spec_revision: i32,
    pub image: String,
    pub image_digest: Option<String>,
    pub git_repository: Option<String>,
    pub git_commit: Option<String>,
    pub sbom_ref: Option<String>,
    pub provenance_ref: Option<String>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
}

/// A custom domain of a service in one environment. Routed (added to the service's Ingress at its
/// next deployment) once verified: a TXT record `txt_name` with the value `txt_value` proves control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    pub hostname: String,
    pub service: String,
    pub environment: String,
    pub tls: bool,
    pub tls_issuer: Option<String>,
    pub verified: bool,
    #[serde(default, with = "crate::timestamp::option")]
    pub verified_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::timestamp::option")]
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_check_error: Option<String>,
    /// `_enclii-challenge.{hostname}`
    pub txt_name: String,
    /// `enclii-verify={token}`
    pub txt_value: String,
    /// Where the hostname should point (a CNAME), when the platform knows its ingress address.
    pub cname_target: Option<String>,
}

/// A build: a commit of a service's repository turned into an image (then a release and a
/// deployment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildSummary {
    pub id: i64,
    pub project: String,
    pub service: String,
    pub environment: String,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or `superseded`.
    pub state: String,
    pub state_reason: Option<String>,
    pub git_repository: String,
    pub git_ref: String,
    pub image: Option<String>,
    pub image_digest: Option<String>,
    pub sbom_ref: Option<String>,
    pub provenance_ref: Option<String>,
    /// The deployment the build started, once it succeeded.
    pub deployment_id: Option<i64>,
    pub delivery_id: Option<String>,
    pub attempts: i32,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// A one-off run of a command (`enclii run`) from a service's running release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: i64,
    pub project: String,
    pub service: String,
    pub environment: String,
    pub command: Vec<String>,
    /// The Kubernetes Job that runs it.
    pub job: String,
    /// `running`, `succeeded`, `failed` or `timed_out`.
    pub state: String,
    pub exit_code: Option<i32>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// One run of a scheduled job, as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRun {
    pub name: String,
    /// `running`, `succeeded` or `failed`.
    pub result: String,
    #[serde(default, with = "crate::timestamp::option")]
    pub started_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<f64>,
    /// The last lines of its log (empty when the pod is gone).
    pub log_tail: String,
}

/// A scheduled job of a service in one environment: its schedule, last run and next run, and
/// whether it needs attention (its last run failed, or no run succeeded within two intervals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledJobStatus {
    pub environment: String,
    pub name: String,
    pub schedule: String,
    /// The schedule's time zone (`UTC` when the spec names none).
    pub timezone: String,
    pub command: Vec<String>,
    pub last_run: Option<JobRun>,
    /// The next scheduled time, written in the job's time zone (`2026-12-04 02:00 Europe/Berlin`);
    /// `None` for a zone this server's time zone data does not know.
    pub next_run: Option<String>,
    pub last_failed: bool,
    pub missed: bool,
    /// What needs attention, in a sentence; empty when nothing does.
    pub attention: String,
}

/// A GitHub webhook delivery and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub delivery_id: String,
    pub event: String,
    pub repository: Option<String>,
    pub git_ref: Option<String>,
    pub commit: Option<String>,
    /// `accepted`, `ignored` or `rejected`.
    pub outcome: String,
    pub reason: String,
    #[serde(with = "crate::timestamp")]
    pub received_at: DateTime<Utc>,
    /// The builds it started, with their state and their deployment's.
    pub builds: Vec<DeliveryBuild>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryBuild {
    pub build: i64,
    pub service: String,
    pub state: String,
    pub deployment_id: Option<i64>,
    pub deployment_state: Option<String>,
}

/// A repository connected to a project. `secret` is only present in the answer to `connect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repository {
    pub url: String,
    pub webhook_url: String,
    pub secret: Option<String>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
}

/// One deployment with everything its driver recorded: each step and its evidence, and every
/// canary analysis with the values it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentDetail {
    pub deployment: DeploymentSummary,
    /// How traffic was split (`replica ratio: …`, or `one step: …` and why).
    pub traffic_split: Option<String>,
    /// `promote` or `abort` while a manual request waits for the driver's next tick.
    pub requested_action: Option<String>,
    /// The canary weights the spec asks for, in order (the last is 100).
    pub plan: Vec<u32>,
    pub steps: Vec<DeploymentStep>,
    pub analyses: Vec<CanaryAnalysis>,
    /// Set when this deployment promoted the release another environment ran.
    #[serde(default)]
    pub promoted_from: Option<PromotionOrigin>,
    /// The approvals its environment required when it was requested (none: `None`).
    #[serde(default)]
    pub approval: Option<ApprovalStatus>,
    /// While pending: held by a freeze window until then (the worker does not claim it before).
    #[serde(default, with = "crate::timestamp::option")]
    pub held_until: Option<DateTime<Utc>>,
    /// Who let it through a freeze, and why.
    #[serde(default)]
    pub forced: Option<String>,
}

/// The deployment a promotion took its release from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionOrigin {
    pub deployment: i64,
    pub environment: String,
}

/// A deployment's approvals: what its environment required and who decided what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalStatus {
    pub required: i32,
    /// The weakest project role that may approve.
    pub approver_role: Role,
    /// Who requested the deployment (they may not approve it); `None` for the system (a build).
    pub requested_by: Option<String>,
    pub decisions: Vec<ApprovalDecision>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub by: String,
    /// The approver's role when they decided (`platform admin` for one without a project role).
    pub role: String,
    pub approved: bool,
    pub reason: String,
    #[serde(with = "crate::timestamp")]
    pub at: DateTime<Utc>,
}

/// An environment's deployment gates: approvals and freeze windows, with what they hold now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentPolicy {
    pub name: String,
    pub namespace: String,
    /// Approvals a deployment needs before it proceeds (0: none).
    pub required_approvals: i32,
    pub approver_role: Role,
    pub freezes: Vec<FreezeWindow>,
    /// The freeze in force now, if any.
    pub active_freeze: Option<ActiveFreeze>,
    /// Deployments waiting: for approval, or held by the freeze.
    pub waiting: Vec<DeploymentSummary>,
}

/// A freeze window: recurring (`cron` with a duration, on the wall clock of `timezone`) or one-off
/// (`from`–`until`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreezeWindow {
    pub id: String,
    pub environment: String,
    pub cron: Option<String>,
    pub duration_minutes: Option<i32>,
    #[serde(default, with = "crate::timestamp::option")]
    pub from: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::timestamp::option")]
    pub until: Option<DateTime<Utc>>,
    pub timezone: String,
    pub reason: String,
    /// The window in a sentence (`every 0 16 * * 5 (Europe/Berlin) for 64h`).
    pub description: String,
}

/// A freeze in force: deployments wait until `until` (the end of every window that overlaps it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFreeze {
    #[serde(with = "crate::timestamp")]
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// Whether a recorded traffic split is a canary's (replica ratio or Gateway API weights), rather
/// than a one-step rollout's.
pub fn is_canary_split(split: &str) -> bool {
    split.starts_with("replica ratio") || split.starts_with("gateway api")
}

/// One weight of the plan as the timeline shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub weight: u32,
    /// `pending`, `running`, `succeeded`, `failed` or `skipped` (the deployment ended before it).
    pub state: &'static str,
    /// The latest analysis at this weight, percent.
    pub error_rate: Option<f64>,
    pub requests: Option<f64>,
}

impl DeploymentDetail {
    /// The plan's weights with how far the deployment got through each. The 100% stage is the
    /// full rollout; a deployment that went out in one step shows only that.
    pub fn stages(&self) -> Vec<Stage> {
        let one_step = self
            .traffic_split
            .as_deref()
            .is_some_and(|s| !is_canary_split(s));
        let plan: Vec<u32> = if one_step || self.plan.is_empty() {
            vec![100]
        } else {
            self.plan.clone()
        };
        let ended = self.deployment.state.is_terminal();
        plan.into_iter()
            .map(|weight| {
                let kind = if weight >= 100 { "rollout" } else { "canary" };
                let step = self
                    .steps
                    .iter()
                    .rev()
                    .find(|s| s.kind == kind && s.weight == Some(weight as i32));
                let state = match step.map(|s| s.state.as_str()) {
                    Some("running") if ended => "failed",
                    Some("running") => "running",
                    Some("succeeded") => "succeeded",
                    Some(_) => "failed",
                    None if ended => "skipped",
                    None => "pending",
                };
                let last = self
                    .analyses
                    .iter()
                    .rev()
                    .find(|a| a.weight == weight as i32);
                Stage {
                    weight,
                    state,
                    error_rate: last.and_then(|a| a.error_rate),
                    requests: last.and_then(|a| a.requests),
                }
            })
            .collect()
    }

    /// Whether promote and abort apply: a canary still in progress.
    pub fn is_live_canary(&self) -> bool {
        !self.deployment.state.is_terminal()
            && self.deployment.strategy == "canary"
            && self.traffic_split.as_deref().is_none_or(is_canary_split)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStep {
    pub seq: i32,
    /// `release` (the spec's release command), `apply`, `canary`, `rollout`, `prune` or `withdraw`.
    pub kind: String,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    /// The canary's share of traffic in percent (100 for the full rollout).
    pub weight: Option<i32>,
    pub message: String,
    pub evidence: serde_json::Value,
    #[serde(with = "crate::timestamp")]
    pub started_at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryAnalysis {
    pub step_seq: i32,
    pub run: i32,
    pub weight: i32,
    /// Percent; `None` when Prometheus had no data.
    pub error_rate: Option<f64>,
    pub requests: Option<f64>,
    /// `pass`, `hold`, `inconclusive`, `breach` or `gave_up`.
    pub decision: String,
    pub detail: String,
    pub query: String,
    #[serde(with = "crate::timestamp")]
    pub measured_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: i64,
    #[serde(with = "crate::timestamp")]
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub project: Option<String>,
    pub client_addr: Option<String>,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    /// The token's first characters, to recognise it; the rest is never shown again.
    pub prefix: String,
    pub scopes: Vec<String>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::timestamp::option")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::timestamp::option")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token at its creation: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: ApiToken,
    pub secret: String,
}

/// What the cluster says about a service in an environment, right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub environment: String,
    pub namespace: String,
    /// False when the service has never been applied there.
    pub deployed: bool,
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    /// The release the Deployment's template names.
    pub release: Option<String>,
    pub image: Option<String>,
    /// The Progressing condition's reason (`NewReplicaSetAvailable`, `ProgressDeadlineExceeded`, …).
    pub progress: Option<String>,
}

/// A service's charts in one environment: points are (unix seconds, value), oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceMetrics {
    pub environment: String,
    /// Seconds between points.
    pub step_secs: u32,
    pub requests_per_second: Vec<(i64, f64)>,
    /// The share of requests answered 5xx, 0.0–1.0.
    pub error_ratio: Vec<(i64, f64)>,
    /// 95th percentile, milliseconds.
    pub latency_p95_ms: Vec<(i64, f64)>,
    /// Why there is nothing to show (no Prometheus configured, or it did not answer).
    pub unavailable: Option<String>,
}

/// The public status page: every monitored endpoint and deployed service's health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusOverview {
    /// `operational` (all up), `degraded` (some down), `outage` (all down) or `unknown` (no probe yet).
    pub overall: String,
    pub targets: Vec<StatusTarget>,
    /// The days the bars cover, oldest first (UTC).
    pub first_day: chrono::NaiveDate,
    pub days: u32,
}

/// The status page's headline alone (the dashboard's overview shows it on every visit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusHeadline {
    /// As [`StatusOverview::overall`].
    pub overall: String,
    pub targets: i64,
    pub down: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusTarget {
    pub name: String,
    /// `endpoint` (a status spec's `monitoring.targets`) or `service` (a health check).
    pub kind: String,
    /// `up`, `down` or `unknown` (not probed yet), from the latest probe.
    pub state: String,
    #[serde(default, with = "crate::timestamp::option")]
    pub checked_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<i32>,
    /// Why the latest probe failed.
    pub detail: String,
    /// Share of successful probes over the days shown, when there were any.
    pub uptime: Option<f64>,
    /// One entry per day from `first_day`: (successful probes, probes).
    pub daily: Vec<(i32, i32)>,
}

/// An environment variable of a service in one environment. Secret values are never listed:
/// `value` is `None` and `masked` is true; revealing one is a separate, audited call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    /// `plain`, `secret` (encrypted at rest) or `secret_ref` (a key of an existing Kubernetes Secret).
    pub kind: String,
    pub value: Option<String>,
    pub masked: bool,
    pub secret_ref: Option<(String, String)>,
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub email: Option<String>,
    pub display_name: String,
    pub role: Role,
    #[serde(with = "crate::timestamp")]
    pub since: DateTime<Utc>,
}

/// One page of a list, newest first. Pass `next` back as `cursor` for the following page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The error body of every endpoint. `error` names the kind; `message` is written for the person
/// who made the request and never carries internal causes (those stay in the server's log, under
/// the request id the response carries).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ApiError {
    Unauthenticated {
        message: String,
    },
    Forbidden {
        message: String,
    },
    NotFound {
        message: String,
    },
    Invalid {
        message: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        diagnostics: Vec<Diagnostic>,
    },
    Conflict {
        message: String,
    },
    TooMany {
        message: String,
    },
    Unavailable {
        message: String,
    },
    Internal {
        message: String,
    },
}

/// An error body as it reads: the kind beside its fields. Deserialized by hand because serde's
/// derive for an internally tagged enum first buffers the whole object into its `Content` tree,
/// whose generic code was ~28 KB of the dashboard's main wasm module (which every first visit
/// downloads) for eight variants that all carry a message.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorKind,
    message: String,
    #[serde(default)]
    diagnostics: Vec<Diagnostic>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ErrorKind {
    Unauthenticated,
    Forbidden,
    NotFound,
    Invalid,
    Conflict,
    TooMany,
    Unavailable,
    Internal,
}

impl<'de> Deserialize<'de> for ApiError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ErrorBody {
            error,
            message,
            diagnostics,
        } = ErrorBody::deserialize(d)?;
        Ok(match error {
            ErrorKind::Unauthenticated => Self::Unauthenticated { message },
            ErrorKind::Forbidden => Self::Forbidden { message },
            ErrorKind::NotFound => Self::NotFound { message },
            ErrorKind::Invalid => Self::Invalid {
                message,
                diagnostics,
            },
            ErrorKind::Conflict => Self::Conflict { message },
            ErrorKind::TooMany => Self::TooMany { message },
            ErrorKind::Unavailable => Self::Unavailable { message },
            ErrorKind::Internal => Self::Internal { message },
        })
    }
}

impl ApiError {
    pub fn unauthenticated() -> Self {
        Self::Unauthenticated {
            message: "sign in, or send an API token as `Authorization: Bearer …`".into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden {
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound {
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            diagnostics: Vec::new(),
        }
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
        }
    }
    pub fn internal() -> Self {
        Self::Internal {
            message: "internal error; the server logged the cause under this request's id".into(),
        }
    }

    /// The HTTP status the server answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthenticated { .. } => 401,
            Self::Forbidden { .. } => 403,
            Self::NotFound { .. } => 404,
            Self::Invalid { .. } => 422,
            Self::Conflict { .. } => 409,
            Self::TooMany { .. } => 429,
            Self::Unavailable { .. } => 503,
            Self::Internal { .. } => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Unauthenticated { message }
            | Self::Forbidden { message }
            | Self::NotFound { message }
            | Self::Invalid { message, .. }
            | Self::Conflict { message }
            | Self::TooMany { message }
            | Self::Unavailable { message }
            | Self::Internal { message } => message,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ApiError {}

/// The server functions' JSON encoding: server_fn's `JsonEncoding`, except that it decodes through
/// `serde_json::from_str`. The dashboard's hydration data (resources) is decoded by `from_str`
/// too; server_fn's own decoder uses `from_slice`, a second reader type, and the wasm bundle then
/// carried two copies of every wire type's deserializer (one per reader). Same bytes on the wire.
#[cfg(feature = "server-fn")]
pub struct JsonText;

/// `input = Json, output = Json` for every server function.
#[cfg(feature = "server-fn")]
pub type Json = server_fn::codec::Post<JsonText>;

#[cfg(feature = "server-fn")]
impl server_fn::ContentType for JsonText {
    const CONTENT_TYPE: &'static str = "application/json";
}

#[cfg(feature = "server-fn")]
impl server_fn::FormatType for JsonText {
    const FORMAT_TYPE: server_fn::Format = server_fn::Format::Text;
}

#[cfg(feature = "server-fn")]
impl<T: Serialize> server_fn::Encodes<T> for JsonText {
    type Error = serde_json::Error;

    fn encode(output: &T) -> Result<server_fn::Bytes, Self::Error> {
        <server_fn::codec::JsonEncoding as server_fn::Encodes<T>>::encode(output)
    }
}

#[cfg(feature = "server-fn")]
impl<T: serde::de::DeserializeOwned> server_fn::Decodes<T> for JsonText {
    type Error = serde_json::Error;

    fn decode(bytes: server_fn::Bytes) -> Result<T, Self::Error> {
        let text = std::str::from_utf8(&bytes).map_err(serde::de::Error::custom)?;
        serde_json::from_str(text)
    }
}

#[cfg(feature = "server-fn")]
impl server_fn::error::FromServerFnError for ApiError {
    type Encoder = JsonText;

    fn from_server_fn_error(value: server_fn::error::ServerFnErrorErr) -> Self {
        use server_fn::error::ServerFnErrorErr as E;
        match value {
            // The request did not match the endpoint's arguments: the caller can fix that.
            E::Args(m) | E::Deserialization(m) | E::MissingArg(m) => Self::invalid(format!(
                "the request body does not match this endpoint: {m}"
            )),
            E::Request(m) | E::Response(m) => Self::Unavailable {
                message: format!("could not reach the server: {m}"),
            },
            _ => Self::internal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_with_their_kind_and_message() {
        let e = ApiError::forbidden("you are a viewer of `shop`; deploying needs developer");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "forbidden", "message": "you are a viewer of `shop`; deploying needs developer"})
        );
        assert_eq!(e.status(), 403);
        let back: ApiError = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn every_error_kind_reads_back_as_written() {
        let diagnostic = Diagnostic {
            severity: Severity::Error,
            pos: Pos { line: 3, col: 7 },
            message: "unknown field".into(),
        };
        let all = [
            ApiError::unauthenticated(),
            ApiError::forbidden("f"),
            ApiError::not_found("n"),
            ApiError::invalid("plain"),
            ApiError::Invalid {
                message: "with diagnostics".into(),
                diagnostics: vec![diagnostic],
            },
            ApiError::conflict("c"),
            ApiError::TooMany {
                message: "t".into(),
            },
            ApiError::Unavailable {
                message: "u".into(),
            },
            ApiError::internal(),
        ];
        for e in all {
            let text = serde_json::to_string(&e).unwrap();
            assert_eq!(
                serde_json::from_str::<ApiError>(&text).unwrap(),
                e,
                "{text}"
            );
        }
        // The kind may come after the fields, and fields a newer server adds are ignored.
        let e: ApiError =
            serde_json::from_str(r#"{"message":"m","request_id":"r1","error":"conflict"}"#)
                .unwrap();
        assert_eq!(e, ApiError::conflict("m"));
        for (body, says) in [
            (
                r#"{"error":"teapot","message":"m"}"#,
                "unknown variant `teapot`",
            ),
            (r#"{"error":"conflict"}"#, "missing field `message`"),
            (r#"{"message":"m"}"#, "missing field `error`"),
        ] {
            let err = serde_json::from_str::<ApiError>(body)
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{body}: {err}");
        }
    }

    #[test]
    fn deployment_states_read_back_and_say_whether_they_ended() {
        use DeploymentState::*;
        for state in [
            AwaitingApproval,
            Pending,
            InProgress,
            Succeeded,
            Failed,
            RolledBack,
            Aborted,
            Superseded,
            Rejected,
        ] {
            assert_eq!(DeploymentState::parse(state.as_str()), Some(state));
            let wire = serde_json::to_value(state).unwrap();
            assert_eq!(wire, state.as_str());
        }
        assert!(!AwaitingApproval.is_terminal() && Rejected.is_terminal());
        assert_eq!(AwaitingApproval.to_string(), "awaiting approval");
        assert_eq!(InProgress.to_string(), "in progress");
    }

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        assert!(
            Role::Viewer < Role::Developer
                && Role::Developer < Role::Admin
                && Role::Admin < Role::Owner
        );
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }
}

#[cfg(test)]
mod stage_tests {
    use super::*;

    fn detail(
        state: DeploymentState,
        split: Option<&str>,
        steps: &[(&str, i32, &str)],
    ) -> DeploymentDetail {
        let at = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
        DeploymentDetail {
            deployment: DeploymentSummary {
                id: 1,
                project: "p".into(),
                service: "s".into(),
                environment: "production".into(),
                state,
                state_reason: None,
                strategy: "canary".into(),
                image: "i".into(),
                spec_revision: 1,
                created_at: at,
                finished_at: None,
            },
            traffic_split: split.map(Into::into),
            requested_action: None,
            plan: vec![10, 50, 100],
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, (kind, weight, state))| DeploymentStep {
                    seq: i as i32 + 1,
                    kind: (*kind).into(),
                    state: (*state).into(),
                    weight: Some(*weight),
                    message: String::new(),
                    evidence: serde_json::Value::Null,
                    started_at: at,
                    finished_at: None,
                })
                .collect(),
            analyses: vec![CanaryAnalysis {
                step_seq: 1,
                run: 1,
                weight: 10,
                error_rate: Some(0.4),
                requests: Some(600.0),
                decision: "pass".into(),
                detail: String::new(),
                query: String::new(),
                measured_at: at,
            }],
            promoted_from: None,
            approval: None,
            held_until: None,
            forced: None,
        }
    }

    fn states(d: &DeploymentDetail) -> Vec<(u32, &'static str)> {
        d.stages()
            .into_iter()
            .map(|s| (s.weight, s.state))
            .collect()
    }

    #[test]
    fn stages_follow_the_steps() {
        let split = Some("replica ratio: …");
        let running = detail(
            DeploymentState::InProgress,
            split,
            &[("canary", 10, "succeeded"), ("canary", 50, "running")],
        );
        assert_eq!(
            states(&running),
            [(10, "succeeded"), (50, "running"), (100, "pending")]
        );
        assert_eq!(running.stages()[0].error_rate, Some(0.4));
        assert!(running.is_live_canary());
        let rolled_back = detail(
            DeploymentState::RolledBack,
            split,
            &[("canary", 10, "succeeded"), ("canary", 50, "failed")],
        );
        assert_eq!(
            states(&rolled_back),
            [(10, "succeeded"), (50, "failed"), (100, "skipped")]
        );
        assert!(!rolled_back.is_live_canary());
        let killed = detail(DeploymentState::Failed, split, &[("canary", 10, "running")]);
        assert_eq!(states(&killed)[0], (10, "failed"));
        let one_step = detail(
            DeploymentState::Succeeded,
            Some("one step: first release"),
            &[("rollout", 100, "succeeded")],
        );
        assert_eq!(states(&one_step), [(100, "succeeded")]);
        assert!(!one_step.is_live_canary());
    }
}

#[cfg(all(test, feature = "server-fn"))]
mod json_text_tests {
    use super::*;
    use server_fn::{Decodes, Encodes};

    #[test]
    fn round_trips_and_rejects_bytes_that_are_not_utf8() {
        let e = ApiError::not_found("no service `web` in `shop`");
        let bytes = <JsonText as Encodes<ApiError>>::encode(&e).unwrap();
        let back: ApiError = <JsonText as Decodes<ApiError>>::decode(bytes).unwrap();
        assert_eq!(back, e);
        let err =
            <JsonText as Decodes<ApiError>>::decode(server_fn::Bytes::from_static(b"\"\xff\""))
                .unwrap_err();
        assert!(err.to_string().contains("utf-8"), "{err}");
    }
}

/// Where a pull request's preview environment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviewState {
    /// Deployed (or being built and deployed) and serving.
    Awake,
    /// Scaled to zero after `sleepAfterMinutes` without requests; woken on request.
    Sleeping,
    /// The pull request closed (or its label went, or someone deleted it): being removed.
    Deleting,
    /// Everything it created is gone: namespace, environment, deployments, hostnames.
    Deleted,
}

impl PreviewState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Awake => "awake",
            Self::Sleeping => "sleeping",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Awake, Self::Sleeping, Self::Deleting, Self::Deleted]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

impl fmt::Display for PreviewState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Awake => "awake",
            Self::Sleeping => "sleeping (scaled to zero)",
            Self::Deleting => "being deleted",
            Self::Deleted => "deleted",
        })
    }
}

/// A pull request's preview environment (`pr-<number>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub pr_number: i32,
    pub environment: String,
    pub repository: String,
    pub head_sha: String,
    pub head_ref: String,
    pub state: PreviewState,
    pub services: Vec<PreviewService>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    /// The last deploy or wake: idleness and `ttlHours` count from here.
    #[serde(with = "crate::timestamp")]
    pub touched_at: DateTime<Utc>,
    pub ttl_hours: Option<i32>,
    pub sleep_after_minutes: Option<i32>,
    /// The newest of its events, in a sentence.
    pub last_event: String,
    /// Its events, newest first (at most 20).
    pub events: Vec<PreviewEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewService {
    pub name: String,
    /// `https://{service}.{namespace}.{domains.generated_suffix}`; none when the platform has no
    /// generated suffix.
    pub url: Option<String>,
    pub deployment_id: Option<i64>,
    pub deployment_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewEvent {
    #[serde(with = "crate::timestamp")]
    pub at: DateTime<Utc>,
    pub message: String,
}
