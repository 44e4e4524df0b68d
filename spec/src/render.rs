//! The Kubernetes objects a service spec asks for, as typed `k8s-openapi` structs carrying only the
//! fields Enclii owns (unset optional fields are not serialized, so a server-side apply claims
//! nothing else). Pure: the same input always renders the same objects, in apply order.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar as K8sEnvVar, EnvVarSource, HTTPGetAction,
    Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe as K8sProbe, ResourceRequirements,
    SeccompProfile, SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume as K8sVolume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::{Metadata, Resource};
use serde::Serialize;

use crate::SpecFile;
use crate::model::{Probe, ResourceList, Resources};

/// The label every object Enclii manages carries, with the owner labels below: pruning deletes the
/// objects of a service that carry them and that the newest render no longer contains.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "enclii");
pub const LABEL_PROJECT: &str = "enclii.dev/project";
pub const LABEL_ENVIRONMENT: &str = "enclii.dev/environment";
pub const LABEL_SERVICE: &str = "enclii.dev/service";
pub const LABEL_TRACK: &str = "enclii.dev/track";
pub const ANNOTATION_RELEASE: &str = "enclii.dev/release";
/// On the Jobs a service runs (its release command, its scheduled jobs, one-off runs) and their
/// pods: which one. Task pods never carry `app`, so no Service of the service routes to them.
pub const LABEL_JOB: &str = "enclii.dev/job";
/// The `enclii.dev/job` value of release-command Jobs and of one-off runs (reserved:
/// `rules::RESERVED_JOB_NAMES`).
pub const JOB_RELEASE: &str = "release";
pub const JOB_RUN: &str = "run";
/// Finished release and one-off Jobs are deleted by the cluster after a day (their outcome is in
/// the database by then); scheduled runs keep the CronJob's history limits.
pub const TASK_TTL_SECS: i32 = 86_400;
/// Stable pods serve the running release; canary pods the release under analysis. The Service
/// selects both, so their replica ratio splits the traffic; each Deployment selects only its own.
pub const TRACK_STABLE: &str = "stable";
pub const TRACK_CANARY: &str = "canary";

/// The name of the Deployment that runs a service's canary track.
pub fn canary_name(service: &str) -> String {
    format!("{service}-canary")
}
/// The TLS issuer that means "Cloudflare terminates TLS in front of the cluster".
pub const CLOUDFLARE: &str = "cloudflare";
pub const DEFAULT_TLS_ISSUER: &str = "letsencrypt";

/// What to render: a spec, where it runs, and which image.
pub struct Target<'a> {
    pub project: &'a str,
    pub environment: &'a str,
    pub namespace: &'a str,
    /// An image reference, by digest when the release has one (`repo@sha256:…`).
    pub image: &'a str,
    /// Identifies the release in an annotation, so that the cluster says what runs.
    pub release: &'a str,
    /// Split canary traffic by Gateway API HTTPRoute weights through this Gateway (when the
    /// cluster serves the Gateway API and the configuration names one); `None`: replica ratio.
    pub gateway: Option<GatewayRef<'a>>,
    /// The Deployment's `progressDeadlineSeconds`: how long the cluster's Deployment controller
    /// waits for a rollout to make progress before it declares it failed.
    pub progress_deadline_secs: i32,
}

/// Kubernetes' own default for `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECS: i32 = 600;

/// The Gateway an HTTPRoute attaches to.
#[derive(Debug, Clone, Copy)]
pub struct GatewayRef<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
}

pub const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// The name of the Service that selects one track's pods (the HTTPRoute's backends).
pub fn track_service_name(service: &str, track: &str) -> String {
    format!("{service}-{track}")
}

/// One rendered object, ready to apply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// `None` for cluster-scoped objects (the Namespace).
    pub namespace: Option<String>,
    pub body: serde_json::Value,
}

