//! The handler without an LLM, against a real redis-server: realistic alert
//! sequences through the history, the threshold, malformed input, and the
//! history's atomicity under concurrent invocations.

mod support;

use std::time::Duration;

use hemostat_analyzer::{AlertSummary, Analyzer, Config, NoLlm, record_history};
use hemostat_e2e::RedisServer;
use hemostat_protocol::{ContainerRef, Envelope, EventKind, attestation, event::HealthAlert, keys};
use redis::AsyncCommands;
use support::*;

async fn analyzer(redis: &RedisServer, config: Config) -> Analyzer<Recorder, NoLlm> {
    Analyzer::new(config, Recorder::default(), manager(redis).await, None)
}

/// By default only an alert its host's collector attested is diagnosed: a
/// forged alert naming a host (published by another host's collector, or
/// by anyone else who may write the stream) is refused and dead-lettered,
/// and no remediation can follow from it.
#[tokio::test]
async fn only_alerts_their_host_attested_are_diagnosed() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, Config::default()).await;
    let mut conn = manager(&redis).await;
    let refused = |body: String| {
        let a = &a;
        async move {
            let response = a.handle(batch_of(vec![body])).await;
            assert_eq!(response.rejected_items.len(), 1, "{response:?}");
            assert!(response.rejected_items[0].reason.contains("not attested"), "{response:?}");
            assert!(a.publisher().take().is_empty());
            // The line `scripts/security-figures.sh` counts.
            println!("attack refused: forged alert: {}", response.rejected_items[0].reason);
        }
    };
    // Nobody attested it.
    refused(AlertSpec::new("c-forged", "non_zero_exit").envelope(0.0)).await;
    // Another alert of the same container was attested: it vouches for that one only.
    let genuine = AlertSpec::new("c-forged", "non_zero_exit").envelope(0.5);
    let key = attestation::key(&Envelope::parse(genuine.as_bytes()).unwrap()).unwrap();
    let (): () = conn.set(&key, 1).await.unwrap();
    refused(AlertSpec::new("c-forged", "non_zero_exit").envelope(0.0)).await;
    // The same alert attested under another host's prefix (what another
    // host's credentials may write) does not vouch for it either.
    let forged = AlertSpec::new("c-other", "non_zero_exit").envelope(0.0);
    let key = attestation::key(&Envelope::parse(forged.as_bytes()).unwrap()).unwrap();
    let (): () = conn.set(key.replace(":h1/", ":h2/"), 1).await.unwrap();
    refused(forged).await;
    // The genuine one is diagnosed.
    assert_eq!(decide(&a, genuine).await.kind, EventKind::RemediationNeeded);
}

#[tokio::test]
async fn single_alerts_follow_the_seed_table() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, config()).await;
    let cases = [
        (AlertSpec::new("c-exit", "non_zero_exit"), EventKind::RemediationNeeded, "restart", 0.9),
        (AlertSpec::new("c-oom", "oom_killed"), EventKind::RemediationNeeded, "restart", 0.9),
        (AlertSpec::new("c-loop", "excessive_restarts"), EventKind::FalseAlarm, "none", 0.6),
        (
            AlertSpec::new("c-crit", "high_memory").severity("critical").mem(99.0),
            EventKind::RemediationNeeded,
            "restart",
            0.85,
        ),
        (AlertSpec::new("c-unh", "unhealthy"), EventKind::RemediationNeeded, "restart", 0.7),
        (AlertSpec::new("c-leak", "memory_leak"), EventKind::RemediationNeeded, "restart", 0.8),
        (AlertSpec::new("c-spike", "high_cpu").cpu(93.0), EventKind::FalseAlarm, "none", 0.65),
    ];
    for (spec, kind, action, confidence) in cases {
        let d = decide(&a, spec.envelope(0.0)).await;
        assert_eq!((d.kind, d.action.as_str(), d.confidence), (kind, action, confidence), "{}: {d:?}", spec.container);
        assert_eq!(d.method.as_deref(), Some("rule_based"));
        assert_eq!((d.model, d.fallback_reason), (None, None));
    }
}

#[tokio::test]
async fn three_high_cpu_alerts_over_two_minutes_are_sustained() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, config()).await;
    let spec = AlertSpec::new("busy", "high_cpu").cpu(94.0);
    let first = decide(&a, spec.envelope(2.0)).await;
    assert_eq!((first.kind, first.confidence), (EventKind::FalseAlarm, 0.65), "{first:?}");
    assert!(first.reason.contains("Transient"), "{}", first.reason);
    let second = decide(&a, spec.envelope(1.0)).await;
    assert_eq!(second.kind, EventKind::FalseAlarm);
    let third = decide(&a, spec.envelope(0.0)).await;
    assert_eq!((third.kind, third.action.as_str(), third.confidence), (EventKind::RemediationNeeded, "restart", 0.75));
    assert!(third.reason.contains("Sustained high CPU"), "{}", third.reason);
}

