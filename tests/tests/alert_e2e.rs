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
//!
//! And every other sink at once, each at a stand-in answering as its service
//! does, configured only through the variables template.yaml declares (the
//! emulator passes no other): ntfy (remediations only), Discord (everything),
//! Teams (a 500 first, retried), PagerDuty (critical only), Gotify (warning
//! and up; a 429 with Retry-After first), email through a real SMTP server
//! over STARTTLS (system alerts of error and up): each gets exactly what its filter
//! lets through, the failing ones deliver on retry, and the others are not
//! held up or repeated by them.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use hemostat_e2e::{RedisServer, SmtpServer, start_bridge, start_emulator, wait_for, workspace_root};
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

/// One request a receiver got: its path (with the query), its headers
/// (names in lower case) and its body.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

type Seen = Arc<Mutex<Vec<Request>>>;

/// An answer: status, extra header lines, body.
type Reply = (u16, &'static str, &'static str);

/// A minimal HTTP/1.1 receiver on loopback: every request is recorded and
/// answered from `script` first (one answer each, in order), then
/// `usual`: the service's own success answer.
async fn receiver(path: &str, script: Vec<Reply>, usual: Reply) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, sink.clone(), script.clone(), usual));
        }
    });
    (url, seen)
}

/// Slack's incoming webhook: 200 `ok`.
async fn slack_receiver() -> (String, Seen) {
    receiver("/services/T000/B000/XXXX", vec![], (200, "content-type: text/plain\r\n", "ok")).await
}