/// A typed object as a manifest to apply.
pub fn manifest<K: Resource + Metadata<Ty = ObjectMeta> + Serialize>(obj: K) -> Manifest {
    let meta = obj.metadata();
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone();
    let mut body = serde_json::to_value(&obj).unwrap_or(serde_json::Value::Null);
    // k8s-openapi serializes the type fields too; make sure they are present and first-class.
    body["apiVersion"] = K::API_VERSION.into();
    body["kind"] = K::KIND.into();
    Manifest {
        api_version: K::API_VERSION.to_owned(),
        kind: K::KIND.to_owned(),
        name,
        namespace,
        body,
    }
}

fn owner_labels(t: &Target, service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (LABEL_PROJECT.to_owned(), t.project.to_owned()),
        (LABEL_ENVIRONMENT.to_owned(), t.environment.to_owned()),
        (LABEL_SERVICE.to_owned(), service.to_owned()),
    ])
}

/// Pods carry `app: <service>` too: the specs' own NetworkPolicies select pods by it.
fn selector_labels(service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_owned(), service.to_owned()),
        (LABEL_SERVICE.to_owned(), service.to_owned()),
    ])
}

fn meta(t: &Target, name: &str, service: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(t.namespace.to_owned()),
        labels: Some(owner_labels(t, service)),
        ..Default::default()
    }
}

