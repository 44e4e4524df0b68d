//! `switchyard`: the control plane and dashboard server.

use anyhow::Context;
use switchyard_engine::Settings;

// Rendering a page allocates and frees many small strings and view nodes across the runtime's
// threads; with glibc's allocator, a quarter of the server's CPU under load went to malloc/free
// (perf, docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use switchyard_server::http::landing_packs;
    // The server runs itself as a child to compress each landing pack (landing_packs.rs says why).
    if std::env::args().nth(1).as_deref() == Some(landing_packs::COMPRESS_COMMAND) {
        return landing_packs::compress_stdio().context("compressing a landing pack");
    }
    // The one manual deploy of the control plane (docs/self-hosting.md).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(switchyard_server::bootstrap::COMMAND) {
        // Exits as the server does (below): dropping the runtime would wait for blocking tasks.
        std::process::exit(switchyard_server::bootstrap::main(&args[1..]).await);
    }
    if let Ok(exe) = std::env::current_exe() {
        landing_packs::compress_in_child_processes(exe);
    }
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            // Logging is not set up yet (its settings are part of what failed to load).
            eprintln!("switchyard: {error}");
            std::process::exit(2);
        }
    };
    switchyard_server::telemetry::init(&settings.log);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("Failed to bind {}", settings.listen))?;
    let app = switchyard_server::build(settings).await?;
    tracing::info!(addr = %listener.local_addr()?, "switchyard listening");
    switchyard_server::serve(listener, app, switchyard_server::shutdown_signal()).await?;
    // Returning would drop the runtime, which waits for every blocking task (a DNS lookup, a
    // probe) however long it takes: measured, a stopped server lingered until SIGKILL. Nothing
    // left is worth waiting for (the database holds all state; leases hand deployments over).
    std::process::exit(0)
}
