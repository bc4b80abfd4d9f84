//! One request to a function, from the Invoke API until the runtime reports back,
//! and Lambda's limit on its payloads.

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use tokio::sync::oneshot;

/// Lambda's synchronous request and response payload limit.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success(Bytes),
    /// A function error; `body` is Lambda's `{"errorMessage", "errorType"}` JSON.
    Failure {
        error_type: String,
        body: Bytes,
    },
}

impl Outcome {
    pub fn failure(error_type: &str, message: impl Into<String>) -> Outcome {
        let body = serde_json::json!({ "errorMessage": message.into(), "errorType": error_type });
        Outcome::Failure { error_type: error_type.to_owned(), body: Bytes::from(body.to_string()) }
    }

    /// Lambda's exact wording, so clients that pattern-match on it keep working.
    pub fn timed_out(request_id: &str, timeout_secs: u64) -> Outcome {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        Outcome::failure(
            "Sandbox.Timedout",
            format!("{now} {request_id} Task timed out after {timeout_secs}.00 seconds"),
        )
    }

    pub fn exit_error(request_id: &str, exit: &str) -> Outcome {
        Outcome::failure(
            "Runtime.ExitError",
            format!("RequestId: {request_id} Error: Runtime exited with error: {exit}"),
        )
    }
}

/// What the caller said about itself, passed to the runtime as JSON header values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerContext {
    /// The mobile-SDK client context JSON (`Lambda-Runtime-Client-Context`).
    pub client_context: Option<String>,
    /// The Cognito identity JSON (`Lambda-Runtime-Cognito-Identity`).
    pub cognito_identity: Option<String>,
}

/// A queued or running invocation. Shared between the caller waiting for the
/// outcome, the function's queue, and the instance running it.
#[derive(Debug)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    /// Who called, as the runtime's `Lambda-Runtime-Client-Context` / `-Cognito-Identity` headers.
    pub caller: CallerContext,
    pub trace_id: String,
    pub received: Instant,
    reply: Mutex<Option<oneshot::Sender<Outcome>>>,
}

impl Invocation {
    pub fn new(payload: Bytes) -> (Arc<Invocation>, oneshot::Receiver<Outcome>) {
        Invocation::create(request_id(), payload, CallerContext::default())
    }

    /// For callers that put the request id in the payload too (function URL events).
    pub fn with_id(request_id: &str, payload: Bytes) -> (Arc<Invocation>, oneshot::Receiver<Outcome>) {
        Invocation::create(request_id.to_owned(), payload, CallerContext::default())
    }

    /// An Invoke API request with caller context (see [`CallerContext`]).
    pub fn with_caller(payload: Bytes, caller: CallerContext) -> (Arc<Invocation>, oneshot::Receiver<Outcome>) {
        Invocation::create(request_id(), payload, caller)
    }

    fn create(
        request_id: String,
        payload: Bytes,
        caller: CallerContext,
    ) -> (Arc<Invocation>, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        let invocation = Invocation {
            request_id,
            payload,
            caller,
            trace_id: trace_id(),
            received: Instant::now(),
            reply: Mutex::new(Some(tx)),
        };
        (Arc::new(invocation), rx)
    }

    /// Delivers the outcome. Only the first caller wins, which settles races
    /// between a late runtime response, the timeout watchdog and a crash.
    pub fn complete(&self, outcome: Outcome) -> bool {
        let sender = match self.reply.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(sender) = sender else { return false };
        // The caller may have hung up (or it was an Event invocation); nothing to do then.
        let _ = sender.send(outcome);
        true
    }
}

/// 128 bits that never repeat within this process and look random: a counter
/// run through SplitMix64 (a bijection) under a random per-process key. The
/// ids only need to be unique, and drawing each from the OS (`Uuid::new_v4`,
/// a `getrandom` syscall) costs more than the rest of an invocation's bookkeeping.
fn unique_bits() -> u128 {
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (k1, k2) = *KEY.get_or_init(|| {
        let seed = uuid::Uuid::new_v4().as_u128();
        ((seed >> 64) as u64, seed as u64)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let high = splitmix64(n ^ k1);
    let low = splitmix64(high ^ k2);
    (u128::from(high) << 64) | u128::from(low)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A request id as Lambda makes them: a version-4 UUID.
pub fn request_id() -> String {
    uuid::Builder::from_random_bytes(unique_bits().to_be_bytes()).into_uuid().hyphenated().to_string()
}

/// An X-Ray trace header as Lambda passes it to the runtime.
pub fn trace_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    // 96 bits of root id and 64 of parent id, as X-Ray's format has them.
    format!("Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0", secs as u32, unique_bits() >> 32, unique_bits() as u64,)
}

pub fn epoch_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}
