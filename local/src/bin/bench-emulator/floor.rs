//! Lower bounds for the benchmark, measured by the same client in the same run.
//!
//! - [`BareRuntimeApi`]: the least any emulator can do for one invocation — the
//!   Invoke API request handed straight to the function's waiting `/next`, its
//!   `/response` handed straight back — on plain hyper, one thread, the headers
//!   Lambda sends but no ids beyond a counter, no timeouts, logs or scaling. It runs the same
//!   function binary, so its round trip is the floor that the function's own
//!   runtime loop (`lambda_runtime`) and the kernel put under every emulator.
//! - [`Echo`]: a hyper server answering `{}` at once: one loopback HTTP round
//!   trip, the client's and the network stack's share.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::oneshot};

type Reply = Response<Full<Bytes>>;

/// Thread names, so that the benchmark can read each server's CPU time.
pub const BARE_THREAD: &str = "floor-bare";
pub const ECHO_THREAD: &str = "floor-echo";

/// A server on a current-thread runtime in a thread of its own (like the
/// emulator under test: the benchmark's client must not share its scheduler).
fn spawn_server<S, F>(name: &str, state: S, handler: fn(S, Request<Incoming>) -> F) -> Result<SocketAddr, String>
where
    S: Clone + Send + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // Detached: it lives as long as the benchmark process.
    let thread = std::thread::Builder::new().name(name.to_owned());
    let spawned = thread.spawn(move || {
        runtime.block_on(async move {
            let listener = match TcpListener::bind("127.0.0.1:0").await {
                Ok(listener) => listener,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(listener.local_addr().map_err(|e| e.to_string()));
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let reply = handler(state.clone(), request);
                        async move { Ok::<_, Infallible>(reply.await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
    });
    spawned.map_err(|e| e.to_string())?;
    ready_rx.recv().map_err(|_| "the floor server thread died".to_owned())?
}

fn json(status: StatusCode, body: Bytes) -> Reply {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", "application/json".parse().expect("valid"));
    response
}

/// See the module documentation.
pub struct Echo {
    pub addr: SocketAddr,
}

impl Echo {
    pub fn start() -> Result<Echo, String> {
        async fn echo(_: (), _request: Request<Incoming>) -> Reply {
            json(StatusCode::OK, Bytes::from_static(b"{}"))
        }
        Ok(Echo { addr: spawn_server(ECHO_THREAD, (), echo)? })
    }
}

#[derive(Default)]
struct Bare {
    /// Invocations waiting for the function's `/next`.
    queue: VecDeque<(String, Bytes)>,
    /// The function's `/next`, waiting for an invocation.
    waiting: Option<oneshot::Sender<(String, Bytes)>>,
    /// Callers waiting for their invocation's result, by request id.
    callers: HashMap<String, oneshot::Sender<Bytes>>,
    counter: u64,
}

type BareState = Arc<Mutex<Bare>>;

/// See the module documentation.
pub struct BareRuntimeApi {
    pub addr: SocketAddr,
    /// Held so that the function dies with the benchmark (`kill_on_drop`).
    _function: tokio::process::Child,
}

impl BareRuntimeApi {
    /// Serves `binary` (one instance) under `function`'s name.
    pub fn start(binary: &Path, function: &str) -> Result<BareRuntimeApi, String> {
        let addr = spawn_server(BARE_THREAD, BareState::default(), bare)?;
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        Ok(BareRuntimeApi { addr, _function: child })
    }
}

async fn bare(state: BareState, request: Request<Incoming>) -> Reply {
    let path = request.uri().path().to_owned();
    if path.ends_with("/invocations") {
        let Ok(body) = request.into_body().collect().await else {
            return json(StatusCode::BAD_REQUEST, Bytes::new());
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut bare = state.lock().unwrap_or_else(|p| p.into_inner());
            bare.counter += 1;
            let id = bare.counter.to_string();
            bare.callers.insert(id.clone(), tx);
            let mut event = Some((id, body.to_bytes()));
            if let Some(next) = bare.waiting.take() {
                // A /next whose connection closed hands the event back.
                event = next.send(event.take().expect("set above")).err();
            }
            if let Some(event) = event {
                bare.queue.push_back(event);
            }
        }
        return match rx.await {
            Ok(result) => json(StatusCode::OK, result),
            Err(_) => json(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new()),
        };
    }
    if path.ends_with("/invocation/next") {
        let ready = {
            let mut bare = state.lock().unwrap_or_else(|p| p.into_inner());
            match bare.queue.pop_front() {
                Some(event) => Ok(event),
                None => {
                    let (tx, rx) = oneshot::channel();
                    bare.waiting = Some(tx);
                    Err(rx)
                }
            }
        };
        let (id, payload) = match ready {
            Ok(event) => event,
            Err(rx) => match rx.await {
                Ok(event) => event,
                Err(_) => std::future::pending().await,
            },
        };
        let mut response = json(StatusCode::OK, payload);
        let headers = response.headers_mut();
        for (name, value) in [
            ("lambda-runtime-aws-request-id", id.as_str()),
            ("lambda-runtime-deadline-ms", "99999999999999"),
            ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:000000000000:function:noop-function"),
            // Lambda always sends one, and the runtime acts on it (it sets
            // `_X_AMZN_TRACE_ID`), so leaving it out would flatter the floor.
            ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0"),
        ] {
            if let Ok(value) = value.parse() {
                headers.insert(name, value);
            }
        }
        return response;
    }
    if let Some(id) = path.strip_suffix("/response").and_then(|p| p.rsplit('/').next()) {
        let id = id.to_owned();
        let Ok(body) = request.into_body().collect().await else {
            return json(StatusCode::BAD_REQUEST, Bytes::new());
        };
        let caller = state.lock().unwrap_or_else(|p| p.into_inner()).callers.remove(&id);
        if let Some(caller) = caller {
            let _ = caller.send(body.to_bytes());
        }
        return json(StatusCode::ACCEPTED, Bytes::from_static(br#"{"status":"OK"}"#));
    }
    json(StatusCode::NOT_FOUND, Bytes::new())
}
