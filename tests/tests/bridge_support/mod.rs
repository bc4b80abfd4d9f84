//! Shared by the `bridge_*` tests: a private redis-server, the Lambda
//! emulator running `bridge-test-function` as `hemostat-analyzer` and
//! `hemostat-responder` (so protocol's default routes apply), and bridge
//! processes. The function counts every record it handled in the hash
//! `bridge-test:seen` (field: the event's `data.id`).
//!
//! Needs `cargo build --bins -p hemostat-bridge -p hemostat-local`.

#![allow(dead_code)]

use std::collections::HashMap;

use hemostat_e2e::{Process, RedisServer, bin_dir, log_dir, start_bridge, start_emulator, strip_ansi};
use hemostat_protocol::connection::Connection;
use redis::AsyncCommands;

pub const ALERTS: &str = "hemostat:stream:health_alert";
pub const NEEDED: &str = "hemostat:stream:remediation_needed";
pub const ANALYZER_GROUP: &str = "bridge:analyzer";
pub const RESPONDER_GROUP: &str = "bridge:responder";
pub const SEEN: &str = "bridge-test:seen";
pub const DEAD_LETTER: &str = "hemostat:stream:dead_letter";

pub struct Env {
    pub redis: RedisServer,
    pub endpoint: String,
    emulator: Process,
}

impl Env {
    /// Redis, then the emulator; `responder_timeout` is the responder's
    /// Lambda timeout in seconds (the analyzer gets 10).
    pub async fn start(responder_timeout: u64) -> Env {
        Self::start_on(RedisServer::start().await, responder_timeout).await
    }

    /// [`Env::start`] on a Redis of the caller's (a single node, for tests
    /// that restart it).
    pub async fn start_on(redis: RedisServer, responder_timeout: u64) -> Env {
        let test = hemostat_e2e::current_test_name();
        let template = log_dir().join(format!("{test}-template.yaml"));
        let function = |id: &str, name: &str, timeout: u64| {
            format!(
                "  {id}:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: bridge-test-function\n    Properties:\n      FunctionName: {name}\n      Timeout: {timeout}\n      Environment:\n        Variables:\n          BRIDGE_TEST_REDIS_URL: {url}\n          RUST_LOG: warn\n",
                url = redis.url()
            )
        };
        let yaml = format!(
            "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\nResources:\n{}{}",
            function("Analyzer", "hemostat-analyzer", 10),
            function("Responder", "hemostat-responder", responder_timeout)
        );
        std::fs::write(&template, yaml).expect("write the test template");
        let (emulator, endpoint) = start_emulator(|b| {
            b.args(["--template".to_string(), template.display().to_string()])
                .args(["--bin-dir".to_string(), bin_dir().display().to_string()])
                // The template's value must win: a host variable would override it.
                .env_remove("BRIDGE_TEST_REDIS_URL")
                .env("RUST_LOG", "info")
        })
        .await;
        Env { redis, endpoint, emulator }
    }

    /// A bridge with test-friendly timings; `extra` flags are appended
    /// (later flags win in clap for single values).
    pub async fn bridge(&self, name: &str, extra: &[&str]) -> Process {
        start_bridge(|b| {
            b.name(name)
                .env("REDIS_URL", self.redis.url())
                .env("RUST_LOG", "info")
                .args(["--lambda-endpoint", &self.endpoint, "--function-prefix", "hemostat"])
                // Only the two routes this test template serves; the other
                // functions' routes would dead-letter as "not found".
                .args(["--routes", "health_alert=analyzer,remediation_needed=responder"])
                .args(["--retry-base-ms", "100", "--max-attempts", "3", "--block-ms", "200"])
                // Given once only (clap refuses a repeated value).
                .args(if extra.contains(&"--max-age-seconds") { &[][..] } else { &["--max-age-seconds", "0"][..] })
                .args(extra.iter().copied())
        })
        .await
    }

    pub async fn conn(&self) -> Connection {
        self.redis.connection().await
    }

    pub fn emulator_log_tail(&self) -> String {
        self.emulator.log_tail(30)
    }
}

/// A valid envelope for `stream`'s kind whose data says what the test
/// function should do (`mode`) and names it (`id`).
pub fn envelope(stream: &str, id: &str, mode: &str, extra: serde_json::Value) -> String {
    let kind = stream.rsplit(':').next().unwrap_or("health_alert");
    let mut data = serde_json::json!({"id": id, "mode": mode, "container": "test", "host": "h1"});
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    serde_json::json!({"timestamp": "2025-11-03T10:30:45.123456", "agent": "test", "type": kind, "data": data})
        .to_string()
}

/// XADDs events `prefix{from..to}` (mode ok) in one pipeline.
pub async fn publish_range(conn: &mut Connection, stream: &str, prefix: &str, from: usize, to: usize) {
    let mut pipe = redis::pipe();
    for i in from..to {
        pipe.cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("envelope")
            .arg(envelope(stream, &format!("{prefix}{i}"), "ok", serde_json::json!({})))
            .ignore();
    }
    let _: () = pipe.query_async(conn).await.expect("XADD");
}

pub async fn publish(conn: &mut Connection, stream: &str, id: &str, mode: &str, extra: serde_json::Value) -> String {
    conn.xadd(stream, "*", &[("envelope", envelope(stream, id, mode, extra))]).await.expect("XADD")
}

/// How many times the function handled each event id.
pub async fn seen(conn: &mut Connection) -> HashMap<String, u64> {
    conn.hgetall(SEEN).await.unwrap_or_default()
}

pub async fn pending(conn: &mut Connection, stream: &str, group: &str) -> u64 {
    // The summary form: count, smallest id, greatest id, per-consumer counts.
    let summary: Result<(u64, redis::Value, redis::Value, redis::Value), _> =
        redis::cmd("XPENDING").arg(stream).arg(group).query_async(conn).await;
    summary.map(|s| s.0).unwrap_or(u64::MAX)
}

/// Every dead letter, as field maps.
pub async fn dead_letters(conn: &mut Connection) -> Vec<HashMap<String, String>> {
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(DEAD_LETTER).await.expect("XRANGE");
    reply
        .ids
        .iter()
        .map(|e| e.map.keys().map(|k| (k.clone(), e.get::<String>(k).unwrap_or_default())).collect())
        .collect()
}

/// The bridge's final counters, from its "bridge stopped" line.
pub fn stopped_counter(log: &str, counter: &str) -> Option<u64> {
    let line = strip_ansi(log.lines().rev().find(|l| l.contains("bridge stopped"))?);
    let at = line.find(&format!("{counter}="))? + counter.len() + 1;
    line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}
