//! Throughput and latency of the bridge, stream to ack, against the local
//! Lambda emulator and a no-op function (`bridge-test-function`).
//!
//! ```sh
//! cargo build --release --bins -p hemostat-bridge -p hemostat-local -p hemostat-e2e
//! target/release/bench_bridge [--events 50000] [--batch-sizes 1,10] [--in-flight 4] [--invokers sdk,http] [--rate 5000]
//! ```
//!
//! Two phases per configuration, each with a fresh redis-server, emulator
//! and bridge:
//! - drain: `--events` envelopes are written to the stream first, then the
//!   bridge starts; throughput is events / (time of the last ack - time of
//!   the first ack), "sustained" because start-up is excluded.
//! - live: the same number of events is published at `--rate` events/s
//!   while the bridge runs; each event's latency is its ack time minus the
//!   time in its stream id (Redis' clock, the same machine's). Ack times are
//!   observed from outside, as Redis sees them: every 2 ms one MULTI reads
//!   the group's last-delivered id and its pending list; an event delivered
//!   and no longer pending has been acked. Latencies are therefore upper
//!   bounds, pessimistic by at most one poll (~2 ms plus a round trip).
//!
//! Binaries are taken from `HEMOSTAT_BIN_DIR`, else this executable's
//! directory (so a release build benchmarks release binaries).

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hemostat_e2e::{
    Process, RedisServer,
    bench::{id_key, id_ms, now_ms},
    bin_dir, start_bridge, start_emulator,
};
use hemostat_protocol::connection::Connection;

const STREAM: &str = "hemostat:stream:health_alert";
const GROUP: &str = "bridge:noop";
const POLL: Duration = Duration::from_millis(2);
const ACK_TIMEOUT: Duration = Duration::from_secs(300);

/// One poll: the groups of the stream (XINFO GROUPS) and its pending entries (XPENDING).
type Snapshot = (Vec<HashMap<String, redis::Value>>, Vec<(String, String, u64, u64)>);

struct Options {
    events: usize,
    batch_sizes: Vec<usize>,
    in_flight: Vec<u16>,
    invokers: Vec<String>,
    rate: u64,
    phases: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        events: 50_000,
        batch_sizes: vec![1, 10],
        in_flight: vec![4],
        invokers: vec!["sdk".into(), "http".into()],
        rate: 5_000,
        phases: vec!["drain".into(), "live".into()],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = |v: &str| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let num = |flag: &str, v: &str| -> u64 { v.parse().unwrap_or_else(|_| panic!("{flag}: {v:?} is not a number")) };
    for pair in args.chunks(2) {
        let (flag, value) = (pair[0].as_str(), pair.get(1).map(String::as_str).unwrap_or(""));
        match flag {
            "--events" => o.events = num(flag, value) as usize,
            "--rate" => o.rate = num(flag, value),
            "--batch-sizes" => o.batch_sizes = list(value).iter().map(|v| num(flag, v) as usize).collect(),
            "--in-flight" => o.in_flight = list(value).iter().map(|v| num(flag, v) as u16).collect(),
            "--invokers" => o.invokers = list(value),
            "--phases" => o.phases = list(value),
            _ => panic!("unknown flag {flag}; see the doc comment of bench_bridge.rs"),
        }
    }
    o
}

fn envelope(i: usize) -> String {
    serde_json::json!({
        "timestamp": "2025-11-03T10:30:45.123456", "agent": "bench", "type": "health_alert",
        "data": {"id": format!("e{i}"), "container": "bench", "host": "bench"}
    })
    .to_string()
}

async fn publish(conn: &mut Connection, from: usize, to: usize) -> Vec<String> {
    let mut pipe = redis::pipe();
    for i in from..to {
        pipe.cmd("XADD").arg(STREAM).arg("*").arg("envelope").arg(envelope(i));
    }
    pipe.query_async(conn).await.expect("XADD")
}

