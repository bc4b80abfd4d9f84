/// Why the bridge could not start or a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Protocol(#[from] hemostat_protocol::ProtocolError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("invalid Lambda endpoint {0:?}: expected http(s)://host:port (or \"aws\")")]
    Endpoint(String),
    #[error("invalid route {0:?}: expected stream=function, e.g. health_alert=analyzer")]
    Route(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("invoking {function}: {reason}")]
    Invoke { function: String, reason: String },
}
