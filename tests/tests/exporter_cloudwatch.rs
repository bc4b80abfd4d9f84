//! The exporter's CloudWatch path: the exporter in the emulator writes each
//! batch's counts and observations and the schedule's gauges as Embedded
//! Metric Format documents on its standard output (what CloudWatch Logs
//! turns into metrics inside Lambda); the test reads them from the
//! emulator's log, checks each against the EMF specification and adds them
//! up as CloudWatch would. A redelivered batch adds nothing.

mod exporter_support;

use std::time::Duration;

use exporter_support::*;
use hemostat_e2e::{Process, RedisServer, wait_for};
use hemostat_protocol::keys;
use serde_json::{Value, json};

/// The EMF documents the exporter has written so far: lines of the
/// emulator's log (`[exporter] [request id] {...}`) that carry `_aws`.
fn documents(emulator: &Process) -> Vec<Value> {
    emulator
        .log()
        .lines()
        .filter(|line| line.contains("\"_aws\":"))
        .filter_map(|line| line.find('{').map(|at| &line[at..]))
        .map(|json| serde_json::from_str(json).unwrap_or_else(|e| panic!("an EMF line that is not JSON ({e}): {json}")))
        .collect()
}

/// What the EMF specification asks of a document, or why it is not one.
fn check(doc: &Value, namespace: &str) {
    let aws = &doc["_aws"];
    assert!(aws["Timestamp"].as_i64().is_some_and(|t| t > 1_600_000_000_000), "Timestamp in ms: {doc}");
    for directive in aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics") {
        assert_eq!(directive["Namespace"], namespace);
        for set in directive["Dimensions"].as_array().expect("Dimensions") {
            let set = set.as_array().expect("a dimension set");
            assert!(set.len() <= 30);
            for name in set {
                assert!(doc[name.as_str().unwrap()].is_string(), "dimension {name} has no string value: {doc}");
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics");
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{doc}");
        for metric in metrics {
            match &doc[metric["Name"].as_str().expect("Name")] {
                Value::Number(_) => {}
                Value::Array(values) => assert!(values.len() <= 100 && values.iter().all(Value::is_number), "{doc}"),
                other => panic!("metric {metric} has value {other}"),
            }
        }
    }
}

/// The values of metric `name` with exactly these dimensions, over all
/// documents, as CloudWatch would collect them.
fn values(docs: &[Value], name: &str, dims: &[(&str, &str)]) -> Vec<f64> {
    let mut out = Vec::new();
    for doc in docs {
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        let names: Vec<&str> =
            directive["Dimensions"][0].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let same = names.len() == dims.len() && dims.iter().all(|(k, v)| names.contains(k) && doc[*k] == *v);
        if !same || !directive["Metrics"].as_array().unwrap().iter().any(|m| m["Name"] == name) {
            continue;
        }
        match &doc[name] {
            Value::Array(vs) => out.extend(vs.iter().filter_map(Value::as_f64)),
            v => out.extend(v.as_f64()),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_schedule_reach_cloudwatch_once() {
    let redis = RedisServer::start().await;
    let namespace = format!("HemoStatE2E-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (emulator, endpoint) = start_exporter(
        &redis,
        &[("EXPORTER_CLOUDWATCH_ENABLED", "true"), ("EXPORTER_CLOUDWATCH_NAMESPACE", &namespace)],
    )
    .await;

    let now = chrono::Utc::now();
    let mut events = incident("e2e-h1", "web", now - chrono::Duration::seconds(6));
    events.extend(incident("e2e-h1", "db", now - chrono::Duration::seconds(9)));
    let payload = batch(&events, 1_700_000_000_000);
    let reply = invoke(&endpoint, &payload).await;
    assert_eq!(reply["batchItemFailures"], json!([]), "{reply}");

    // A collector, so the schedule has a gauge to send.
    let mut conn = redis.connection().await;
    let _: () = redis::pipe()
        .set_ex(keys::heartbeat("e2e-h1"), json!({"host": "e2e-h1", "interval_seconds": 10.0}).to_string(), 30)
        .zadd(keys::COLLECTORS, "e2e-h1", chrono::Utc::now().timestamp_millis())
        .query_async(&mut conn)
        .await
        .unwrap();
    let summary = invoke(&endpoint, &scheduled_event()).await;
    assert!(summary["cloudwatch_calls"].as_u64().is_some_and(|n| n >= 1), "{summary}\n{}", emulator.log_tail(20));
    assert!(summary.get("cloudwatch_error").is_none(), "{summary}");

    let docs = wait_for(Duration::from_secs(10), || async {
        let docs = documents(&emulator);
        let names: std::collections::BTreeSet<String> = docs
            .iter()
            .flat_map(|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| m["Name"].as_str().map(str::to_owned))
            .collect();
        (names.len() >= 8).then_some(docs)
    })
    .await
    .unwrap_or_else(|| panic!("no EMF documents in the exporter's log\n{}", emulator.log_tail(30)));
    docs.iter().for_each(|d| check(d, &namespace));
    println!("EMF documents written: {}; first: {}", docs.len(), docs[0]);
    for name in [
        "Alerts",
        "Analyses",
        "AnalysisConfidence",
        "CollectorUp",
        "DetectionToFix",
        "Events",
        "RemediationDuration",
        "Remediations",
    ] {
        assert!(docs.iter().any(|d| d.get(name).is_some()), "{name} missing");
    }
    let alerts = [("Type", "non_zero_exit"), ("Severity", "high")];
    assert_eq!(values(&docs, "Alerts", &alerts).iter().sum::<f64>(), 2.0);
    assert_eq!(values(&docs, "Remediations", &[("Action", "restart"), ("Status", "success")]).iter().sum::<f64>(), 2.0);
    assert_eq!(values(&docs, "DetectionToFix", &[("Action", "restart")]).len(), 2, "two observations");
    assert_eq!(values(&docs, "CollectorUp", &[("Host", "e2e-h1")]), [1.0]);

    // The bridge delivers the same batch again: counted before, not sent again.
    let reply = invoke(&endpoint, &payload).await;
    assert_eq!(reply["batchItemFailures"], json!([]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = documents(&emulator);
    assert_eq!(values(&again, "Alerts", &alerts).iter().sum::<f64>(), 2.0, "a redelivery reached CloudWatch");
    let text = get(&metrics_url(&endpoint)).await.body;
    assert_eq!(sample(&text, "hemostat_exporter_duplicate_records_total"), Some(events.len() as f64));
    assert_eq!(sample(&text, "hemostat_exporter_cloudwatch_failures_total"), None);
}