async fn serve(mut stream: TcpStream, seen: Seen, script: Arc<Mutex<std::collections::VecDeque<Reply>>>, usual: Reply) {
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
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.lines();
        let path = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize =
            headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        while buf.len() < head_end + len {
            if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
        seen.lock().unwrap().push(Request { path, headers, body });
        let (status, extra, text) = script.lock().unwrap().pop_front().unwrap_or(usual);
        let reply = format!("HTTP/1.1 {status} X\r\n{extra}content-length: {}\r\n\r\n{text}", text.len());
        if stream.write_all(reply.as_bytes()).await.is_err() {
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
        .map(Request::json)
        .find(|m| m["attachments"][0]["title"].as_str().is_some_and(|t| t.contains(needle)))
}

/// What a receiver got, as JSON (for a failure's message).
fn sent(seen: &Seen) -> Vec<Value> {
    seen.lock().unwrap().iter().map(Request::json).collect()
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
            .unwrap_or_else(|| panic!("no Slack message for the refusal\n{}\nslack: {:?}", logs(), sent(&seen)));
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

const ROUTING_KEY: &str = "R0UT1NGK3Y0123456789abcdefABCDEF";
const GOTIFY_TOKEN: &str = "AWl4Ww4kdNSQr1R";
const JSON: &str = "content-type: application/json\r\n";

/// A request's title, wherever its service keeps it.
fn titles(seen: &Seen, title: impl Fn(&Request) -> Option<String>) -> Vec<String> {
    seen.lock().unwrap().iter().filter_map(title).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_gets_what_its_filter_lets_through_the_stack() {
    let redis = RedisServer::start().await;
    let (ntfy_url, ntfy) =
        receiver("/hemostat-ops", vec![], (200, JSON, r#"{"id":"sPs71M8A2T","event":"message"}"#)).await;
    let (discord_url, discord) = receiver("/api/webhooks/1234/goodtoken", vec![], (204, "", "")).await;
    let (teams_url, teams) = receiver(
        "/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=SIGSECRET",
        vec![(500, "", "Internal Server Error")],
        (202, "", ""),
    )
    .await;
    let (pagerduty_url, pagerduty) = receiver(
        "/v2/enqueue",
        vec![],
        (202, JSON, r#"{"status":"success","message":"Event processed","dedup_key":"k"}"#),
    )
    .await;
    let (gotify_url, gotify) =
        receiver("", vec![(429, "retry-after: 1\r\n", "")], (200, JSON, r#"{"id":25,"appid":5}"#)).await;
    let smtp = SmtpServer::start();
    let (smtp_port, smtp_ca) = (smtp.port.to_string(), smtp.ca());
    let template = workspace_root().join("template.yaml");
    let (emulator, endpoint) = start_emulator(|b| {
        b.args(["--template", template.to_str().unwrap()])
            .env("REDIS_URL", redis.url())
            .env("ALERT_SMTP_HOST", "127.0.0.1")
            .env("ALERT_SMTP_PORT", &smtp_port)
            .env("ALERT_SMTP_USERNAME", SmtpServer::USER)
            .env("ALERT_SMTP_PASSWORD", SmtpServer::PASSWORD)
            .env("ALERT_SMTP_FROM", "HemoStat <hemostat@example.com>")
            .env("ALERT_SMTP_TO", "ops@example.com")
            .env("ALERT_SMTP_CA_CERT", &smtp_ca)
            .env("ALERT_EMAIL_EVENTS", "system_alert")
            .env("ALERT_EMAIL_MIN_SEVERITY", "error")
            .env("ALERT_NTFY_URL", &ntfy_url)
            .env("ALERT_NTFY_EVENTS", "remediation_complete")
            .env("ALERT_DISCORD_WEBHOOK_URL", &discord_url)
            .env("ALERT_TEAMS_WEBHOOK_URL", &teams_url)
            .env("ALERT_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
            .env("ALERT_PAGERDUTY_URL", &pagerduty_url)
            .env("ALERT_PAGERDUTY_MIN_SEVERITY", "critical")
            .env("ALERT_GOTIFY_URL", &gotify_url)
            .env("ALERT_GOTIFY_TOKEN", GOTIFY_TOKEN)
            .env("ALERT_GOTIFY_MIN_SEVERITY", "warning")
            .env("RUST_LOG", "info")
    })
    .await;
    let bridge = start_bridge(|b| {
        b.env("REDIS_URL", redis.url()).env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint).env("RUST_LOG", "info")
    })
    .await;
    let publisher = RedisPublisher::new(connection::connect(&redis.url()).await.unwrap());
    let host = format!("sinks-e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let logs = || format!("bridge:\n{}\nemulator:\n{}", bridge.log_tail(30), emulator.log_tail(80));

    // Four events, one of each level: critical, warning, error, info.
    let system = |kind: &str, severity: &str| {
        Envelope::new(
            "HemoStat-Exporter",
            EventKind::SystemAlert,
            &json!({"kind": kind, "severity": severity, "host": host, "message": "seen by the exporter"}),
        )
        .unwrap()
    };
    let failed = Envelope::new(
        agent::RESPONDER,
        EventKind::RemediationComplete,
        &json!({"container": "api", "host": host, "action": "restart", "confidence": 0.9, "reason": "Container exited with code 1",
            "analysis_method": "rule_based", "command_id": "c-api",
            "result": {"status": "failed", "action": "restart", "container": "api", "duration_ms": 900, "verified": false}}),
    )
    .unwrap();
    let alarm = Envelope::new(
        agent::ANALYZER,
        EventKind::FalseAlarm,
        &json!({"container": "cache", "host": host, "reason": "Transient spike"}),
    )
    .unwrap();
    let started = std::time::Instant::now();
    for envelope in [system("collector_missing", "critical"), system("bridge_backlog", "medium"), failed, alarm] {
        publisher.publish(&envelope).await.unwrap();
    }

    // Discord has no filter and no fault: all four, each once.
    let embed_title = |r: &Request| r.json()["embeds"][0]["title"].as_str().map(str::to_owned);
    let discord_titles = wait_for(Duration::from_secs(30), || async {
        let t = titles(&discord, embed_title);
        (t.len() >= 4).then_some(t)
    })
    .await
    .unwrap_or_else(|| panic!("Discord did not get all four\n{}\ndiscord: {:?}", logs(), sent(&discord)));
    println!("four events published -> all at Discord: {} ms", started.elapsed().as_millis());
    // Teams' 500 and Gotify's Retry-After are retried; let them finish, and
    // anything a filter should have stopped arrive if it were going to.
    let teams_done =
        wait_for(Duration::from_secs(20), || async { (teams.lock().unwrap().len() >= 5).then_some(()) }).await;
    let gotify_done =
        wait_for(Duration::from_secs(20), || async { (gotify.lock().unwrap().len() >= 4).then_some(()) }).await;
    let _ = wait_for(Duration::from_secs(20), || async { (!smtp.received().is_empty()).then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("every sink done: {} ms", started.elapsed().as_millis());

    assert_eq!(discord_titles.len(), 4, "{discord_titles:?}");
    for needle in ["collector missing", "bridge backlog", "api", "cache"] {
        assert!(discord_titles.iter().any(|t| t.contains(needle)), "{needle} at Discord: {discord_titles:?}");
    }

    // ntfy: remediations only, whatever their level.
    let got = ntfy.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "ntfy: {:?}", got.iter().map(|r| r.header("title")).collect::<Vec<_>>());
    assert_eq!(got[0].path, "/hemostat-ops");
    assert!(got[0].header("title").is_some_and(|t| t.contains("api")), "{:?}", got[0].headers);
    assert!(got[0].header("tags").is_some_and(|t| t.contains("remediation_complete")), "{:?}", got[0].headers);
    assert!(String::from_utf8_lossy(&got[0].body).contains(&host));

    // PagerDuty: the critical one only, as a trigger.
    let got = sent(&pagerduty);
    assert_eq!(got.len(), 1, "PagerDuty, critical only: {got:?}");
    assert_eq!(got[0]["event_action"], "trigger");
    assert_eq!(got[0]["routing_key"], ROUTING_KEY);
    assert_eq!(got[0]["payload"]["severity"], "critical");
    assert!(got[0]["payload"]["summary"].as_str().unwrap().contains("collector missing"), "{got:?}");

    // Teams: a 500 first, retried; every notification once delivered.
    assert!(teams_done.is_some(), "Teams: {:?}\n{}", sent(&teams), logs());
    let got = teams.lock().unwrap().clone();
    assert_eq!(got.len(), 5, "four notifications, one retried: {:?}", sent(&teams));
    let bodies: std::collections::HashSet<&[u8]> = got.iter().map(|r| r.body.as_slice()).collect();
    assert_eq!(bodies.len(), 4, "each notification reached Teams");
    assert!(got.iter().all(|r| r.path.contains("sig=SIGSECRET")));
    assert!(got.iter().all(|r| r.json()["attachments"][0]["content"]["type"] == "AdaptiveCard"));

    // Gotify: warning and up (not the false alarm); its 429 waited out.
    assert!(gotify_done.is_some(), "Gotify: {:?}\n{}", sent(&gotify), logs());
    let got = gotify.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "three notifications, one retried: {:?}", sent(&gotify));
    assert!(got.iter().all(|r| r.path == "/message" && r.header("x-gotify-key") == Some(GOTIFY_TOKEN)));
    let mut gotify_titles: Vec<String> = titles(&gotify, |r| r.json()["title"].as_str().map(str::to_owned));
    gotify_titles.sort();
    gotify_titles.dedup();
    assert_eq!(gotify_titles.len(), 3, "{gotify_titles:?}");
    assert!(!gotify_titles.iter().any(|t| t.contains("cache")), "the false alarm is info: {gotify_titles:?}");

    // Email: system alerts of error and up, over STARTTLS, checked against
    // the CA ALERT_SMTP_CA_CERT names.
    let mails = smtp.received();
    assert_eq!(mails.len(), 1, "email: {mails:?}");
    assert_eq!((&mails[0]["tls"], &mails[0]["auth"]), (&json!(true), &json!(SmtpServer::USER)));
    assert_eq!(mails[0]["rcpt_tos"], json!(["ops@example.com"]));
    let data = mails[0]["data"].as_str().unwrap();
    assert!(data.contains(&format!("Subject: HemoStat: collector missing ({host})")), "{data}");

    let mut conn = redis.connection().await;
    let dead: StreamRangeReply = conn.xrange_all(keys::DEAD_LETTER_STREAM).await.unwrap();
    let ours: Vec<_> =
        dead.ids.iter().filter(|e| e.get::<String>("group").as_deref() == Some("bridge:alert")).collect();
    assert!(ours.is_empty(), "nothing of the alert's dead-lettered: {ours:?}");
}
