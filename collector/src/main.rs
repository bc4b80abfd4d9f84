use clap::Parser;
use hemostat_collector::{Config, run, run_verb, snapshot};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    hemostat_protocol::telemetry::init();
    let config = Config::parse();
    if let Some(verb) = &config.verb {
        return match run_verb(&config.state_dir(), &config.redis_url, verb).await {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::FAILURE,
            Err(e) => {
                eprintln!("hemostat-collector: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if config.once {
        return match snapshot(&config).await {
            Ok(json) => {
                println!("{json}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot failed");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match run(config, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "collector failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM (what `docker stop` and systemd send).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the collector");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
