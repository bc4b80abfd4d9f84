//! OpenAI Chat Completions, at a configurable base URL so OpenAI, Ollama,
//! vLLM and other compatible servers all work.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Llm, Prompt, send};
use crate::{
    config::{ApiKey, LlmConfig},
    error::AnalyzerError,
};

#[derive(Debug, Clone)]
pub struct OpenAi {
    http: reqwest::Client,
    url: String,
    model: String,
    key: ApiKey,
    timeout: Duration,
}

impl OpenAi {
    pub fn new(http: reqwest::Client, config: &LlmConfig, timeout: Duration) -> Self {
        OpenAi {
            http,
            url: format!("{}/chat/completions", config.base_url),
            model: config.model.clone(),
            key: config.api_key.clone(),
            timeout,
        }
    }

    /// JSON mode (`response_format`) so the model cannot answer in prose.
    /// No `temperature` or `max_tokens`: some models (o-series, gpt-5)
    /// reject them, and the answer is a few dozen tokens anyway.
    pub fn body(&self, prompt: &Prompt) -> Value {
        json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "response_format": {"type": "json_object"},
        })
    }
}

/// The text of the first choice; a refusal, a content filter stop or an
/// empty answer is an error.
pub fn answer(body: &Value) -> Result<String, AnalyzerError> {
    let choice = body
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| AnalyzerError::InvalidVerdict("no choices in the response".into()))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        return Err(AnalyzerError::LlmRefusal(refusal.chars().take(200).collect()));
    }
    match choice.get("finish_reason").and_then(Value::as_str) {
        Some("content_filter") => return Err(AnalyzerError::LlmRefusal("content filter".into())),
        Some("length") => return Err(AnalyzerError::InvalidVerdict("answer cut off (length)".into())),
        _ => {}
    }
    match message.get("content").and_then(Value::as_str).map(str::trim) {
        Some(text) if !text.is_empty() => Ok(text.to_owned()),
        _ => Err(AnalyzerError::LlmRefusal("empty answer".into())),
    }
}

impl Llm for OpenAi {
    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, prompt: &Prompt) -> Result<String, AnalyzerError> {
        let request = self.http.post(&self.url).bearer_auth(self.key.expose()).json(&self.body(prompt));
        answer(&send(request, self.timeout).await?)
    }
}