#[tokio::test]
async fn collector_sustained_seconds_is_enough() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, config()).await;
    let mut spec = AlertSpec::new("hot", "high_cpu").cpu(97.0);
    spec.extra = serde_json::json!({"sustained_seconds": 180, "memory_usage": 1024, "memory_limit": 4096});
    let d = decide(&a, spec.envelope(0.0)).await;
    assert_eq!((d.kind, d.confidence), (EventKind::RemediationNeeded, 0.75), "{d:?}");
}

#[tokio::test]
async fn memory_rising_across_the_history_is_a_leak() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, config()).await;
    let samples = [(20.0, 71.0), (15.0, 75.0), (10.0, 79.5), (5.0, 84.0), (0.0, 88.0)];
    let mut last = None;
    for (i, (ago, mem)) in samples.iter().enumerate() {
        let d = decide(&a, AlertSpec::new("leaky", "high_memory").mem(*mem).envelope(*ago)).await;
        if i < 3 {
            // Too few samples for a trend yet: a spike.
            assert_eq!((d.kind, d.confidence), (EventKind::FalseAlarm, 0.65), "sample {i}: {d:?}");
        }
        last = Some(d);
    }
    let d = last.unwrap();
    assert_eq!((d.kind, d.action.as_str(), d.confidence), (EventKind::RemediationNeeded, "restart", 0.8), "{d:?}");
    assert!(d.reason.contains("71.0%") && d.reason.contains("88.0%"), "{}", d.reason);
}

#[tokio::test]
async fn four_exits_in_ten_minutes_stop_the_restarts() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, config()).await;
    // A cause a restart can fix (a panic), each time another one:
    // restarted until the third exit.
    let panics = [
        "panic: runtime error: slice bounds out of range",
        "panic: runtime error: index out of range [3] with length 3",
        "panic: assignment to entry in nil map",
        "panic: runtime error: integer divide by zero",
    ];
    let spec = |line: &str| AlertSpec::new("crashy", "non_zero_exit").logs(&[line]);
    let mut decisions = Vec::new();
    for (ago, line) in [9.0, 6.0, 3.0, 0.0].into_iter().zip(panics) {
        decisions.push(decide(&a, spec(line).envelope(ago)).await);
    }
    let got: Vec<_> = decisions.iter().map(|d| (d.kind, d.confidence)).collect();
    assert_eq!(
        got,
        [
            (EventKind::RemediationNeeded, 0.9),
            (EventKind::RemediationNeeded, 0.9),
            (EventKind::FalseAlarm, 0.6),
            (EventKind::FalseAlarm, 0.6)
        ]
    );
    assert!(decisions[3].reason.contains("Repeated failures"), "{}", decisions[3].reason);
    // Another container of the same name on another host is unaffected.
    let other = spec(panics[3]).envelope(0.0).replace("\"host\":\"h1\"", "\"host\":\"h2\"");
    assert!(other.contains("\"host\":\"h2\""));
    assert_eq!(decide(&a, other).await.kind, EventKind::RemediationNeeded);
}

#[tokio::test]
async fn an_exit_nothing_recognises_is_restarted_once() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, config()).await;
    let spec = AlertSpec::new("mystery", "non_zero_exit").logs(&["worker: giving up"]);
    let first = decide(&a, spec.envelope(3.0)).await;
    assert_eq!((first.kind, first.confidence), (EventKind::RemediationNeeded, 0.9), "{first:?}");
    let second = decide(&a, spec.envelope(0.0)).await;
    assert_eq!((second.kind, second.confidence), (EventKind::FalseAlarm, 0.6), "{second:?}");
    assert!(second.reason.contains("no recognisable cause"), "{}", second.reason);
}

#[tokio::test]
async fn a_redelivered_alert_is_counted_once() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, config()).await;
    let spec = AlertSpec::new("again", "non_zero_exit").logs(&["panic: runtime error: slice bounds out of range"]);
    let same = spec.envelope(1.0);
    for _ in 0..3 {
        assert_eq!(decide(&a, same.clone()).await.confidence, 0.9);
    }
    let other = AlertSpec::new("again", "non_zero_exit").logs(&["panic: assignment to entry in nil map"]);
    assert_eq!(decide(&a, other.envelope(0.0)).await.kind, EventKind::RemediationNeeded);
}

