//! OpenAI Chat Completions, at a configurable base URL so OpenAI, Ollama,
//! vLLM and other compatible servers all work.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use hemostat_protocol::secret::Secret;
use serde_json::{Value, json};

use super::{Llm, Prompt, send};
use crate::{
    config::LlmConfig,
    error::{AnalyzerError, ProviderError},
};

#[derive(Debug, Clone)]
pub struct OpenAi {
    http: reqwest::Client,
    url: String,
    model: String,
    key: Secret,
    timeout: Duration,
    /// Whether to ask for JSON mode: cleared for good the first time the
    /// model refuses the parameter (gpt-4 and many compatible servers
    /// answer 400 `param: response_format`).
    json_mode: Arc<AtomicBool>,
}

impl OpenAi {
    pub fn new(http: reqwest::Client, config: &LlmConfig, timeout: Duration) -> Self {
        OpenAi {
            http,
            url: format!("{}/chat/completions", config.base_url),
            model: config.model.clone(),
            key: config.api_key.clone(),
            timeout,
            json_mode: Arc::new(AtomicBool::new(true)),
        }
    }

    /// JSON mode (`response_format`) while the model accepts it, so it
    /// cannot answer in prose; without it the system prompt still asks for
    /// JSON only and the verdict's validation enforces it. No `temperature`
    /// or `max_tokens`: some models (o-series, gpt-5) reject them, and the
    /// answer is a few dozen tokens anyway.
    pub fn body(&self, prompt: &Prompt) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
        });
        if self.json_mode.load(Ordering::Relaxed) {
            body["response_format"] = json!({"type": "json_object"});
        }
        body
    }

    async fn ask(&self, prompt: &Prompt) -> Result<String, AnalyzerError> {
        let request = self.http.post(&self.url).bearer_auth(self.key.expose()).json(&self.body(prompt));
        answer(&send(request, self.timeout).await?)
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
        match self.ask(prompt).await {
            Err(AnalyzerError::LlmStatus(ProviderError { status: 400, param: Some(param), .. }))
                if param == "response_format" && self.json_mode.swap(false, Ordering::Relaxed) =>
            {
                tracing::info!(model = %self.model, "the model does not support JSON mode (response_format); asking without it from now on");
                self.ask(prompt).await
            }
            other => other,
        }
    }
}
