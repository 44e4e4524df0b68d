//! `enclii`: the command line for Enclii.
//!
//! Exit codes scripts can rely on: 0 success, 1 the input was refused (an invalid spec), 2 usage
//! errors (from clap), 3 a file could not be read.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod spec_cmd;

#[derive(Parser)]
#[command(
    name = "enclii",
    version,
    about = "Deploy services to your own Kubernetes cluster with Enclii"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with service spec files offline.
    #[command(subcommand)]
    Spec(spec_cmd::SpecCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Spec(cmd) => spec_cmd::run(cmd),
    }
}
