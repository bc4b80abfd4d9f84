//! Shared by the exporter's end-to-end tests: the emulator running the real
//! template's exporter, plain HTTP, events in the seed format, Prometheus
//! as a process.

#![allow(dead_code)] // each test binary uses a different part

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use hemostat_e2e::{Process, RedisServer, free_port, lambda_bearer, start_emulator, wait_for, workspace_root};
use hemostat_protocol::{Envelope, EventKind, Publisher, RedisPublisher};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

/// The deployed name of the exporter (template's `${FunctionPrefix}-exporter`).
pub const EXPORTER: &str = "hemostat-exporter";

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request.
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Full::new(body.into())).expect("request");
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .unwrap_or_else(|_| panic!("{method} {url}: no answer in 30 s"))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

pub async fn get(url: &str) -> Reply {
    request("GET", url, &[], Bytes::new()).await
}

/// The emulator running only the exporter of the real template.yaml, with
/// `envs` (the exporter's variables, which the template declares so a host
/// value wins). Its URL's AuthType is NONE, as the local stack runs it for
/// Prometheus (`EXPORTER_BEARER_TOKEN` is then the exporter's own check).
pub async fn start_exporter(redis: &RedisServer, envs: &[(&str, &str)]) -> (Process, String) {
    let template = workspace_root().join("template.yaml");
    start_emulator(|b| {
        let b = b
            .args(["--template", template.to_str().unwrap()])
            .args(["--functions", EXPORTER])
            .args(["--parameter-overrides", "ExporterUrlAuthType=NONE"])
            .env("REDIS_URL", redis.url())
            .env("RUST_LOG", "info")
            .env("EXPORTER_CLOUDWATCH_ENABLED", "false");
        envs.iter().fold(b, |b, (k, v)| b.env(k, v))
    })
    .await
}

/// The exporter's `/metrics` behind the emulator's function URL.
pub fn metrics_url(endpoint: &str) -> String {
    format!("{endpoint}/urls/{EXPORTER}/metrics")
}

/// A synchronous invocation through the Invoke API; panics on a function error.
pub async fn invoke(endpoint: &str, payload: &Value) -> Value {
    let url = format!("{endpoint}/2015-03-31/functions/{EXPORTER}/invocations");
    let bearer = lambda_bearer();
    let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
    let reply = request("POST", &url, &headers, payload.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.headers.get("x-amz-function-error").is_none(), "function error: {}", reply.body);
    reply.json()
}

/// EventBridge's scheduled event, as the `rate(1 minute)` rule sends it.
pub fn scheduled_event() -> Value {
    json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "000000000000", "time": chrono::Utc::now().to_rfc3339(),
        "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:000000000000:rule/hemostat-exporter-CollectorCheck"],
        "detail": {}
    })
}

/// The value of one exact series in a text exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A realistic incident sequence for `container` on `host`, as the
/// collector, analyzer and responder publish it: crash, verdict, verified
/// restart; plus a false alarm for a CPU spike.
pub fn incident(host: &str, container: &str, detected: chrono::DateTime<chrono::Utc>) -> Vec<(EventKind, Value)> {
    let detected_at = detected.to_rfc3339();
    vec![
        (
            EventKind::HealthAlert,
            json!({"container": container, "host": host, "issues": ["Exited with code 1"], "metrics": {"name": container, "status": "exited"},
                   "anomalies": [{"type": "non_zero_exit", "severity": "high"}], "exit_code": 1, "detected_at": detected_at}),
        ),
        (
            EventKind::RemediationNeeded,
            json!({"container": container, "host": host, "action": "restart", "reason": "Exited with code 1", "confidence": 0.9,
                   "analysis_method": "rule_based", "detected_at": detected_at}),
        ),
        (
            EventKind::RemediationComplete,
            json!({"container": container, "host": host, "action": "restart", "detected_at": detected_at,
                   "result": {"status": "success", "action": "restart", "container": container, "duration_ms": 1800, "verified": true}}),
        ),
        (
            EventKind::HealthAlert,
            json!({"container": container, "host": host, "metrics": {"name": container, "cpu_pct": 93.0},
                   "anomalies": [{"type": "high_cpu", "severity": "medium"}]}),
        ),
        (
            EventKind::FalseAlarm,
            json!({"container": container, "host": host, "reason": "Transient spike", "confidence": 0.65, "analysis_method": "rule_based"}),
        ),
    ]
}

/// Publishes events the way every HemoStat component does (stream + channel).
pub async fn publish(redis: &RedisServer, events: &[(EventKind, Value)]) {
    let conn = hemostat_protocol::connection::connect(&redis.url()).await.expect("redis");
    let publisher = RedisPublisher::new(conn);
    for (kind, data) in events {
        let env = Envelope::new("HemoStat-Test", *kind, data).expect("envelope");
        publisher.publish(&env).await.expect("publish");
    }
}

/// A Records batch of `events` as the bridge would deliver them (ids are
/// stream-entry-like).
pub fn batch(events: &[(EventKind, Value)], first_id: u64) -> Value {
    let records: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, (kind, data))| {
            let env = Envelope::new("HemoStat-Test", *kind, data).expect("envelope");
            json!({"messageId": format!("{}-0", first_id + i as u64), "eventSourceARN": kind.stream(),
                   "eventSource": "hemostat:redis-stream", "attributes": {"ApproximateReceiveCount": "1"}, "body": env.to_json()})
        })
        .collect();
    json!({"Records": records})
}

/// `promtool` on PATH (Debian's `prometheus` package, scripts/test-env.sh install).
pub fn promtool() -> &'static str {
    "promtool"
}

/// Runs `promtool check metrics` on `text`; returns (success, output).
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: run scripts/test-env.sh install (Debian package prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A Prometheus server on a free loopback port with `config` (YAML), its
/// data in a fresh directory. Returns the process and its base URL.
pub async fn start_prometheus(config: &str) -> (Process, String, PathBuf) {
    let dir = std::env::temp_dir().join(format!("hemostat-prometheus-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let bin =
        which("prometheus").expect("prometheus not found: run scripts/test-env.sh install (Debian package prometheus)");
    let port = free_port();
    let process = Process::builder(bin.to_str().unwrap())
        .name("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .spawn();
    process.wait_for_line("Server is ready to receive web requests", Duration::from_secs(30)).await;
    (process, format!("http://127.0.0.1:{port}"), dir)
}

/// An instant query against Prometheus' HTTP API: the `data.result` array.
pub async fn query(prometheus: &str, promql: &str) -> Result<Vec<Value>, String> {
    let q: String = form_urlencoded(promql);
    let reply = get(&format!("{prometheus}/api/v1/query?query={q}")).await;
    let v = reply.json();
    if v["status"] != "success" {
        return Err(format!("{promql}: {}", reply.body));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// Waits until `promql` returns a series whose value satisfies `ok`.
pub async fn query_until(prometheus: &str, promql: &str, timeout: Duration, ok: impl Fn(f64) -> bool) -> Option<f64> {
    wait_for(timeout, || async {
        let result = query(prometheus, promql).await.ok()?;
        let value: f64 = result.first()?["value"][1].as_str()?.parse().ok()?;
        ok(value).then_some(value)
    })
    .await
}

fn form_urlencoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(program)).find(|p| p.is_file())
}
