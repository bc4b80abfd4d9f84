//! Shared by the analyzer's integration tests: alerts as the collector
//! sends them, a recording publisher, Redis connections, the fake LLM.

#![allow(dead_code)] // each test binary uses a different part

/// The fake LLM lives in the e2e harness, which the incident suite shares.
#[allow(unused_imports)] // rules_path does not use it
pub use hemostat_e2e::fake_llm;

use std::sync::Mutex;

use hemostat_analyzer::{Analyzer, Config, Llm};
use hemostat_e2e::RedisServer;
use hemostat_protocol::connection::Connection;
use hemostat_protocol::{
    Envelope, EventKind, ProtocolError, Publisher,
    batch::{self, BatchEvent, BatchRecord},
    event::{FalseAlarm, RemediationNeeded},
};
use serde_json::{Value, json};

/// Keeps what the handler published.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Envelope>>);

impl Publisher for Recorder {
    async fn publish(&self, env: &Envelope) -> Result<String, ProtocolError> {
        self.0.lock().unwrap().push(env.clone());
        Ok("0-1".into())
    }
}

impl Recorder {
    pub fn take(&self) -> Vec<Envelope> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub async fn manager(redis: &RedisServer) -> Connection {
    hemostat_protocol::connection::connect(&redis.url()).await.expect("redis connection")
}

/// A health alert from the collector: `anomalies` as (kind, severity),
/// sent `minutes_ago` (fractional) before now.
pub struct AlertSpec {
    pub container: &'static str,
    pub image: String,
    pub anomalies: Vec<(&'static str, &'static str)>,
    pub cpu: f64,
    pub mem: f64,
    pub exit_code: Option<i64>,
    pub extra: Value,
    /// The `evidence` the collector attached, when any.
    pub evidence: Option<Value>,
}

impl AlertSpec {
    pub fn new(container: &'static str, kind: &'static str) -> Self {
        AlertSpec {
            container,
            image: "acme/api:1.4".into(),
            anomalies: vec![(kind, "high")],
            cpu: 12.0,
            mem: 40.0,
            exit_code: matches!(kind, "non_zero_exit" | "oom_killed").then_some(1),
            extra: json!({}),
            evidence: None,
        }
    }

    /// Evidence with these stderr log lines and Docker's exit code.
    pub fn logs(mut self, lines: &[&str]) -> Self {
        let lines: Vec<Value> = lines.iter().map(|l| json!({"stream": "stderr", "line": l})).collect();
        let count = lines.len();
        self.evidence = Some(json!({
            "logs": {"lines": lines, "tail": 50, "count": count},
            "state": {"status": "exited", "exit_code": self.exit_code, "oom_killed": false, "restart_count": 0},
        }));
        self
    }

    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    pub fn severity(mut self, severity: &'static str) -> Self {
        self.anomalies[0].1 = severity;
        self
    }

    pub fn cpu(mut self, cpu: f64) -> Self {
        self.cpu = cpu;
        self
    }

    pub fn mem(mut self, mem: f64) -> Self {
        self.mem = mem;
        self
    }

    pub fn envelope(&self, minutes_ago: f64) -> String {
        let at = chrono::Utc::now() - chrono::Duration::milliseconds((minutes_ago * 60_000.0) as i64);
        let mut metrics = json!({
            "name": self.container,
            "status": if self.exit_code.is_some() { "exited" } else { "running" },
            "cpu_pct": self.cpu,
            "memory_pct": self.mem,
            "timestamp": at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        });
        if let (Some(m), Some(extra)) = (metrics.as_object_mut(), self.extra.as_object()) {
            m.extend(extra.clone());
        }
        let anomalies: Vec<Value> = self
            .anomalies
            .iter()
            .map(|(k, s)| json!({"type": k, "severity": s, "threshold": 85.0, "actual": self.cpu}))
            .collect();
        json!({
            "timestamp": at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            "agent": "HemoStat-Monitor",
            "type": "health_alert",
            "data": {
                "container": self.container,
                "host": "h1",
                "image": self.image,
                "container_id": "abc123",
                "issues": self.anomalies.iter().map(|(k, _)| format!("{k} detected")).collect::<Vec<_>>(),
                "metrics": metrics,
                "anomalies": anomalies,
                "exit_code": self.exit_code,
                "evidence": self.evidence,
            }
        })
        .to_string()
    }
}

pub fn record(id: usize, body: String) -> BatchRecord {
    batch::record(format!("{id}-0"), EventKind::HealthAlert.stream(), body, 1)
}

pub fn batch_of(bodies: Vec<String>) -> BatchEvent {
    batch::event(bodies.into_iter().enumerate().map(|(i, b)| record(i + 1, b)).collect())
}

/// The decision, whichever kind it is.
#[derive(Debug)]
pub struct Decided {
    pub kind: EventKind,
    pub action: String,
    pub confidence: f64,
    pub reason: String,
    pub method: Option<String>,
    pub model: Option<String>,
    pub fallback_reason: Option<String>,
    pub cached: bool,
    pub json: String,
}

pub fn decided(env: &Envelope) -> Decided {
    match env.kind {
        EventKind::RemediationNeeded => {
            let n: RemediationNeeded = env.data_as().unwrap();
            Decided {
                kind: env.kind,
                action: n.action.as_str().into(),
                confidence: n.confidence,
                reason: n.reason,
                method: n.context.analysis_method,
                model: n.context.model,
                fallback_reason: n.fallback_reason,
                cached: n.llm_cached,
                json: env.to_json(),
            }
        }
        EventKind::FalseAlarm => {
            let f: FalseAlarm = env.data_as().unwrap();
            Decided {
                kind: env.kind,
                action: "none".into(),
                confidence: f.confidence.unwrap_or(-1.0),
                reason: f.reason,
                method: f.context.analysis_method,
                model: f.context.model,
                fallback_reason: f.fallback_reason,
                cached: f.llm_cached,
                json: env.to_json(),
            }
        }
        other => panic!("analyzer published {other}"),
    }
}

/// Sends one alert through the handler and returns its decision.
pub async fn decide<L: Llm>(analyzer: &Analyzer<Recorder, L>, body: String) -> Decided {
    let response = analyzer.handle(batch_of(vec![body])).await;
    assert!(response.batch_item_failures.is_empty() && response.rejected_items.is_empty(), "{response:?}");
    let published = analyzer.publisher().take();
    assert_eq!(published.len(), 1, "{published:?}");
    decided(&published[0])
}

/// The defaults, but alerts need no attestation: these tests hand alerts
/// to the handler as a custom monitor would (`rules_path.rs` tests the
/// attestation itself).
pub fn config() -> Config {
    Config { require_attested_alerts: false, ..Config::default() }
}
