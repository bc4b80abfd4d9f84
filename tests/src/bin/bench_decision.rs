//! Decision latency, rules path: a `health_alert` published to Redis in, the
//! signed command in the host's stream out, through the real bridge, the
//! Lambda emulator, the analyzer and the responder (release builds).
//!
//!   cargo build --release --bins && cargo run --release -p hemostat-e2e --bin hemostat-bench-decision -- [alerts]
//!
//! Prints p50/p90/p99/max over `alerts` (default 1,000) alerts sent one at a
//! time after a warm-up, each for its own container (the cooldown would
//! refuse repeats).

use std::time::{Duration, Instant};

use hemostat_e2e::{RedisServer, start_bridge, start_emulator, workspace_root};
use hemostat_protocol::{Envelope, Publisher, RedisPublisher, connection, keys};
use redis::streams::{StreamReadOptions, StreamReadReply};

const HOST: &str = "bench-host";
const WARMUP: usize = 50;

fn alert(i: usize) -> Envelope {
    hemostat_e2e::bench::crash_alert(HOST, &format!("svc-{i}"), None, "bench/app:1")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    hemostat_e2e::bench::percentile(sorted, p).unwrap_or_default()
}

fn main() {
    let alerts: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    if std::env::var_os("HEMOSTAT_BIN_DIR").is_none() {
        // SAFETY: single-threaded here; no runtime or thread exists yet.
        unsafe { std::env::set_var("HEMOSTAT_BIN_DIR", workspace_root().join("target/release")) };
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime").block_on(run(alerts));
}

async fn run(alerts: usize) {
    let redis = RedisServer::start().await;
    let template = workspace_root().join("template.yaml");
    let (emulator, endpoint) = start_emulator(|b| {
        b.name("bench-local")
            .args(["--template", template.to_str().expect("utf-8 path")])
            .env("REDIS_URL", redis.url())
            // Fleet brake off: every alert is for a new container of one image.
            .env("RESPONDER_FLEET_BRAKE_HOSTS", "0")
            // Info for the readiness line; per-request logs are at debug.
            .env("RUST_LOG", "info")
    })
    .await;
    let bridge = start_bridge(|b| {
        b.name("bench-bridge")
            .env("REDIS_URL", redis.url())
            .env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint)
            .env("RUST_LOG", "info")
    })
    .await;

    let publisher = RedisPublisher::new(connection::connect(&redis.url()).await.expect("redis"));
    let mut reader = connection::connect_blocking(&redis.url(), Duration::from_secs(5)).await.expect("redis");
    let commands = keys::commands(HOST);
    let mut last_id = "0".to_owned();
    let mut samples = Vec::with_capacity(alerts);
    for i in 0..WARMUP + alerts {
        let env = alert(i);
        let started = Instant::now();
        publisher.publish(&env).await.expect("publish");
        let options = StreamReadOptions::default().count(1).block(5000);
        let reply: Option<StreamReadReply> =
            redis::AsyncCommands::xread_options(&mut reader, &[&commands], &[&last_id], &options).await.expect("xread");
        let elapsed = started.elapsed();
        let entry = reply.and_then(|r| r.keys.into_iter().next()).and_then(|k| k.ids.into_iter().next());
        let Some(entry) = entry else {
            panic!(
                "no command within 5 s for alert {i}\nbridge:\n{}\nemulator:\n{}",
                bridge.log_tail(20),
                emulator.log_tail(20)
            );
        };
        last_id = entry.id;
        if i >= WARMUP {
            samples.push(elapsed);
        }
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("decision latency, rules path (health_alert published -> signed command in hemostat:commands:<host>)");
    println!("via bridge + emulator + analyzer + responder, release build, {alerts} alerts after {WARMUP} warm-up");
    println!(
        "p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.90)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().expect("samples"))
    );
}
