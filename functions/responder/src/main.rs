//! Lambda entry point: clients are built once per instance and shared by
//! every invocation.

use hemostat_protocol::{
    RedisPublisher,
    batch::BatchEvent,
    config::redis_url,
    connection::{connect, redact},
    telemetry,
};
use hemostat_responder::{Config, Responder, gate::Gate, store::RedisStore};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    tracing::info!(?config, "responder starting");
    let url = redis_url();
    let conn = connect(&url).await.map_err(|e| format!("connecting to {}: {e}", redact(&url)))?;
    let store = RedisStore::new(conn.clone(), Gate::new(config.cooldown_seconds, config.max_actions_per_hour));
    let responder = Responder::new(config, store, RedisPublisher::new(conn));
    let responder = &responder;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<BatchEvent>| async move {
        Ok::<_, Error>(responder.handle(event.payload).await)
    }))
    .await
}
