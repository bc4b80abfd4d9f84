//! The handler against a real redis-server: counting with dedupe (also
//! under concurrent redelivery), rejection of malformed records, the
//! scrape's text, collector transitions published once, and what reaches
//! the CloudWatch sink.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use hemostat_e2e::RedisServer;
use hemostat_exporter::{Config, Datum, Exporter, ExporterError, MetricSink, RedisStore};
use hemostat_protocol::connection::Connection;
use hemostat_protocol::{
    ContainerRef, EventKind, RedisPublisher,
    batch::{self, BatchRecord, BatchResponse},
    event::SystemAlert,
    keys as protocol_keys,
};
use redis::AsyncCommands;
use serde_json::{Value, json};

/// Keeps what would have gone to CloudWatch.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Datum>>>);

impl MetricSink for Recorder {
    async fn put(&self, datums: Vec<Datum>) -> Result<usize, ExporterError> {
        self.0.lock().unwrap().extend(datums);
        Ok(1)
    }
}

impl Recorder {
    fn take(&self) -> Vec<Datum> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

async fn manager(redis: &RedisServer) -> Connection {
    hemostat_protocol::connection::connect(&redis.url()).await.expect("redis connection")
}

async fn exporter(redis: &RedisServer, sink: Recorder) -> Exporter<RedisPublisher, Recorder> {
    let conn = manager(redis).await;
    let config = Config::default();
    Exporter::new(config.clone(), RedisStore::new(conn.clone(), config.dedupe_ttl), RedisPublisher::new(conn), sink)
        .unwrap()
}

fn envelope(kind: &str, data: Value) -> String {
    json!({"timestamp": "2025-11-03T10:31:00.000000", "agent": "test", "type": kind, "data": data}).to_string()
}

fn record(id: &str, kind: &str, body: String) -> BatchRecord {
    batch::record(id, format!("hemostat:stream:{kind}"), body, 1)
}

fn alert(id: &str, severity: &str) -> BatchRecord {
    let data = json!({"container": "web", "host": "h1", "metrics": {"name": "web"}, "anomalies": [{"type": "non_zero_exit", "severity": severity}]});
    record(id, "health_alert", envelope("health_alert", data))
}

fn fixed(id: &str) -> BatchRecord {
    let data = json!({"container": "web", "host": "h1", "action": "restart", "detected_at": "2025-11-03T10:30:52Z",
        "result": {"status": "success", "action": "restart", "container": "web", "duration_ms": 1200, "verified": true}});
    record(id, "remediation_complete", envelope("remediation_complete", data))
}

async fn metrics_hash(conn: &mut Connection) -> std::collections::HashMap<String, String> {
    conn.hgetall(protocol_keys::exporter_metrics()).await.unwrap()
}

fn scrape_request() -> Value {
    json!({"version": "2.0", "rawPath": "/metrics", "rawQueryString": "", "headers": {"accept": "text/plain"},
        "requestContext": {"http": {"method": "GET", "path": "/metrics"}}, "isBase64Encoded": false})
}

async fn scrape(e: &Exporter<RedisPublisher, Recorder>) -> String {
    let reply = e.handle(scrape_request()).await.unwrap();
    assert_eq!(reply["statusCode"], 200, "{reply}");
    assert!(reply["headers"]["content-type"].as_str().unwrap().starts_with("text/plain; version=0.0.4"));
    reply["body"].as_str().unwrap().to_owned()
}

fn line_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn redelivered_records_are_counted_once() {
    let redis = RedisServer::start().await;
    let sink = Recorder::default();
    let e = exporter(&redis, sink.clone()).await;
    let mut conn = manager(&redis).await;
    let batch = batch::event(vec![alert("1-0", "high"), alert("2-0", "critical"), fixed("3-0")]);

    let first = e.batch(batch.clone()).await;
    assert_eq!(first, BatchResponse::default());
    let after_first = metrics_hash(&mut conn).await;
    assert_eq!(after_first[r#"hemostat_alerts_total{type="non_zero_exit",severity="high"}"#], "1");
    assert_eq!(after_first[r#"hemostat_events_total{type="health_alert"}"#], "2");
    assert_eq!(after_first[r#"hemostat_detection_to_fix_seconds_count{action="restart"}"#], "1");
    assert_eq!(after_first[r#"hemostat_detection_to_fix_seconds_sum{action="restart"}"#], "8");
    let sent = sink.take();
    assert!(sent.iter().any(|d| d.name == "Alerts"), "{sent:?}");
    assert!(sent.iter().any(|d| d.name == "DetectionToFix" && d.values == [(8.0, 1.0)]), "{sent:?}");

    // The bridge delivers the same batch again (its ack was lost).
    let second = e.batch(batch.clone()).await;
    assert_eq!(second, BatchResponse::default(), "a duplicate is not a failure");
    let mut after_second = metrics_hash(&mut conn).await;
    let duplicates = after_second.remove("hemostat_exporter_duplicate_records_total");
    assert_eq!(duplicates.as_deref(), Some("3"));
    assert_eq!(after_second, after_first, "nothing counted twice");
    assert!(sink.take().is_empty(), "nothing sent to CloudWatch twice");

    // The dedupe marks expire (bounded memory).
    let ttl: i64 = conn.ttl(protocol_keys::exporter_seen("hemostat:stream:health_alert", "1-0")).await.unwrap();
    assert!((3500..=3600).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn concurrent_redeliveries_count_each_record_once() {
    let redis = RedisServer::start().await;
    let e = Arc::new(exporter(&redis, Recorder::default()).await);
    let records: Vec<BatchRecord> = (0..50).map(|i| alert(&format!("{i}-0"), "high")).collect();
    let mut tasks = Vec::new();
    let started = std::time::Instant::now();
    // Eight instances handling overlapping batches of the same 50 records.
    for k in 0..8 {
        let e = e.clone();
        let mut batch: Vec<BatchRecord> = records.iter().skip(k * 3).take(30).cloned().collect();
        batch.extend(records.iter().take(10).cloned());
        tasks.push(tokio::spawn(async move { e.batch(batch::event(batch)).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), BatchResponse::default());
    }
    let counted: std::collections::HashSet<String> =
        (0..8).flat_map(|k| (k * 3..(k * 3 + 30).min(50)).chain(0..10)).map(|i| format!("{i}-0")).collect();
    let mut conn = manager(&redis).await;
    let hash = metrics_hash(&mut conn).await;
    assert_eq!(hash[r#"hemostat_events_total{type="health_alert"}"#], counted.len().to_string());
    let deliveries: usize = (0..8).map(|k| (30usize).min(50 - k * 3) + 10).sum();
    let duplicates: usize = hash["hemostat_exporter_duplicate_records_total"].parse().unwrap();
    assert_eq!(duplicates, deliveries - counted.len());
    println!(
        "{deliveries} deliveries of {} records in 8 concurrent batches: {duplicates} duplicates skipped, {} ms",
        counted.len(),
        started.elapsed().as_millis()
    );
}

#[tokio::test]
async fn malformed_records_are_rejected_and_the_rest_counted() {
    let redis = RedisServer::start().await;
    let e = exporter(&redis, Recorder::default()).await;
    let event = batch::event(vec![
        alert("1-0", "low"),
        record("2-0", "health_alert", "not json".into()),
        record("3-0", "remediation_complete", envelope("remediation_complete", json!({"container": 7}))),
        fixed("4-0"),
    ]);
    let response = e.batch(event).await;
    assert!(response.batch_item_failures.is_empty());
    let rejected: Vec<&str> = response.rejected_items.iter().map(|r| r.item_identifier.as_str()).collect();
    assert_eq!(rejected, ["2-0", "3-0"]);
    assert!(response.rejected_items.iter().all(|r| !r.reason.is_empty()));
    let mut conn = manager(&redis).await;
    let hash = metrics_hash(&mut conn).await;
    assert_eq!(hash[r#"hemostat_events_total{type="health_alert"}"#], "1");
    assert_eq!(hash[r#"hemostat_events_total{type="remediation_complete"}"#], "1");
}

#[tokio::test]
async fn redis_down_hands_every_record_back() {
    let mut redis = RedisServer::start_node().await;
    let e = exporter(&redis, Recorder::default()).await;
    redis.stop();
    let response =
        tokio::time::timeout(Duration::from_secs(30), e.batch(batch::event(vec![alert("1-0", "low"), fixed("2-0")])))
            .await
            .expect("bounded by the connection's timeouts");
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["1-0", "2-0"]);
    let reply = e.handle(scrape_request()).await.unwrap();
    assert_eq!(reply["statusCode"], 503);
    assert!(!reply["body"].as_str().unwrap().contains("127.0.0.1:"), "no connection details: {reply}");
}

#[tokio::test]
async fn scrape_shows_counters_gauges_and_containers() {
    let redis = RedisServer::start().await;
    let e = exporter(&redis, Recorder::default()).await;
    let mut conn = manager(&redis).await;
    let needed = |id: &str, conf: f64| {
        record(
            id,
            "remediation_needed",
            envelope(
                "remediation_needed",
                json!({"container": "web", "action": "restart", "reason": "r", "confidence": conf, "analysis_method": "rule_based"}),
            ),
        )
    };
    let alarm = record(
        "9-0",
        "false_alarm",
        envelope("false_alarm", json!({"container": "web", "reason": "spike", "confidence": 0.65})),
    );
    e.batch(batch::event(vec![needed("1-0", 0.9), needed("2-0", 0.75), needed("3-0", 0.9), alarm, fixed("4-0")])).await;
    // A collector's picture of one host.
    let web = ContainerRef::new("h1", "web");
    let db = ContainerRef::new("h1", "db");
    let _: () = redis::pipe()
        .sadd(protocol_keys::CONTAINERS, &[web.key(), db.key(), "h1/gone".into()])
        .set(
            protocol_keys::stats(&web),
            json!({"name": "web", "status": "running", "cpu_pct": 12.5, "memory_pct": 40.25}).to_string(),
        )
        .set(
            protocol_keys::stats(&db),
            json!({"name": "db", "status": "exited", "cpu_pct": 0.0, "memory_pct": 0.0}).to_string(),
        )
        .query_async(&mut conn)
        .await
        .unwrap();
    let text = scrape(&e).await;
    assert_eq!(line_value(&text, r#"hemostat_analyses_total{verdict="remediate",method="rule_based"}"#), Some(3.0));
    assert_eq!(line_value(&text, "hemostat_false_alarm_ratio"), Some(0.25));
    assert_eq!(line_value(&text, r#"hemostat_analysis_confidence_bucket{verdict="remediate",le="0.8"}"#), Some(1.0));
    assert_eq!(line_value(&text, r#"hemostat_analysis_confidence_bucket{verdict="remediate",le="+Inf"}"#), Some(3.0));
    assert_eq!(
        line_value(&text, r#"hemostat_remediation_verifications_total{action="restart",result="verified"}"#),
        Some(1.0)
    );
    assert_eq!(line_value(&text, "hemostat_containers"), Some(3.0));
    assert_eq!(line_value(&text, r#"hemostat_container_cpu_percent{host="h1",container="web"}"#), Some(12.5));
    assert_eq!(line_value(&text, r#"hemostat_container_memory_percent{host="h1",container="web"}"#), Some(40.25));
    assert_eq!(line_value(&text, r#"hemostat_container_status{host="h1",container="db",status="exited"}"#), Some(1.0));
    assert_eq!(line_value(&text, "hemostat_exporter_containers_truncated"), Some(0.0));
    assert!(text.contains("# TYPE hemostat_collector_up gauge"));
}

#[tokio::test]
async fn container_gauges_are_bounded() {
    let redis = RedisServer::start().await;
    let mut conn = manager(&redis).await;
    let members: Vec<String> = (0..2500).map(|i| format!("h{}/c{i}", i % 10)).collect();
    let mut pipe = redis::pipe();
    pipe.sadd(protocol_keys::CONTAINERS, &members);
    for m in &members {
        pipe.set(
            protocol_keys::stats(&ContainerRef::parse(m).unwrap()),
            json!({"name": m, "status": "running", "cpu_pct": 1.0, "memory_pct": 2.0}).to_string(),
        );
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    // The default bound: 2000 of 2500.
    let e = exporter(&redis, Recorder::default()).await;
    let started = std::time::Instant::now();
    let text = scrape(&e).await;
    println!(
        "scrape with 2000 of 2500 containers: {} ms, {} KiB (debug build)",
        started.elapsed().as_millis(),
        text.len() / 1024
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("hemostat_container_cpu_percent{")).count(), 2000);
    assert_eq!(line_value(&text, "hemostat_exporter_containers_truncated"), Some(500.0));
    let config = Config { max_containers: 100, ..Config::default() };
    let e = Exporter::new(
        config,
        RedisStore::new(conn.clone(), Duration::from_secs(60)),
        RedisPublisher::new(conn.clone()),
        Recorder::default(),
    )
    .unwrap();
    let text = scrape(&e).await;
    assert_eq!(text.lines().filter(|l| l.starts_with("hemostat_container_cpu_percent{")).count(), 100);
    assert_eq!(line_value(&text, "hemostat_exporter_containers_truncated"), Some(2400.0));
}

/// Reads `hemostat:stream:system_alert` back.
async fn system_alerts(conn: &mut Connection) -> Vec<SystemAlert> {
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(EventKind::SystemAlert.stream()).await.unwrap();
    reply
        .ids
        .iter()
        .map(|entry| {
            let json: String = entry.get("envelope").unwrap();
            hemostat_protocol::Envelope::parse(json.as_bytes()).unwrap().data_as().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_silent_collector_is_reported_once_and_its_return_once() {
    let redis = RedisServer::start().await;
    let mut conn = manager(&redis).await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let beat = |host: &str, ttl_ms: u64| {
        redis::pipe()
            .cmd("SET")
            .arg(protocol_keys::heartbeat(host))
            .arg(json!({"host": host, "interval_seconds": 0.2}).to_string())
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .zadd(protocol_keys::COLLECTORS, host, now_ms)
            .ignore()
            .clone()
    };
    let () = beat("alive", 60_000).query_async(&mut conn).await.unwrap();
    let () = beat("dying", 600).query_async(&mut conn).await.unwrap();
    // Several instances scrape and run the schedule at once.
    let instances: Vec<Arc<Exporter<RedisPublisher, Recorder>>> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(Arc::new(exporter(&redis, Recorder::default()).await));
        }
        v
    };
    let text = scrape(&instances[0]).await;
    assert_eq!(line_value(&text, r#"hemostat_collector_up{host="dying"}"#), Some(1.0));
    assert_eq!(line_value(&text, r#"hemostat_collector_heartbeat_interval_seconds{host="dying"}"#), Some(0.2));
    assert!(system_alerts(&mut conn).await.is_empty());

    // Past the dying heartbeat's 600 ms, and past the grace after Redis's
    // own start (three 0.2 s intervals, against an uptime Redis counts in
    // whole seconds: a check within its first second judged nobody).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let schedule: Value = serde_json::from_str(
        r#"{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","account":"0","time":"2025-11-03T10:31:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:0:rule/r"],"detail":{}}"#,
    )
    .unwrap();
    let mut runs = Vec::new();
    for (i, e) in instances.iter().enumerate() {
        let e = e.clone();
        let schedule = schedule.clone();
        runs.push(tokio::spawn(async move {
            if i % 2 == 0 {
                scrape(&e).await;
                Value::Null
            } else {
                e.handle(schedule).await.unwrap()
            }
        }));
    }
    for r in runs {
        let summary = r.await.unwrap();
        if !summary.is_null() {
            assert_eq!(
                (summary["collectors"].as_u64(), summary["collectors_missing"].as_u64()),
                (Some(2), Some(1)),
                "{summary}"
            );
        }
    }
    let alerts = system_alerts(&mut conn).await;
    assert_eq!(alerts.len(), 1, "exactly one collector_missing: {alerts:?}");
    assert_eq!((alerts[0].kind.as_str(), alerts[0].host.as_str()), ("collector_missing", "dying"));
    assert!(alerts[0].missing_for_seconds.is_some());
    let text = scrape(&instances[1]).await;
    assert_eq!(line_value(&text, r#"hemostat_collector_up{host="dying"}"#), Some(0.0));
    assert_eq!(line_value(&text, r#"hemostat_collector_up{host="alive"}"#), Some(1.0));
    assert_eq!(system_alerts(&mut conn).await.len(), 1, "still missing: no second alert");

    // It comes back.
    let () = beat("dying", 60_000).query_async(&mut conn).await.unwrap();
    let mut runs = Vec::new();
    for e in &instances {
        let e = e.clone();
        runs.push(tokio::spawn(async move { scrape(&e).await }));
    }
    for r in runs {
        r.await.unwrap();
    }
    let alerts = system_alerts(&mut conn).await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!((alerts[1].kind.as_str(), alerts[1].host.as_str()), ("collector_recovered", "dying"));
}

/// A dead-man's switch receiver (healthchecks.io style): counts pings,
/// keeps each one's method and body.
async fn ping_receiver() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let pings = Arc::new(Mutex::new(Vec::new()));
    let seen = pings.clone();
    let app = axum::Router::new().route(
        "/ping/{uuid}",
        axum::routing::any(move |method: axum::http::Method, body: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((method.to_string(), body));
                "OK"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/ping/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"), pings)
}

fn schedule_event() -> Value {
    json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events", "account": "0",
        "time": "2025-11-03T10:31:00Z", "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:0:rule/r"], "detail": {}})
}

#[tokio::test]
async fn the_dead_mans_switch_is_pinged_only_while_hemostat_is_healthy() {
    let mut redis = RedisServer::start_node().await;
    let mut conn = manager(&redis).await;
    let (url, pings) = ping_receiver().await;
    let env = |name: &str| match name {
        "EXPORTER_DEADMAN_URL" => Some(url.clone()),
        "EXPORTER_DEADMAN_METHOD" => Some("post".to_owned()),
        _ => None,
    };
    let config = Config::from_source(&env).unwrap();
    assert!(!format!("{config:?}").contains("5bf66975"), "the check URL is a secret");
    let e = Exporter::new(
        config.clone(),
        RedisStore::new(conn.clone(), config.dedupe_ttl),
        RedisPublisher::new(conn.clone()),
        Recorder::default(),
    )
    .unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let collector = |ttl_ms: u64| {
        redis::pipe()
            .cmd("SET")
            .arg(protocol_keys::heartbeat("h1"))
            .arg(json!({"host": "h1", "interval_seconds": 10}).to_string())
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .zadd(protocol_keys::COLLECTORS, "h1", now_ms)
            .ignore()
            .clone()
    };
    let bridge = |healthy: bool| {
        let beat = hemostat_protocol::liveness::BridgeHeartbeat {
            consumer: "b1".into(),
            at_ms: now_ms as u64,
            healthy,
            routes: vec![],
            relay_heard_seconds_ago: None,
            totals: Default::default(),
        };
        redis::pipe()
            .cmd("SET")
            .arg(protocol_keys::bridge_heartbeat("b1"))
            .arg(serde_json::to_string(&beat).unwrap())
            .arg("EX")
            .arg(60)
            .ignore()
            .zadd(protocol_keys::BRIDGES, "b1", now_ms)
            .ignore()
            .clone()
    };
    let run = || async { e.handle(schedule_event()).await };

    // Healthy: a collector alive, no bridge registered yet.
    let () = collector(60_000).query_async(&mut conn).await.unwrap();
    assert_eq!(run().await.unwrap()["deadman"], "pinged");
    // A bridge registered and healthy.
    let () = bridge(true).query_async(&mut conn).await.unwrap();
    assert_eq!(run().await.unwrap()["deadman"], "pinged");
    assert_eq!(pings.lock().unwrap().len(), 2);
    let (method, body) = pings.lock().unwrap()[1].clone();
    assert_eq!(method, "POST");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((body["collectors"].as_u64(), body["collectors_missing"].as_u64()), (Some(1), Some(0)), "{body}");

    // The bridge reports a stuck route: no ping.
    let () = bridge(false).query_async(&mut conn).await.unwrap();
    assert_eq!(run().await.unwrap()["deadman"], "not pinged: bridge replica(s) unhealthy: b1");
    // Every bridge replica gone (heartbeat expired): no ping.
    let () = conn.del(protocol_keys::bridge_heartbeat("b1")).await.unwrap();
    assert_eq!(run().await.unwrap()["deadman"], "not pinged: no bridge replica's heartbeat is alive");
    // The bridge back, the collector silent: no ping.
    let () = bridge(true).query_async(&mut conn).await.unwrap();
    let () = conn.del(protocol_keys::heartbeat("h1")).await.unwrap();
    assert_eq!(run().await.unwrap()["deadman"], "not pinged: collector(s) missing: h1");
    assert_eq!(pings.lock().unwrap().len(), 2, "no ping while unhealthy");
    // Healthy again: pinged again.
    let () = collector(60_000).query_async(&mut conn).await.unwrap();
    assert_eq!(run().await.unwrap()["deadman"], "pinged");
    assert_eq!(pings.lock().unwrap().len(), 3);

    // Redis gone: the run fails, and nothing is pinged.
    redis.stop();
    let outcome =
        tokio::time::timeout(Duration::from_secs(30), run()).await.expect("bounded by the connection's timeouts");
    assert!(outcome.is_err(), "{outcome:?}");
    assert_eq!(pings.lock().unwrap().len(), 3, "a HemoStat without Redis never pings");
}

#[tokio::test]
async fn a_bad_dead_mans_switch_setting_is_named() {
    let bad = |name: &str| (name == "EXPORTER_DEADMAN_URL").then(|| "hc-ping.com/5bf66975".to_owned());
    let err = Config::from_source(&bad).unwrap_err().to_string();
    assert!(err.contains("EXPORTER_DEADMAN_URL") && !err.contains("5bf66975"), "{err}");
    let bad = |name: &str| (name == "EXPORTER_DEADMAN_METHOD").then(|| "PUT".to_owned());
    assert!(Config::from_source(&bad).unwrap_err().to_string().contains("EXPORTER_DEADMAN_METHOD"));
}
