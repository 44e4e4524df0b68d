//! The commands that talk to Switchyard.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use enclii_api::{
    BuildSummary, CanaryAnalysis, Delivery, DeploymentDetail, DeploymentStep, DeploymentSummary,
    EnvironmentPolicy, FreezeWindow, ImportOutcome, Page, Project, Repository, ServiceSummary,
    WhoAmI, paths,
};
use serde_json::json;

use crate::client::{Client, Failure};
use crate::config;
use crate::output::{self, Format};

pub struct Context {
    pub server: Option<String>,
    pub project: Option<String>,
    pub output: Format,
}

const DEFAULT_SERVER: &str = "http://127.0.0.1:3000";

impl Context {
    pub(crate) fn client(&self) -> Result<Client, Failure> {
        let cfg = config::load();
        let server = self
            .server
            .clone()
            .or(cfg.server)
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let token = std::env::var("ENCLII_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or(cfg.token);
        Client::new(&server, token)
    }

    /// The project to act on: `--project`, then the configured one, then the caller's only project.
    pub(crate) fn project(&self, client: &Client) -> Result<String, Failure> {
        if let Some(p) = self.project.clone().or(config::load().project) {
            return Ok(p);
        }
        let projects: Vec<Project> = client.call(paths::PROJECTS_LIST, &json!({}))?;
        match projects.as_slice() {
            [only] => Ok(only.slug.clone()),
            [] => Err(Failure::new(
                1,
                "you have no project yet: `enclii project create NAME`",
            )),
            _ => Err(Failure::new(
                2,
                "you have several projects: pass --project NAME",
            )),
        }
    }
}

pub fn login(ctx: &Context, token: Option<String>) -> Result<(), Failure> {
    let token = match token {
        Some(t) => t,
        None => {
            eprintln!(
                "Paste an API token (Settings → API tokens in the dashboard), then press Enter:"
            );
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| Failure::new(3, format!("cannot read the token: {e}")))?;
            line.trim().to_owned()
        }
    };
    let mut cfg = config::load();
    let server = ctx
        .server
        .clone()
        .or(cfg.server.clone())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let me: WhoAmI = Client::new(&server, Some(token.clone()))?.call(paths::WHOAMI, &json!({}))?;
    cfg.server = Some(server);
    cfg.token = Some(token);
    let path = config::save(&cfg).map_err(|e| Failure::new(3, e))?;
    println!(
        "Signed in as {} (token stored in {})",
        me.display_name,
        path.display()
    );
    Ok(())
}

pub fn logout() -> Result<(), Failure> {
    let mut cfg = config::load();
    cfg.token = None;
    config::save(&cfg).map_err(|e| Failure::new(3, e))?;
    println!("Signed out: the token is no longer stored.");
    Ok(())
}

