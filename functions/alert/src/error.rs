//! The alert function's one error type. Nothing here ever carries a webhook
//! URL or signing secret: both are secrets.

use hemostat_protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A setting that cannot work; names the variable, never a secret's value.
    #[error("{name}: {reason}")]
    Config { name: &'static str, reason: String },
    /// The receiver answered with a status retrying cannot fix (400, 403,
    /// 404 ...: a revoked or mistyped webhook).
    /// `detail`: the service's own error message, secrets cut out.
    #[error("HTTP {status}, not retried{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Refused { status: u16, detail: String },
    /// Every attempt failed, or the deadline ran out; `last` says how the
    /// final attempt ended.
    #[error("gave up after {attempts} attempt(s) in {elapsed_ms} ms: {last}")]
    GaveUp { attempts: u32, elapsed_ms: u64, last: String },
}
