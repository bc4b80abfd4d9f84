//! The alert function end to end: redis-server, the Lambda emulator running
//! every function of template.yaml, the bridge, and a Slack stand-in on a
//! real socket. No Docker: health alerts are published as a collector
//! would, and the collector's own `remediation_complete` likewise.
//!
//! - a `remediation_complete` published to Redis ends up in
//!   `hemostat:events:all` (verbatim) and at Slack, green;
//! - a critical crash is restarted once, the second inside the cooldown is
//!   refused: the refusal reaches Slack emphasised, carrying the analysis
//!   method and severity the analyzer set (and the command to the host
//!   carries them for the collector's own report);
//! - a critical alert judged a false alarm reaches Slack emphasised;
//! - a `system_alert` lands in `hemostat:events:system_alert`.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use hemostat_e2e::{RedisServer, start_bridge, start_emulator, wait_for, workspace_root};
use hemostat_protocol::{
    Envelope, EventKind, Publisher, RedisPublisher, command::COMMAND_FIELD, connection, envelope::agent, keys,
    publisher::ENVELOPE_FIELD,
};
use redis::{AsyncCommands, streams::StreamRangeReply};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

type Seen = Arc<Mutex<Vec<Value>>>;

/// A minimal HTTP/1.1 receiver: every POST body is recorded as JSON and
/// answered 200 `ok`, as Slack does.
async fn slack_receiver() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/services/T000/B000/XXXX", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, sink.clone()));
        }
    });
    (url, seen)
}

async fn serve(mut stream: TcpStream, seen: Seen) {
    let mut buf = Vec::new();
    // Keep-alive: several requests may come on one connection.
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
        seen.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
        if stream.write_all(reply).await.is_err() {
            return;
        }
    }
}

fn health_alert(host: &str, container: &str, kind: &str, severity: &str) -> Envelope {
    let data = json!({
        "container": container,
        "host": host,
        "issues": [format!("{kind} detected")],
        "metrics": {"name": container, "status": "exited", "memory_pct": 10.0, "cpu_pct": 1.0},
        "image": "shop/api:1",
        "anomalies": [{"type": kind, "severity": severity}],
        "exit_code": 1,
        "detected_at": chrono::Utc::now().to_rfc3339(),
        // A crash of a cause a restart can fix, provoked from outside (`docker
        // kill -s USR1`, as the collector's events show it): the analyzer
        // restarts it again on its second exit, so the gate's cooldown is what
        // refuses it (the same failure on its own would be deterministic, and
        // one nothing explains would get a single restart).
        "evidence": {
            "logs": {"lines": [{"stream": "stderr", "line": "panic: crashed on demand (SIGUSR1)"}], "tail": 50, "count": 1},
            "state": {"status": "exited", "exit_code": 1, "oom_killed": false, "restart_count": 0},
            "events": [{"action": "start"}, {"action": "kill", "signal": 10}, {"action": "die", "exit_code": 1}],
        },
    });
    Envelope::new(agent::MONITOR, EventKind::HealthAlert, &data).unwrap()
}

/// The Slack message whose attachment title contains `needle`.
fn message(seen: &Seen, needle: &str) -> Option<Value> {
    seen.lock()
        .unwrap()
        .iter()
        .find(|m| m["attachments"][0]["title"].as_str().is_some_and(|t| t.contains(needle)))
        .cloned()
}

