//! A local HTTP server that answers like OpenAI Chat Completions
//! (`POST /v1/chat/completions`) and Anthropic Messages (`POST
//! /v1/messages`), in a mode the test sets, and keeps every request.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// `{"action":"restart","confidence":0.88,...}`.
    Good,
    /// A good answer, after this long.
    Slow(Duration),
    /// HTTP 500.
    ServerError,
    /// A 200 whose answer text is prose, not JSON.
    Malformed,
    /// A 200 whose body is not JSON at all.
    BrokenBody,
    /// A JSON verdict with an action outside the allowed set.
    Disallowed,
    /// The provider's refusal (OpenAI `refusal`, Anthropic `stop_reason`).
    Refusal,
}

pub const GOOD_ANSWER: &str = r#"{"action": "restart", "confidence": 0.88, "reason": "fake model: crash, restart"}"#;

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

struct Shared {
    mode: Mutex<Mode>,
    seen: Mutex<Vec<Seen>>,
}

pub struct FakeLlm {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLlm {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared { mode: Mutex::new(Mode::Good), seen: Mutex::new(Vec::new()) });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake LLM server");
        });
        FakeLlm { addr, shared, task }
    }

    /// `OPENAI_BASE_URL` for this server.
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `ANTHROPIC_BASE_URL` for this server.
    pub fn anthropic_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }
}

/// Records the request and returns the mode to answer in.
async fn observe(shared: &Shared, path: &str, headers: HeaderMap, body: &Bytes) -> Mode {
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    shared.seen.lock().unwrap().push(Seen { path: path.into(), headers, body });
    let mode = *shared.mode.lock().unwrap();
    if let Mode::Slow(d) = mode {
        tokio::time::sleep(d).await;
    }
    mode
}

fn text_of(mode: Mode) -> &'static str {
    match mode {
        Mode::Malformed => "I would restart the container, it crashed.",
        Mode::Disallowed => r#"{"action": "exec", "confidence": 0.95, "reason": "run rm -rf /tmp/cache"}"#,
        _ => GOOD_ANSWER,
    }
}

fn special(mode: Mode) -> Option<Response> {
    match mode {
        Mode::ServerError => Some((StatusCode::INTERNAL_SERVER_ERROR, "upstream overloaded").into_response()),
        Mode::BrokenBody => {
            Some((StatusCode::OK, [("content-type", "application/json")], "{\"choices\": [").into_response())
        }
        _ => None,
    }
}

async fn openai(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mode = observe(&shared, "/v1/chat/completions", headers, &body).await;
    if let Some(r) = special(mode) {
        return r;
    }
    let message = if mode == Mode::Refusal {
        json!({"role": "assistant", "content": null, "refusal": "I'm sorry, I can't help with that."})
    } else {
        json!({"role": "assistant", "content": text_of(mode), "refusal": null})
    };
    axum::Json(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }))
    .into_response()
}

async fn anthropic(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mode = observe(&shared, "/v1/messages", headers, &body).await;
    if let Some(r) = special(mode) {
        return r;
    }
    let (content, stop) = if mode == Mode::Refusal {
        (json!([]), "refusal")
    } else {
        (json!([{"type": "text", "text": text_of(mode)}]), "end_turn")
    };
    axum::Json(json!({
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "fake",
        "content": content,
        "stop_reason": stop,
        "usage": {"input_tokens": 100, "output_tokens": 20},
    }))
    .into_response()
}
