//! `enclii`: the command line for Enclii.
//!
//! Exit codes scripts can rely on: 0 success; 1 the server or the spec refused the input; 2 usage
//! errors; 3 a local file could not be read; 4 not signed in or not allowed; 5 not found; 6 the
//! server could not be reached or failed. `enclii run` exits with its command's code once the
//! command ran (124 when it ran out of time).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod client;
mod commands;
mod config;
mod notifications_cmd;
mod output;
mod spec_cmd;

use output::Format;

#[derive(Parser)]
#[command(
    name = "enclii",
    version,
    about = "Deploy services to your own Kubernetes cluster with Enclii"
)]
pub struct Cli {
    /// Switchyard's address (default from the config file, else http://127.0.0.1:3000).
    #[arg(long, global = true, env = "ENCLII_SERVER")]
    server: Option<String>,
    /// The project to act on (default from the config file).
    #[arg(long, short = 'p', global = true, env = "ENCLII_PROJECT")]
    project: Option<String>,
    /// Output format of listings.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store an API token (created in the dashboard under Settings) for later commands.
    Login {
        /// The token; read from ENCLII_TOKEN or standard input when omitted, never from history.
        #[arg(long, env = "ENCLII_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Forget the stored token.
    Logout,
    /// Show who the stored token belongs to.
    Whoami,
    /// Projects.
    #[command(subcommand)]
    Project(commands::ProjectCommand),
    /// List projects (same as `project list`).
    Projects,
    /// Services.
    #[command(subcommand)]
    Service(commands::ServiceCommand),
    /// List services (same as `service list`).
    Services {
        #[command(subcommand)]
        command: Option<commands::ServicesCommand>,
    },
    /// Deploy a service to an environment: an image (`--image`), or built from its repository.
    Deploy(commands::DeployArgs),
    /// Build a service from its repository (a branch or commit); it deploys when it succeeds.
    Build(commands::BuildArgs),
    /// Builds: list, logs, cancel.
    Builds {
        #[command(subcommand)]
        command: Option<commands::BuildsCommand>,
    },
    /// GitHub webhook deliveries and what came of each.
    Deliveries,
    /// A service's releases: images, commits, SBOM and provenance.
    Releases {
        #[arg(long, short = 's')]
        service: String,
    },
    /// Custom domains: add, verify, list, remove.
    #[command(subcommand)]
    Domains(commands::DomainsCommand),
    /// Repositories connected for push-to-deploy.
    #[command(subcommand)]
    Repos(commands::ReposCommand),
    /// Live replica counts and the running image of a service, per environment.
    Status {
        #[arg(long, short = 's')]
        service: String,
    },
    /// A service's pod logs; `-f` keeps following.
    Logs(commands::LogsArgs),
    /// Run a command once from the service's running release (`-- CMD ARGS…`), with its
    /// variables and secrets; prints its log and exits with its exit code.
    Run(commands::RunArgs),
    /// Scheduled jobs: their last and next runs, failures and missed schedules.
    #[command(subcommand)]
    Jobs(commands::JobsCommand),
    /// Where the project's events go (Slack, Discord, a signed webhook, email), and how their
    /// deliveries went.
    #[command(subcommand)]
    Notifications(notifications_cmd::NotificationsCommand),
    /// Pull request previews: list, wake a sleeping one, delete one.
    #[command(subcommand)]
    Previews(commands::PreviewsCommand),
    /// Return a service to an earlier release.
    Rollback(commands::RollbackArgs),
    /// Environment variables and secrets of a service.
    #[command(subcommand)]
    Secrets(commands::SecretsCommand),
    /// One deployment: its steps, canary analyses and traffic split.
    Deployment { id: i64 },
    /// Promote: `promote ID` skips a canary's remaining analysis and rolls it out to 100%;
    /// `promote --service S --from staging --to production` deploys to production the exact
    /// release staging runs successfully (same digest, SBOM and provenance).
    Promote(commands::PromoteArgs),
    /// Take a canary away; the stable release serves all traffic again.
    Abort { id: i64 },
    /// Deployment history; `approve`, `reject` and `force` a waiting deployment.
    Deployments {
        #[arg(long)]
        service: Option<String>,
        #[command(subcommand)]
        command: Option<commands::DeploymentsCommand>,
    },
    /// Environments' gates: approvals (`set`) and freeze windows (`freeze add|list|remove`).
    Environments {
        #[command(subcommand)]
        command: Option<commands::EnvironmentsCommand>,
    },
    /// Work with service spec files offline.
    #[command(subcommand)]
    Spec(spec_cmd::SpecCommand),
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = commands::Context {
        server: cli.server,
        project: cli.project,
        output: cli.output,
    };
    let result = match cli.command {
        Command::Spec(cmd) => return spec_cmd::run(cmd),
        // The command's own exit code, or the CLI's when the run could not be followed.
        Command::Run(args) => match commands::run(&ctx, args) {
            Ok(code) => return ExitCode::from(code),
            Err(failure) => Err(failure),
        },
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "enclii", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Login { token } => commands::login(&ctx, token),
        Command::Logout => commands::logout(),
        Command::Whoami => commands::whoami(&ctx),
        Command::Project(cmd) => commands::project(&ctx, cmd),
        Command::Projects => commands::project(&ctx, commands::ProjectCommand::List),
        Command::Service(cmd) => commands::service(&ctx, cmd),
        Command::Services { command } => commands::service(
            &ctx,
            command
                .map(Into::into)
                .unwrap_or(commands::ServiceCommand::List),
        ),
        Command::Deploy(args) => commands::deploy(&ctx, args),
        Command::Build(args) => commands::build(&ctx, args),
        Command::Builds { command } => commands::builds(
            &ctx,
            command.unwrap_or(commands::BuildsCommand::List { service: None }),
        ),
        Command::Deliveries => commands::deliveries(&ctx),
        Command::Releases { service } => commands::releases(&ctx, service),
        Command::Domains(cmd) => commands::domains(&ctx, cmd),
        Command::Repos(cmd) => commands::repos(&ctx, cmd),
        Command::Deployments {
            command: Some(cmd), ..
        } => commands::decide(&ctx, cmd),
        Command::Deployments {
            service,
            command: None,
        } => commands::deployments(&ctx, service),
        Command::Environments { command } => {
            commands::environments(&ctx, command.unwrap_or(commands::EnvironmentsCommand::List))
        }
        Command::Deployment { id } => commands::show_deployment(&ctx, id),
        Command::Promote(args) => commands::promote(&ctx, args),
        Command::Abort { id } => commands::control_deployment(&ctx, id, "abort"),
        Command::Rollback(args) => commands::rollback(&ctx, args),
        Command::Logs(args) => commands::logs(&ctx, args),
        Command::Jobs(cmd) => commands::jobs(&ctx, cmd),
        Command::Notifications(cmd) => notifications_cmd::run(&ctx, cmd),
        Command::Previews(cmd) => commands::previews(&ctx, cmd),
        Command::Status { service } => commands::status(&ctx, service),
        Command::Secrets(cmd) => commands::secrets(&ctx, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("enclii: {}", failure.message);
            for line in &failure.details {
                eprintln!("{line}");
            }
            ExitCode::from(failure.code)
        }
    }
}
