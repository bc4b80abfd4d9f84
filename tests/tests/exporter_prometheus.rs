//! The exporter end to end, on real processes: events published to Redis
//! the way every component publishes them, carried by the bridge to the
//! exporter running in the Lambda emulator (from the real template.yaml),
//! served through the emulator's function URL, checked by `promtool check
//! metrics`, and scraped by a real Prometheus server (Debian's package)
//! that loads the project's alerting rules; every query of the Grafana
//! dashboard then runs against it.

mod exporter_support;

use std::time::{Duration, Instant};

use exporter_support::*;
use hemostat_e2e::{RedisServer, start_bridge, wait_for, workspace_root};
use hemostat_protocol::{ContainerRef, keys};
use serde_json::{Value, json};

/// Every route of the exporter, as protocol's ROUTES has them, and no other
/// function (the emulator runs only the exporter here).
const ROUTES: &str = "health_alert=exporter,remediation_needed=exporter,remediation_complete=exporter,false_alarm=exporter,system_alert=exporter";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_scraped_by_prometheus_through_the_function_url() {
    let redis = RedisServer::start().await;
    let (emulator, endpoint) = start_exporter(&redis, &[]).await;
    let bridge = start_bridge(|b| {
        b.env("REDIS_URL", redis.url())
            .env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint)
            .env("HEMOSTAT_BRIDGE_ROUTES", ROUTES)
            .env("RUST_LOG", "info")
    })
    .await;

    // What a collector leaves in Redis: its heartbeat, containers, stats.
    let mut conn = redis.connection().await;
    let web = ContainerRef::new("e2e-h1", "web");
    let _: () = redis::pipe()
        .set_ex(keys::heartbeat("e2e-h1"), json!({"host": "e2e-h1", "interval_seconds": 10.0}).to_string(), 30)
        .zadd(keys::COLLECTORS, "e2e-h1", chrono::Utc::now().timestamp_millis())
        .sadd(keys::CONTAINERS, web.key())
        .set_ex(
            keys::stats(&web),
            json!({"name": "web", "status": "running", "cpu_pct": 37.5, "memory_pct": 61.25}).to_string(),
            300,
        )
        .query_async(&mut conn)
        .await
        .unwrap();

    let now = chrono::Utc::now();
    let mut events = Vec::new();
    for (i, (host, container)) in [("e2e-h1", "web"), ("e2e-h1", "db"), ("e2e-h2", "api")].iter().enumerate() {
        events.extend(incident(host, container, now - chrono::Duration::seconds(4 + 2 * i as i64)));
    }
    let published = Instant::now();
    publish(&redis, &events).await;

    let url = metrics_url(&endpoint);
    let expected = events.len() as f64;
    let text = wait_for(Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let reply = get(&url).await;
            let counted: f64 = reply
                .body
                .lines()
                .filter(|l| l.starts_with("hemostat_events_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            (reply.status == 200 && counted == expected).then_some(reply)
        }
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "events not counted in time\n--- bridge ---\n{}\n--- emulator ---\n{}",
            bridge.log_tail(30),
            emulator.log_tail(30)
        )
    });
    println!("publish to visible in /metrics: {} ms ({} events)", published.elapsed().as_millis(), events.len());
    assert!(text.headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let body = text.body;
    assert_eq!(sample(&body, r#"hemostat_alerts_total{type="non_zero_exit",severity="high"}"#), Some(3.0));
    assert_eq!(sample(&body, r#"hemostat_remediations_total{action="restart",status="success"}"#), Some(3.0));
    assert_eq!(sample(&body, r#"hemostat_detection_to_fix_seconds_count{action="restart"}"#), Some(3.0));
    assert_eq!(sample(&body, "hemostat_false_alarm_ratio"), Some(0.5));
    assert_eq!(sample(&body, r#"hemostat_collector_up{host="e2e-h1"}"#), Some(1.0));
    assert_eq!(sample(&body, r#"hemostat_container_cpu_percent{host="e2e-h1",container="web"}"#), Some(37.5));
    println!("/metrics: {} bytes, {} samples", body.len(), body.lines().filter(|l| !l.starts_with('#')).count());

    let (ok, output) = promtool_check_metrics(&body);
    assert!(ok, "promtool check metrics failed:\n{output}\n--- metrics ---\n{body}");
    assert!(output.trim().is_empty(), "promtool has remarks: {output}");

    // A real Prometheus scrapes the same URL every second, with the rules.
    let rules = workspace_root().join("infra/prometheus/hemostat.rules.yml");
    let target = endpoint.trim_start_matches("http://");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\nscrape_configs:\n  - job_name: hemostat\n    metrics_path: /urls/{EXPORTER}/metrics\n    static_configs:\n      - targets: [\"{target}\"]\n",
        rules = rules.display()
    );
    let (prometheus, api, dir) = start_prometheus(&config).await;
    let alerts = query_until(&api, "sum(hemostat_alerts_total)", Duration::from_secs(30), |v| v == 6.0).await;
    assert_eq!(alerts, Some(6.0), "Prometheus did not scrape the exporter\n{}", prometheus.log_tail(30));
    let up = query(&api, r#"up{job="hemostat"}"#).await.unwrap();
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    let verified = query(&api, r#"hemostat_remediation_verifications_total{result="verified"}"#).await.unwrap();
    assert_eq!(verified[0]["value"][1], "3");
    let p50 =
        query(&api, "histogram_quantile(0.5, sum by (le) (hemostat_detection_to_fix_seconds_bucket))").await.unwrap();
    let p50: f64 = p50[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!((1.0..=30.0).contains(&p50), "median detection-to-fix {p50}");
    for metric in ["scrape_duration_seconds", "scrape_samples_scraped"] {
        let v = query(&api, &format!("{metric}{{job=\"hemostat\"}}")).await.unwrap();
        println!("prometheus {metric}: {}", v[0]["value"][1]);
    }

    // The rules load and evaluate against the real series.
    let rules_ok = wait_for(Duration::from_secs(20), || async {
        let v = get(&format!("{api}/api/v1/rules")).await.json();
        let rules: Vec<Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (rules.len() == 5 && rules.iter().all(|r| r["health"] == "ok")).then_some(rules.len())
    })
    .await;
    assert_eq!(rules_ok, Some(5), "rules not all healthy: {}", get(&format!("{api}/api/v1/rules")).await.body);

    // Every query of the Grafana dashboard is valid PromQL over these
    // series, and the headline panels have data.
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(workspace_root().join("infra/grafana/hemostat.json")).unwrap())
            .unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 20, "{}", exprs.len());
    // Rates need two scrapes in their window.
    query_until(&api, "count(increase(hemostat_alerts_total[1m]))", Duration::from_secs(10), |n| n > 0.0).await;
    let mut empty = Vec::new();
    for expr in &exprs {
        let promql = expr.replace("$__rate_interval", "1m").replace("$host", ".*");
        let result = query(&api, &promql).await.unwrap_or_else(|e| panic!("dashboard query rejected: {e}"));
        if result.is_empty() {
            empty.push(promql);
        }
    }
    println!("dashboard: {} queries valid, {} with data", exprs.len(), exprs.len() - empty.len());
    // Only series this run has no reason to create may be empty.
    let may_be_empty = [
        "hemostat_system_alerts_total",
        "hemostat_exporter_duplicate_records_total",
        "hemostat_exporter_cloudwatch_failures_total",
    ];
    empty.retain(|q| !may_be_empty.iter().any(|m| q.contains(m)));
    assert!(empty.is_empty(), "dashboard queries without data: {empty:#?}");
    drop(prometheus);
    let _ = std::fs::remove_dir_all(dir);
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}
