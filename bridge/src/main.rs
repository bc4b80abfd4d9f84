use clap::Parser;
use hemostat_bridge::{Config, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    hemostat_protocol::telemetry::init();
    let config = Config::parse();
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    match run(config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "bridge failed");
            std::process::ExitCode::FAILURE
        }
    }
}
