//! Decision latency of the analyzer, rules path: the handler, warm, against
//! a real redis-server (history round trip + publish), for 1,000 alerts.
//!
//! `cargo run --release -p hemostat-analyzer --example bench`
//!
//! Prints p50/p99 of the handler time per alert (a batch of one record, as
//! the bridge delivers a lone alert). The responder's half of "health alert
//! in, command out" is measured on its side.

use std::time::{Duration, Instant};

use hemostat_analyzer::{Analyzer, Config, NoLlm};
use hemostat_e2e::RedisServer;
use hemostat_protocol::{
    EventKind, RedisPublisher,
    batch::{self, BatchEvent},
    envelope::seed_timestamp,
};

const ALERTS: usize = 1000;
const WARMUP: usize = 100;
const KINDS: [&str; 5] = ["non_zero_exit", "high_cpu", "high_memory", "unhealthy", "oom_killed"];

fn alert(i: usize) -> BatchEvent {
    let kind = KINDS[i % KINDS.len()];
    // 50 containers, so histories fill up and rules read real lists.
    let name = format!("svc-{}", i % 50);
    let body = format!(
        r#"{{"timestamp":"{}","agent":"HemoStat-Monitor","type":"health_alert","data":{{"container":"{name}","host":"bench","image":"acme/svc:1","issues":["{kind}"],"metrics":{{"name":"{name}","status":"running","cpu_pct":91.5,"memory_pct":{}}},"anomalies":[{{"type":"{kind}","severity":"high","threshold":85,"actual":91.5}}],"exit_code":1}}}}"#,
        seed_timestamp(),
        60 + i % 30
    );
    batch::event(vec![batch::record(format!("{i}-0"), EventKind::HealthAlert.stream(), body, 1)])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let redis = RedisServer::start().await;
    let conn = hemostat_protocol::connection::connect(&redis.url()).await.expect("redis");
    let analyzer: Analyzer<_, NoLlm> = Analyzer::new(Config::default(), RedisPublisher::new(conn.clone()), conn, None);
    for i in 0..WARMUP {
        analyzer.handle(alert(i)).await;
    }
    let mut times = Vec::with_capacity(ALERTS);
    for i in 0..ALERTS {
        let event = alert(WARMUP + i);
        let started = Instant::now();
        let response = analyzer.handle(event).await;
        times.push(started.elapsed());
        assert!(response.batch_item_failures.is_empty() && response.rejected_items.is_empty(), "{response:?}");
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "analyzer handler, rules path, warm, {ALERTS} alerts against redis-server {}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        redis.url(),
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1]),
    );
}
