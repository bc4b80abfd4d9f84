//! Outbox figures, printed (not asserted):
//!
//! ```sh
//! cargo test -p hemostat-collector --release --lib outbox::bench -- --ignored --nocapture
//! ```
//!
//! With alerts shaped like real ones (a `health_alert` carrying 50 log
//! lines of evidence, 6 KB of JSON): append throughput through [`Outbox::send`] (JSON, one
//! `write` each, the syncer's `fsync` every 50 ms alongside), the bytes on
//! disk per event, delivery throughput (read from disk and head advanced,
//! to a publisher that takes everything at once), and recovery time for
//! a full log. In a folder of the temporary directory
//! (`HEMOSTAT_OUTBOX_BENCH_DIR` for another disk).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hemostat_protocol::{Envelope, EventKind, ProtocolError, Publisher, envelope::agent};
use tokio_util::sync::CancellationToken;

use super::{Outbox, Settings, log::Log};

const EVENTS: u64 = 20_000;

/// Down until `up`; then takes everything and counts it.
#[derive(Clone, Default)]
struct Sink {
    up: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
}

impl Publisher for Sink {
    async fn publish(&self, _: &Envelope) -> Result<String, ProtocolError> {
        if !self.up.load(Ordering::Relaxed) {
            return Err(ProtocolError::RedisUrl("down".into()));
        }
        Ok(format!("{}-0", self.taken.fetch_add(1, Ordering::Relaxed)))
    }
}

/// A crash alert as the collector sends it: figures, state, and 50 log
/// lines of evidence (about 4 KB, the default cap).
fn alert(n: u64) -> Envelope {
    let lines: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            serde_json::json!({
                "stream": "stderr",
                "line": format!("2026-12-06T10:00:{:02}.123Z ERROR worker {n}: request {i} failed: connection reset", i % 60),
            })
        })
        .collect();
    let data = serde_json::json!({
        "host": "web-1", "container": format!("shop-api-{n}"), "container_id": "4f2a9c0d8e7b",
        "image": "shop/api:1.42.0", "issues": ["Exited with code 1"], "exit_code": 1,
        "detected_at": "2026-12-06T10:00:59.123456789Z",
        "anomalies": [{"kind": "non_zero_exit", "severity": "high", "actual": 1.0}],
        "metrics": {"name": format!("shop-api-{n}"), "status": "exited", "cpu_pct": 0.0, "memory_pct": 12.5},
        "evidence": {"logs": {"lines": lines, "truncated": true},
                     "state": {"exit_code": 1, "oom_killed": false, "restart_count": 3}},
    });
    Envelope::new(agent::MONITOR, EventKind::HealthAlert, &data).unwrap_or_else(|e| panic!("{e}"))
}

fn per_second(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: prints figures; run with --ignored --nocapture"]
async fn bench() {
    let root =
        std::env::var_os("HEMOSTAT_OUTBOX_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = root.join(format!("hemostat-outbox-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let envelopes: Vec<Envelope> = (0..EVENTS).map(alert).collect();
    let json_bytes: u64 = envelopes.iter().map(|e| e.to_json().len() as u64).sum();
    let settings = Settings {
        dir: dir.clone(),
        max_bytes: 1 << 30,
        refusal_patience: Duration::from_secs(600),
        host: "bench".into(),
        progress: None,
        facts_current: None,
    };

    // Appends while Redis is down: everything stays on disk.
    let sink = Sink::default();
    let cancel = CancellationToken::new();
    let (outbox, task) = Outbox::open(sink.clone(), settings.clone(), cancel.clone()).unwrap();
    let started = Instant::now();
    for env in envelopes {
        outbox.send(env);
    }
    let appended = started.elapsed();
    let on_disk = outbox.shared.lock().log.total_bytes();
    // Let the syncer catch up, then time delivery from disk.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    sink.up.store(true, Ordering::Relaxed);
    outbox.shared.wake.notify_one();
    while sink.taken.load(Ordering::Relaxed) < EVENTS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let delivered = started.elapsed();
    cancel.cancel();
    drop(outbox);
    task.await.unwrap();

    // Recovery of a full log: EVENTS undelivered records scanned.
    let (mut log, _) = Log::open(&dir, 1 << 30).unwrap();
    for _ in 0..EVENTS {
        log.append(alert(0).to_json().as_bytes()).unwrap();
    }
    log.sync_all().unwrap();
    drop(log);
    let started = Instant::now();
    let (log, recovery) = Log::open(&dir, 1 << 30).unwrap();
    let recovered = started.elapsed();
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);

    println!("outbox benchmark, {EVENTS} health alerts with 50 log lines of evidence, in {}", root.display());
    println!(
        "  append (Outbox::send: JSON + one write each, fsync every 50 ms beside): {:.0} events/s, {:.1} MB/s, {:.1} us/event",
        per_second(EVENTS, appended),
        json_bytes as f64 / appended.as_secs_f64() / 1e6,
        appended.as_secs_f64() * 1e6 / EVENTS as f64
    );
    println!(
        "  on disk: {:.0} bytes/event ({:.0} bytes of envelope JSON + {} bytes of record header)",
        on_disk as f64 / EVENTS as f64,
        json_bytes as f64 / EVENTS as f64,
        super::log::HEADER
    );
    println!(
        "  64 MiB (the default bound) holds {:.0} such events",
        (64u64 << 20) as f64 / (on_disk as f64 / EVENTS as f64)
    );
    println!(
        "  delivery from disk to a publisher that takes all at once (read, parse, advance the head): {:.0} events/s",
        per_second(EVENTS, delivered)
    );
    println!(
        "  recovery on start: {} records ({:.1} MB) checked in {:.0} ms",
        recovery.pending,
        on_disk as f64 / 1e6,
        recovered.as_secs_f64() * 1e3
    );
}