/// (entries-read, pending, last-delivered-id) of the bridge's group.
async fn group_state(conn: &mut Connection) -> Option<(u64, u64, String)> {
    let groups: Vec<HashMap<String, redis::Value>> =
        redis::cmd("XINFO").arg("GROUPS").arg(STREAM).query_async(conn).await.ok()?;
    let group = groups.into_iter().find(|g| matches!(g.get("name"), Some(v) if redis::from_redis_value::<String>(v.clone()).ok().as_deref() == Some(GROUP)))?;
    let get = |k: &str| group.get(k).and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok()).unwrap_or(0);
    let last = group
        .get("last-delivered-id")
        .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
        .unwrap_or_default();
    Some((get("entries-read"), get("pending"), last))
}

struct Stack {
    _emulator: Process,
    bridge: Process,
}

fn write_template(dir: &std::path::Path, concurrency: u16) -> PathBuf {
    let path = dir.join(format!("bench-template-{concurrency}.yaml"));
    let yaml = format!(
        "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\nResources:\n  Noop:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: bridge-test-function\n    Properties:\n      FunctionName: bench-noop\n      Timeout: 10\n      ReservedConcurrentExecutions: {concurrency}\n      Environment:\n        Variables:\n          RUST_LOG: warn\n"
    );
    std::fs::write(&path, yaml).expect("write template");
    path
}

async fn start_stack(redis: &RedisServer, invoker: &str, batch: usize, in_flight: u16, label: &str) -> Stack {
    let dir = std::env::temp_dir();
    let template = write_template(&dir, in_flight);
    let (emulator, endpoint) = start_emulator(|b| {
        b.test("bench")
            .name(format!("{label}-emulator"))
            .args(["--template".into(), template.display().to_string()])
            .args(["--bin-dir".to_string(), bin_dir().display().to_string()])
            .env("RUST_LOG", "warn")
            .env_remove("BRIDGE_TEST_REDIS_URL")
    })
    .await;
    let bridge = start_bridge(|b| {
        b.test("bench")
            .name(format!("{label}-bridge"))
            .env("REDIS_URL", redis.url())
            .env("RUST_LOG", "info")
            .args(["--lambda-endpoint", &endpoint])
            .args(["--invoker", invoker, "--routes", "health_alert=noop", "--function-prefix", "bench"])
            .args(["--batch-size".to_string(), batch.to_string(), "--max-in-flight".into(), in_flight.to_string()])
            .args(["--consumer", "bench-1", "--max-age-seconds", "0"])
    })
    .await;
    Stack { _emulator: emulator, bridge }
}

/// Throughput from the first to the last ack of a pre-filled stream.
async fn drain(o: &Options, invoker: &str, batch: usize, in_flight: u16) -> String {
    let redis = RedisServer::start().await;
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("XGROUP");
    for from in (0..o.events).step_by(1000) {
        publish(&mut conn, from, (from + 1000).min(o.events)).await;
    }
    let label = format!("drain-{invoker}-b{batch}-f{in_flight}");
    let stack = start_stack(&redis, invoker, batch, in_flight, &label).await;
    let deadline = Instant::now() + ACK_TIMEOUT;
    let mut first: Option<Instant> = None;
    let done = loop {
        let (read, pending, _) = group_state(&mut conn).await.unwrap_or((0, 0, String::new()));
        let acked = read.saturating_sub(pending);
        if acked > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if acked as usize >= o.events {
            break Instant::now();
        }
        if Instant::now() > deadline {
            return format!("{label}: TIMED OUT with {acked}/{} acked\n{}", o.events, stack.bridge.log_tail(20));
        }
        tokio::time::sleep(POLL).await;
    };
    let secs = (done - first.unwrap_or(done)).as_secs_f64().max(1e-9);
    format!("{label:<28} {:>7} events  {:>7.2} s  {:>8.0} events/s", o.events, secs, o.events as f64 / secs)
}

