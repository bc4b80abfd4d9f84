//! The bridge: carries events from Redis streams to functions, at least once.
//!
//! There is no native Redis-to-Lambda trigger, so this small long-running
//! process is one: for every route (stream -> function, from
//! [`hemostat_protocol::routes`], or `--routes`) it reads the stream with a
//! consumer group, invokes the function with a batch through the Lambda
//! Invoke API, and acknowledges a record only after the function handled it.
//! Failed records are retried with exponential backoff, then dead-lettered
//! with the error; records left pending by a dead replica are reclaimed. Any
//! number of replicas share the work through the consumer groups.
//!
//! Module map:
//! - `config`: flags and environment variables ([`Config`]).
//! - `binding`: what one consumer serves (stream, group, function), from
//!   protocol's routes or `--routes` ([`Binding`]).
//! - `invoker`: the Invoke API trait and the plain-HTTP client ([`Invoker`],
//!   [`HttpInvoker`]).
//! - `lambda_invoker`: the AWS SDK client (SigV4; AWS or the emulator;
//!   [`LambdaInvoker`]).
//! - `consumer`: one route's read / invoke / ack loop and its reclaimer
//!   ([`Consumer`]).
//! - [`relay`]: seed-channel-only messages (seed-protocol publishers) into
//!   their streams, once.
//! - `stats`: typed delivery events, logged and counted together.
//! - `health`: liveness: each route's and the relay's progress, the
//!   heartbeat with each stream's lag, lag and stale alerts, `/healthz` and
//!   `/metrics`.
//! - `error`: the crate's error enum ([`BridgeError`]).
//!
//! The crate root chooses the client ([`AnyInvoker`], [`invoker()`]) and
//! runs the routes ([`run`]).
//!
//! Binaries: `hemostat-bridge` (`main.rs`), and `bridge-test-function`
//! (`bin/`), a Lambda function for the fault tests and the benchmark.

mod binding;
mod config;
mod consumer;
mod error;
mod health;
mod invoker;
mod lambda_invoker;
// A public module: its API is `relay::run` and `relay::relay`, and a root
// `run` is the bridge's own.
pub mod relay;
mod stats;

use std::{future::Future, sync::Arc};

use bytes::Bytes;

use hemostat_protocol::connection::Target;
use tokio::sync::watch;

pub use crate::{
    binding::Binding,
    config::Config,
    consumer::Consumer,
    error::BridgeError,
    invoker::{HttpInvoker, Invocation, Invoker},
    lambda_invoker::LambdaInvoker,
};
use crate::{config::InvokerKind, stats::Stats};

/// The invoker chosen by `--invoker` (the trait is not object-safe, so an
/// enum rather than a `Box<dyn>`).
#[derive(Clone)]
pub enum AnyInvoker {
    Sdk(LambdaInvoker),
    // Boxed: the hyper client is much larger than the SDK handle.
    Http(Box<HttpInvoker>),
}

impl Invoker for AnyInvoker {
    async fn invoke(&self, function: &str, payload: Bytes) -> Result<Invocation, BridgeError> {
        match self {
            AnyInvoker::Sdk(i) => i.invoke(function, payload).await,
            AnyInvoker::Http(i) => i.invoke(function, payload).await,
        }
    }
}

/// The invoker `config` asks for.
pub async fn invoker(config: &Config) -> Result<AnyInvoker, BridgeError> {
    let token = config.lambda_token();
    if token.is_some() && config.endpoint_override().is_none() {
        return Err(BridgeError::Config(
            "HEMOSTAT_LAMBDA_TOKEN is the local emulator's token; AWS Lambda takes the standard AWS credentials \
             (unset the token, or point --lambda-endpoint at the emulator)"
                .into(),
        ));
    }
    Ok(match config.invoker {
        InvokerKind::Sdk => {
            AnyInvoker::Sdk(LambdaInvoker::new(config.endpoint_override(), config.invoke_timeout(), token).await?)
        }
        InvokerKind::Http => {
            let endpoint = config.endpoint_override().ok_or_else(|| {
                BridgeError::Config("--invoker http needs an endpoint; AWS Lambda needs --invoker sdk".into())
            })?;
            AnyInvoker::Http(Box::new(HttpInvoker::new(endpoint, config.invoke_timeout(), token)?))
        }
    })
}

/// Runs every route until `shutdown` completes; in-flight batches finish
/// (and are acked) before it returns.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), BridgeError> {
    let invoker = invoker(&config).await?;
    let stats = Arc::new(Stats::default());
    let bindings = Binding::all(&config.routes, &config.function_prefix);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let target = Target::from_env(&config.redis_url)?;
    // Bound first: a bad address is a start-up error, not a silent absence.
    let server = match config.listen.trim() {
        "" => None,
        addr => Some(health::Server::bind(addr).await?),
    };
    let mut progress = Vec::with_capacity(bindings.len());
    for binding in &bindings {
        let reader = target.lazy_blocking(config.block())?;
        let writer = target.connect().await?;
        let consumer =
            Consumer::with_stats(binding.clone(), config.clone(), reader, writer, invoker.clone(), stats.clone());
        consumer.ensure_group().await?;
        tracing::info!(stream = %binding.stream, function = %binding.function, group = %binding.group,
            consumer = %config.consumer, "route ready");
        progress.push((binding.clone(), consumer.progress()));
        tasks.spawn(consumer.run(stop_rx.clone()));
    }
    let relay_heard = config.relay.then(|| Arc::new(health::Beat::default()));
    if let Some(heard) = &relay_heard {
        let keepalive = relay::Keepalive {
            channel: hemostat_protocol::keys::bridge_keepalive(&config.consumer),
            every: config.keepalive,
            heard: heard.clone(),
        };
        tasks.spawn(relay::run_with(target.clone(), keepalive, stats.clone(), stop_rx.clone()));
    }
    let health = Arc::new(health::Health::new(
        config.consumer.clone(),
        progress,
        relay_heard,
        stats.clone(),
        config.block(),
        config.keepalive,
    ));
    tasks.spawn(health::heartbeat(health.clone(), target.connect().await?, config.clone(), stop_rx.clone()));
    if let Some(server) = server {
        tracing::info!(addr = ?server.addr(), "serving /healthz and /metrics");
        let mut stop = stop_rx.clone();
        tasks.spawn(server.serve(health, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    tracing::info!(routes = bindings.len(), endpoint = %config.lambda_endpoint, invoker = ?config.invoker,
        redis = %target.redacted(), batch_size = config.batch_size,
        max_in_flight = config.max_in_flight, "bridge ready");
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight batches");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let t = stats.totals();
    tracing::info!(
        invocations = t.invocations,
        acked = t.acked,
        failed = t.failed,
        dead_lettered = t.dead_lettered,
        taken_over = t.taken_over,
        passed_over = t.passed_over,
        "bridge stopped"
    );
    Ok(())
}
