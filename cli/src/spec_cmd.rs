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
}

pub fn run(cmd: SpecCommand) -> ExitCode {
    match cmd {
        SpecCommand::Validate { files } => validate(&files),
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
