//! The exporter's one error type.

use hemostat_protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis answered with something of an unexpected type.
    #[error("redis reply: {0}")]
    RedisReply(#[from] redis::ParsingError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A setting that cannot work; names the variable, never a secret's value.
    #[error("{name}: {reason}")]
    Config { name: &'static str, reason: String },
    /// The EMF documents could not be written to standard output.
    #[error("cloudwatch: {0}")]
    CloudWatch(String),
}