/// Every object of the service, in the order they should be applied.
pub fn render(file: &SpecFile, t: &Target) -> Vec<Manifest> {
    let spec = &file.service.spec;
    let name = file.service.metadata.name.as_str();
    let mut out = vec![manifest(namespace(t))];
    for v in &spec.volumes {
        let pvc = PersistentVolumeClaim {
            metadata: meta(t, &format!("{name}-{}", v.name), name),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec![format!("{:?}", v.access_mode)]),
                storage_class_name: v.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        K8sQuantity(v.size.0.clone()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        out.push(manifest(pvc));
    }
    out.push(manifest(deployment(file, t)));
    // The autoscaler after the Deployment. A new Deployment without a replica count starts at one;
    // the autoscaler raises it to its minimum at its first sync, which comes at its creation. An
    // autoscaler created before its target fails that sync (FailedGetScale) and tries again only
    // after the controller's resync period (15 s by default): the service ran one pod until then.
    if let Some(hpa) = autoscaler(file, t) {
        out.push(manifest(hpa));
    }
    out.push(manifest(service(file, t)));
    if t.gateway.is_some() {
        // One Service per track for the route's weighted backends, and the route at rest (all
        // traffic on stable). Part of the render, so pruning keeps them.
        out.push(manifest(track_service(file, t, TRACK_STABLE)));
        out.push(manifest(track_service(file, t, TRACK_CANARY)));
        out.extend(route(file, t, 0));
    }
    if let Some(ingress) = ingress(file, t) {
        out.push(manifest(ingress));
    }
    if let Some(pdb) = disruption_budget(file, t) {
        out.push(manifest(pdb));
    }
    for job in &spec.jobs {
        out.push(manifest(cron_job(file, t, job)));
    }
    for extra in &file.extra_objects {
        let mut body = extra.body.clone();
        body["metadata"]["namespace"] = t.namespace.into();
        let labels = body["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut labels: BTreeMap<String, serde_json::Value> = labels.into_iter().collect();
        for (k, v) in owner_labels(t, name) {
            labels.insert(k, v.into());
        }
        body["metadata"]["labels"] = serde_json::to_value(labels).unwrap_or_default();
        if extra.kind == "RoleBinding" {
            // Parsing allowed only this namespace's ServiceAccounts, without a namespace of their own.
            if let Some(subjects) = body["subjects"].as_array_mut() {
                for s in subjects {
                    s["namespace"] = t.namespace.into();
                }
            }
        }
        out.push(Manifest {
            api_version: extra.api_version.clone(),
            kind: extra.kind.clone(),
            name: extra.name.clone(),
            namespace: Some(t.namespace.to_owned()),
            body,
        });
    }
    out
}

fn namespace(t: &Target) -> Namespace {
    let mut labels = BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (LABEL_PROJECT.to_owned(), t.project.to_owned()),
        (LABEL_ENVIRONMENT.to_owned(), t.environment.to_owned()),
    ]);
    // The specs' NetworkPolicies select namespaces by a `name` label.
    labels.insert("name".to_owned(), t.namespace.to_owned());
    Namespace {
        metadata: ObjectMeta {
            name: Some(t.namespace.to_owned()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Pods meet the Pod Security Standard `restricted`, which the platform enforces on tenant
/// namespaces: no root, no privilege escalation, no capabilities, the runtime's seccomp profile.
fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn resources(list: &Option<ResourceList>) -> Option<BTreeMap<String, K8sQuantity>> {
    let list = list.as_ref()?;
    let mut out = BTreeMap::new();
    if let Some(cpu) = &list.cpu {
        out.insert("cpu".to_owned(), K8sQuantity(cpu.0.clone()));
    }
    if let Some(memory) = &list.memory {
        out.insert("memory".to_owned(), K8sQuantity(memory.0.clone()));
    }
    (!out.is_empty()).then_some(out)
}

fn http_probe(path: &str, port: u16, p: Option<&Probe>, delay: i32, period: i32) -> K8sProbe {
    K8sProbe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(p.and_then(|p| p.port).unwrap_or(port).into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(
            p.and_then(|p| p.initial_delay_seconds)
                .map(|v| v as i32)
                .unwrap_or(delay),
        ),
        period_seconds: Some(
            p.and_then(|p| p.period_seconds)
                .map(|v| v as i32)
                .unwrap_or(period),
        ),
        timeout_seconds: p.and_then(|p| p.timeout_seconds).map(|v| v as i32),
        failure_threshold: p.and_then(|p| p.failure_threshold).map(|v| v as i32),
        ..Default::default()
    }
}

/// The canary track's Deployment: the stable Deployment's pod template with the new release, under
/// its own name and selector, at a fixed replica count (the autoscaler scales the stable track only).
pub fn canary(file: &SpecFile, t: &Target, replicas: i32) -> Manifest {
    let name = file.service.metadata.name.as_str();
    let mut d = deployment_on(file, t, TRACK_CANARY);
    d.metadata.name = Some(canary_name(name));
    if let Some(spec) = d.spec.as_mut() {
        spec.replicas = Some(replicas);
    }
    manifest(d)
}

fn deployment(file: &SpecFile, t: &Target) -> Deployment {
    deployment_on(file, t, TRACK_STABLE)
}

fn deployment_on(file: &SpecFile, t: &Target, track: &str) -> Deployment {
    let spec = &file.service.spec;
    let rt = &spec.runtime;
    let name = file.service.metadata.name.as_str();
    let readiness = match (&rt.readiness_probe, &rt.health_check) {
        (Some(p), _) => http_probe(&p.path, rt.port, Some(p), 5, 5),
        (None, Some(path)) => http_probe(path, rt.port, None, 5, 5),
        (None, None) => K8sProbe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(rt.port.into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        },
    };
    let liveness = match (&rt.liveness_probe, &rt.health_check) {
        (Some(p), _) => Some(http_probe(&p.path, rt.port, Some(p), 15, 10)),
        (None, Some(path)) => Some(http_probe(path, rt.port, None, 30, 10)),
        (None, None) => None,
    };
    let (env, mounts, volumes) = pod_config(file);
    let res = rt.resources.as_ref();
    let container = Container {
        name: name.to_owned(),
        image: Some(t.image.to_owned()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: rt.port.into(),
            ..Default::default()
        }]),
        env: (!env.is_empty()).then_some(env),
        resources: res.map(|r| ResourceRequirements {
            requests: resources(&r.requests),
            limits: resources(&r.limits),
            ..Default::default()
        }),
        readiness_probe: Some(readiness),
        liveness_probe: liveness,
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        security_context: Some(container_security()),
        ..Default::default()
    };
    let mut track_selector = selector_labels(name);
    track_selector.insert(LABEL_TRACK.to_owned(), track.to_owned());
    let mut pod_labels = track_selector.clone();
    pod_labels.extend(owner_labels(t, name));
    let mut metadata = meta(t, name, name);
    if let Some(labels) = metadata.labels.as_mut() {
        labels.insert(LABEL_TRACK.to_owned(), track.to_owned());
    }
    metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_RELEASE.to_owned(),
        t.release.to_owned(),
    )]));
    // With an autoscaler, the replica count is the autoscaler's: applying it would fight it.
    let replicas = match &spec.autoscaling {
        Some(a) if a.enabled => None,
        _ => Some(rt.replicas as i32),
    };
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(track_selector),
                ..Default::default()
            },
            progress_deadline_seconds: Some(t.progress_deadline_secs),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("25%".into())),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        ANNOTATION_RELEASE.to_owned(),
                        t.release.to_owned(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: rt.service_account_name.clone(),
                    security_context: Some(pod_security()),
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What every pod of the service gets, serving or not: its variables, volumes and their mounts.
fn pod_config(file: &SpecFile) -> (Vec<K8sEnvVar>, Vec<VolumeMount>, Vec<K8sVolume>) {
    let spec = &file.service.spec;
    let name = file.service.metadata.name.as_str();
    let env: Vec<K8sEnvVar> = spec
        .env
        .iter()
        .map(|e| K8sEnvVar {
            name: e.name.clone(),
            value: e.value.clone(),
            value_from: e.value_from.as_ref().map(|f| EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: f.secret_key_ref.name.clone(),
                    key: f.secret_key_ref.key.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .collect();
    let mounts: Vec<VolumeMount> = spec
        .volumes
        .iter()
        .map(|v| VolumeMount {
            name: v.name.clone(),
            mount_path: v.mount_path.clone(),
            ..Default::default()
        })
        .collect();
    let volumes: Vec<K8sVolume> = spec
        .volumes
        .iter()
        .map(|v| K8sVolume {
            name: v.name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: format!("{name}-{}", v.name),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    (env, mounts, volumes)
}

/// The name of a Job or CronJob of the service: `{service}-{what}`, the service's part shortened
/// so that the whole stays within the 52 characters a CronJob may have (and a Job's pods' names
/// and `job-name` label stay within 63).
pub fn task_name(service: &str, what: &str) -> String {
    let room = 52usize.saturating_sub(what.len() + 1).max(1);
    let service: String = service.chars().take(room).collect();
    format!("{}-{what}", service.trim_end_matches('-'))
}

/// The pod template of a task (a release command, a scheduled or one-off job): the service's
/// image, variables, volumes and security, `command` instead of the image's entrypoint, no ports
/// or probes, never restarted in place (a failed run is a failed Job).
fn task_template(
    file: &SpecFile,
    t: &Target,
    job: &str,
    command: &[String],
    resources_of: Option<&Resources>,
) -> PodTemplateSpec {
    let name = file.service.metadata.name.as_str();
    let (env, mounts, volumes) = pod_config(file);
    let res = resources_of.or(file.service.spec.runtime.resources.as_ref());
    let container = Container {
        name: name.to_owned(),
        image: Some(t.image.to_owned()),
        command: Some(command.to_vec()),
        env: (!env.is_empty()).then_some(env),
        resources: res.map(|r| ResourceRequirements {
            requests: resources(&r.requests),
            limits: resources(&r.limits),
            ..Default::default()
        }),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        security_context: Some(container_security()),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(task_labels(t, name, job)),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_RELEASE.to_owned(),
                t.release.to_owned(),
            )])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            security_context: Some(pod_security()),
            // The service's own identity: a release command or a job acts as the service does.
            service_account_name: file.service.spec.runtime.service_account_name.clone(),
            containers: vec![container],
            volumes: (!volumes.is_empty()).then_some(volumes),
            restart_policy: Some("Never".into()),
            ..Default::default()
        }),
    }
}

fn task_labels(t: &Target, service: &str, job: &str) -> BTreeMap<String, String> {
    let mut labels = owner_labels(t, service);
    labels.insert(LABEL_JOB.to_owned(), job.to_owned());
    labels
}

fn task_job(
    file: &SpecFile,
    t: &Target,
    name: &str,
    job: &str,
    command: &[String],
    timeout_secs: u32,
) -> Manifest {
    let service = file.service.metadata.name.as_str();
    let mut metadata = meta(t, name, service);
    metadata.labels = Some(task_labels(t, service, job));
    metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_RELEASE.to_owned(),
        t.release.to_owned(),
    )]));
    manifest(Job {
        metadata,
        spec: Some(JobSpec {
            // Run once: a release command that failed must not run again on its own (it may have
            // half-migrated a database); the deployment fails instead.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(i64::from(timeout_secs.max(1))),
            ttl_seconds_after_finished: Some(TASK_TTL_SECS),
            template: task_template(file, t, job, command, None),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The Job that runs the spec's release command for one deployment (`None` without one). Named
/// by the deployment, so that a driver that takes over finds the Job its predecessor started
/// instead of running the command twice.
pub fn release_job(file: &SpecFile, t: &Target, deployment: i64) -> Option<Manifest> {
    let release = file.service.spec.release.as_ref()?;
    let name = task_name(
        &file.service.metadata.name,
        &format!("release-{deployment}"),
    );
    Some(task_job(
        file,
        t,
        &name,
        JOB_RELEASE,
        &release.command,
        release.timeout_seconds,
    ))
}

/// A one-off run of `command` (`enclii run`), named by its run's id.
pub fn run_job(
    file: &SpecFile,
    t: &Target,
    run: &str,
    command: &[String],
    timeout_secs: u32,
) -> Manifest {
    let name = task_name(&file.service.metadata.name, &format!("run-{run}"));
    task_job(file, t, &name, JOB_RUN, command, timeout_secs)
}

/// A scheduled job as a CronJob: its runs are Jobs of the same pod template as a release
/// command's, labelled with the job's name.
fn cron_job(file: &SpecFile, t: &Target, job: &crate::model::ScheduledJob) -> CronJob {
    let service = file.service.metadata.name.as_str();
    let mut metadata = meta(t, &task_name(service, &job.name), service);
    metadata.labels = Some(task_labels(t, service, &job.name));
    metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_RELEASE.to_owned(),
        t.release.to_owned(),
    )]));
    CronJob {
        metadata,
        spec: Some(CronJobSpec {
            schedule: job.schedule.clone(),
            time_zone: job.timezone.clone(),
            concurrency_policy: Some(job.concurrency_policy.as_str().to_owned()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(task_labels(t, service, &job.name)),
                    ..Default::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(0),
                    active_deadline_seconds: job.timeout_seconds.map(i64::from),
                    template: task_template(
                        file,
                        t,
                        &job.name,
                        &job.command,
                        job.resources.as_ref(),
                    ),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(file: &SpecFile, t: &Target) -> Service {
    let name = file.service.metadata.name.as_str();
    Service {
        metadata: meta(t, name, name),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(name)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn track_service(file: &SpecFile, t: &Target, track: &str) -> Service {
    let name = file.service.metadata.name.as_str();
    let mut svc = service(file, t);
    svc.metadata.name = Some(track_service_name(name, track));
    if let Some(spec) = svc.spec.as_mut() {
        let mut selector = selector_labels(name);
        selector.insert(LABEL_TRACK.to_owned(), track.to_owned());
        spec.selector = Some(selector);
    }
    svc
}

/// The service's HTTPRoute with `canary_weight` percent of requests on the canary track (`None`
/// without a Gateway). Gateway API types are not in k8s-openapi, so the body is written as JSON;
/// it carries only the fields Enclii owns.
pub fn route(file: &SpecFile, t: &Target, canary_weight: u32) -> Option<Manifest> {
    let gateway = t.gateway?;
    let name = file.service.metadata.name.as_str();
    let canary_weight = canary_weight.min(100);
    let hostnames: Vec<&str> = file
        .service
        .spec
        .domains
        .iter()
        .map(|d| d.domain.as_str())
        .collect();
    let mut spec = serde_json::json!({
        "parentRefs": [{ "name": gateway.name, "namespace": gateway.namespace }],
        "rules": [{ "backendRefs": [
            { "name": track_service_name(name, TRACK_STABLE), "port": 80, "weight": 100 - canary_weight },
            { "name": track_service_name(name, TRACK_CANARY), "port": 80, "weight": canary_weight },
        ] }],
    });
    if !hostnames.is_empty() {
        spec["hostnames"] = hostnames.into();
    }
    let body = serde_json::json!({
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": { "name": name, "namespace": t.namespace, "labels": owner_labels(t, name) },
        "spec": spec,
    });
    Some(Manifest {
        api_version: GATEWAY_API_VERSION.to_owned(),
        kind: "HTTPRoute".to_owned(),
        name: name.to_owned(),
        namespace: Some(t.namespace.to_owned()),
        body,
    })
}

fn ingress(file: &SpecFile, t: &Target) -> Option<Ingress> {
    let spec = &file.service.spec;
    if spec.domains.is_empty() {
        return None;
    }
    let name = file.service.metadata.name.as_str();
    let mut annotations = BTreeMap::new();
    let mut tls_hosts = Vec::new();
    let mut issuer: Option<&str> = None;
    for d in spec.domains.iter().filter(|d| d.tls) {
        match d.tls_issuer.as_deref().unwrap_or(DEFAULT_TLS_ISSUER) {
            CLOUDFLARE => {
                annotations.insert(
                    "enclii.dev/tls-terminated-by".to_owned(),
                    CLOUDFLARE.to_owned(),
                );
            }
            other => {
                issuer = Some(other);
                tls_hosts.push(d.domain.clone());
            }
        }
    }
    if let Some(issuer) = issuer {
        annotations.insert(
            "cert-manager.io/cluster-issuer".to_owned(),
            issuer.to_owned(),
        );
    }
    if let Some(c) = spec.caching.as_ref().filter(|c| c.enabled) {
        // Only header lines of the safe grammar reach nginx's configuration (parsing refuses the
        // rest with their position; this keeps a hand-built SpecFile from injecting directives).
        let lines: Vec<String> = c
            .headers
            .iter()
            .filter_map(|h| crate::rules::header_line(h).ok())
            .map(|(name, value)| format!("more_set_headers \"{name}: {value}\";"))
            .collect();
        if !lines.is_empty() {
            annotations.insert(
                "nginx.ingress.kubernetes.io/configuration-snippet".to_owned(),
                lines.join("\n"),
            );
        }
    }
    let rules = spec
        .domains
        .iter()
        .map(|d| IngressRule {
            host: Some(d.domain.clone()),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some("/".into()),
                    path_type: "Prefix".into(),
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: name.to_owned(),
                            port: Some(ServiceBackendPort {
                                name: Some("http".into()),
                                ..Default::default()
                            }),
                        }),
                        ..Default::default()
                    },
                }],
            }),
        })
        .collect();
    let mut metadata = meta(t, name, name);
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            rules: Some(rules),
            tls: (!tls_hosts.is_empty()).then(|| {
                vec![IngressTLS {
                    hosts: Some(tls_hosts),
                    secret_name: Some(format!("{name}-tls")),
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn autoscaler(file: &SpecFile, t: &Target) -> Option<HorizontalPodAutoscaler> {
    let a = file
        .service
        .spec
        .autoscaling
        .as_ref()
        .filter(|a| a.enabled)?;
    let name = file.service.metadata.name.as_str();
    let metric = |resource: &str, pct: u32| MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.to_owned(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(pct as i32),
                ..Default::default()
            },
        }),
        ..Default::default()
    };
    let mut metrics = Vec::new();
    if let Some(cpu) = a.target_cpu_utilization_percentage {
        metrics.push(metric("cpu", cpu));
    }
    if let Some(mem) = a.target_memory_utilization_percentage {
        metrics.push(metric("memory", mem));
    }
    Some(HorizontalPodAutoscaler {
        metadata: meta(t, name, name),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: name.to_owned(),
            },
            min_replicas: Some(a.min_replicas as i32),
            max_replicas: a.max_replicas as i32,
            metrics: Some(metrics),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn disruption_budget(file: &SpecFile, t: &Target) -> Option<PodDisruptionBudget> {
    let spec = &file.service.spec;
    let least = match &spec.autoscaling {
        Some(a) if a.enabled => a.min_replicas,
        _ => spec.runtime.replicas,
    };
    if least <= 1 {
        return None;
    }
    let name = file.service.metadata.name.as_str();
    Some(PodDisruptionBudget {
        metadata: meta(t, name, name),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