pub fn whoami(ctx: &Context) -> Result<(), Failure> {
    let me: WhoAmI = ctx.client()?.call(paths::WHOAMI, &json!({}))?;
    match ctx.output {
        Format::Json => output::json(&me),
        Format::Table => println!(
            "{} <{}> via {}",
            me.display_name,
            me.email.unwrap_or_default(),
            me.via
        ),
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Create a project with production and staging environments.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List your projects.
    List,
    /// Add an environment (its own namespace) to the current project.
    AddEnvironment {
        name: String,
        /// Pushes to this branch deploy here (services with autoDeploy).
        #[arg(long)]
        branch: Option<String>,
    },
}

pub fn project(ctx: &Context, cmd: ProjectCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    match cmd {
        ProjectCommand::AddEnvironment { name, branch } => {
            let project = ctx.project(&client)?;
            let e: enclii_api::Environment = client.call(
                paths::ENVIRONMENTS_CREATE,
                &json!({"project": project, "name": name, "deploy_branch": branch}),
            )?;
            match ctx.output {
                Format::Json => output::json(&e),
                Format::Table => println!(
                    "Added environment {} ({}) to {project}{}",
                    e.name,
                    e.namespace,
                    e.deploy_branch
                        .as_deref()
                        .map(|b| format!("; pushes to {b} deploy there"))
                        .unwrap_or_default()
                ),
            }
        }
        ProjectCommand::Create { name, description } => {
            let p: Project = client.call(
                paths::PROJECTS_CREATE,
                &json!({"slug": name, "description": description}),
            )?;
            let mut cfg = config::load();
            if cfg.project.is_none() {
                cfg.project = Some(p.slug.clone());
                let _ = config::save(&cfg);
            }
            match ctx.output {
                Format::Json => output::json(&p),
                Format::Table => {
                    let envs: Vec<String> = p
                        .environments
                        .iter()
                        .map(|e| format!("{} ({})", e.name, e.namespace))
                        .collect();
                    println!(
                        "Created project {} with environments {}",
                        p.slug,
                        envs.join(", ")
                    );
                }
            }
        }
        ProjectCommand::List => {
            let list: Vec<Project> = client.call(paths::PROJECTS_LIST, &json!({}))?;
            match ctx.output {
                Format::Json => output::json(&list),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|p| {
                            vec![
                                p.slug.clone(),
                                p.role.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                                p.service_count.to_string(),
                                p.environments
                                    .iter()
                                    .map(|e| e.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(","),
                            ]
                        })
                        .collect();
                    output::table(&["PROJECT", "ROLE", "SERVICES", "ENVIRONMENTS"], &rows);
                }
            }
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Import a service spec (create the service, or record a new revision of it).
    Create {
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// List the project's services.
    List,
}

#[derive(Subcommand)]
pub enum ServicesCommand {
    /// List the project's services.
    List,
}

impl From<ServicesCommand> for ServiceCommand {
    fn from(c: ServicesCommand) -> Self {
        match c {
            ServicesCommand::List => ServiceCommand::List,
        }
    }
}

pub fn service(ctx: &Context, cmd: ServiceCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    match cmd {
        ServiceCommand::Create { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Failure::new(3, format!("{}: cannot read: {e}", file.display())))?;
            let name = file.display().to_string();
            let result: Result<ImportOutcome, Failure> = client.call(
                paths::SERVICES_IMPORT,
                &json!({"spec": text, "project": ctx.project}),
            );
            let outcome = match result {
                Ok(o) => o,
                Err(mut failure) => {
                    failure.details = failure
                        .diagnostics
                        .iter()
                        .map(|d| d.located(&name).to_string())
                        .collect();
                    return Err(failure);
                }
            };
            for w in &outcome.warnings {
                eprintln!("{}", w.located(&name));
            }
            match ctx.output {
                Format::Json => output::json(&outcome),
                Format::Table if !outcome.changed => {
                    println!(
                        "{}/{} is unchanged (revision {})",
                        outcome.project, outcome.service, outcome.revision
                    )
                }
                Format::Table => {
                    let verb = if outcome.created {
                        "Created"
                    } else {
                        "Updated"
                    };
                    println!(
                        "{verb} {}/{} (revision {})",
                        outcome.project, outcome.service, outcome.revision
                    );
                    if let Some(diff) = &outcome.diff {
                        print!("{diff}");
                    }
                }
            }
        }
        ServiceCommand::List => {
            let project = ctx.project(&client)?;
            let mut items: Vec<ServiceSummary> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page: Page<ServiceSummary> = client.call(
                    paths::SERVICES_LIST,
                    &json!({"project": project, "cursor": cursor, "limit": 200}),
                )?;
                items.extend(page.items);
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            match ctx.output {
                Format::Json => output::json(&items),
                Format::Table => {
                    let rows: Vec<Vec<String>> = items
                        .iter()
                        .map(|s| {
                            let deployed = s
                                .latest
                                .iter()
                                .map(|d| format!("{}:{}", d.environment, d.state.as_str()))
                                .collect::<Vec<_>>()
                                .join(" ");
                            vec![
                                s.name.clone(),
                                s.revision.to_string(),
                                if deployed.is_empty() {
                                    "-".into()
                                } else {
                                    deployed
                                },
                            ]
                        })
                        .collect();
                    output::table(&["SERVICE", "REVISION", "DEPLOYMENTS"], &rows);
                }
            }
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct DeployArgs {
    #[arg(long, short = 's')]
    service: String,
    #[arg(long, short = 'e')]
    env: String,
    /// Deploy this image as a new release; without it, the service is built from its repository
    /// (the spec's build.source.git) and deployed when the build succeeds.
    #[arg(long)]
    image: Option<String>,
    /// Wait until the rollout ends, showing its progress.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
}

pub fn deploy(ctx: &Context, args: DeployArgs) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    if args.image.is_none() {
        // From source: the same pipeline a push runs (build, release, then this deployment).
        let build = BuildArgs {
            service: args.service,
            env: args.env,
            git_ref: None,
            wait: args.wait,
            timeout: args.timeout,
        };
        return run_build(ctx, &client, &project, build);
    }
    let d: DeploymentSummary = client.call(
        paths::DEPLOY,
        &json!({"project": project, "service": args.service, "environment": args.env, "image": args.image}),
    )?;
    if ctx.output == Format::Table {
        println!(
            "Deployment #{} of {} to {}: {} ({})",
            d.id,
            d.service,
            d.environment,
            d.state.as_str(),
            d.image
        );
    }
    if !args.wait {
        if ctx.output == Format::Json {
            output::json(&d);
        }
        return Ok(());
    }
    follow_deployment(ctx, &client, &project, d.id, args.timeout)
}

/// Prints a deployment's steps and analyses as they happen, until it ends; exit 1 unless it
/// succeeded.
fn follow_deployment(
    ctx: &Context,
    client: &Client,
    project: &str,
    id: i64,
    timeout: u64,
) -> Result<(), Failure> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
    // What was printed for each step, so that only changes are shown.
    let mut shown: std::collections::BTreeMap<i32, String> = Default::default();
    let mut analyses = 0;
    // What holds it (approvals, a freeze), said once each time it changes.
    let mut waiting_for = None;
    loop {
        let now: DeploymentDetail = client.call(
            paths::DEPLOYMENT_GET,
            &json!({"project": project, "id": id}),
        )?;
        if ctx.output == Format::Table {
            for step in &now.steps {
                let line = step_line(step);
                if shown.get(&step.seq) != Some(&line) {
                    println!("  {line}");
                    shown.insert(step.seq, line);
                }
            }
            for a in now.analyses.iter().skip(analyses) {
                println!("    {}", analysis_line(a));
            }
            analyses = now.analyses.len();
        }
        let summary = &now.deployment;
        let held = matches!(
            summary.state,
            enclii_api::DeploymentState::AwaitingApproval | enclii_api::DeploymentState::Pending
        )
        .then(|| summary.state_reason.clone())
        .flatten();
        if ctx.output == Format::Table && held.is_some() && held != waiting_for {
            println!("  {}", held.as_deref().unwrap_or_default());
        }
        waiting_for = held;
        if summary.state.is_terminal() {
            if ctx.output == Format::Json {
                output::json(&now);
            } else {
                println!(
                    "Deployment #{} {}{}",
                    summary.id,
                    summary.state.as_str(),
                    summary
                        .state_reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
            }
            return match summary.state {
                enclii_api::DeploymentState::Succeeded => Ok(()),
                state => Err(Failure::new(
                    1,
                    format!("deployment #{} ended {}", summary.id, state.as_str()),
                )),
            };
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::new(
                6,
                format!(
                    "gave up waiting after {timeout}s; the deployment is still {}",
                    summary.state.as_str()
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[derive(Args)]
pub struct BuildArgs {
    #[arg(long, short = 's')]
    service: String,
    /// The environment the build deploys to when it succeeds.
    #[arg(long, short = 'e')]
    env: String,
    /// A branch or commit (default: the spec's branch).
    #[arg(long = "ref")]
    git_ref: Option<String>,
    /// Follow the build's log, then its deployment, until both end.
    #[arg(long)]
    wait: bool,
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

pub fn build(ctx: &Context, args: BuildArgs) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    run_build(ctx, &client, &project, args)
}

fn run_build(
    ctx: &Context,
    client: &Client,
    project: &str,
    args: BuildArgs,
) -> Result<(), Failure> {
    let b: BuildSummary = client.call(
        paths::BUILDS_CREATE,
        &json!({"project": project, "service": args.service, "environment": args.env, "git_ref": args.git_ref}),
    )?;
    if ctx.output == Format::Table {
        println!(
            "Build #{} of {} ({} at {}) queued; it deploys to {} when it succeeds.",
            b.id, b.service, b.git_repository, b.git_ref, b.environment
        );
    }
    if !args.wait {
        if ctx.output == Format::Json {
            output::json(&b);
        }
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.timeout);
    let mut streamed = false;
    loop {
        let page: Page<BuildSummary> = client.call(
            paths::BUILDS_LIST,
            &json!({"project": project, "service": b.service, "limit": 50}),
        )?;
        let now = page
            .items
            .into_iter()
            .find(|x| x.id == b.id)
            .ok_or_else(|| Failure::new(5, "the build disappeared"))?;
        if now.state == "running" && !streamed && ctx.output == Format::Table {
            // The log until the build ends (the stream closes with the pod's output).
            streamed = true;
            let path = format!("/api/builds/{project}/{}/logs?follow=true", b.id);
            let _ = client.stream_to(&path, &mut std::io::stdout().lock());
        }
        match now.state.as_str() {
            "queued" | "running" => {}
            "succeeded" => {
                if ctx.output == Format::Table {
                    println!(
                        "Build #{} succeeded: {}@{}",
                        now.id,
                        now.image.clone().unwrap_or_default(),
                        now.image_digest.clone().unwrap_or_default()
                    );
                }
                return match now.deployment_id {
                    Some(id) => follow_deployment(ctx, client, project, id, args.timeout),
                    None => Ok(()),
                };
            }
            other => {
                return Err(Failure::new(
                    1,
                    format!(
                        "build #{} ended {other}: {}",
                        now.id,
                        now.state_reason.unwrap_or_default()
                    ),
                ));
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::new(
                6,
                format!("gave up waiting after {}s", args.timeout),
            ));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[derive(Subcommand)]
pub enum BuildsCommand {
    /// Recent builds (the default).
    List {
        #[arg(long, short = 's')]
        service: Option<String>,
    },
    /// A build's log; `-f` follows it while it runs.
    Logs {
        id: i64,
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Cancel a queued or running build.
    Cancel { id: i64 },
}

pub fn builds(ctx: &Context, command: BuildsCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    match command {
        BuildsCommand::List { service } => {
            let page: Page<BuildSummary> = client.call(
                paths::BUILDS_LIST,
                &json!({"project": project, "service": service}),
            )?;
            match ctx.output {
                Format::Json => output::json(&page.items),
                Format::Table => {
                    let rows: Vec<Vec<String>> = page
                        .items
                        .iter()
                        .map(|b| {
                            vec![
                                b.id.to_string(),
                                b.service.clone(),
                                b.environment.clone(),
                                b.state.clone(),
                                b.git_ref.chars().take(12).collect(),
                                b.deployment_id.map(|d| format!("#{d}")).unwrap_or_default(),
                            ]
                        })
                        .collect();
                    output::table(
                        &["ID", "SERVICE", "ENV", "STATE", "REF", "DEPLOYMENT"],
                        &rows,
                    );
                }
            }
            Ok(())
        }
        BuildsCommand::Logs { id, follow } => client.stream_to(
            &format!("/api/builds/{project}/{id}/logs?follow={follow}"),
            &mut std::io::stdout().lock(),
        ),
        BuildsCommand::Cancel { id } => {
            let b: BuildSummary =
                client.call(paths::BUILDS_CANCEL, &json!({"project": project, "id": id}))?;
            match ctx.output {
                Format::Json => output::json(&b),
                Format::Table => println!("Build #{}: {}", b.id, b.state),
            }
            Ok(())
        }
    }
}

pub fn deliveries(ctx: &Context) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let list: Vec<Delivery> = client.call(paths::DELIVERIES_LIST, &json!({"project": project}))?;
    match ctx.output {
        Format::Json => output::json(&list),
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    vec![
                        d.received_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        d.event.clone(),
                        d.outcome.clone(),
                        d.reason.clone(),
                        d.builds
                            .iter()
                            .map(|b| format!("#{} {}", b.build, b.state))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            output::table(&["RECEIVED", "EVENT", "OUTCOME", "WHY", "BUILDS"], &rows);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum ReposCommand {
    /// Connect a repository (or give it a new webhook secret); prints the webhook to add in GitHub.
    Connect { url: String },
    /// Repositories connected to the project.
    List,
}

pub fn repos(ctx: &Context, command: ReposCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    match command {
        ReposCommand::Connect { url } => {
            let r: Repository = client.call(
                paths::REPOSITORIES_CONNECT,
                &json!({"project": project, "url": url}),
            )?;
            match ctx.output {
                Format::Json => output::json(&r),
                Format::Table => {
                    println!(
                        "Connected {} to {project}. In GitHub: Settings → Webhooks → Add webhook:",
                        r.url
                    );
                    println!("  Payload URL:  {}", r.webhook_url);
                    println!("  Content type: application/json");
                    println!("  Secret:       {}", r.secret.unwrap_or_default());
                    println!("  Events:       Pushes, and Pull requests (for previews)");
                    println!(
                        "The secret is shown this once; `enclii repos connect` again makes a new one."
                    );
                }
            }
        }
        ReposCommand::List => {
            let list: Vec<Repository> =
                client.call(paths::REPOSITORIES_LIST, &json!({"project": project}))?;
            match ctx.output {
                Format::Json => output::json(&list),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|r| vec![r.url.clone(), r.webhook_url.clone()])
                        .collect();
                    output::table(&["REPOSITORY", "WEBHOOK"], &rows);
                }
            }
        }
    }
    Ok(())
}

/// `canary 10%  succeeded  passed after 60s at this weight`
fn step_line(step: &DeploymentStep) -> String {
    let weight = match (step.kind.as_str(), step.weight) {
        ("canary" | "rollout", Some(w)) => format!(" {w}%"),
        _ => String::new(),
    };
    format!("{}{weight}: {} {}", step.kind, step.state, step.message)
        .trim_end()
        .to_owned()
}

fn analysis_line(a: &CanaryAnalysis) -> String {
    let rate = a
        .error_rate
        .map(|r| format!("{r:.2}% errors"))
        .unwrap_or_else(|| "no data".into());
    let requests = a
        .requests
        .map(|r| format!("{r:.0} requests"))
        .unwrap_or_else(|| "no requests".into());
    format!(
        "analysis #{} at {}%: {rate}, {requests}: {} ({})",
        a.run, a.weight, a.decision, a.detail
    )
}

/// One deployment: its steps, each canary analysis, and how traffic was split.
pub fn show_deployment(ctx: &Context, id: i64) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let d: DeploymentDetail = client.call(
        paths::DEPLOYMENT_GET,
        &json!({"project": project, "id": id}),
    )?;
    if ctx.output == Format::Json {
        output::json(&d);
        return Ok(());
    }
    let s = &d.deployment;
    println!(
        "Deployment #{} of {} to {}: {}{}",
        s.id,
        s.service,
        s.environment,
        s.state.as_str(),
        s.state_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    println!("  image: {}", s.image);
    println!("  strategy: {}", s.strategy);
    if let Some(split) = &d.traffic_split {
        println!("  traffic: {split}");
    }
    if let Some(action) = &d.requested_action {
        println!("  requested: {action} (the driver acts on it at its next analysis)");
    }
    if let Some(o) = &d.promoted_from {
        println!(
            "  promoted from: {} (deployment #{}), the same release",
            o.environment, o.deployment
        );
    }
    if let Some(a) = &d.approval {
        println!(
            "  approvals: {} required from {} or higher",
            a.required, a.approver_role
        );
        for x in &a.decisions {
            println!(
                "    {} by {} ({}){}",
                if x.approved { "approved" } else { "rejected" },
                x.by,
                x.role,
                if x.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", x.reason)
                }
            );
        }
    }
    if let Some(f) = &d.forced {
        println!("  forced through a freeze by {f}");
    }
    for step in &d.steps {
        println!("  {}", step_line(step));
        for a in d.analyses.iter().filter(|a| a.step_seq == step.seq) {
            println!("    {}", analysis_line(a));
        }
    }
    Ok(())
}

/// `promote` or `abort` a canary in progress.
pub fn control_deployment(ctx: &Context, id: i64, action: &str) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let path = if action == "promote" {
        paths::PROMOTE
    } else {
        paths::ABORT
    };
    let d: DeploymentSummary = client.call(path, &json!({"project": project, "id": id}))?;
    match ctx.output {
        Format::Json => output::json(&d),
        Format::Table => println!(
            "Asked deployment #{} to {action}; its driver acts at the next analysis (`enclii deployment {}` shows it).",
            d.id, d.id
        ),
    }
    Ok(())
}

#[derive(Args)]
pub struct PromoteArgs {
    /// A canary in progress to promote to 100% (without --from/--to).
    id: Option<i64>,
    #[arg(long, short = 's', requires_all = ["from", "to"], conflicts_with = "id")]
    service: Option<String>,
    /// The environment whose running release is promoted.
    #[arg(long, requires = "service")]
    from: Option<String>,
    /// The environment it is deployed to, through its own rollout, approvals and freezes.
    #[arg(long, requires = "service")]
    to: Option<String>,
    /// Wait until the promotion's rollout ends, showing its progress.
    #[arg(long)]
    wait: bool,
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
}

pub fn promote(ctx: &Context, args: PromoteArgs) -> Result<(), Failure> {
    let (service, from, to) = match (args.id, args.service, args.from, args.to) {
        (Some(id), None, None, None) => return control_deployment(ctx, id, "promote"),
        (None, Some(s), Some(f), Some(t)) => (s, f, t),
        _ => {
            return Err(Failure::new(
                2,
                "promote a canary (`enclii promote ID`) or a release (`enclii promote --service S --from staging --to production`)",
            ));
        }
    };
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let d: DeploymentSummary = client.call(
        paths::PROMOTIONS_CREATE,
        &json!({"project": project, "service": service, "from": from, "to": to}),
    )?;
    if ctx.output == Format::Table {
        println!(
            "Deployment #{} promotes {}'s release of {} to {}: {}{} ({})",
            d.id,
            from,
            d.service,
            d.environment,
            d.state,
            d.state_reason
                .as_deref()
                .map(|r| format!(", {r}"))
                .unwrap_or_default(),
            d.image
        );
    }
    if !args.wait {
        if ctx.output == Format::Json {
            output::json(&d);
        }
        return Ok(());
    }
    follow_deployment(ctx, &client, &project, d.id, args.timeout)
}

#[derive(Subcommand)]
pub enum DeploymentsCommand {
    /// Approve a deployment awaiting approval (not your own).
    Approve {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a deployment awaiting approval: it ends, rejected.
    Reject {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Let a deployment held by a freeze window through (platform admins; audited).
    Force {
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

pub fn decide(ctx: &Context, cmd: DeploymentsCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let (path, body) = match &cmd {
        DeploymentsCommand::Approve { id, reason } => (
            paths::APPROVE,
            json!({"project": project, "id": id, "reason": reason}),
        ),
        DeploymentsCommand::Reject { id, reason } => (
            paths::REJECT,
            json!({"project": project, "id": id, "reason": reason}),
        ),
        DeploymentsCommand::Force { id, reason } => (
            paths::FORCE,
            json!({"project": project, "id": id, "reason": reason}),
        ),
    };
    let d: DeploymentSummary = client.call(path, &body)?;
    match ctx.output {
        Format::Json => output::json(&d),
        Format::Table => println!(
            "Deployment #{}: {}{}",
            d.id,
            d.state,
            d.state_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum EnvironmentsCommand {
    /// Each environment's approvals, freeze windows, the freeze in force and what waits.
    List,
    /// Require approvals for deployments to an environment.
    Set {
        name: String,
        /// How many approvals (0 to 10; 0: none).
        #[arg(long)]
        approvals: Option<i32>,
        /// The weakest role that may approve: developer, admin or owner.
        #[arg(long)]
        approver_role: Option<String>,
    },
    /// Freeze windows: times an environment takes no new deployments (rollbacks still go).
    #[command(subcommand)]
    Freeze(FreezeCommand),
}

#[derive(Subcommand)]
pub enum FreezeCommand {
    /// Add a recurring (`--cron … --duration …`) or one-off (`--from … --until …`) window.
    Add {
        environment: String,
        /// Cron schedule of each start, on the wall clock of --tz (`0 16 * * 5`: Fridays 16:00).
        #[arg(long, requires = "duration", conflicts_with_all = ["from", "until"])]
        cron: Option<String>,
        /// How long each occurrence lasts: `64h`, `90m`, `2d`, `1h30m`.
        #[arg(long)]
        duration: Option<String>,
        /// Start of a one-off window (RFC 3339: 2026-12-24T00:00:00+01:00).
        #[arg(long, requires = "until")]
        from: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// IANA time zone (Europe/Berlin); UTC by default.
        #[arg(long, default_value = "UTC")]
        tz: String,
        #[arg(long)]
        reason: String,
    },
    List,
    Remove {
        id: String,
    },
}

/// `64h`, `90m`, `2d`, `1h30m` in minutes.
pub(crate) fn duration_minutes(text: &str) -> Result<i64, Failure> {
    let bad = || {
        Failure::new(
            2,
            format!("`{text}` is not a duration: write 64h, 90m, 2d or 1h30m"),
        )
    };
    let mut total = 0i64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += n * match c {
            'd' => 24 * 60,
            'h' => 60,
            'm' => 1,
            _ => return Err(bad()),
        };
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

pub fn environments(ctx: &Context, cmd: EnvironmentsCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    match cmd {
        EnvironmentsCommand::Set {
            name,
            approvals,
            approver_role,
        } => {
            let e: EnvironmentPolicy = client.call(
                paths::ENVIRONMENTS_SET,
                &json!({"project": project, "environment": name, "approvals": approvals, "approver_role": approver_role}),
            )?;
            match ctx.output {
                Format::Json => output::json(&e),
                Format::Table => println!(
                    "{}: deployments need {} approval(s) from {} or higher",
                    e.name, e.required_approvals, e.approver_role
                ),
            }
        }
        EnvironmentsCommand::List | EnvironmentsCommand::Freeze(FreezeCommand::List) => {
            let list: Vec<EnvironmentPolicy> =
                client.call(paths::ENVIRONMENTS_LIST, &json!({"project": project}))?;
            if ctx.output == Format::Json {
                output::json(&list);
                return Ok(());
            }
            for e in list {
                println!(
                    "{} ({}): {} approval(s) from {} or higher",
                    e.name, e.namespace, e.required_approvals, e.approver_role
                );
                if let Some(f) = &e.active_freeze {
                    println!("  FROZEN until {}: {}", f.until.to_rfc3339(), f.reason);
                }
                for w in &e.freezes {
                    println!("  freeze {} {}: {}", w.id, w.description, w.reason);
                }
                for d in &e.waiting {
                    println!(
                        "  #{} {} {}",
                        d.id,
                        d.service,
                        d.state_reason
                            .clone()
                            .unwrap_or_else(|| d.state.to_string())
                    );
                }
            }
        }
        EnvironmentsCommand::Freeze(FreezeCommand::Add {
            environment,
            cron,
            duration,
            from,
            until,
            tz,
            reason,
        }) => {
            let duration = duration.as_deref().map(duration_minutes).transpose()?;
            let w: FreezeWindow = client.call(
                paths::FREEZES_ADD,
                &json!({"project": project, "environment": environment, "cron": cron,
                        "duration_minutes": duration, "from": from, "until": until,
                        "timezone": tz, "reason": reason}),
            )?;
            match ctx.output {
                Format::Json => output::json(&w),
                Format::Table => println!(
                    "Added freeze {} to {}: {} ({})",
                    w.id, w.environment, w.description, w.reason
                ),
            }
        }
        EnvironmentsCommand::Freeze(FreezeCommand::Remove { id }) => {
            let () = client.call(
                paths::FREEZES_REMOVE,
                &json!({"project": project, "id": id}),
            )?;
            if ctx.output == Format::Table {
                println!("Removed freeze {id}");
            }
        }
    }
    Ok(())
}

pub fn deployments(ctx: &Context, service: Option<String>) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let page: Page<DeploymentSummary> = client.call(
        paths::DEPLOYMENTS_LIST,
        &json!({"project": project, "service": service}),
    )?;
    match ctx.output {
        Format::Json => output::json(&page.items),
        Format::Table => {
            let rows: Vec<Vec<String>> = page
                .items
                .iter()
                .map(|d| {
                    vec![
                        format!("#{}", d.id),
                        d.service.clone(),
                        d.environment.clone(),
                        d.state.as_str().into(),
                        d.image.clone(),
                    ]
                })
                .collect();
            output::table(&["ID", "SERVICE", "ENV", "STATE", "IMAGE"], &rows);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Set a variable: `NAME=VALUE`, or `NAME` alone to read the value from standard input (so that
    /// it stays out of the shell's history). Secret unless `--plain`.
    Set {
        assignment: String,
        #[arg(long, short = 's')]
        service: String,
        #[arg(long, short = 'e')]
        env: String,
        #[arg(long)]
        plain: bool,
    },
    /// List a service's variables in an environment (secret values are masked).
    List {
        #[arg(long, short = 's')]
        service: String,
        #[arg(long, short = 'e')]
        env: String,
    },
    /// Remove a variable.
    Unset {
        name: String,
        #[arg(long, short = 's')]
        service: String,
        #[arg(long, short = 'e')]
        env: String,
    },
}

pub fn secrets(ctx: &Context, cmd: SecretsCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    match cmd {
        SecretsCommand::Set {
            assignment,
            service,
            env,
            plain,
        } => {
            let (name, value) = match assignment.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|e| Failure::new(3, format!("cannot read the value: {e}")))?;
                    (assignment, line.trim_end_matches(['\n', '\r']).to_owned())
                }
            };
            let v: enclii_api::EnvVar = client.call(
                paths::ENV_SET,
                &json!({"project": project, "service": service, "environment": env, "name": name, "value": value, "secret": !plain}),
            )?;
            println!("Set {} ({}) for {service} in {env}", v.name, v.kind);
        }
        SecretsCommand::List { service, env } => {
            let list: Vec<enclii_api::EnvVar> = client.call(
                paths::ENV_LIST,
                &json!({"project": project, "service": service, "environment": env}),
            )?;
            match ctx.output {
                Format::Json => output::json(&list),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|v| {
                            let shown = match (&v.value, &v.secret_ref) {
                                (_, Some((n, k))) => format!("secret {n}/{k}"),
                                (Some(value), None) => value.clone(),
                                (None, None) => "••••••••".into(),
                            };
                            vec![v.name.clone(), v.kind.clone(), shown]
                        })
                        .collect();
                    output::table(&["NAME", "KIND", "VALUE"], &rows);
                }
            }
        }
        SecretsCommand::Unset { name, service, env } => {
            let () = client.call(
                paths::ENV_UNSET,
                &json!({"project": project, "service": service, "environment": env, "name": name}),
            )?;
            println!("Removed {name} from {service} in {env}");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct RollbackArgs {
    #[arg(long, short = 's')]
    service: String,
    #[arg(long, short = 'e')]
    env: String,
    /// The release id to return to (default: the release that ran before the current one).
    #[arg(long)]
    release: Option<String>,
}

pub fn rollback(ctx: &Context, args: RollbackArgs) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let d: DeploymentSummary = client.call(
        paths::ROLLBACK,
        &json!({"project": project, "service": args.service, "environment": args.env, "release": args.release}),
    )?;
    match ctx.output {
        Format::Json => output::json(&d),
        Format::Table => println!(
            "Rollback #{} of {} in {}: {} ({})",
            d.id,
            d.service,
            d.environment,
            d.state.as_str(),
            d.image
        ),
    }
    Ok(())
}

#[derive(Args)]
pub struct LogsArgs {
    #[arg(long, short = 's')]
    service: String,
    #[arg(long, short = 'e')]
    env: String,
    /// Keep following new lines.
    #[arg(long, short = 'f')]
    follow: bool,
    /// How many past lines per pod.
    #[arg(long, default_value_t = 100)]
    tail: u32,
}

pub fn logs(ctx: &Context, args: LogsArgs) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let path = format!(
        "/api/logs/{project}/{}/{}?tail={}&follow={}",
        args.service, args.env, args.tail, args.follow
    );
    client.stream_to(&path, &mut std::io::stdout().lock())
}

pub fn status(ctx: &Context, service: String) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let list: Vec<enclii_api::ServiceStatus> = client.call(
        paths::STATUS,
        &json!({"project": project, "service": service}),
    )?;
    match ctx.output {
        Format::Json => output::json(&list),
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    if !s.deployed {
                        return vec![
                            s.environment.clone(),
                            "-".into(),
                            "not deployed".into(),
                            "-".into(),
                        ];
                    }
                    vec![
                        s.environment.clone(),
                        format!("{}/{}", s.ready, s.desired),
                        s.progress.clone().unwrap_or_default(),
                        s.image.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(&["ENV", "READY", "PROGRESS", "IMAGE"], &rows);
        }
    }
    Ok(())
}

pub fn releases(ctx: &Context, service: String) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let page: Page<enclii_api::Release> = client.call(
        paths::RELEASES_LIST,
        &json!({"project": project, "service": service}),
    )?;
    match ctx.output {
        Format::Json => output::json(&page.items),
        Format::Table => {
            let rows: Vec<Vec<String>> = page
                .items
                .iter()
                .map(|r| {
                    vec![
                        r.id.chars().take(8).collect(),
                        r.created_at.format("%Y-%m-%d %H:%M").to_string(),
                        format!(
                            "{}{}",
                            r.image,
                            r.image_digest
                                .as_deref()
                                .map(|d| format!("@{}", &d[..19.min(d.len())]))
                                .unwrap_or_default()
                        ),
                        r.git_commit
                            .as_deref()
                            .map(|c| c.chars().take(12).collect())
                            .unwrap_or_default(),
                        if r.sbom_ref.is_some() {
                            "sbom+provenance".into()
                        } else {
                            "-".into()
                        },
                    ]
                })
                .collect();
            output::table(
                &["RELEASE", "CREATED", "IMAGE", "COMMIT", "ATTESTATIONS"],
                &rows,
            );
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum DomainsCommand {
    /// Add a custom domain to a service; prints the DNS record that proves it is yours.
    Add {
        hostname: String,
        #[arg(long, short = 's')]
        service: String,
        #[arg(long, short = 'e', default_value = "production")]
        env: String,
        /// A cert-manager ClusterIssuer, or `cloudflare` when Cloudflare terminates TLS.
        #[arg(long)]
        tls_issuer: Option<String>,
    },
    /// Check the domain's TXT record now; exit 1 while it is not verified.
    Verify { hostname: String },
    /// The project's custom domains.
    List,
    /// Stop routing a domain (at the next deployment).
    Remove { hostname: String },
}

pub fn domains(ctx: &Context, command: DomainsCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let show = |d: &enclii_api::Domain| {
        println!(
            "{} ({}/{}): {}",
            d.hostname,
            d.service,
            d.environment,
            if d.verified {
                "verified"
            } else {
                "not verified"
            }
        );
        if !d.verified {
            println!(
                "  add this DNS record:  {}  TXT  \"{}\"",
                d.txt_name, d.txt_value
            );
            if let Some(target) = &d.cname_target {
                println!("  and point the name:   {}  CNAME  {target}", d.hostname);
            }
            if let Some(e) = &d.last_check_error {
                println!("  last check: {e}");
            }
        }
    };
    match command {
        DomainsCommand::Add {
            hostname,
            service,
            env,
            tls_issuer,
        } => {
            let d: enclii_api::Domain = client.call(
                paths::DOMAINS_ADD,
                &json!({"project": project, "service": service, "environment": env, "hostname": hostname, "tls_issuer": tls_issuer}),
            )?;
            match ctx.output {
                Format::Json => output::json(&d),
                Format::Table => {
                    show(&d);
                    println!("then: enclii domains verify {}", d.hostname);
                }
            }
            Ok(())
        }
        DomainsCommand::Verify { hostname } => {
            let d: enclii_api::Domain = client.call(
                paths::DOMAINS_VERIFY,
                &json!({"project": project, "hostname": hostname}),
            )?;
            match ctx.output {
                Format::Json => output::json(&d),
                Format::Table => show(&d),
            }
            if d.verified {
                Ok(())
            } else {
                Err(Failure::new(
                    1,
                    format!("{} is not verified yet", d.hostname),
                ))
            }
        }
        DomainsCommand::List => {
            let list: Vec<enclii_api::Domain> =
                client.call(paths::DOMAINS_LIST, &json!({"project": project}))?;
            match ctx.output {
                Format::Json => output::json(&list),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|d| {
                            vec![
                                d.hostname.clone(),
                                d.service.clone(),
                                d.environment.clone(),
                                if d.verified {
                                    "verified".into()
                                } else {
                                    "not verified".into()
                                },
                            ]
                        })
                        .collect();
                    output::table(&["DOMAIN", "SERVICE", "ENV", "STATE"], &rows);
                }
            }
            Ok(())
        }
        DomainsCommand::Remove { hostname } => {
            let () = client.call(
                paths::DOMAINS_REMOVE,
                &json!({"project": project, "hostname": hostname}),
            )?;
            if ctx.output == Format::Table {
                println!("Removed {hostname}; the next deployment stops routing it.");
            }
            Ok(())
        }
    }
}

#[derive(Args)]
pub struct RunArgs {
    #[arg(long, short = 's')]
    service: String,
    #[arg(long, short = 'e')]
    env: String,
    /// The command and its arguments (after `--`), run without a shell.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Runs a command once from the service's running release, streams its log, and returns its exit
/// code (the CLI's own failures keep their codes, see `main.rs`).
pub fn run(ctx: &Context, args: RunArgs) -> Result<u8, Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let run: enclii_api::RunSummary = client.call(
        paths::RUNS_CREATE,
        &json!({"project": project, "service": args.service, "environment": args.env, "command": args.command}),
    )?;
    eprintln!(
        "run {} of {} in {}: {} (Job {})",
        run.id,
        run.service,
        run.environment,
        run.command.join(" "),
        run.job
    );
    client.stream_to(
        &format!("/api/runs/{project}/{}/logs?follow=true", run.id),
        &mut std::io::stdout().lock(),
    )?;
    // The log ends when the container does; the Job's outcome follows a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let now: enclii_api::RunSummary =
            client.call(paths::RUNS_GET, &json!({"project": project, "id": run.id}))?;
        if now.state != "running" {
            let code = now.exit_code.unwrap_or(1);
            if code != 0 {
                eprintln!(
                    "run {} {} (exit code {code})",
                    run.id,
                    now.state.replace('_', " ")
                );
            }
            return Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(1));
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::new(
                6,
                format!(
                    "run {} has not ended; follow it with `enclii jobs` or the dashboard",
                    run.id
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// A service's scheduled jobs: schedule, last run, next run, and what needs attention.
    List {
        #[arg(long, short = 's')]
        service: String,
        #[arg(long, short = 'e')]
        env: Option<String>,
    },
}

pub fn jobs(ctx: &Context, command: JobsCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let JobsCommand::List { service, env } = command;
    let list: Vec<enclii_api::ScheduledJobStatus> = client.call(
        paths::JOBS_LIST,
        &json!({"project": project, "service": service, "environment": env}),
    )?;
    match ctx.output {
        Format::Json => output::json(&list),
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|j| {
                    let last = j
                        .last_run
                        .as_ref()
                        .map(|r| {
                            format!(
                                "{} {}{}",
                                r.result,
                                r.started_at
                                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                                    .unwrap_or_default(),
                                r.duration_secs
                                    .map(|d| format!(" ({d:.1}s)"))
                                    .unwrap_or_default()
                            )
                        })
                        .unwrap_or_else(|| "never".into());
                    vec![
                        j.environment.clone(),
                        j.name.clone(),
                        format!("{} {}", j.schedule, j.timezone),
                        last,
                        j.next_run.clone().unwrap_or_else(|| "-".into()),
                        if j.attention.is_empty() {
                            "ok".into()
                        } else {
                            j.attention.clone()
                        },
                    ]
                })
                .collect();
            output::table(
                &["ENV", "JOB", "SCHEDULE", "LAST RUN", "NEXT RUN", "STATUS"],
                &rows,
            );
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum PreviewsCommand {
    /// The project's pull request previews: state, URLs, commit, age, last event.
    List,
    /// Wake a sleeping preview (its services back to one replica).
    Wake {
        /// The pull request's number.
        pr: u32,
        /// Wait until each of its services has a ready replica again (exit 1 after two minutes).
        #[arg(long)]
        wait: bool,
    },
    /// Delete a preview now (namespace, deployments, environment), as closing its pull request would.
    Delete { pr: u32 },
}

fn preview_rows(list: &[enclii_api::Preview]) -> Vec<Vec<String>> {
    let now = chrono::Utc::now();
    list.iter()
        .map(|p| {
            let age = now.signed_duration_since(p.created_at);
            let age = if age.num_hours() >= 24 {
                format!("{}d", age.num_days())
            } else if age.num_minutes() >= 60 {
                format!("{}h", age.num_hours())
            } else {
                format!("{}m", age.num_minutes().max(0))
            };
            let urls = p
                .services
                .iter()
                .map(|s| match &s.url {
                    Some(u) => format!("{} {u}", s.name),
                    None => s.name.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                format!("#{}", p.pr_number),
                p.state.as_str().to_owned(),
                p.head_sha.chars().take(12).collect(),
                age,
                urls,
                p.last_event.clone(),
            ]
        })
        .collect()
}

pub fn previews(ctx: &Context, command: PreviewsCommand) -> Result<(), Failure> {
    let client = ctx.client()?;
    let project = ctx.project(&client)?;
    let show = |list: Vec<enclii_api::Preview>| match ctx.output {
        Format::Json => output::json(&list),
        Format::Table => output::table(
            &["PR", "STATE", "COMMIT", "AGE", "SERVICES", "LAST EVENT"],
            &preview_rows(&list),
        ),
    };
    match command {
        PreviewsCommand::List => {
            let list: Vec<enclii_api::Preview> =
                client.call(paths::PREVIEWS_LIST, &json!({"project": project}))?;
            show(list);
        }
        PreviewsCommand::Wake { pr, wait } => {
            let preview: enclii_api::Preview =
                client.call(paths::PREVIEWS_WAKE, &json!({"project": project, "pr": pr}))?;
            let environment = preview.environment.clone();
            let services: Vec<String> = preview.services.iter().map(|s| s.name.clone()).collect();
            show(vec![preview]);
            if wait {
                // The live status the Overview tab shows, per service, until each is serving.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
                for service in services {
                    loop {
                        let status: Vec<enclii_api::ServiceStatus> = client.call(
                            paths::STATUS,
                            &json!({"project": project, "service": service}),
                        )?;
                        let ready = status
                            .iter()
                            .find(|s| s.environment == environment)
                            .map_or(0, |s| s.ready);
                        if ready > 0 {
                            eprintln!("{service}: {ready} ready");
                            break;
                        }
                        if std::time::Instant::now() > deadline {
                            return Err(Failure::new(
                                1,
                                format!(
                                    "{service} in {environment} has no ready replica after two minutes"
                                ),
                            ));
                        }
                        std::thread::sleep(std::time::Duration::from_millis(500));
                    }
                }
            }
        }
        PreviewsCommand::Delete { pr } => {
            let preview: enclii_api::Preview = client.call(
                paths::PREVIEWS_DELETE,
                &json!({"project": project, "pr": pr}),
            )?;
            show(vec![preview]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_minutes() {
        for (text, minutes) in [("64h", 3840), ("90m", 90), ("2d", 2880), ("1h30m", 90)] {
            assert_eq!(duration_minutes(text).ok(), Some(minutes), "{text}");
        }
        for bad in ["", "64", "h", "1x", "0m", "1.5h"] {
            assert!(duration_minutes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        crate::Cli::command().debug_assert();
    }
}
