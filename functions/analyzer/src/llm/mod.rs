//! LLM analysis: one question per alert, a JSON verdict back.
//!
//! - [`prompt`]: what the model is told (the alert, the history, the
//!   allowed actions, the rules' own assessment).
//! - [`openai`]: OpenAI Chat Completions (and compatible servers).
//! - [`anthropic`]: Anthropic Messages.
//! - [`verdict`]: strict validation of the answer.
//!
//! Providers only return the answer's text; validating it is the same for
//! every provider and lives in [`verdict`].

pub mod anthropic;
pub mod openai;
pub mod prompt;
pub mod verdict;

use std::{future::Future, time::Duration};

use crate::{
    config::{LlmConfig, Provider},
    error::AnalyzerError,
};

pub use prompt::Prompt;

/// Something that answers a prompt with text. The handler is generic over
/// it so its tests need no HTTP server.
pub trait Llm: Send + Sync {
    /// The model name reported in events.
    fn model(&self) -> &str;
    /// The answer's text; a refusal, an HTTP error or a timeout is an error.
    fn complete(&self, prompt: &Prompt) -> impl Future<Output = Result<String, AnalyzerError>> + Send;
}

/// The configured provider.
#[derive(Debug, Clone)]
pub enum LlmClient {
    OpenAi(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
}

impl LlmClient {
    /// `http`: the instance's one client (see [`http_client`]); `timeout`
    /// only names the limit in errors, the client enforces it.
    pub fn new(http: reqwest::Client, config: &LlmConfig, timeout: Duration) -> Self {
        match config.provider {
            Provider::OpenAi => LlmClient::OpenAi(openai::OpenAi::new(http, config, timeout)),
            Provider::Anthropic => LlmClient::Anthropic(anthropic::Anthropic::new(http, config, timeout)),
        }
    }
}

impl Llm for LlmClient {
    fn model(&self) -> &str {
        match self {
            LlmClient::OpenAi(c) => c.model(),
            LlmClient::Anthropic(c) => c.model(),
        }
    }

    async fn complete(&self, prompt: &Prompt) -> Result<String, AnalyzerError> {
        match self {
            LlmClient::OpenAi(c) => c.complete(prompt).await,
            LlmClient::Anthropic(c) => c.complete(prompt).await,
        }
    }
}

/// The HTTP client, built once per instance: rustls with the ring provider
/// (no C toolchain for the arm64 cross-compile), the OS's root
/// certificates, and `timeout` on every request.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, AnalyzerError> {
    // Err only means a provider is already installed (the Redis TLS code
    // installs the same one): fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| AnalyzerError::Config { name: "AI_MODEL", reason: format!("building the HTTP client: {e}") })
}

/// Maps a failed request: a timeout is reported as such, so the event can
/// say `llm_timeout` rather than a generic error.
pub(crate) fn transport_error(e: reqwest::Error, timeout: Duration) -> AnalyzerError {
    if e.is_timeout() {
        AnalyzerError::LlmTimeout(timeout)
    } else if let Some(status) = e.status() {
        AnalyzerError::LlmStatus { status: status.as_u16() }
    } else {
        // Without the URL: it is configuration, not news, and keeps the
        // message short.
        AnalyzerError::LlmTransport(e.without_url().to_string())
    }
}

/// Sends `request` and returns the JSON body of a 2xx answer.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<serde_json::Value, AnalyzerError> {
    let response = request.send().await.map_err(|e| transport_error(e, timeout))?;
    let status = response.status();
    if !status.is_success() {
        return Err(AnalyzerError::LlmStatus { status: status.as_u16() });
    }
    response.json().await.map_err(|e| {
        if e.is_timeout() {
            AnalyzerError::LlmTimeout(timeout)
        } else {
            AnalyzerError::InvalidVerdict(format!("response body is not JSON: {}", e.without_url()))
        }
    })
}
