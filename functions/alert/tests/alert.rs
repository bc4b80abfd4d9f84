//! The alert handler against a real redis-server and a webhook receiver on a
//! real socket: storage contract, colours and fields, dedupe across replicas
//! and redeliveries, retries, timeouts, 429, malformed input, ALERT_ENABLED.

mod support;

use std::time::{Duration, Instant};

use hemostat_alert::{FAILURES, SIGNATURE_HEADER, signature};
use hemostat_e2e::RedisServer;
use hemostat_protocol::{EventKind, batch, secret::Secret};
use redis::AsyncCommands;
use support::{Receiver, Reply, alert, complete, config, envelope, record};

const TS: &str = "2025-11-03T10:30:53.789012";

fn attachment(body: &serde_json::Value) -> &serde_json::Value {
    &body["attachments"][0]
}

fn field<'a>(body: &'a serde_json::Value, title: &str) -> Option<&'a str> {
    attachment(body)["fields"].as_array()?.iter().find(|f| f["title"] == title)?["value"].as_str()
}

async fn failures(conn: &mut hemostat_protocol::connection::Connection) -> i64 {
    conn.get::<_, Option<i64>>(FAILURES).await.unwrap().unwrap_or(0)
}

#[tokio::test]
async fn events_are_stored_verbatim_newest_first_capped_and_expiring() {
    let redis = RedisServer::start().await;
    let mut conn = redis.connection().await;
    let cfg = hemostat_alert::Config { max_events: 3, event_ttl: Duration::from_secs(120), ..config(None) };
    let a = alert(&redis, &cfg).await;

    let bodies: Vec<String> =
        (0..5).map(|i| complete(&format!("c{i}"), "success", &format!("2025-11-03T10:30:5{i}.000001"))).collect();
    // Field order and spacing of the original must survive: the contract is
    // "the envelope exactly as received".
    let odd = r#"{ "type":"false_alarm", "data":{"reason":"Transient spike, back to normal","container":"hemostat-test-api"}, "agent":"HemoStat-Analyzer", "timestamp":"2025-11-03T10:30:48.456789" }"#;
    let system = envelope(
        "system_alert",
        TS,
        serde_json::json!({"kind": "collector_missing", "severity": "critical", "host": "h9", "message": "no heartbeat"}),
    );
    let mut records: Vec<_> =
        bodies.iter().enumerate().map(|(i, b)| record(&format!("{i}-0"), EventKind::RemediationComplete, b)).collect();
    records.push(record("5-0", EventKind::FalseAlarm, odd));
    records.push(record("6-0", EventKind::SystemAlert, &system));
    let response = a.handle(batch::event(records.clone())).await;
    assert!(response.batch_item_failures.is_empty() && response.rejected_items.is_empty(), "{response:?}");

    let complete_list: Vec<String> = conn.lrange("hemostat:events:remediation_complete", 0, -1).await.unwrap();
    assert_eq!(complete_list, [bodies[4].clone(), bodies[3].clone(), bodies[2].clone()], "newest first, at most 3");
    let false_alarms: Vec<String> = conn.lrange("hemostat:events:false_alarm", 0, -1).await.unwrap();
    assert_eq!(false_alarms, [odd.to_owned()]);
    let system_list: Vec<String> = conn.lrange("hemostat:events:system_alert", 0, -1).await.unwrap();
    assert_eq!(system_list, std::slice::from_ref(&system));
    let all: Vec<String> = conn.lrange("hemostat:events:all", 0, -1).await.unwrap();
    assert_eq!(all, [system.clone(), odd.to_owned(), bodies[4].clone()]);
    for key in ["remediation_complete", "false_alarm", "system_alert", "all"] {
        let ttl: i64 = conn.ttl(format!("hemostat:events:{key}")).await.unwrap();
        assert!(ttl > 100 && ttl <= 120, "{key}: TTL {ttl}");
    }

    // The bridge delivers the same batch again: no duplicate rows.
    let again = a.handle(batch::event(records)).await;
    assert!(again.batch_item_failures.is_empty());
    let all_after: Vec<String> = conn.lrange("hemostat:events:all", 0, -1).await.unwrap();
    assert_eq!(all_after, all, "a redelivered batch must not duplicate dashboard rows");
}

