//! `switchyard bootstrap --kubeconfig FILE --image REF`: the command line of
//! `switchyard_engine::bootstrap` (docs/self-hosting.md). Configuration as for the server
//! (`ENCLII_*`, at least `ENCLII_DATABASE__URL`); the spec is the one built into the binary
//! (`deploy/enclii/switchyard.yaml`) unless `--spec` names another.

use std::time::Duration;

use switchyard_engine::bootstrap::{self, Options};
use switchyard_engine::config::ClusterMode;
use switchyard_engine::{Engine, Settings, db, deploy};

pub const COMMAND: &str = "bootstrap";
const SPEC: &str = include_str!("../../deploy/enclii/switchyard.yaml");
const USAGE: &str = "usage: switchyard bootstrap --kubeconfig FILE --image REF [--spec FILE] [--environment NAME] [--timeout-secs N]";

struct Args {
    kubeconfig: String,
    image: String,
    spec: Option<String>,
    environment: String,
    timeout: Duration,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let (mut kubeconfig, mut image, mut spec) = (None, None, None);
    let mut environment = "production".to_owned();
    let mut timeout = Duration::from_secs(600);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--kubeconfig" => kubeconfig = Some(value()?),
            "--image" => image = Some(value()?),
            "--spec" => spec = Some(value()?),
            "--environment" => environment = value()?,
            "--timeout-secs" => {
                let v = value()?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout-secs: `{v}` is not a number of seconds"))?;
                timeout = Duration::from_secs(secs);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Args {
        kubeconfig: kubeconfig.ok_or("--kubeconfig is required")?,
        image: image.ok_or("--image is required")?,
        spec,
        environment,
        timeout,
    })
}

/// Runs the command; its own exit codes: 0 done (or nothing to do), 1 failed, 2 bad usage or
/// configuration.
pub async fn main(args: &[String]) -> i32 {
    let args = match parse(args) {
        Ok(args) => args,
        Err(why) => {
            eprintln!("switchyard bootstrap: {why}\n{USAGE}");
            return 2;
        }
    };
    let spec = match &args.spec {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("switchyard bootstrap: cannot read {path}: {e}");
                return 2;
            }
        },
        None => SPEC.to_owned(),
    };
    let mut settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("switchyard bootstrap: {error}");
            return 2;
        }
    };
    crate::telemetry::init(&settings.log);
    settings.cluster.mode = ClusterMode::Kube;
    settings.cluster.kubeconfig = Some(args.kubeconfig.clone());
    let client = match deploy::connect(&settings.cluster).await {
        Ok(client) => client,
        Err(why) => {
            eprintln!("switchyard bootstrap: {why}");
            return 2;
        }
    };
    let pool = match db::connect(&settings.database).await {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("switchyard bootstrap: {error}");
            return 1;
        }
    };
    let engine = match Engine::new(pool, settings) {
        Ok(engine) => engine,
        Err(why) => {
            eprintln!("switchyard bootstrap: {why}");
            return 2;
        }
    };
    let options = Options {
        spec: &spec,
        image: &args.image,
        environment: &args.environment,
        timeout: args.timeout,
    };
    let mut say = |line: String| println!("{line}");
    match bootstrap::run(&engine, client, &options, &mut say).await {
        Ok(outcome) => {
            println!(
                "{}",
                if outcome.changed() {
                    "bootstrap done"
                } else {
                    "bootstrap done: no change"
                }
            );
            0
        }
        Err(error) => {
            eprintln!("switchyard bootstrap: {error}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_kubeconfig_and_image_are_required_and_the_rest_has_defaults() {
        let a = parse(&args(&["--kubeconfig", "k", "--image", "r/s:1"])).unwrap();
        assert_eq!((a.kubeconfig.as_str(), a.image.as_str()), ("k", "r/s:1"));
        assert_eq!(a.environment, "production");
        assert_eq!(a.timeout, Duration::from_secs(600));
        assert!(a.spec.is_none());
        assert_eq!(
            parse(&args(&["--image", "x"])).err().as_deref(),
            Some("--kubeconfig is required")
        );
        assert!(parse(&args(&["--kubeconfig"])).is_err());
        assert!(
            parse(&args(&[
                "--kubeconfig",
                "k",
                "--image",
                "i",
                "--timeout-secs",
                "soon"
            ]))
            .is_err()
        );
        assert!(parse(&args(&["--what"])).is_err());
    }
}
