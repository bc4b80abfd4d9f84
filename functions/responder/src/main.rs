//! Lambda entry point: clients are built once per instance and shared by
//! every invocation.

use hemostat_protocol::{RedisPublisher, function};
use hemostat_responder::{Config, RedisStore, Responder, USAGE};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Before any connection, so `--help` works without Redis or a runtime.
    USAGE.exit_unless_run();
    let conn = function::init().await?;
    let config = Config::from_env()?;
    tracing::info!(?config, "responder starting");
    let store = RedisStore::new(conn.clone(), config.gate());
    let responder = Responder::new(config, store, RedisPublisher::new(conn));
    function::serve_scheduled(|batch| responder.handle(batch), |tick| responder.tick(tick)).await
}