#[tokio::test]
async fn slack_messages_have_the_seed_colours_and_every_field() {
    let redis = RedisServer::start().await;
    let slack = Receiver::start(vec![]).await;
    let a = alert(&redis, &config(Some(&slack.url))).await;
    let statuses =
        [("success", "#36a64f"), ("failed", "#ff0000"), ("rejected", "#ff9900"), ("not_applicable", "#cccccc")];
    let mut records: Vec<_> = statuses
        .iter()
        .enumerate()
        .map(|(i, (s, _))| {
            record(&format!("{i}-0"), EventKind::RemediationComplete, &complete(&format!("c-{s}"), s, TS))
        })
        .collect();
    let alarm = envelope(
        "false_alarm",
        TS,
        serde_json::json!({"container": "c-alarm", "host": "h1", "reason": "Transient spike", "confidence": 0.65,
            "analysis_method": "rule_based", "severity": "critical"}),
    );
    records.push(record("9-0", EventKind::FalseAlarm, &alarm));
    a.handle(batch::event(records)).await;

    let bodies = slack.bodies();
    assert_eq!(bodies.len(), 5, "{bodies:#?}");
    let by_container = |c: &str| bodies.iter().find(|b| field(b, "Container") == Some(c)).cloned().unwrap();
    for (status, color) in statuses {
        let b = by_container(&format!("c-{status}"));
        assert_eq!(attachment(&b)["color"], color, "{status}");
        assert_eq!(field(&b, "Host"), Some("h1"));
        assert_eq!(field(&b, "Action"), Some("restart"));
        assert_eq!(field(&b, "Reason"), Some("Exited with code 1"));
        assert_eq!(field(&b, "Confidence"), Some("0.90"));
        assert_eq!(field(&b, "Analysis method"), Some("rule_based"));
        assert_eq!(field(&b, "Duration"), Some("850 ms"));
        assert_eq!(field(&b, "Verified"), Some("yes: stayed up after the fix"));
    }
    let alarm = by_container("c-alarm");
    assert_eq!(attachment(&alarm)["color"], "#ffcc00");
    let headline = alarm["text"].as_str().unwrap();
    assert!(headline.starts_with(":rotating_light: *CRITICAL alert dismissed"), "{headline}");
    assert_eq!(field(&alarm, "Severity"), Some("critical"));
    println!("slack message: {}", serde_json::to_string_pretty(&alarm).unwrap());
}

#[tokio::test]
async fn identical_events_notify_once_across_replicas_and_redeliveries() {
    let redis = RedisServer::start().await;
    let slack = Receiver::start(vec![]).await;
    let cfg = config(Some(&slack.url));
    let (one, two) = (alert(&redis, &cfg).await, alert(&redis, &cfg).await);
    // Same outcome, reported twice a second apart: one message.
    let first = complete("web", "failed", "2025-11-03T10:30:53.000001");
    let second = complete("web", "failed", "2025-11-03T10:30:54.000001");
    let (r1, r2) = tokio::join!(
        one.handle(batch::event(vec![record("1-0", EventKind::RemediationComplete, &first)])),
        two.handle(batch::event(vec![record("2-0", EventKind::RemediationComplete, &second)])),
    );
    assert!(r1.batch_item_failures.is_empty() && r2.batch_item_failures.is_empty());
    one.handle(batch::event(vec![record("1-0", EventKind::RemediationComplete, &first)])).await;
    assert_eq!(slack.count(), 1, "two identical events and a redelivery: one message");
    let mut conn = redis.connection().await;
    let all: Vec<String> = conn.lrange("hemostat:events:all", 0, -1).await.unwrap();
    assert_eq!(all.len(), 2, "both events are in the log, the redelivery is not");

    // A different outcome for the same container is news.
    let fixed = complete("web", "success", "2025-11-03T10:30:55.000001");
    one.handle(batch::event(vec![record("3-0", EventKind::RemediationComplete, &fixed)])).await;
    assert_eq!(slack.count(), 2);
}