/// Latency stream -> ack at a fixed publish rate.
async fn live(o: &Options, invoker: &str, batch: usize, in_flight: u16) -> String {
    let redis = RedisServer::start().await;
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("XGROUP");
    let label = format!("live-{invoker}-b{batch}-f{in_flight}-r{}", o.rate);
    let stack = start_stack(&redis, invoker, batch, in_flight, &label).await;
    let published: Arc<Mutex<Vec<String>>> = Arc::default();

    let publisher = {
        let published = published.clone();
        let mut conn = redis.connection().await;
        let (events, rate) = (o.events, o.rate.max(1));
        tokio::spawn(async move {
            let tick = Duration::from_millis(10);
            let per_tick = ((rate as f64) * tick.as_secs_f64()).max(1.0);
            let started = Instant::now();
            let mut sent = 0usize;
            while sent < events {
                // Catch up to the schedule, so the rate holds even if a tick is late.
                let due = ((started.elapsed().as_secs_f64() / tick.as_secs_f64() + 1.0) * per_tick) as usize;
                let to = due.min(events);
                if to > sent {
                    let ids = publish(&mut conn, sent, to).await;
                    published.lock().unwrap().extend(ids);
                    sent = to;
                }
                tokio::time::sleep(tick).await;
            }
        })
    };

    let mut latencies: Vec<f64> = Vec::with_capacity(o.events);
    let mut cursor = 0usize;
    let mut outstanding: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + ACK_TIMEOUT + Duration::from_secs(o.events as u64 / o.rate.max(1));
    let first_publish = now_ms();
    while latencies.len() < o.events {
        if Instant::now() > deadline {
            return format!(
                "{label}: TIMED OUT with {}/{} acked\n{}",
                latencies.len(),
                o.events,
                stack.bridge.log_tail(20)
            );
        }
        tokio::time::sleep(POLL).await;
        let reply: Result<Snapshot, _> = redis::pipe()
            .atomic()
            .cmd("XINFO")
            .arg("GROUPS")
            .arg(STREAM)
            .cmd("XPENDING")
            .arg(STREAM)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(1_000_000)
            .query_async(&mut conn)
            .await;
        let at = now_ms();
        let Ok((groups, pending)) = reply else { continue };
        let Some(last) = groups
            .iter()
            .find(|g| {
                g.get("name").and_then(|v| redis::from_redis_value::<String>(v.clone()).ok()).as_deref() == Some(GROUP)
            })
            .and_then(|g| g.get("last-delivered-id"))
            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
        else {
            continue;
        };
        let last = id_key(&last);
        {
            let published = published.lock().unwrap();
            while cursor < published.len() && id_key(&published[cursor]) <= last {
                outstanding.insert(published[cursor].clone());
                cursor += 1;
            }
        }
        let pending: HashSet<&str> = pending.iter().map(|p| p.0.as_str()).collect();
        outstanding.retain(|id| {
            if pending.contains(id.as_str()) {
                return true;
            }
            latencies.push(at - id_ms(id));
            false
        });
    }
    let span_s = (now_ms() - first_publish) / 1000.0;
    let _ = publisher.await;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "{label:<34} {:>7} events in {:>6.2} s ({:>6.0}/s)  latency ms p50 {:>6.1}  p99 {:>7.1}  max {:>7.1}",
        o.events,
        span_s,
        o.events as f64 / span_s,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    )
}

fn main() {
    if std::env::var_os("HEMOSTAT_BIN_DIR").is_none()
        && let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(PathBuf::from))
    {
        // SAFETY: single-threaded here; the runtime starts below.
        unsafe { std::env::set_var("HEMOSTAT_BIN_DIR", dir) };
    }
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        println!(
            "bench_bridge: {} events, binaries from {}, {} cores",
            o.events,
            bin_dir().display(),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        for invoker in &o.invokers {
            for &batch in &o.batch_sizes {
                for &in_flight in &o.in_flight {
                    if o.phases.iter().any(|p| p == "drain") {
                        println!("{}", drain(&o, invoker, batch, in_flight).await);
                    }
                    if o.phases.iter().any(|p| p == "live") {
                        println!("{}", live(&o, invoker, batch, in_flight).await);
                    }
                }
            }
        }
    });
}
