//! The main listener's HTTP server.
//!
//! The two hot paths, the Invoke API and the Runtime API, are routed by hand on
//! plain hyper: every invocation crosses three requests (invoke, `/next`,
//! `/response`), and a router's per-request work (path parameter maps, cloned
//! header maps, boxed handler futures) would be paid on each. Everything else
//! (function URLs, unknown paths) goes to the axum router.

use std::{convert::Infallible, io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, body::Body, extract::ConnectInfo, response::IntoResponse};
use http::{Request, Response};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use tracing::{debug, warn};

use crate::{access, error::Error, invoke_api, runtime_api, state::Shared};

/// Serves until `stop` is cancelled, then lets open connections finish their
/// current request and returns once all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    fallback: Router,
    stop: CancellationToken,
) -> io::Result<()> {
    // Every connection task holds a sender; recv() returns None once all are gone.
    let (open_tx, mut all_closed) = mpsc::channel::<Infallible>(1);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Small requests answered by small responses: Nagle's algorithm would
        // only hold segments back waiting for ACKs.
        if let Err(e) = stream.set_nodelay(true) {
            warn!("cannot set TCP_NODELAY: {e}");
        }
        let shared = shared.clone();
        let fallback = fallback.clone();
        let stop = stop.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| route(shared.clone(), fallback.clone(), remote, request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                debug!(%remote, "connection ended: {e}");
            }
            drop(open);
        });
    }
    drop(open_tx);
    let _ = all_closed.recv().await;
    Ok(())
}

async fn route(
    shared: Arc<Shared>,
    mut fallback: Router,
    remote: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path();
    let api = Api::of(path);
    // No browser, and addressed to us, before anything else is looked at.
    if api == Api::Runtime {
        if let Err(refusal) = shared.access().check_api_caller(request.headers()) {
            // The path may hold the Runtime API's secret: not logged.
            let refusal = access::logged("runtime", request.method(), runtime_api::PREFIX, refusal);
            return Ok(Error::RuntimeRefused(refusal).into_response());
        }
        return Ok(runtime_api::handle(&shared, request).await.unwrap_or_else(IntoResponse::into_response));
    }
    if api == Api::Invoke {
        if let Err(refusal) = shared.access().check_api_caller(request.headers()) {
            let refusal = access::logged("invoke", request.method(), path, refusal);
            return Ok(Error::InvokeRefused(refusal).into_response());
        }
        return Ok(invoke_api::handle(&shared, request).await.unwrap_or_else(IntoResponse::into_response));
    }
    // Function URL events carry the caller's address as `sourceIp`.
    request.extensions_mut().insert(ConnectInfo(remote));
    fallback.call(request).await
}

/// Which API of the main listener a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Runtime,
    Invoke,
    /// Function URLs and unknown paths: the axum router.
    Other,
}

impl Api {
    pub(crate) fn of(path: &str) -> Api {
        if path.starts_with(runtime_api::PREFIX) {
            Api::Runtime
        } else if invoke_api::is_invoke_path(path) {
            Api::Invoke
        } else {
            Api::Other
        }
    }
}

/// What `axum::serve` does: errors that concern one connection are skipped;
/// others (out of file descriptors) get a pause so the loop does not spin.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    warn!("accept failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
