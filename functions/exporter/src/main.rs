//! Lambda entry point: the Redis client and the CloudWatch sink (EMF on
//! standard output) are built once per instance and shared by every
//! invocation. The payload is taken as plain
//! JSON and dispatched on its shape (bridge batch, function URL request,
//! scheduled event).

use hemostat_exporter::{Config, EmfSink, Exporter, RedisStore, Sink, USAGE};
use hemostat_protocol::{RedisPublisher, function};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Before any connection, so `--help` works without Redis or a runtime.
    USAGE.exit_unless_run();
    let conn = function::init().await?;
    let config = Config::from_env()?;
    let sink = if config.cloudwatch_enabled() {
        Sink::On(EmfSink::stdout(config.cloudwatch_namespace.clone()))
    } else {
        Sink::Off
    };
    tracing::info!(?config, cloudwatch = matches!(sink, Sink::On(_)), "exporter starting");
    let store = RedisStore::new(conn.clone(), config.dedupe_ttl);
    let exporter = Exporter::new(config, store, RedisPublisher::new(conn), sink)?;
    let exporter = &exporter;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        exporter.handle(event.payload).await.map_err(|e| {
            tracing::warn!(error = %e, "invocation failed");
            Error::from(e.to_string())
        })
    }))
    .await
}
