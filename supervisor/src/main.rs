//! `hemostat-supervisor`: the entrypoint (PID 1) of the all-in-one image
//! (infra/Dockerfile.all-in-one). One container, one command: on the first
//! start it makes the stack's keys and tokens in the state volume
//! (/var/lib/hemostat) and reuses them afterwards, then starts Redis, the
//! Lambda emulator with every function, the bridge and the collector in
//! that order, restarts a part that dies, and exits non-zero when one keeps
//! dying. docs/src/all-in-one.md is the user's guide.
//!
//! Module map:
//! - `settings`: the environment it reads, checked before anything starts.
//! - `host`: the collector's host name (the Docker engine's by default).
//! - `state`: the secrets in the state volume (`hemostat keys`, `hemostat acl`).
//! - `parts`: what runs, in which order, with which secrets.
//! - `run`: starting, reaping, restarting with backoff, giving up, stopping.
//! - `error`: the one error type and its exit code.

mod error;
mod host;
mod parts;
mod run;
mod settings;
mod state;

use std::process::ExitCode;

use tracing::{error, info};

use crate::{error::SupervisorError, run::Supervisor, settings::Settings};

fn main() -> ExitCode {
    // Before anything else: `--help` and `--version` must not start HemoStat
    // (or make keys in a state folder) on the machine that asks.
    settings::USAGE.exit_unless_run();
    hemostat_protocol::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run() -> Result<(), SupervisorError> {
    let settings = Settings::from_env()?;
    let host = host::name(&settings);
    info!(host, state = %settings.state_dir.display(), "starting HemoStat");
    let secrets = state::prepare(&settings, &host)?;
    let parts = parts::parts(&settings, &host, &secrets);
    drop(secrets);
    info!(
        "dashboard on port {} of {} (in the container; publish it with -p 127.0.0.1:{}:{})",
        settings.dashboard_port, settings.dashboard_address, settings.dashboard_port, settings.dashboard_port
    );
    Supervisor::new(parts, settings.max_failures, settings.stable).run().await
}
