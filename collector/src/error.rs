//! The crate's one error type.

use hemostat_protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Redis or Docker answered with something this collector cannot read.
    #[error("unexpected reply from {what}: {detail}")]
    Reply { what: &'static str, detail: String },
    /// A setting cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A container's resource counters could not be read or parsed.
    #[error("stats: {0}")]
    Stats(String),
    /// The dead-letter files cannot be read or rewritten.
    #[error("dead letters: {0}")]
    DeadLetters(String),
    /// Shutdown was requested before the operation could finish.
    #[error("shutting down")]
    Cancelled,
}
