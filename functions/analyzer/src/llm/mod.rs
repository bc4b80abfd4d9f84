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

mod anthropic;
mod openai;
mod prompt;
mod verdict;

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    config::{LlmConfig, Provider},
    error::{AnalyzerError, ProviderError},
};

pub use prompt::{Prompt, evidence_json};
pub use verdict::{LlmVerdict, against_rules, parse as parse_verdict};

/// Something that answers a prompt with text. The handler is generic over
/// it so its tests need no HTTP server.
pub trait Llm: Send + Sync {
    /// The model name reported in events.
    fn model(&self) -> &str;
    /// The answer's text; a refusal, an HTTP error or a timeout is an error.
    fn complete(&self, prompt: &Prompt) -> impl Future<Output = Result<String, AnalyzerError>> + Send;
}

/// A `retry-after` longer than this is not waited out: the provider is
/// asked again after this long.
const LONGEST_HOLD: Duration = Duration::from_secs(300);

/// The configured provider, and how long it asked not to be called.
#[derive(Debug, Clone)]
pub struct LlmClient {
    provider: ProviderClient,
    /// Until when calls are held back after a 429 with `retry-after`
    /// (shared by the clones an instance hands out).
    hold: Arc<Mutex<Option<Instant>>>,
}

#[derive(Debug, Clone)]
enum ProviderClient {
    OpenAi(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
}

impl LlmClient {
    /// `http`: the instance's one client (see [`http_client`]); `timeout`
    /// only names the limit in errors, the client enforces it.
    pub fn new(http: reqwest::Client, config: &LlmConfig, timeout: Duration) -> Self {
        let provider = match config.provider {
            Provider::OpenAi => ProviderClient::OpenAi(openai::OpenAi::new(http, config, timeout)),
            Provider::Anthropic => ProviderClient::Anthropic(anthropic::Anthropic::new(http, config, timeout)),
        };
        LlmClient { provider, hold: Arc::default() }
    }

    fn held_for(&self) -> Option<Duration> {
        let hold = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        hold.and_then(|until| until.checked_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }
}

impl Llm for LlmClient {
    fn model(&self) -> &str {
        match &self.provider {
            ProviderClient::OpenAi(c) => c.model(),
            ProviderClient::Anthropic(c) => c.model(),
        }
    }

    async fn complete(&self, prompt: &Prompt) -> Result<String, AnalyzerError> {
        // Asking again inside the window the provider named only earns
        // another 429 and counts against the quota.
        if let Some(left) = self.held_for() {
            return Err(AnalyzerError::LlmRateLimited(left));
        }
        let result = match &self.provider {
            ProviderClient::OpenAi(c) => c.complete(prompt).await,
            ProviderClient::Anthropic(c) => c.complete(prompt).await,
        };
        if let Err(AnalyzerError::LlmStatus(ProviderError { status: 429, retry_after: Some(after), .. })) = &result {
            let until = Instant::now() + (*after).min(LONGEST_HOLD);
            *self.hold.lock().unwrap_or_else(|p| p.into_inner()) = Some(until);
        }
        result
    }
}

/// The HTTP client, built once per instance: rustls with the ring provider
/// (no C toolchain for the arm64 cross-compile), the OS's root
/// certificates, and `timeout` on every request.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, AnalyzerError> {
    hemostat_protocol::tls::install_crypto_provider();
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
        AnalyzerError::LlmStatus(ProviderError { status: status.as_u16(), ..ProviderError::default() })
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
        let retry_after = retry_after(response.headers());
        // The body says which parameter or limit; unreadable is fine.
        let body: Value = response.json().await.unwrap_or(Value::Null);
        return Err(AnalyzerError::LlmStatus(provider_error(status.as_u16(), &body, retry_after)));
    }
    // The headers came: failing now means the body stopped half-way.
    let bytes = response.bytes().await.map_err(|e| {
        if e.is_timeout() {
            AnalyzerError::LlmTimeout(timeout)
        } else {
            AnalyzerError::LlmCutShort(e.without_url().to_string())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| AnalyzerError::InvalidVerdict(format!("response body is not JSON: {e}")))
}

/// `retry-after`: seconds (what both providers send) or an HTTP date;
/// anything else is ignored.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    hemostat_protocol::retry_after::parse(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?)
}

/// The safe parts of an error body: OpenAI's `{"error": {"message", "type",
/// "param", "code"}}` and Anthropic's `{"type": "error", "error": {"type",
/// "message"}}`. The message is never kept (it may quote the key).
fn provider_error(status: u16, body: &Value, retry_after: Option<Duration>) -> ProviderError {
    let error = body.get("error").unwrap_or(&Value::Null);
    let text = |k: &str| error.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(safe_word);
    ProviderError { status, kind: text("code").or_else(|| text("type")), param: text("param"), retry_after }
}

/// At most 64 characters of `[A-Za-z0-9_.-]`: error codes and parameter
/// names are words; anything else is not repeated.
fn safe_word(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, RETRY_AFTER};

    #[test]
    fn a_hostile_retry_after_is_ignored_not_a_panic() {
        let with = |value: &str| HeaderMap::from_iter([(RETRY_AFTER, value.parse().unwrap())]);
        assert_eq!(retry_after(&with("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&with("0.5")), Some(Duration::from_millis(500)));
        for bad in ["1e20", "-1", "NaN", "inf", "soon"] {
            assert_eq!(retry_after(&with(bad)), None, "{bad}");
        }
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
