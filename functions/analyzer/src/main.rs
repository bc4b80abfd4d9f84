//! Lambda entry point: clients are built once per instance and shared by
//! every invocation.

use hemostat_analyzer::{Analyzer, Config};
use hemostat_protocol::{
    RedisPublisher,
    batch::BatchEvent,
    config::redis_url,
    connection::{connect, redact},
    telemetry,
};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let url = redis_url();
    let conn = connect(&url).await.map_err(|e| format!("connecting to {}: {e}", redact(&url)))?;
    let analyzer = Analyzer::new(config, RedisPublisher::new(conn));
    let analyzer = &analyzer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<BatchEvent>| async move {
        Ok::<_, Error>(analyzer.handle(event.payload).await)
    }))
    .await
}
