//! `switchyard bootstrap`: the one manual deploy of the control plane (docs/self-hosting.md).
//!
//! It puts Switchyard on a cluster the way Switchyard puts any service there, so that afterwards
//! Switchyard is a service Switchyard deploys: the `enclii-platform` project, its own spec
//! (`deploy/enclii/switchyard.yaml`) imported as a revision, and a deployment of the given image
//! driven by the ordinary deploy driver (`deploy::worker::drive_one`: tenant namespace, dry run,
//! server-side apply, rollout watch, records). What no spec may do is done here, and only here:
//! the ClusterRole of `deploy/rbac.yaml` and its binding to the spec's ServiceAccount.
//!
//! Re-running changes nothing once Switchyard runs (same spec: no revision; a release already
//! running: no deployment; server-side apply of unchanged RBAC: no write). Upgrades are
//! deployments (`enclii deploy --service switchyard`), never a second bootstrap.

use std::collections::BTreeSet;
use std::time::Duration;

use enclii_api::{DeploymentState, ImportOutcome};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::auth::{Caller, Via, users};
use crate::deploy::{self, apply, tenancy};
use crate::platform::{self, deployments, projects, services};
use crate::{Engine, db};

/// The project Switchyard runs in, as the seed names it.
pub const PROJECT: &str = "enclii-platform";
/// The Kubernetes Secret the spec's variables read, as the seed names it.
pub const SECRET: &str = "enclii-secrets";
/// Switchyard's ClusterRole and what binds it: one truth with the local cluster's set-up.
pub const RBAC_YAML: &str = include_str!("../../deploy/rbac.yaml");
/// The field manager of what bootstrap applies (the platform's, as for tenant namespaces).
const FIELD_MANAGER: &str = tenancy::FIELD_MANAGER;
/// The bootstrap's own identity in the records (audit, project owner): no one can sign in as it.
const ISSUER: &str = "enclii:bootstrap";

/// What to install.
pub struct Options<'a> {
    /// The spec's text (`deploy/enclii/switchyard.yaml`).
    pub spec: &'a str,
    /// The image to run, e.g. `registry.example.com/enclii/switchyard:1`.
    pub image: &'a str,
    /// The environment Switchyard runs in (its namespace is `{prefix}enclii-platform--{env}`).
    pub environment: &'a str,
    /// Bounds the wait for the rollout.
    pub timeout: Duration,
}

