//! Anthropic Messages.

use std::time::Duration;

use hemostat_protocol::secret::Secret;
use serde_json::{Value, json};

use super::{Llm, Prompt, send};
use crate::{config::LlmConfig, error::AnalyzerError};

pub const API_VERSION: &str = "2023-06-01";
/// The verdict is a few dozen tokens; the cap bounds the cost of a model
/// that rambles (an answer cut off is invalid anyway).
pub const MAX_TOKENS: u32 = 300;

#[derive(Debug, Clone)]
pub struct Anthropic {
    http: reqwest::Client,
    url: String,
    model: String,
    key: Secret,
    timeout: Duration,
}

impl Anthropic {
    pub fn new(http: reqwest::Client, config: &LlmConfig, timeout: Duration) -> Self {
        Anthropic {
            http,
            url: format!("{}/v1/messages", config.base_url),
            model: config.model.clone(),
            key: config.api_key.clone(),
            timeout,
        }
    }

    /// The Messages API has no JSON mode; the system prompt asks for JSON
    /// only and [`super::verdict`] enforces it.
    pub fn body(&self, prompt: &Prompt) -> Value {
        json!({
            "model": self.model,
            "max_tokens": MAX_TOKENS,
            "system": prompt.system,
            "messages": [{"role": "user", "content": prompt.user}],
        })
    }
}

/// The text blocks of the answer; a `refusal` stop or no text is an error.
pub fn answer(body: &Value) -> Result<String, AnalyzerError> {
    match body.get("stop_reason").and_then(Value::as_str) {
        Some("refusal") => return Err(AnalyzerError::LlmRefusal("stop_reason refusal".into())),
        Some("max_tokens") => return Err(AnalyzerError::InvalidVerdict("answer cut off (max_tokens)".into())),
        _ => {}
    }
    let blocks = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| AnalyzerError::InvalidVerdict("no content in the response".into()))?;
    let text: String = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Err(AnalyzerError::LlmRefusal("empty answer".into()));
    }
    Ok(text.to_owned())
}

impl Llm for Anthropic {
    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, prompt: &Prompt) -> Result<String, AnalyzerError> {
        let request = self
            .http
            .post(&self.url)
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", API_VERSION)
            .json(&self.body(prompt));
        answer(&send(request, self.timeout).await?)
    }
}
