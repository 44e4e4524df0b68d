//! `enclii spec …`: validation and the JSON Schema, with no server involved.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum SpecCommand {
    /// Check spec files; prints one `FILE:LINE:COL: message` line per problem on stderr.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the service spec (for editors).
    Schema,
    /// Print the Kubernetes objects the service would get in an environment, as YAML documents.
    Render {
        file: PathBuf,
        /// The environment (production, staging, …).
        #[arg(long, short = 'e')]
        env: String,
        /// The image to run (default: a placeholder naming the service).
        #[arg(long)]
        image: Option<String>,
        /// The project (default: the spec's `metadata.project`).
        #[arg(long, short = 'p')]
        project: Option<String>,
    },
}

pub fn run(cmd: SpecCommand) -> ExitCode {
    match cmd {
        SpecCommand::Validate { files } => validate(&files),
        SpecCommand::Render {
            file,
            env,
            image,
            project,
        } => render(&file, &env, image.as_deref(), project.as_deref()),
        SpecCommand::Schema => {
            let text = serde_json::to_string_pretty(enclii_spec::schema()).unwrap_or_default();
            println!("{text}");
            ExitCode::SUCCESS
        }
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let mut worst = ExitCode::SUCCESS;
    for path in files {
        let name = path.display().to_string();
        let text = match read_limited(path) {
            Ok(text) => text,
            Err(message) => {
                let _ = writeln!(stderr, "{name}: {message}");
                worst = ExitCode::from(3);
                continue;
            }
        };
        match enclii_spec::parse(&text) {
            Ok(file) => {
                for w in &file.warnings {
                    let _ = writeln!(stderr, "{}", w.located(&name));
                }
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    let _ = writeln!(stderr, "{}", d.located(&name));
                }
                if worst == ExitCode::SUCCESS {
                    worst = ExitCode::FAILURE;
                }
            }
        }
    }
    worst
}

fn render(path: &PathBuf, env: &str, image: Option<&str>, project: Option<&str>) -> ExitCode {
    let name = path.display().to_string();
    let text = match read_limited(path) {
        Ok(text) => text,
        Err(message) => {
            eprintln!("{name}: {message}");
            return ExitCode::from(3);
        }
    };
    let file = match enclii_spec::parse(&text) {
        Ok(file) => file,
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{}", d.located(&name));
            }
            return ExitCode::FAILURE;
        }
    };
    let Some(project) = project.or(file.service.metadata.project.as_deref()) else {
        eprintln!("{name}: the spec names no project; pass --project");
        return ExitCode::from(2);
    };
    // The namespace Switchyard gives the environment (engine/src/platform/projects.rs::
    // namespace_for, without a platform prefix): `--` separates project and environment.
    let namespace = format!("{project}--{env}");
    let placeholder = format!("registry.invalid/{}:unreleased", file.service.metadata.name);
    let target = enclii_spec::render::Target {
        project,
        environment: env,
        namespace: &namespace,
        image: image.unwrap_or(&placeholder),
        release: "unreleased",
        gateway: None,
        progress_deadline_secs: enclii_spec::render::DEFAULT_PROGRESS_DEADLINE_SECS,
    };
    for manifest in enclii_spec::render::render(&file, &target) {
        print!("{}", enclii_spec::yaml::emit(&manifest.body));
    }
    ExitCode::SUCCESS
}

/// Reads a spec, refusing anything larger than the parser accepts before loading it all.
fn read_limited(path: &PathBuf) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > enclii_spec::MAX_SPEC_BYTES as u64 {
        return Err(format!(
            "1:1: the file is {} bytes; specs are limited to {} KiB",
            meta.len(),
            enclii_spec::MAX_SPEC_BYTES / 1024
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|e| format!("1:1: the file is not UTF-8 text ({e})"))
}
