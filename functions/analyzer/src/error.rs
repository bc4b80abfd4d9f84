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
    /// The provider answered with an HTTP error. Only the error's type and
    /// parameter are kept from the body, never its message: providers echo
    /// part of the key back in authentication errors.
    #[error("LLM answered HTTP {}{}", .0.status, .0.describe())]
    LlmStatus(ProviderError),
    /// A 429 asked to wait; calls are held back until then.
    #[error("LLM rate limited: not asked again for {0:?}")]
    LlmRateLimited(Duration),
    #[error("LLM request failed: {0}")]
    LlmTransport(String),
    /// The answer's body ended before it was complete (connection dropped).
    #[error("LLM answer cut short: {0}")]
    LlmCutShort(String),
    #[error("LLM refused: {0}")]
    LlmRefusal(String),
    #[error("invalid LLM verdict: {0}")]
    InvalidVerdict(String),
    /// The embedded failure signatures do not parse or validate: the
    /// analyzer refuses to start.
    #[error("signature catalogue: {0}")]
    Catalogue(String),
    /// A valid verdict that would make the failure worse by the rules' own
    /// diagnosis (a restart where one cannot help, a stop where one would).
    #[error("LLM verdict overruled: {0}")]
    LlmOverruled(String),
}

impl AnalyzerError {
    /// What a `rule_fallback` event says about why the LLM did not decide.
    pub fn fallback_reason(&self) -> &'static str {
        match self {
            AnalyzerError::LlmTimeout(_) => "llm_timeout",
            AnalyzerError::LlmStatus(e) => match e.status {
                400 | 404 | 413 | 422 => "llm_bad_request",
                401 | 403 => "llm_unauthorized",
                429 => "llm_rate_limited",
                // Anthropic's "overloaded", and a gateway's "unavailable".
                503 | 529 => "llm_overloaded",
                500..=599 => "llm_server_error",
                _ => "llm_error",
            },
            AnalyzerError::LlmRateLimited(_) => "llm_rate_limited",
            AnalyzerError::LlmTransport(_) => "llm_error",
            AnalyzerError::LlmCutShort(_) => "llm_cut_short",
            AnalyzerError::LlmRefusal(_) => "llm_refusal",
            AnalyzerError::InvalidVerdict(_) => "llm_invalid_response",
            AnalyzerError::LlmOverruled(_) => "llm_overruled",
            AnalyzerError::Redis(_)
            | AnalyzerError::Protocol(_)
            | AnalyzerError::Config { .. }
            | AnalyzerError::Catalogue(_) => "internal_error",
        }
    }
}

/// What a provider's HTTP error says, as far as it is safe to repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderError {
    pub status: u16,
    /// The error's type or code: OpenAI's `error.code` or `error.type`
    /// (`invalid_api_key`, `rate_limit_exceeded`), Anthropic's `error.type`
    /// (`overloaded_error`).
    pub kind: Option<String>,
    /// The request parameter a 400 names (OpenAI's `error.param`).
    pub param: Option<String>,
    /// `retry-after`, when the provider sent one.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    fn describe(&self) -> String {
        let mut out = String::new();
        if let Some(kind) = &self.kind {
            out.push_str(&format!(" ({kind})"));
        }
        if let Some(param) = &self.param {
            out.push_str(&format!(", parameter {param}"));
        }
        if let Some(after) = self.retry_after {
            out.push_str(&format!(", retry after {}s", after.as_secs()));
        }
        out
    }
}