#[tokio::test]
async fn slack_500_then_200_is_retried() {
    let redis = RedisServer::start().await;
    let slack = Receiver::start(vec![Reply::Status(500)]).await;
    let a = alert(&redis, &config(Some(&slack.url))).await;
    let response = a
        .handle(batch::event(vec![record("1-0", EventKind::RemediationComplete, &complete("web", "success", TS))]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let seen = slack.all();
    assert_eq!(seen.len(), 2, "one failure, one retry");
    assert_eq!(seen[0].raw, seen[1].raw, "the retry sends the same message");
    println!("retry after a 500 came {} ms later", (seen[1].at - seen[0].at).as_millis());
    assert_eq!(failures(&mut redis.connection().await).await, 0);
}

#[tokio::test]
async fn a_hanging_slack_times_out_the_event_is_stored_and_the_batch_ends_in_bounded_time() {
    let redis = RedisServer::start().await;
    let slack = Receiver::start(vec![Reply::Hang; 100]).await;
    let cfg = config(Some(&slack.url));
    let a = alert(&redis, &cfg).await;
    // Ten records: notified concurrently, the batch costs one deadline.
    let records: Vec<_> = (0..10)
        .map(|i| record(&format!("{i}-0"), EventKind::RemediationComplete, &complete(&format!("c{i}"), "success", TS)))
        .collect();
    let started = Instant::now();
    let response = a.handle(batch::event(records)).await;
    let took = started.elapsed();
    println!(
        "10 records, Slack hanging: batch returned in {} ms (deadline {:?})",
        took.as_millis(),
        cfg.notify_deadline
    );
    assert!(took < cfg.notify_deadline + Duration::from_secs(1), "took {took:?}");
    assert!(response.batch_item_failures.is_empty() && response.rejected_items.is_empty(), "not retried forever");
    let mut conn = redis.connection().await;
    let all: Vec<String> = conn.lrange("hemostat:events:all", 0, -1).await.unwrap();
    assert_eq!(all.len(), 10, "stored although Slack never answered");
    assert_eq!(failures(&mut conn).await, 10);
    assert!(slack.count() >= 10, "every record was attempted");
    let dedupe: Vec<String> = conn.keys("hemostat:alert:dedupe:*").await.unwrap();
    assert!(dedupe.is_empty(), "failed notifications give their claim back: {dedupe:?}");
}

#[tokio::test]
async fn rate_limits_are_honoured_within_the_deadline() {
    let redis = RedisServer::start().await;
    let slack = Receiver::start(vec![Reply::RateLimited("1")]).await;
    let a = alert(&redis, &config(Some(&slack.url))).await;
    a.handle(batch::event(vec![record("1-0", EventKind::RemediationComplete, &complete("web", "success", TS))])).await;
    let seen = slack.all();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    println!("Retry-After: 1 -> retried after {} ms", waited.as_millis());
    assert!(waited >= Duration::from_millis(950), "Retry-After ignored: {waited:?}");

    // Asked to wait beyond the deadline: give up at once, counted.
    let slow = Receiver::start(vec![Reply::RateLimited("30")]).await;
    let b = alert(&redis, &config(Some(&slow.url))).await;
    let started = Instant::now();
    b.handle(batch::event(vec![record("2-0", EventKind::RemediationComplete, &complete("api", "failed", TS))])).await;
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(slow.count(), 1);
    assert_eq!(failures(&mut redis.connection().await).await, 1);
}

#[tokio::test]
async fn a_revoked_webhook_is_not_retried() {
    let redis = RedisServer::start().await;
    let slack = Receiver::start(vec![Reply::Status(404)]).await;
    let a = alert(&redis, &config(Some(&slack.url))).await;
    a.handle(batch::event(vec![record("1-0", EventKind::RemediationComplete, &complete("web", "success", TS))])).await;
    assert_eq!(slack.count(), 1);
    assert_eq!(failures(&mut redis.connection().await).await, 1);
}

#[tokio::test]
async fn malformed_records_are_rejected_and_their_neighbours_served() {
    let redis = RedisServer::start().await;
    let slack = Receiver::start(vec![]).await;
    let a = alert(&redis, &config(Some(&slack.url))).await;
    let records = vec![
        record("1-0", EventKind::RemediationComplete, &complete("a", "success", TS)),
        record("2-0", EventKind::RemediationComplete, "{not json"),
        record(
            "3-0",
            EventKind::RemediationComplete,
            &envelope("remediation_complete", TS, serde_json::json!({"container": 7})),
        ),
        record(
            "4-0",
            EventKind::FalseAlarm,
            &envelope("false_alarm", TS, serde_json::json!({"container": "b", "reason": "fine"})),
        ),
    ];
    let response = a.handle(batch::event(records)).await;
    let rejected: Vec<(&str, &str)> =
        response.rejected_items.iter().map(|r| (r.item_identifier.as_str(), r.reason.as_str())).collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].0, "2-0");
    assert!(rejected[0].1.contains("not JSON"), "{rejected:?}");
    assert_eq!(rejected[1].0, "3-0");
    assert!(response.batch_item_failures.is_empty());
    let all: Vec<String> = redis.connection().await.lrange("hemostat:events:all", 0, -1).await.unwrap();
    assert_eq!(all.len(), 2, "the two good records are stored");
    assert_eq!(slack.count(), 2, "and notified");
}

