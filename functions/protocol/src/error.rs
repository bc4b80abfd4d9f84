//! One error type for everything the protocol can refuse.

/// Why a message, a key or a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The bytes are not a JSON envelope of the seed's shape.
    #[error("malformed envelope: {0}")]
    MalformedEnvelope(String),
    /// The envelope is fine but its `type` is not one HemoStat knows.
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    /// The envelope's `data` does not have the fields its type requires.
    #[error("malformed {kind} data: {reason}")]
    MalformedData { kind: String, reason: String },
    /// A command could not be parsed.
    #[error("malformed command: {0}")]
    MalformedCommand(String),
    /// A command's signature is missing or does not match.
    #[error("command signature rejected: {0}")]
    BadSignature(&'static str),
    /// A command signing or public key that cannot be used (never quoted).
    #[error("command key: {0}")]
    BadKey(String),
    /// An environment variable has a value that cannot be used.
    #[error("invalid configuration {name}={value:?}: {reason}")]
    Config { name: String, value: String, reason: String },
    /// The Redis URL is not usable (the URL itself is never echoed: it may hold a password).
    #[error("invalid Redis URL: {0}")]
    RedisUrl(String),
    /// An AWS endpoint override that is not an http(s) URL with a host.
    #[error("invalid AWS endpoint {0:?}: expected http(s)://host[:port]")]
    AwsEndpoint(String),
    /// No region from the environment, profile or instance metadata.
    #[error("no AWS region: set AWS_REGION")]
    AwsRegion,
    /// Redis answered with something of a shape this crate cannot read.
    #[error("unexpected reply to {what}: {detail}")]
    Reply { what: &'static str, detail: String },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A publisher gave the event up for good (Redis refused it as it is,
    /// or it was dropped): publishing it again cannot help.
    #[error("event not delivered: {0}")]
    Undelivered(String),
    /// A function was invoked with a payload of no shape it takes.
    #[error("unsupported invocation: {0}")]
    UnsupportedInvocation(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}
