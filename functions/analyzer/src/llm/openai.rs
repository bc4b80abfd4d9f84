//! OpenAI Chat Completions, at a configurable base URL so OpenAI, Ollama,
//! vLLM and other compatible servers all work.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
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
    /// Which `response_format` to ask for ([`SCHEMA`], [`JSON_OBJECT`],
    /// [`PLAIN`]): lowered for good, one step, each time the model refuses
    /// the parameter (gpt-4 answers 400 `param: response_format` to a
    /// schema, older compatible servers to JSON mode too).
    format: Arc<AtomicU8>,
}

/// Structured output: the answer's JSON Schema (`json_schema`, strict).
const SCHEMA: u8 = 2;
/// JSON mode (`json_object`): any JSON object.
const JSON_OBJECT: u8 = 1;
/// No `response_format`: the system message alone asks for JSON.
const PLAIN: u8 = 0;

impl OpenAi {
    pub fn new(http: reqwest::Client, config: &LlmConfig, timeout: Duration) -> Self {
        OpenAi {
            http,
            url: format!("{}/chat/completions", config.base_url),
            model: config.model.clone(),
            key: config.api_key.clone(),
            timeout,
            format: Arc::new(AtomicU8::new(SCHEMA)),
        }
    }

    /// Structured output (`response_format` with the answer's JSON Schema)
    /// while the model accepts it, so it cannot answer in prose or outside
    /// the schema, then JSON mode, then neither: the system prompt still
    /// asks for JSON only and the verdict's validation enforces it. No
    /// `temperature` or `max_tokens`: some models (o-series, gpt-5) reject
    /// them, and the answer is a few dozen tokens anyway.
    pub fn body(&self, prompt: &Prompt) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
        });
        match self.format.load(Ordering::Relaxed) {
            SCHEMA => {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": {"name": "hemostat_verdict", "strict": true, "schema": prompt.schema},
                });
            }
            JSON_OBJECT => body["response_format"] = json!({"type": "json_object"}),
            _ => {}
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
        loop {
            let format = self.format.load(Ordering::Relaxed);
            match self.ask(prompt).await {
                // `response_format` or one of its parts (`response_format.json_schema`).
                Err(AnalyzerError::LlmStatus(ProviderError { status: 400, param: Some(param), .. }))
                    if param.starts_with("response_format") && format > PLAIN =>
                {
                    // Another call may have lowered it meanwhile: only one step from what was asked.
                    let _ = self.format.compare_exchange(format, format - 1, Ordering::Relaxed, Ordering::Relaxed);
                    let next = if format == SCHEMA { "JSON mode (json_object)" } else { "no response_format" };
                    tracing::info!(model = %self.model, "the model refused response_format; asking with {next} from now on");
                }
                other => return other,
            }
        }
    }
}
