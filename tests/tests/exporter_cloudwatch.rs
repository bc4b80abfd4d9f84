//! The exporter's CloudWatch path against moto's server (a real HTTP
//! CloudWatch API on loopback, from scripts/python-tools.sh): the exporter
//! in the emulator sends each batch's counts and observations and the
//! schedule's gauges with PutMetricData; the test reads them back with
//! ListMetrics and GetMetricData. A redelivered batch adds nothing.

mod exporter_support;

use std::time::Duration;

use exporter_support::*;
use hemostat_e2e::{Process, RedisServer, wait_for};
use hemostat_exporter::{
    CloudWatchSink,
    cloudwatch_sdk::{
        Client,
        primitives::DateTime,
        types::{Dimension, Metric, MetricDataQuery, MetricStat},
    },
};
use hemostat_protocol::keys;
use serde_json::json;

/// moto's server on a port of its own choosing; returns it and its URL.
async fn start_moto() -> (Process, String) {
    let bin = venv_bin("moto_server");
    let moto = Process::builder(bin.to_str().unwrap()).name("moto").args(["-H", "127.0.0.1", "-p0"]).spawn();
    let line = moto.wait_for_line("Running on http://127.0.0.1:", Duration::from_secs(30)).await;
    let url = line.split("Running on ").nth(1).expect("moto's URL").trim().trim_end_matches('/').to_owned();
    (moto, url)
}

async fn sum(client: &Client, namespace: &str, name: &str, dims: &[(&str, &str)], stat: &str) -> Option<f64> {
    let now = std::time::SystemTime::now();
    let dimensions: Vec<Dimension> =
        dims.iter().map(|(k, v)| Dimension::builder().name(*k).value(*v).build()).collect();
    let query = MetricDataQuery::builder()
        .id("q")
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder().namespace(namespace).metric_name(name).set_dimensions(Some(dimensions)).build(),
                )
                .period(60)
                .stat(stat)
                .build(),
        )
        .build();
    let out = client
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(DateTime::from(now - Duration::from_secs(900)))
        .end_time(DateTime::from(now + Duration::from_secs(300)))
        .send()
        .await
        .expect("GetMetricData");
    let values = out.metric_data_results()[0].values().to_vec();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_schedule_reach_cloudwatch_once() {
    let redis = RedisServer::start().await;
    let (_moto, moto_url) = start_moto().await;
    let namespace = format!("HemoStatE2E-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (emulator, endpoint) = start_exporter(
        &redis,
        &[
            ("EXPORTER_CLOUDWATCH_ENABLED", "true"),
            ("EXPORTER_CLOUDWATCH_ENDPOINT", &moto_url),
            ("EXPORTER_CLOUDWATCH_NAMESPACE", &namespace),
        ],
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

    // Read back with the SDK, through the exporter's own client set-up.
    let client = CloudWatchSink::new(namespace.clone(), Some(&moto_url), Duration::from_secs(10))
        .await
        .unwrap()
        .client()
        .clone();
    let listed = wait_for(Duration::from_secs(10), || async {
        let out = client.list_metrics().namespace(&namespace).send().await.ok()?;
        let mut names: Vec<String> = out.metrics().iter().filter_map(|m| m.metric_name().map(str::to_owned)).collect();
        names.sort();
        names.dedup();
        (names.len() >= 8).then_some(names)
    })
    .await
    .unwrap_or_else(|| panic!("metrics not listed in {namespace}\n{}", emulator.log_tail(30)));
    println!("CloudWatch metrics in {namespace}: {listed:?}");
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
        assert!(listed.iter().any(|n| n == name), "{name} missing from {listed:?}");
    }

    let alerts = [("Type", "non_zero_exit"), ("Severity", "high")];
    assert_eq!(sum(&client, &namespace, "Alerts", &alerts, "Sum").await, Some(2.0));
    assert_eq!(
        sum(&client, &namespace, "Remediations", &[("Action", "restart"), ("Status", "success")], "Sum").await,
        Some(2.0)
    );
    assert_eq!(sum(&client, &namespace, "DetectionToFix", &[("Action", "restart")], "SampleCount").await, Some(2.0));
    assert_eq!(sum(&client, &namespace, "CollectorUp", &[("Host", "e2e-h1")], "Maximum").await, Some(1.0));

    // The bridge delivers the same batch again: counted before, not sent again.
    let reply = invoke(&endpoint, &payload).await;
    assert_eq!(reply["batchItemFailures"], json!([]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sum(&client, &namespace, "Alerts", &alerts, "Sum").await, Some(2.0), "a redelivery reached CloudWatch");
    let text = get(&metrics_url(&endpoint)).await.body;
    assert_eq!(sample(&text, "hemostat_exporter_duplicate_records_total"), Some(events.len() as f64));
    assert_eq!(sample(&text, "hemostat_exporter_cloudwatch_failures_total"), None);
}