/// Why bootstrap stopped. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("the spec: {0}")]
    Spec(String),
    #[error(
        "the kubeconfig's user may not {}: bootstrap needs a cluster administrator (it creates a ClusterRole and its binding, and may only grant what it holds)",
        .0.join(", ")
    )]
    Forbidden(Vec<String>),
    #[error(
        "the Kubernetes Secret `{secret}` is missing from namespace `{namespace}`: create it with the keys {} (docs/self-hosting.md), then run bootstrap again",
        .keys.join(", ")
    )]
    MissingSecret {
        secret: String,
        namespace: String,
        keys: Vec<String>,
    },
    #[error(
        "the Kubernetes Secret `{secret}` in namespace `{namespace}` lacks the keys {} that the spec reads: add them, then run bootstrap again",
        .missing.join(", ")
    )]
    MissingSecretKeys {
        secret: String,
        namespace: String,
        missing: Vec<String>,
    },
    #[error(
        "the project `{0}` exists and was not created by bootstrap: a signed-in user may have made it, and bootstrap never hands the control plane to a project it did not create. Have a platform admin inspect it, remove or rename it, then run bootstrap again"
    )]
    ProjectNotOurs(String),
    #[error("migrating the database: {0}")]
    Migrate(#[source] db::DbError),
    #[error("{0}")]
    Platform(#[from] crate::Error),
    #[error("the cluster: {0}")]
    Cluster(String),
    #[error("the namespace: {0}")]
    Namespace(#[from] tenancy::Refusal),
    #[error("deployment {id} of {image} ended {state}: {reason}")]
    Rollout {
        id: i64,
        image: String,
        state: String,
        reason: String,
    },
    #[error("deployment {id} did not finish within {secs}s; it goes on: see `enclii deployments`")]
    Timeout { id: i64, secs: u64 },
}

/// What bootstrap did; all `false`/`None` on a re-run that found everything in place.
#[derive(Debug, Default)]
pub struct Outcome {
    pub project_created: bool,
    pub spec: Option<ImportOutcome>,
    /// The deployment bootstrap created (and saw through), if Switchyard was not running yet.
    pub deployment: Option<i64>,
    /// The image that runs, when Switchyard already ran one.
    pub running: Option<String>,
    /// Spec hostnames newly marked as the platform's own (routed without a TXT check).
    pub domains_vouched: usize,
}

impl Outcome {
    pub fn changed(&self) -> bool {
        self.project_created
            || self.spec.as_ref().is_some_and(|s| s.changed)
            || self.deployment.is_some()
            || self.domains_vouched > 0
    }
}

/// Installs Switchyard with `client` (a cluster administrator's) and `engine` (its database and
/// settings; the caller migrated nothing yet). `say` receives one line per step, for the operator.
pub async fn run(
    engine: &Engine,
    client: kube::Client,
    options: &Options<'_>,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<Outcome, BootstrapError> {
    let file = enclii_spec::parse(options.spec).map_err(|diagnostics| {
        BootstrapError::Spec(
            diagnostics
                .iter()
                .map(|d| d.located("spec").to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let service = file.service.metadata.name.clone();
    if file.service.metadata.project.as_deref() != Some(PROJECT) {
        return Err(BootstrapError::Spec(format!(
            "`metadata.project` must be `{PROJECT}`"
        )));
    }
    let Some(account) = file.service.spec.runtime.service_account_name.clone() else {
        return Err(BootstrapError::Spec(
            "`spec.runtime.serviceAccountName` must name the ServiceAccount the ClusterRole is bound to".into(),
        ));
    };
    let role = cluster_role()?;
    let role_name = role["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let namespace = projects::namespace_for(
        &engine.settings.cluster.namespace_prefix,
        PROJECT,
        options.environment,
    );

    say("checking the kubeconfig's permissions".into());
    let denied = denied(&client, &role, &namespace).await?;
    if !denied.is_empty() {
        return Err(BootstrapError::Forbidden(denied));
    }

    say("migrating the database".into());
    db::migrate(&engine.pool)
        .await
        .map_err(BootstrapError::Migrate)?;
    let caller = bootstrap_caller(engine).await?;
    let mut outcome = Outcome::default();

    // Who made the project, if it exists: anyone who can sign in may create a project of any free
    // name, and this one is given the cluster.
    let creator = sqlx::query_scalar!("SELECT created_by FROM projects WHERE slug = $1", PROJECT)
        .fetch_optional(&engine.pool)
        .await
        .map_err(crate::Error::from)?;
    let project = match creator {
        Some(Some(by)) if by == caller.user_id => None,
        Some(_) => return Err(BootstrapError::ProjectNotOurs(PROJECT.to_owned())),
        None => Some(
            projects::create(
                &engine.pool,
                &engine.settings.cluster.namespace_prefix,
                Some(&caller),
                PROJECT,
                "Enclii itself: the control plane",
            )
            .await?,
        ),
    };
    outcome.project_created = project.is_some();
    // A caller remembers the projects it read (`auth::ProjectMemo`, one request's worth): the
    // lookup above remembered none.
    let caller = Caller {
        projects: Default::default(),
        ..caller
    };
    say(if outcome.project_created {
        format!("created the project {PROJECT}")
    } else {
        format!("the project {PROJECT} exists")
    });
    let project_id = platform::project_access(
        &engine.pool,
        Some(&caller),
        PROJECT,
        crate::auth::Action::Deploy,
    )
    .await?
    .id;

    // The namespace before the Secret check: the operator creates the Secret in it, and Enclii
    // never adopts a namespace it did not create.
    tenancy::ensure(
        &client,
        &tenancy::Tenant {
            namespace: &namespace,
            project: PROJECT,
            project_id,
            environment: options.environment,
        },
        &engine.settings.cluster.tenancy,
        None,
    )
    .await?;
    say(format!("namespace {namespace} ready"));
    check_secret(&client, &namespace, &file).await?;
    say(format!("Secret {SECRET} has every key the spec reads"));

    let imported = services::import(
        &engine.pool,
        &engine.settings.status,
        Some(&caller),
        Some(PROJECT),
        options.spec,
    )
    .await?;
    say(if imported.changed {
        format!("imported the spec as revision {}", imported.revision)
    } else {
        format!("the spec is unchanged (revision {})", imported.revision)
    });
    outcome.spec = Some(imported);

    // The spec's hostnames are the platform's own: routed from the first deployment on, not after
    // a TXT check someone would have to sign in to ask for.
    let known = platform::domains::list(engine, Some(&caller), PROJECT).await?;
    for d in &file.service.spec.domains {
        if !known.iter().any(|k| k.hostname == d.domain) {
            platform::domains::add(
                engine,
                Some(&caller),
                PROJECT,
                &service,
                options.environment,
                &d.domain,
                Some(d.tls),
                d.tls_issuer.as_deref(),
            )
            .await?;
        }
        if platform::domains::vouch(engine, Some(&caller), PROJECT, &d.domain).await? {
            say(format!("{} is routed to {service}", d.domain));
            outcome.domains_vouched += 1;
        }
    }

    let params = PatchParams::apply(FIELD_MANAGER).force();
    let binding = cluster_role_binding(&role_name, &namespace, &account);
    for (what, body) in [("ClusterRole", &role), ("ClusterRoleBinding", &binding)] {
        let name = body["metadata"]["name"].as_str().unwrap_or_default();
        let ar = apply::api_resource("rbac.authorization.k8s.io/v1", what);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let patch = Patch::Apply(body);
        apply::with_retries(
            &format!("apply {what}/{name}"),
            5,
            Duration::from_secs(10),
            || api.patch(name, &params, &patch),
        )
        .await
        .map_err(BootstrapError::Cluster)?;
    }
    say(format!(
        "ClusterRole {role_name} bound to ServiceAccount {namespace}/{account}"
    ));

    // Switchyard runs a release already (succeeded, or being deployed): nothing to deploy.
    let recent = deployments::list(
        &engine.pool,
        Some(&caller),
        PROJECT,
        Some(&service),
        None,
        Some(20),
    )
    .await?;
    let ours = recent
        .items
        .iter()
        .filter(|d| d.environment == options.environment);
    let mut pending = None;
    for d in ours {
        match d.state {
            DeploymentState::Succeeded => {
                say(format!(
                    "{service} already runs {} (deployment {}); upgrades are deployments: enclii deploy --service {service} --env {} --image REF",
                    d.image, d.id, options.environment
                ));
                outcome.running = Some(d.image.clone());
                return Ok(outcome);
            }
            DeploymentState::Pending | DeploymentState::InProgress if pending.is_none() => {
                pending = Some(d.id);
            }
            _ => {}
        }
    }
    let id = match pending {
        Some(id) => {
            say(format!("deployment {id} is under way; following it"));
            id
        }
        None => {
            let created = deployments::create(
                &engine.pool,
                Some(&caller),
                deployments::Request {
                    project: PROJECT,
                    service: &service,
                    environment: options.environment,
                    image: Some(options.image),
                    registry: &engine.settings.pipeline.registry,
                },
            )
            .await?;
            say(format!(
                "deployment {} of {} created",
                created.id, options.image
            ));
            outcome.deployment = Some(created.id);
            created.id
        }
    };
    follow(engine, client, &caller, id, options, say).await?;
    Ok(outcome)
}

/// Drives the deployment here (no replica exists yet to claim it; if one does, it may drive it
/// instead) and reports each step until it ends.
async fn follow(
    engine: &Engine,
    client: kube::Client,
    caller: &Caller,
    id: i64,
    options: &Options<'_>,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(), BootstrapError> {
    let replica = format!("bootstrap-{}", std::process::id());
    let engine_for_driver = engine.clone();
    let driver = tokio::spawn(async move {
        deploy::worker::drive_one(
            engine_for_driver,
            deploy::Clusters::single(client),
            id,
            &replica,
        )
        .await
    });
    let deadline = tokio::time::Instant::now() + options.timeout;
    let mut seen = BTreeSet::new();
    let result = loop {
        let detail = deployments::get(&engine.pool, Some(caller), PROJECT, id).await?;
        for step in &detail.steps {
            let line = if step.message.is_empty() {
                format!("  {} {}", step.kind, step.state)
            } else {
                format!("  {} {}: {}", step.kind, step.state, step.message)
            };
            if seen.insert(line.clone()) {
                say(line);
            }
        }
        let d = &detail.deployment;
        if d.state == DeploymentState::Succeeded {
            say(format!("deployment {id} succeeded: {} runs", d.image));
            break Ok(());
        }
        if d.state.is_terminal() {
            break Err(BootstrapError::Rollout {
                id,
                image: d.image.clone(),
                state: d.state.as_str().to_owned(),
                reason: d.state_reason.clone().unwrap_or_default(),
            });
        }
        if tokio::time::Instant::now() > deadline {
            break Err(BootstrapError::Timeout {
                id,
                secs: options.timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // A driver still running holds the lease: stopping it here hands the deployment to the first
    // replica that claims it once the lease expires.
    driver.abort();
    result
}

/// The user bootstrap acts as: recorded as the project's owner and in the audit log. Its issuer
/// is no OpenID provider's, so no sign-in resolves to it; platform admins see the project.
async fn bootstrap_caller(engine: &Engine) -> Result<Caller, BootstrapError> {
    let user_id = users::upsert(
        &engine.pool,
        &users::Identity {
            issuer: ISSUER,
            subject: "bootstrap",
            email: None,
            display_name: "switchyard bootstrap",
            platform_admin: true,
        },
    )
    .await
    .map_err(crate::Error::from)?;
    Ok(Caller {
        user_id,
        display_name: "switchyard bootstrap".into(),
        email: None,
        platform_admin: true,
        via: Via::Session,
        client_addr: None,
        projects: Default::default(),
    })
}

/// The ClusterRole document of `deploy/rbac.yaml`, as JSON.
pub fn cluster_role() -> Result<serde_json::Value, BootstrapError> {
    let docs = enclii_spec::yaml::load(RBAC_YAML)
        .map_err(|_| BootstrapError::Spec("deploy/rbac.yaml is not valid YAML".into()))?;
    docs.iter()
        .filter_map(|d| d.root.as_ref().map(|r| r.to_json()))
        .find(|doc| doc["kind"] == "ClusterRole")
        .ok_or_else(|| BootstrapError::Spec("deploy/rbac.yaml has no ClusterRole".into()))
}

/// Binds the ClusterRole to the spec's ServiceAccount in Switchyard's namespace. Named after the
/// namespace, so that Switchyards of several prefixes on one cluster each keep their own.
pub fn cluster_role_binding(role: &str, namespace: &str, account: &str) -> serde_json::Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": format!("{role}-{namespace}"),
            "labels": { "app.kubernetes.io/managed-by": "enclii" },
        },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": [{ "kind": "ServiceAccount", "name": account, "namespace": namespace }],
    })
}

/// One permission as the API server's access review asks it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub verb: String,
    pub group: String,
    pub resource: String,
    /// `None`: in every namespace (cluster-wide).
    pub namespace: Option<String>,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{} {}{group} in {ns}", self.verb, self.resource),
            None => write!(f, "{} {}{group}", self.verb, self.resource),
        }
    }
}

/// What bootstrap's kubeconfig must allow: applying the ClusterRole and its binding, reading the
/// Secret, and — since RBAC lets no one grant what they do not hold — every rule of the role.
/// Pure.
pub fn needed(role: &serde_json::Value, namespace: &str) -> Vec<Permission> {
    let p = |verb: &str, group: &str, resource: &str, ns: Option<&str>| Permission {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        namespace: ns.map(str::to_owned),
    };
    let mut out = BTreeSet::from([
        p("patch", "rbac.authorization.k8s.io", "clusterroles", None),
        p(
            "patch",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None,
        ),
        p("get", "", "secrets", Some(namespace)),
    ]);
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    for rule in role["rules"].as_array().into_iter().flatten() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert(p(&verb, &group, &resource, None));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Asks the API server which of [`needed`] the kubeconfig's user lacks.
async fn denied(
    client: &kube::Client,
    role: &serde_json::Value,
    namespace: &str,
) -> Result<Vec<String>, BootstrapError> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let post = PostParams::default();
    let mut denied = Vec::new();
    for permission in needed(role, namespace) {
        let (resource, subresource) = match permission.resource.split_once('/') {
            Some((resource, sub)) => (resource.to_owned(), Some(sub.to_owned())),
            None => (permission.resource.clone(), None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(permission.verb.clone()),
                    group: Some(permission.group.clone()),
                    resource: Some(resource),
                    subresource,
                    namespace: permission.namespace.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = apply::with_retries(
            "review the kubeconfig's permissions",
            5,
            Duration::from_secs(10),
            || reviews.create(&post, &review),
        )
        .await
        .map_err(BootstrapError::Cluster)?;
        if !answer.status.is_some_and(|s| s.allowed) {
            denied.push(permission.to_string());
        }
    }
    Ok(denied)
}

/// The Secret exists and holds every key the spec's variables read from it (names only: its
/// values are never read into anything).
async fn check_secret(
    client: &kube::Client,
    namespace: &str,
    file: &enclii_spec::SpecFile,
) -> Result<(), BootstrapError> {
    let keys: Vec<String> = secret_keys(file);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let found = apply::with_retries(
        &format!("read Secret/{SECRET}"),
        5,
        Duration::from_secs(10),
        || secrets.get_opt(SECRET),
    )
    .await
    .map_err(BootstrapError::Cluster)?;
    let Some(secret) = found else {
        return Err(BootstrapError::MissingSecret {
            secret: SECRET.into(),
            namespace: namespace.into(),
            keys,
        });
    };
    let present: BTreeSet<&String> = secret
        .data
        .iter()
        .flat_map(|d| d.keys())
        .chain(secret.string_data.iter().flat_map(|d| d.keys()))
        .collect();
    let missing: Vec<String> = keys.into_iter().filter(|k| !present.contains(k)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BootstrapError::MissingSecretKeys {
            secret: SECRET.into(),
            namespace: namespace.into(),
            missing,
        })
    }
}

/// The keys of [`SECRET`] the spec's variables read, in order. Pure.
pub fn secret_keys(file: &enclii_spec::SpecFile) -> Vec<String> {
    let mut keys = Vec::new();
    for var in &file.service.spec.env {
        if let Some(from) = &var.value_from {
            let r = &from.secret_key_ref;
            if r.name == SECRET && !keys.contains(&r.key) {
                keys.push(r.key.clone());
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = include_str!("../../deploy/enclii/switchyard.yaml");

    #[test]
    fn the_role_comes_from_deploy_rbac_yaml_and_its_rules_are_what_bootstrap_must_hold() {
        let role = cluster_role().unwrap();
        assert_eq!(role["metadata"]["name"], "enclii-switchyard");
        let needed: Vec<String> = needed(&role, "enclii-platform--production")
            .iter()
            .map(ToString::to_string)
            .collect();
        for expected in [
            "patch clusterrolebindings.rbac.authorization.k8s.io",
            "get secrets in enclii-platform--production",
            "create deployments.apps",
            "get pods/log",
            "get services/proxy",
            "delete namespaces",
        ] {
            assert!(
                needed.iter().any(|n| n == expected),
                "{expected} not in {needed:?}"
            );
        }
        // Nothing the role does not grant, beyond bootstrap's own three.
        assert!(!needed.iter().any(|n| n.contains("nodes")), "{needed:?}");
    }

    #[test]
    fn the_binding_names_the_spec_service_account_in_switchyards_namespace() {
        let b = cluster_role_binding("enclii-switchyard", "p-enclii-platform--production", "sy");
        assert_eq!(
            b["metadata"]["name"],
            "enclii-switchyard-p-enclii-platform--production"
        );
        assert_eq!(b["roleRef"]["name"], "enclii-switchyard");
        assert_eq!(
            b["subjects"],
            json!([{ "kind": "ServiceAccount", "name": "sy", "namespace": "p-enclii-platform--production" }])
        );
    }

    #[test]
    fn the_secret_keys_are_those_the_spec_reads_from_enclii_secrets() {
        let file = enclii_spec::parse(SPEC).unwrap();
        assert_eq!(
            secret_keys(&file),
            [
                "database-url",
                "secrets-key",
                "oidc-client-secret",
                "metrics-token",
                "prometheus-url",
                "registry-token-key"
            ]
        );
        assert_eq!(
            file.service.spec.runtime.service_account_name.as_deref(),
            Some("switchyard")
        );
    }
}
