//! The analyzer's one error type. LLM failures are values the handler turns
//! into a rules fallback; Redis failures make the bridge deliver the record
//! again.

use std::time::Duration;

use hemostat_protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum AnalyzerError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A setting that cannot work; the message names the variable, never a
    /// secret's value.
    #[error("{name}: {reason}")]
    Config { name: &'static str, reason: String },
    #[error("LLM call timed out after {0:?}")]
    LlmTimeout(Duration),
    /// The provider answered with an HTTP error. The body is left out: some
    /// providers echo part of the key back in authentication errors.
    #[error("LLM answered HTTP {status}")]
    LlmStatus { status: u16 },
    #[error("LLM request failed: {0}")]
    LlmTransport(String),
    #[error("LLM refused: {0}")]
    LlmRefusal(String),
    #[error("invalid LLM verdict: {0}")]
    InvalidVerdict(String),
}

impl AnalyzerError {
    /// What a `rule_fallback` event says about why the LLM did not decide.
    pub fn fallback_reason(&self) -> &'static str {
        match self {
            AnalyzerError::LlmTimeout(_) => "llm_timeout",
            AnalyzerError::LlmStatus { .. } | AnalyzerError::LlmTransport(_) => "llm_error",
            AnalyzerError::LlmRefusal(_) => "llm_refusal",
            AnalyzerError::InvalidVerdict(_) => "llm_invalid_response",
            AnalyzerError::Redis(_) | AnalyzerError::Protocol(_) | AnalyzerError::Config { .. } => "internal_error",
        }
    }
}
