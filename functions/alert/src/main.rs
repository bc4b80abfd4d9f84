//! Lambda entry point: the Redis connection and the HTTP client (when a
//! sink needs one) are built once per instance and shared by every
//! invocation.

use hemostat_alert::{Alert, Config, RedisLog, USAGE};
use hemostat_protocol::function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Before any connection, so `--help` works without Redis or a runtime.
    USAGE.exit_unless_run();
    let conn = function::init().await?;
    let config = Config::from_env()?;
    let alert = Alert::new(&config, RedisLog::from_config(conn, &config))?;
    let sinks: Vec<&str> = alert.sinks().iter().map(|s| s.name).collect();
    // `config` shows URLs and the signing key as <redacted>.
    tracing::info!(?config, ?sinks, "alert starting");
    if config.enabled && sinks.is_empty() {
        tracing::info!("no sink configured (alert --help lists them): events are stored, nobody is notified");
    }
    function::serve(|batch| alert.handle(batch)).await
}