#[tokio::test]
async fn alert_enabled_false_stores_and_sends_nothing() {
    let redis = RedisServer::start().await;
    let slack = Receiver::start(vec![]).await;
    let a = alert(&redis, &hemostat_alert::Config { enabled: false, ..config(Some(&slack.url)) }).await;
    a.handle(batch::event(vec![record("1-0", EventKind::RemediationComplete, &complete("web", "success", TS))])).await;
    let all: Vec<String> = redis.connection().await.lrange("hemostat:events:all", 0, -1).await.unwrap();
    assert_eq!(all.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(slack.count(), 0);
}

#[tokio::test]
async fn the_generic_webhook_gets_the_envelope_a_summary_and_a_signature() {
    let redis = RedisServer::start().await;
    let slack = Receiver::start(vec![]).await;
    let hook = Receiver::start(vec![]).await;
    let cfg = hemostat_alert::Config {
        webhook_url: Some(Secret::new(&hook.url)),
        webhook_secret: Some(Secret::new("s3cret")),
        ..config(Some(&slack.url))
    };
    let a = alert(&redis, &cfg).await;
    let body = complete("web", "rejected", TS);
    a.handle(batch::event(vec![record("1-0", EventKind::RemediationComplete, &body)])).await;
    assert_eq!(slack.count(), 1, "both sinks are notified");
    let got = hook.all();
    assert_eq!(got.len(), 1);
    let payload = &got[0].body;
    assert_eq!(payload["envelope"], serde_json::from_str::<serde_json::Value>(&body).unwrap());
    assert_eq!(payload["summary"]["status"], "rejected");
    assert_eq!(payload["summary"]["color"], "#ff9900");
    assert_eq!(payload["summary"]["host"], "h1");
    assert_eq!(got[0].headers["x-hemostat-event"], "remediation_complete");
    let sig = got[0].headers[SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(sig, signature(b"s3cret", &got[0].raw), "signature over the exact body");
}

#[tokio::test]
async fn a_diagnosed_outcome_reaches_slack_and_the_webhook_with_its_cause_and_lines() {
    let redis = RedisServer::start().await;
    let slack = Receiver::start(vec![]).await;
    let hook = Receiver::start(vec![]).await;
    let cfg = hemostat_alert::Config { webhook_url: Some(Secret::new(&hook.url)), ..config(Some(&slack.url)) };
    let a = alert(&redis, &cfg).await;
    let line = "Error: listen EADDRINUSE: address already in use :::8080";
    let body = envelope(
        "remediation_complete",
        TS,
        serde_json::json!({"container": "web", "host": "h1", "action": "restart", "reason": "Exited with code 1",
            "analysis_method": "rule_based",
            "result": {"status": "failed", "action": "restart", "container": "web", "error": "exited again"},
            "diagnosis": {"cause": "port_in_use", "summary": "Another process holds port 8080.",
                "evidence": [line, "at Server.listen (<node_internals>/net.js:1)"], "restart_helps": false,
                "recommendation": "Free the port or change the container's port mapping."}}),
    );
    let response = a.handle(batch::event(vec![record("1-0", EventKind::RemediationComplete, &body)])).await;
    assert!(response.batch_item_failures.is_empty() && response.rejected_items.is_empty(), "{response:?}");

    let bodies = slack.bodies();
    assert_eq!(bodies.len(), 1);
    let msg = &bodies[0];
    assert_eq!(field(msg, "Cause"), Some("port_in_use: Another process holds port 8080."));
    assert_eq!(field(msg, "Recommendation"), Some("Free the port or change the container's port mapping."));
    let block = field(msg, "Evidence").unwrap();
    assert!(block.starts_with("```\n") && block.contains(line), "{block}");
    assert!(block.contains("(&lt;node_internals&gt;/net.js:1)"), "escaped for Slack: {block}");
    println!("slack message: {}", serde_json::to_string_pretty(msg).unwrap());

    let got = hook.all();
    assert_eq!(got.len(), 1);
    let summary = &got[0].body["summary"];
    assert_eq!(summary["cause"], "port_in_use");
    assert_eq!(summary["recommendation"], "Free the port or change the container's port mapping.");
    assert_eq!(summary["evidence"][0], line);
    assert_eq!(summary["evidence"][1], "at Server.listen (<node_internals>/net.js:1)", "verbatim in JSON");
    println!("webhook summary: {}", serde_json::to_string_pretty(summary).unwrap());
}
