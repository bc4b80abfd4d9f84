//! Shared by the alert's integration tests: a webhook receiver on a real
//! socket whose answers a test scripts, a real redis-server, and envelopes.

#![allow(dead_code)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use hemostat_alert::{Alert, Config, RedisLog};
use hemostat_e2e::RedisServer;
use hemostat_protocol::{EventKind, batch, batch::BatchRecord, connection, secret::Secret};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    RateLimited(&'static str),
    /// Never answers (a Slack that hangs).
    Hang,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub raw: Bytes,
    pub body: serde_json::Value,
}

pub struct Receiver {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Answers with `script` in order, then 200 `ok` (what Slack says).
    pub async fn start(script: Vec<Reply>) -> Receiver {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let seen = requests.clone();
        let app = axum::Router::new().route(
            "/services/T000/B000/XXXX",
            axum::routing::post(move |headers: HeaderMap, raw: Bytes| {
                let seen = seen.clone();
                let script = script.clone();
                async move {
                    let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
                    seen.lock().unwrap().push(Received { at: Instant::now(), headers, raw, body });
                    let reply = {
                        let mut s = script.lock().unwrap();
                        if s.is_empty() { Reply::Status(200) } else { s.remove(0) }
                    };
                    respond(reply).await
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url: format!("http://{addr}/services/T000/B000/XXXX"), requests }
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.requests.lock().unwrap().iter().map(|r| r.body.clone()).collect()
    }

    pub fn all(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }
}

async fn respond(reply: Reply) -> Response {
    match reply {
        Reply::Status(code) => (StatusCode::from_u16(code).unwrap(), "ok").into_response(),
        Reply::RateLimited(secs) => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", secs)], "rate_limited").into_response()
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
    }
}

/// Short bounds so failure paths take a second, not the production 15 s.
pub fn config(slack: Option<&str>) -> Config {
    Config {
        slack_webhook_url: slack.map(Secret::new),
        http_timeout: Duration::from_millis(400),
        max_attempts: 3,
        retry_base: Duration::from_millis(50),
        notify_deadline: Duration::from_millis(1500),
        ..Config::default()
    }
}

pub async fn alert(redis: &RedisServer, config: &Config) -> Alert<RedisLog> {
    let conn = connection::connect(&redis.url()).await.expect("redis");
    Alert::new(config, RedisLog::from_config(conn, config)).unwrap()
}

pub fn record(id: &str, kind: EventKind, body: &str) -> BatchRecord {
    batch::record(id, kind.stream(), body, 1)
}

pub fn envelope(kind: &str, ts: &str, data: serde_json::Value) -> String {
    serde_json::json!({"timestamp": ts, "agent": "HemoStat-Responder", "type": kind, "data": data}).to_string()
}

/// A `remediation_complete` of `container` on h1 with `status`.
pub fn complete(container: &str, status: &str, ts: &str) -> String {
    envelope(
        "remediation_complete",
        ts,
        serde_json::json!({"container": container, "host": "h1", "action": "restart", "confidence": 0.9,
            "reason": "Exited with code 1", "analysis_method": "rule_based",
            "result": {"status": status, "action": "restart", "container": container, "duration_ms": 850, "verified": true}}),
    )
}
