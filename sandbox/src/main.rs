//! `enclii-nodes`: the node simulator of the local cluster (`run`), and the set-up of a fresh
//! cluster for Switchyard (`setup`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

const USAGE: &str = "usage:
  enclii-nodes run --kubeconfig FILE --pki DIR [--nodes 3] [--ready-delay-ms 1500] [--log-interval-ms 500] [--scrape-targets FILE] [--network 10.N.0.0/16]
  enclii-nodes setup --kubeconfig FILE …  (see `enclii-nodes setup --help`)";

#[derive(Debug)]
struct RunArgs {
    kubeconfig: PathBuf,
    options: enclii_sandbox::Options,
}

fn parse_run(args: Vec<String>) -> anyhow::Result<RunArgs> {
    let mut kubeconfig = None;
    let mut options = enclii_sandbox::Options::new("");
    let mut pki = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        let millis = |v: String| -> anyhow::Result<Duration> {
            Ok(Duration::from_millis(v.parse().with_context(|| {
                format!("{flag}: {v:?} is not a number of milliseconds")
            })?))
        };
        match flag.as_str() {
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(value()?)),
            "--pki" => pki = Some(PathBuf::from(value()?)),
            "--nodes" => {
                let v = value()?;
                options.nodes = v
                    .parse()
                    .with_context(|| format!("--nodes: {v:?} is not a number"))?;
            }
            "--ready-delay-ms" => options.ready_delay = millis(value()?)?,
            "--log-interval-ms" => options.log_interval = millis(value()?)?,
            "--scrape-targets" => options.scrape_targets = Some(value()?.into()),
            "--network" => options.network = Some(value()?),
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    options.pki = pki.context("--pki DIR is required (the kubelet certificate's folder)")?;
    Ok(RunArgs {
        kubeconfig: kubeconfig.context("--kubeconfig FILE is required")?,
        options,
    })
}

async fn client(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .with_context(|| format!("using {}", kubeconfig.display()))?;
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

async fn until_stopped() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let args: Vec<String> = args.collect();
    match command.as_deref() {
        Some("run") => {
            let run = parse_run(args)?;
            let client = client(&run.kubeconfig).await?;
            tokio::select! {
                r = enclii_sandbox::run(client, run.options) => r,
                () = until_stopped() => Ok(()),
            }
        }
        Some("setup") => enclii_sandbox::setup::main(args).await,
        _ => bail!("{USAGE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_takes_its_flags() {
        let r = parse_run(args(&[
            "--kubeconfig",
            "k.yaml",
            "--pki",
            "/tmp/c/pki",
            "--nodes",
            "5",
            "--ready-delay-ms",
            "200",
            "--log-interval-ms",
            "50",
        ]))
        .unwrap();
        assert_eq!(r.kubeconfig, PathBuf::from("k.yaml"));
        assert_eq!(r.options.nodes, 5);
        assert_eq!(r.options.ready_delay, Duration::from_millis(200));
        assert_eq!(r.options.log_interval, Duration::from_millis(50));
        assert_eq!(r.options.pki, PathBuf::from("/tmp/c/pki"));
        let defaults = parse_run(args(&["--kubeconfig", "k", "--pki", "p"])).unwrap();
        assert_eq!(defaults.options.nodes, 3);
        assert_eq!(defaults.options.ready_delay, Duration::from_millis(1500));
        for bad in [
            args(&["--pki", "p"]),
            args(&["--kubeconfig", "k"]),
            args(&["--kubeconfig", "k", "--pki", "p", "--nodes", "many"]),
            args(&["--kubeconfig", "k", "--pki", "p", "--wat"]),
            args(&["--kubeconfig"]),
        ] {
            assert!(parse_run(bad.clone()).is_err(), "{bad:?}");
        }
    }
}
