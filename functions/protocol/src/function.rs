//! What every function binary does at start-up and per invocation, so each
//! `main` only builds its own handler.

use std::future::Future;

use crate::connection::Connection;
use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::{
    ProtocolError,
    batch::{BatchEvent, BatchResponse},
    config::{self, process_env, redis_url},
    connection::{connect, redact},
    invocation::{Invocation, ScheduledEvent, classify},
    stored_secret, telemetry,
};

/// Tracing, then one Redis connection for the life of the instance (built
/// once in init, shared by every invocation, as Lambda's model intends).
pub async fn init() -> Result<Connection, Error> {
    telemetry::init();
    // Before any setting is read: those naming a secret read as it.
    let resolved = stored_secret::resolve(utf8_vars(), || stored_secret::Extension::from_env(&process_env)).await?;
    config::install_resolved(resolved);
    let url = redis_url();
    Ok(connect(&url).await.map_err(|e| format!("connecting to {}: {e}", redact(&url)))?)
}

/// The environment's variables that are UTF-8 (`std::env::vars` panics on
/// any other; no setting is anything else).
fn utf8_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// Serves batches until the runtime stops; `handle` never fails the whole
/// invocation, it reports failures per record in the response.
pub async fn serve<F, Fut>(handle: F) -> Result<(), Error>
where
    F: Fn(BatchEvent) -> Fut,
    Fut: Future<Output = BatchResponse>,
{
    let handle = &handle;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<BatchEvent>| async move {
        Ok::<_, Error>(handle(event.payload).await)
    }))
    .await
}

/// Serves batches and the function's own schedule (an EventBridge rule in
/// template.yaml): work that must happen on time whether or not events
/// arrive. Any other payload fails its invocation with a clear error.
pub async fn serve_scheduled<F, Fut, G, GFut>(handle: F, tick: G) -> Result<(), Error>
where
    F: Fn(BatchEvent) -> Fut,
    Fut: Future<Output = BatchResponse>,
    G: Fn(ScheduledEvent) -> GFut,
    GFut: Future<Output = Result<serde_json::Value, ProtocolError>>,
{
    let (handle, tick) = (&handle, &tick);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let answer = match classify(event.payload)? {
            Invocation::Batch(batch) => serde_json::to_value(handle(batch).await)?,
            Invocation::Schedule(event) => tick(event).await?,
            Invocation::Http(_) => {
                return Err(Error::from(ProtocolError::UnsupportedInvocation(
                    "this function has no function URL: expected a Records batch or its scheduled event".into(),
                )));
            }
        };
        Ok::<_, Error>(answer)
    }))
    .await
}
