//! The bridge: carries events from Redis streams to functions, at least once.
//!
//! There is no native Redis-to-Lambda trigger, so this small long-running
//! process is one: for every route (stream -> function, from
//! [`hemostat_protocol::routes`]) it reads the stream with a consumer group,
//! invokes the function with a batch through the Lambda Invoke API, and
//! acknowledges a record only after the function handled it. Failed records
//! are retried with exponential backoff, then dead-lettered with the error;
//! records left pending by a dead replica are reclaimed. Any number of
//! replicas share the work through the consumer groups.
//!
//! Module map:
//! - [`config`]: flags and environment variables.
//! - [`invoker`]: the Invoke API client (the local emulator, or any
//!   endpoint speaking Lambda's Invoke API), behind a small trait.
//! - [`consumer`]: one route's read / invoke / ack loop and its reclaimer.
//! - [`error`]: the crate's error enum.

pub mod config;
pub mod consumer;
pub mod error;
pub mod invoker;

use std::future::Future;

pub use config::Config;
pub use error::BridgeError;
use hemostat_protocol::{connection, routes::ROUTES};
use tokio::sync::watch;

use crate::{consumer::Consumer, invoker::HttpInvoker};

/// Runs every route until `shutdown` completes; in-flight batches finish
/// (and are acked) before it returns.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), BridgeError> {
    let invoker = HttpInvoker::new(&config.lambda_endpoint, config.invoke_timeout())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for route in ROUTES {
        let reader = connection::connect_blocking(&config.redis_url, config.block()).await?;
        let writer = connection::connect(&config.redis_url).await?;
        let consumer = Consumer::new(*route, config.clone(), reader, writer, invoker.clone());
        consumer.ensure_group().await?;
        tracing::info!(stream = %route.stream(), function = %route.function_name(&config.function_prefix),
            group = %route.group(), consumer = %config.consumer, "route ready");
        tasks.spawn(consumer.run(stop_rx.clone()));
    }
    tracing::info!(routes = ROUTES.len(), endpoint = %config.lambda_endpoint, "bridge ready");
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight batches");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}
