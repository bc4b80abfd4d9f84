//! `hemostat-local`: a local AWS Lambda emulator for the HemoStat functions.
//!
//! It reads the SAM `template.yaml`, starts each function binary (built on the
//! official `lambda_runtime` crate, unmodified) as a child process, and serves
//! the Lambda Runtime API to those processes and the Lambda Invoke API to
//! everyone else, on one HTTP server.
//!
//! Functions with `FunctionUrlConfig` in the template are also served as Function
//! URLs: `http://LISTEN/urls/{function}/{path}` (or the root of a port of their own
//! with `--url-port function=PORT`) turns plain HTTP into API Gateway v2 events,
//! as `lambda_http` functions expect. Each instance's init duration (spawn to
//! first `/next`) is logged as "instance initialized (cold start)" and kept in
//! [`Function::cold_starts`]. `scripts/bench-emulator.sh` measures the
//! per-invocation overhead against `cargo lambda watch`. Functions with `Schedule`
//! events are invoked asynchronously with EventBridge's scheduled-event JSON
//! (`--schedule-interval function=2s` shortens the wait, `--no-schedules` stops them).
//!
//! Every caller is checked (`access`): browsers may not use the Invoke and
//! Runtime APIs, the Invoke API and `AWS_IAM` function URLs need the token
//! ([`Config::token`], `HEMOSTAT_LAMBDA_TOKEN`), and the Runtime API a secret
//! only the function processes are given.
//!
//! Module map. The modules are private; what the binaries and tests use is
//! re-exported here. The wiring comes first; each module imports only modules
//! listed below it, so no two import each other.
//!
//! - `emulator` — [`Emulator`]: binds the listeners, loads the functions, wires the modules below together.
//! - `server` — the main listener: the Invoke and Runtime APIs on plain hyper, the rest through axum.
//! - `invoke_api` — `/2015-03-31/functions/{name}/invocations`.
//! - `runtime_api` — `/runtime/{secret}/{function}/{instance}/2018-06-01/runtime/...`.
//! - `function_url` — `/urls/{function}/...`: Function URLs, HTTP to API Gateway v2 events and back ([`url_id`]).
//! - `schedule` — `Type: Schedule` events, delivered as EventBridge does ([`parse_interval_flag`]).
//! - `state` — what the four above share: the loaded functions by name, region, account, schedule settings, access.
//! - `function` — [`Function`]: one function's queue and instance pool (scaling, timeouts, crashes).
//! - `instance` — one child process: environment ([`launch_environment`]), log capture, supervision.
//! - `template` — SAM template parsing ([`Template`]: `Parameters`, `Globals`, intrinsics).
//! - `schedule_expression` — `rate(...)` and `cron(...)` ([`Expression`]), and the [`ScheduleEvent`]s carrying them.
//! - `invocation` — one request and its outcome, and Lambda's payload limit.
//! - `config` — [`Config`]: the settings of one run.
//! - `env_vars` — [`EnvVars`]: `--env-vars`, per-function variables in SAM's JSON.
//! - `error` — [`Error`]: the crate's error type and its HTTP rendering.
//! - `access` — who may call: the [`Token`], browser and `Host` checks, the Runtime API's secret ([`Refusal`]).
//! - `sigv4` — a SigV4-signed request checked against a secret key.
//! - `fuzzing` (feature `fuzzing`) — the request checks above, callable without a server, for `hemostat-fuzz`.

mod access;
mod config;
mod emulator;
mod env_vars;
mod error;
mod function;
mod function_url;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod instance;
mod invocation;
mod invoke_api;
mod runtime_api;
mod schedule;
mod schedule_expression;
mod server;
mod sigv4;
mod state;
mod template;

use std::future::Future;

pub use access::{Refusal, Token};
pub use config::{Config, ScheduleOverrides};
pub use emulator::Emulator;
pub use env_vars::EnvVars;
pub use error::{Error, Result};
pub use function::Function;
pub use function_url::url_id;
pub use instance::launch_environment;
pub use schedule::parse_interval_flag;
pub use schedule_expression::{Cron, Expression, ScheduleEvent};
pub use template::{FunctionSpec, FunctionUrlConfig, Template, TemplateSettings};

/// The tokio runtime the emulator runs on. `worker_threads`: 0 is tokio's
/// current-thread scheduler, `None` the default (see the `hemostat-local` binary's
/// `--worker-threads`).
pub fn runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match worker_threads.unwrap_or(DEFAULT_WORKER_THREADS) {
        0 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    // Named so `top -H` and profilers tell the emulator's threads from its children's.
    builder.thread_name(RUNTIME_THREAD_NAME).enable_all().build()
}

/// The name of the runtime's worker threads (and blocking-pool threads).
pub const RUNTIME_THREAD_NAME: &str = "hemostat-local";

/// The emulator's default scheduler; see [`runtime`].
pub const DEFAULT_WORKER_THREADS: usize = 0;

/// Runs the emulator until `shutdown` resolves, then stops every instance.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let emulator = Emulator::start(config).await?;
    let addr = emulator.local_addr();
    // On stdout, not just in the logs, so scripts using port 0 can find us.
    println!("hemostat-local listening on http://{addr}");
    tracing::info!(%addr, functions = ?emulator.function_names(), "ready");
    emulator.serve(shutdown).await
}
