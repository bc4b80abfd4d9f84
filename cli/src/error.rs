//! What can go wrong, said in one line, with the exit code a script checks.

use hemostat_protocol::ProtocolError;

/// A failed verb. `Display` is the whole message the operator sees.
#[derive(Debug)]
pub enum CliError {
    /// Bad input (a malformed container, target or action): exit 2, as
    /// clap's own usage errors.
    Usage(String),
    /// Something the input named does not exist (an unknown container, a
    /// silence or dead letter id): exit 1.
    NotFound(String),
    /// Redis refused or did not answer (the message says so): exit 1.
    Redis(String),
    /// The verb ran and its answer is "no" (a refused remediation, an
    /// outcome that never came): exit 1.
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::NotFound(_) | CliError::Redis(_) | CliError::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) | CliError::NotFound(m) | CliError::Failed(m) | CliError::Redis(m) => f.write_str(m),
        }
    }
}

impl From<ProtocolError> for CliError {
    fn from(e: ProtocolError) -> Self {
        // Its own Display says "redis: ..." for a Redis error.
        CliError::Redis(e.to_string())
    }
}

impl From<redis::RedisError> for CliError {
    fn from(e: redis::RedisError) -> Self {
        CliError::Redis(format!("redis: {e}"))
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError::Failed(format!("unreadable JSON: {e}"))
    }
}
