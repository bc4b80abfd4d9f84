//! A local HTTP server that answers like OpenAI Chat Completions
//! (`POST /v1/chat/completions`) and Anthropic Messages (`POST
//! /v1/messages`), in a mode the test sets, and keeps every request.
//! Shared by the analyzer's tests and the incident suite's LLM path.

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
    /// HTTP 500, in the provider's error shape.
    ServerError,
    /// HTTP 400 `invalid_request_error` (a bad parameter value).
    InvalidRequest,
    /// HTTP 400 naming `param: response_format` whenever the request has
    /// one, as gpt-4 answers; a good answer without it.
    JsonModeRefused,
    /// HTTP 400 naming `param: response_format` to a JSON Schema only, as
    /// models with JSON mode but without structured outputs answer
    /// (gpt-4-turbo); a good answer to JSON mode.
    SchemaRefused,
    /// HTTP 401 with the provider's message, which quotes part of the key.
    Unauthorized,
    /// HTTP 429 with `retry-after` in seconds.
    RateLimited(u64),
    /// Overloaded: Anthropic's 529 `overloaded_error`, OpenAI's 503.
    Overloaded,
    /// A 200 whose body stops half-way (the connection drops).
    CutShort,
    /// A 200 whose answer text is prose, not JSON.
    Malformed,
    /// A 200 whose body is not JSON at all.
    BrokenBody,
    /// A JSON verdict with an action outside the allowed set.
    Disallowed,
    /// The provider's refusal (OpenAI `refusal`, Anthropic `stop_reason`).
    Refusal,
    /// A 200 whose answer text is this.
    Answer(&'static str),
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

/// Records the request and returns the mode to answer in, and the request.
async fn observe(shared: &Shared, path: &str, headers: HeaderMap, body: &Bytes) -> (Mode, Value) {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    shared.seen.lock().unwrap().push(Seen { path: path.into(), headers, body: body.clone() });
    let mode = *shared.mode.lock().unwrap();
    if let Mode::Slow(d) = mode {
        tokio::time::sleep(d).await;
    }
    (mode, body)
}

fn text_of(mode: Mode) -> &'static str {
    match mode {
        Mode::Malformed => "I would restart the container, it crashed.",
        Mode::Disallowed => r#"{"action": "exec", "confidence": 0.95, "reason": "run rm -rf /tmp/cache"}"#,
        Mode::Answer(text) => text,
        _ => GOOD_ANSWER,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Anthropic,
}

/// An error body as the provider writes it: OpenAI `{"error": {"message",
/// "type", "param", "code"}}`, Anthropic `{"type": "error", "error": {"type",
/// "message"}}`.
fn error(api: Api, status: StatusCode, kind: &str, param: Option<&str>, message: &str) -> Response {
    let body = match api {
        Api::OpenAi => json!({"error": {"message": message, "type": kind, "param": param, "code": null}}),
        Api::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
    };
    (status, axum::Json(body)).into_response()
}

fn special(api: Api, mode: Mode, request: &Value) -> Option<Response> {
    let openai = api == Api::OpenAi;
    match mode {
        Mode::ServerError => {
            let kind = if openai { "server_error" } else { "api_error" };
            Some(error(api, StatusCode::INTERNAL_SERVER_ERROR, kind, None, "The server had an error"))
        }
        Mode::InvalidRequest => Some(error(
            api,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("messages").filter(|_| openai),
            "Invalid value for 'messages'.",
        )),
        Mode::JsonModeRefused if openai && request.get("response_format").is_some() => Some(error(
            api,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("response_format"),
            "Invalid parameter: 'response_format' of type 'json_object' is not supported with this model.",
        )),
        Mode::SchemaRefused if openai && request["response_format"]["type"] == "json_schema" => Some(error(
            api,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("response_format"),
            "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
        )),
        Mode::Unauthorized if openai => {
            // OpenAI puts a code beside the type, and quotes part of the key.
            let message = "Incorrect API key provided: sk-test-****4242. You can find your API key at \
                https://platform.openai.com/account/api-keys.";
            let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null,
                "code": "invalid_api_key"}});
            Some((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
        }
        Mode::Unauthorized => {
            Some(error(api, StatusCode::UNAUTHORIZED, "authentication_error", None, "invalid x-api-key"))
        }
        Mode::RateLimited(secs) => {
            let kind = if openai { "requests" } else { "rate_limit_error" };
            let mut r = error(api, StatusCode::TOO_MANY_REQUESTS, kind, None, "Rate limit reached; try again later.");
            r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            Some(r)
        }
        Mode::Overloaded if openai => Some(error(
            api,
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            None,
            "The engine is currently overloaded, please try again later",
        )),
        Mode::Overloaded => {
            Some(error(api, StatusCode::from_u16(529).unwrap(), "overloaded_error", None, "Overloaded"))
        }
        Mode::CutShort => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"id\": \"x\", \"choices\": [{\"index\": 0, ")),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection dropped")),
            ];
            // A pause before each chunk, so the headers and the first half
            // are on the wire before the connection drops.
            let chunks = futures::StreamExt::then(futures::stream::iter(chunks), |c| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                c
            });
            let body = axum::body::Body::from_stream(chunks);
            Some((StatusCode::OK, [("content-type", "application/json")], body).into_response())
        }
        Mode::BrokenBody => {
            Some((StatusCode::OK, [("content-type", "application/json")], "{\"choices\": [").into_response())
        }
        _ => None,
    }
}

async fn openai(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (mode, request) = observe(&shared, "/v1/chat/completions", headers, &body).await;
    if let Some(r) = special(Api::OpenAi, mode, &request) {
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
    let (mode, request) = observe(&shared, "/v1/messages", headers, &body).await;
    if let Some(r) = special(Api::Anthropic, mode, &request) {
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