fn field<'a>(msg: &'a Value, title: &str) -> Option<&'a str> {
    msg["attachments"][0]["fields"].as_array()?.iter().find(|f| f["title"] == title)?["value"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_event_log_and_slack_through_the_stack() {
    let redis = RedisServer::start().await;
    let (slack_url, seen) = slack_receiver().await;
    let template = workspace_root().join("template.yaml");
    let (emulator, endpoint) = start_emulator(|b| {
        b.args(["--template", template.to_str().unwrap()])
            .env("REDIS_URL", redis.url())
            // Declared in the template, so the emulator's value wins.
            .env("SLACK_WEBHOOK_URL", &slack_url)
            .env("RUST_LOG", "info")
    })
    .await;
    let bridge = start_bridge(|b| {
        b.env("REDIS_URL", redis.url()).env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint).env("RUST_LOG", "info")
    })
    .await;
    let publisher = RedisPublisher::new(connection::connect(&redis.url()).await.unwrap());
    let mut conn = redis.connection().await;
    let host = format!("alert-e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let logs = || format!("bridge:\n{}\nemulator:\n{}", bridge.log_tail(30), emulator.log_tail(60));

    // 1. The collector's report of a fix: stored verbatim, green at Slack.
    let done = Envelope::new(
        agent::RESPONDER,
        EventKind::RemediationComplete,
        &json!({"container": "web", "host": host, "action": "restart", "confidence": 0.9, "reason": "Container exited with code 1",
            "analysis_method": "rule_based", "command_id": "c-1",
            "result": {"status": "success", "action": "restart", "container": "web", "duration_ms": 1200, "verified": true}}),
    )
    .unwrap();
    let started = std::time::Instant::now();
    publisher.publish(&done).await.unwrap();
    let green = wait_for(Duration::from_secs(20), || async { message(&seen, "Remediation succeeded: restart of web") })
        .await
        .unwrap_or_else(|| panic!("no Slack message for the remediation_complete\n{}", logs()));
    println!("remediation_complete published -> Slack message: {} ms", started.elapsed().as_millis());
    assert_eq!(green["attachments"][0]["color"], "#36a64f");
    assert_eq!(field(&green, "Host"), Some(host.as_str()));
    assert_eq!(field(&green, "Verified"), Some("yes: stayed up after the fix"));
    let all: Vec<String> = conn.lrange(keys::events("all"), 0, -1).await.unwrap();
    assert!(all.contains(&done.to_json()), "hemostat:events:all holds the envelope verbatim: {all:?}");
    let stored: Vec<String> = conn.lrange(keys::events("remediation_complete"), 0, -1).await.unwrap();
    assert!(stored.contains(&done.to_json()));

    // 2. A critical crash, then another inside the cooldown: refused. The
    // test plays db's collector, whose account the gate believes.
    let reported = conn.clone();
    hemostat_e2e::report_container(
        &reported,
        &hemostat_protocol::ContainerRef::new(&host, "db"),
        "shop/api:1",
        Default::default(),
    )
    .await;
    publisher.publish(&health_alert(&host, "db", "non_zero_exit", "critical")).await.unwrap();
    let commands = keys::commands(&host);
    let command = wait_for(Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let commands = commands.clone();
        async move {
            let reply: StreamRangeReply = conn.xrange_all(&commands).await.ok()?;
            reply.ids.first().and_then(|e| e.get::<String>(COMMAND_FIELD))
        }
    })
    .await
    .unwrap_or_else(|| panic!("no command for the first crash\n{}", logs()));
    let command: Value = serde_json::from_str(&command).unwrap();
    assert_eq!(command["analysis_method"], "rule_based", "the collector's report will carry it: {command}");
    assert_eq!(command["severity"], "critical");
    assert_eq!(command["image"], "shop/api:1");

    publisher.publish(&health_alert(&host, "db", "non_zero_exit", "critical")).await.unwrap();
    let refused =
        wait_for(Duration::from_secs(20), || async { message(&seen, "CRITICAL alert not remediated: restart of db") })
            .await
            .unwrap_or_else(|| {
                panic!("no Slack message for the refusal\n{}\nslack: {:?}", logs(), seen.lock().unwrap())
            });
    assert_eq!(refused["attachments"][0]["color"], "#ff9900");
    assert!(refused["text"].as_str().unwrap().starts_with(":rotating_light:"), "{refused}");
    assert_eq!(field(&refused, "Analysis method"), Some("rule_based"));
    assert_eq!(field(&refused, "Severity"), Some("critical"));
    assert!(field(&refused, "Refused because").unwrap().starts_with("cooldown"), "{refused}");

    // 3. A critical alert the rules will not act on: a false alarm, emphasised.
    publisher.publish(&health_alert(&host, "loop", "excessive_restarts", "critical")).await.unwrap();
    let dismissed = wait_for(Duration::from_secs(20), || async {
        message(&seen, "CRITICAL alert dismissed as a false alarm: loop")
    })
    .await
    .unwrap_or_else(|| panic!("no Slack message for the false alarm\n{}", logs()));
    assert_eq!(dismissed["attachments"][0]["color"], "#ffcc00");
    let alarms: Vec<String> = conn.lrange(keys::events("false_alarm"), 0, -1).await.unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");

    // 4. HemoStat about itself.
    let missing = Envelope::new(
        "HemoStat-Exporter",
        EventKind::SystemAlert,
        &json!({"kind": "collector_missing", "severity": "critical", "host": host, "message": "no heartbeat for 30 s"}),
    )
    .unwrap();
    publisher.publish(&missing).await.unwrap();
    let system = wait_for(Duration::from_secs(20), || {
        let mut conn = conn.clone();
        async move {
            let list: Vec<String> = conn.lrange(keys::events("system_alert"), 0, -1).await.ok()?;
            (!list.is_empty()).then_some(list)
        }
    })
    .await
    .unwrap_or_else(|| panic!("system_alert not stored\n{}", logs()));
    assert_eq!(system, [missing.to_json()]);

    // Every stored event is one of the streams' envelopes, once. On a
    // cluster each list is written by its own script (their keys are in
    // different slots), so `all` may lag the per-type list read above by a
    // moment: wait for it, then compare.
    let mut streamed = Vec::new();
    for kind in [EventKind::RemediationComplete, EventKind::FalseAlarm, EventKind::SystemAlert] {
        let reply: StreamRangeReply = conn.xrange_all(kind.stream()).await.unwrap();
        streamed.extend(reply.ids.iter().filter_map(|e| e.get::<String>(ENVELOPE_FIELD)));
    }
    let _ = wait_for(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        let want = streamed.len();
        async move {
            let n: usize = conn.llen(keys::events("all")).await.ok()?;
            (n >= want).then_some(())
        }
    })
    .await;
    let all: Vec<String> = conn.lrange(keys::events("all"), 0, -1).await.unwrap();
    assert_eq!(all.len(), streamed.len(), "one row per event: {all:#?}");
    assert!(all.iter().all(|row| streamed.contains(row)));
    println!("hemostat:events:all: {} events; Slack received {} messages", all.len(), seen.lock().unwrap().len());
    let dead: StreamRangeReply = conn.xrange_all(keys::DEAD_LETTER_STREAM).await.unwrap();
    let ours: Vec<_> =
        dead.ids.iter().filter(|e| e.get::<String>("group").as_deref() == Some("bridge:alert")).collect();
    assert!(ours.is_empty(), "nothing of the alert's dead-lettered: {ours:?}");
}
