//! The dashboard's one error type. A bad request is the caller's (400); a
//! Redis failure is ours (503, and the page keeps its last data).

use hemostat_protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A query parameter or path the API cannot serve; the message says which.
    #[error("{0}")]
    BadRequest(String),
}