#[tokio::test]
async fn the_same_failure_after_a_restart_is_not_restarted_again() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, config()).await;
    // The fingerprint and the exit code travel through the history in
    // Redis: the second identical panic is told apart from the first.
    let spec = |pid: u32| {
        AlertSpec::new("same", "non_zero_exit").logs(&[&format!("[pid {pid}] panic: assignment to entry in nil map")])
    };
    let first = decide(&a, spec(7).envelope(3.0)).await;
    assert_eq!((first.kind, first.confidence), (EventKind::RemediationNeeded, 0.9), "{first:?}");
    let second = decide(&a, spec(12).envelope(0.0)).await;
    assert_eq!((second.kind, second.confidence), (EventKind::FalseAlarm, 0.8), "{second:?}");
    assert!(second.reason.contains("[pid 12] panic: assignment to entry in nil map"), "{}", second.reason);
}

#[tokio::test]
async fn threshold_and_malformed_records() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, Config { confidence_threshold: 0.95, ..config() }).await;
    let response = a
        .handle(batch_of(vec![
            AlertSpec::new("web", "non_zero_exit").envelope(0.0),
            "{broken".into(),
            r#"{"timestamp":"x","agent":"a","type":"health_alert","data":{"container":5}}"#.into(),
        ]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(response.rejected_items.len(), 2, "{response:?}");
    let published = a.publisher().take();
    assert_eq!(published.len(), 1);
    let d = decided(&published[0]);
    assert_eq!((d.kind, d.confidence), (EventKind::FalseAlarm, 0.9));
    assert!(d.reason.contains("below threshold 0.95"), "{}", d.reason);
}

#[tokio::test]
async fn history_is_capped_expires_and_survives_concurrent_invocations() {
    let redis = RedisServer::start().await;
    let conn = manager(&redis).await;
    let container = ContainerRef::new("h1", "web");
    let alert: HealthAlert = serde_json::from_value(serde_json::json!({
        "container": "web", "host": "h1", "metrics": {"name": "web", "cpu_pct": 90.0},
        "anomalies": [{"type": "high_cpu", "severity": "high"}]
    }))
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40i64 {
        let (mut conn, container, summary) = (conn.clone(), container.clone(), AlertSummary::of(&alert, 1_000 + i));
        tasks.spawn(async move {
            let h = record_history(&mut conn, &container, &summary, 10, Duration::from_secs(3600)).await.unwrap();
            (summary, h)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (summary, h) = done.unwrap();
        // Each invocation sees its own alert, first, whatever ran alongside.
        assert_eq!(h.alerts.first(), Some(&summary));
        assert!(h.alerts.len() <= 10);
        assert_eq!(h.now, summary.at);
    }
    let mut c = redis.connection().await;
    let key = keys::history(&container);
    let len: usize = c.llen(&key).await.unwrap();
    let ttl: i64 = c.ttl(&key).await.unwrap();
    assert_eq!(len, 10);
    assert!(ttl > 3500 && ttl <= 3600, "ttl {ttl}");
}

#[tokio::test]
async fn diagnoses_from_evidence_reach_the_events() {
    let redis = RedisServer::start().await;
    let a = analyzer(&redis, config()).await;
    let full = AlertSpec::new("c-disk", "non_zero_exit")
        .logs(&["writing segment 12", "OSError: [Errno 28] No space left on device: '/data/seg12'"]);
    let d = decide(&a, full.envelope(0.0)).await;
    assert_eq!(
        (d.kind, d.action.as_str(), d.method.as_deref()),
        (EventKind::RemediationNeeded, "cleanup", Some("rule_based"))
    );
    let data = &serde_json::from_str::<serde_json::Value>(&d.json).unwrap()["data"];
    assert_eq!(data["diagnosis"]["cause"], "disk_full", "{data}");
    assert_eq!(data["diagnosis"]["evidence"][0], "OSError: [Errno 28] No space left on device: '/data/seg12'");
    assert_eq!(data["diagnosis"]["restart_helps"], false);

    let port = AlertSpec::new("c-port", "non_zero_exit").logs(&["listen tcp :8080: bind: address already in use"]);
    let d = decide(&a, port.envelope(0.0)).await;
    assert_eq!((d.kind, d.action.as_str()), (EventKind::FalseAlarm, "none"));
    let data = &serde_json::from_str::<serde_json::Value>(&d.json).unwrap()["data"];
    assert_eq!(data["diagnosis"]["cause"], "port_in_use", "{data}");
    assert!(data["diagnosis"]["recommendation"].as_str().is_some_and(|r| !r.is_empty()));

    // A plain crash still restarts once; with nothing in its output, its
    // cause is not guessed.
    let d = decide(&a, AlertSpec::new("c-plain", "non_zero_exit").envelope(0.0)).await;
    assert_eq!((d.kind, d.action.as_str()), (EventKind::RemediationNeeded, "restart"));
    let data = &serde_json::from_str::<serde_json::Value>(&d.json).unwrap()["data"];
    assert_eq!(data["diagnosis"]["cause"], "unknown", "{data}");
}
