//! Resource stats and the detectors built on them, against a real dockerd
//! and a real redis-server: each test runs its own collector, scoped by
//! label to its own containers.

use std::time::{Duration, Instant};

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{ContainerSpec, Process, RedisServer, docker, start_collector, stream_events, test_host, wait_for};
use hemostat_protocol::connection::Connection;
use hemostat_protocol::{
    ContainerRef, EventKind,
    event::{AnomalyKind, HealthAlert, Severity},
    keys,
};
use redis::AsyncCommands;
use serde_json::Value;

struct Env {
    _redis: RedisServer,
    conn: Connection,
    host: String,
    collector: Process,
}

/// A collector sampling every 500 ms with a 3 s sustain window, plus `envs`.
async fn start(envs: &[(&str, &str)]) -> Env {
    let redis = RedisServer::start().await;
    let host = test_host();
    let collector = start_collector(&redis.url(), &host, |b| {
        let b = b.env("HEMOSTAT_STATS_INTERVAL", "500ms").env("HEMOSTAT_SUSTAIN_SECONDS", "3");
        envs.iter().fold(b, |b, (k, v)| b.env(k, v))
    })
    .await;
    let conn = redis.connection().await;
    Env { _redis: redis, conn, host, collector }
}

/// (arrival ms, alert) of every health_alert for `container` with `kind`.
async fn alerts(conn: &mut Connection, container: &str, kind: AnomalyKind) -> Vec<(u64, HealthAlert)> {
    stream_events::<HealthAlert>(conn, EventKind::HealthAlert)
        .await
        .into_iter()
        .filter(|(_, alert)| alert.container == container && alert.anomalies.iter().any(|a| a.kind == kind))
        .collect()
}

async fn wait_alert(env: &Env, container: &str, kind: AnomalyKind, timeout: Duration) -> (u64, HealthAlert) {
    let found = wait_for(timeout, || {
        let mut conn = env.conn.clone();
        async move { alerts(&mut conn, container, kind).await.into_iter().next() }
    })
    .await;
    found.unwrap_or_else(|| panic!("no {kind:?} alert for {container}; collector log:\n{}", env.collector.log_tail(40)))
}

async fn stats_of(env: &Env, container: &str) -> Option<Value> {
    let key = keys::stats(&ContainerRef::new(&env.host, container));
    let mut conn = env.conn.clone();
    let json: Option<String> = conn.get(&key).await.ok()?;
    serde_json::from_str(&json?).ok()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_burner_is_one_high_cpu_alert_after_the_sustain_window() {
    // Low, so the burner crosses it even when the machine is busy (2 cores
    // shared with parallel tests and builds); idle containers stay near 0.
    let env = start(&[("THRESHOLD_CPU_PERCENT", "20")]).await;
    let docker = docker().await;
    let started_ms = now_ms();
    let c = ContainerSpec::shell("while :; do :; done").start(&docker).await;
    let (arrived_ms, alert) = wait_alert(&env, c.name(), AnomalyKind::HighCpu, Duration::from_secs(30)).await;
    let a = &alert.anomalies[0];
    println!("high_cpu after {} ms: {:?} {:?}", arrived_ms - started_ms, alert.issues, a);
    assert!(arrived_ms - started_ms >= 3000, "alerted before the sustain window");
    assert_eq!(a.threshold, Some(20.0));
    assert!(a.actual.unwrap() > 20.0, "{a:?}");
    assert!(alert.issues[0].starts_with("High CPU: "), "{:?}", alert.issues);
    assert!(alert.metrics.cpu_pct > 20.0);
    assert_eq!(alert.metrics.status.as_deref(), Some("running"));
    assert_eq!(alert.host, env.host);
    assert_eq!(alert.container_id.as_deref(), Some(c.id()));
    let sustained = alert.metrics.extra["sustained_seconds"].as_f64().unwrap();
    assert!(sustained >= 3.0, "sustained {sustained}");
    // Hysteresis: still burning, but not alerted again. The one exception
    // is escalation: a burner that gets a whole idle core stays above 95 %,
    // and the high alert is followed once by a critical one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut conn = env.conn.clone();
    let severities: Vec<_> =
        alerts(&mut conn, c.name(), AnomalyKind::HighCpu).await.iter().map(|(_, a)| a.anomalies[0].severity).collect();
    assert!(
        severities == [a.severity] || severities == [Severity::High, Severity::Critical],
        "repeated alert: {severities:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_spike_is_not_an_alert() {
    // A low threshold, so the spike crosses it even when parallel tests
    // compete for the cores: the test is about duration, not height.
    let env = start(&[("THRESHOLD_CPU_PERCENT", "15")]).await;
    let docker = docker().await;
    let c = ContainerSpec::shell("sleep 1; sh -c 'while :; do :; done' & p=$!; sleep 1; kill $p; sleep 1000")
        .start(&docker)
        .await;
    // Watch the stats key: the spike must be seen, yet not alerted.
    let deadline = Instant::now() + Duration::from_secs(9);
    let mut peak = 0.0f64;
    while Instant::now() < deadline {
        if let Some(s) = stats_of(&env, c.name()).await {
            peak = peak.max(s["cpu_pct"].as_f64().unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("spike peak cpu_pct {peak}");
    assert!(peak > 15.0, "the spike was never measured (peak {peak}); log:\n{}", env.collector.log_tail(20));
    let mut conn = env.conn.clone();
    let got = alerts(&mut conn, c.name(), AnomalyKind::HighCpu).await;
    assert!(got.is_empty(), "a 1 s spike was alerted: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_is_a_high_memory_alert() {
    let env = start(&[("HEMOSTAT_SUSTAIN_SECONDS", "2")]).await;
    let docker = docker().await;
    // tmpfs pages are charged to the container and never reclaimable
    // (no swap): 14 MiB held under a 16 MiB limit, about 88 %.
    let c = ContainerSpec::shell("head -c 14680064 /dev/zero > /dev/shm/hog; sleep 1000")
        .memory(16 << 20)
        .start(&docker)
        .await;
    let (_, alert) = wait_alert(&env, c.name(), AnomalyKind::HighMemory, Duration::from_secs(30)).await;
    let a = &alert.anomalies[0];
    println!("high_memory: {:?} {:?}", alert.issues, a);
    assert_eq!(a.threshold, Some(80.0));
    assert!(a.actual.unwrap() > 80.0 && a.actual.unwrap() <= 100.0, "{a:?}");
    assert!(alert.issues[0].starts_with("High memory: "), "{:?}", alert.issues);
    assert_eq!(alert.metrics.memory_limit, Some(16 << 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loop_is_excessive_restarts() {
    let env = start(&[("HEMOSTAT_MAX_RESTARTS", "3"), ("HEMOSTAT_RESTART_WINDOW", "5m")]).await;
    let docker = docker().await;
    let c =
        ContainerSpec::shell("sleep 0.3; exit 1").restart_policy(RestartPolicyNameEnum::ALWAYS).start(&docker).await;
    let (_, alert) = wait_alert(&env, c.name(), AnomalyKind::ExcessiveRestarts, Duration::from_secs(40)).await;
    let a = &alert.anomalies[0];
    println!("excessive_restarts: {:?} {:?}", alert.issues, a);
    assert_eq!(a.threshold, Some(3.0));
    assert!(a.actual.unwrap() >= 4.0, "{a:?}");
    assert!(alert.issues[0].starts_with("Excessive restarts: "), "{:?}", alert.issues);
    // One alert per loop, although it keeps restarting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut conn = env.conn.clone();
    assert_eq!(alerts(&mut conn, c.name(), AnomalyKind::ExcessiveRestarts).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_keys_carry_the_seed_fields_with_a_ttl() {
    let env = start(&[]).await;
    let docker = docker().await;
    let idle = ContainerSpec::shell("sleep 1000").memory(64 << 20).start(&docker).await;
    let done = ContainerSpec::shell("exit 0").start(&docker).await;
    done.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;

    // A few samples in, so cpu_pct is a rate over a full interval.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = wait_for(Duration::from_secs(10), || stats_of(&env, idle.name()))
        .await
        .unwrap_or_else(|| panic!("no stats key for {}; log:\n{}", idle.name(), env.collector.log_tail(30)));
    println!("{s}");
    assert_eq!(s["name"], idle.name());
    assert_eq!(s["status"], "running");
    assert_eq!(s["host"], env.host.as_str());
    assert_eq!(s["id"], idle.id());
    assert!(s["image"].is_string());
    assert!(s["timestamp"].as_str().is_some_and(|t| t.len() >= 19));
    let cpu = s["cpu_pct"].as_f64().unwrap();
    assert!((0.0..5.0).contains(&cpu), "idle cpu_pct {cpu}");
    let mem = s["memory_pct"].as_f64().unwrap();
    assert!(mem > 0.0 && mem < 50.0, "memory_pct {mem}");
    assert_eq!(s["memory_limit"].as_u64(), Some(64 << 20));
    assert!(s["memory_usage"].as_u64().unwrap() > 0);
    assert!(s["pids"].as_u64().unwrap() >= 1);
    for field in ["net_rx_bytes", "net_tx_bytes", "blk_read_bytes", "blk_write_bytes"] {
        assert!(s[field].is_u64(), "{field} missing: {s}");
    }
    // No health check: no health (an absent field, as the protocol type writes it).
    assert!(s.get("health").is_none(), "{s}");
    let key = keys::stats(&ContainerRef::new(&env.host, idle.name()));
    let mut conn = env.conn.clone();
    let ttl: i64 = conn.ttl(&key).await.unwrap();
    assert!(ttl > 250 && ttl <= 300, "ttl {ttl}");

    // The exited container is visible as exited.
    let d = wait_for(Duration::from_secs(10), || stats_of(&env, done.name())).await.expect("no key for exited");
    assert_eq!(d["status"], "exited");

    // Removing a container removes its key.
    let name = idle.name().to_owned();
    idle.remove().await;
    let gone = wait_for(Duration::from_secs(10), || {
        let key = key.clone();
        let mut conn = env.conn.clone();
        async move { (!conn.exists::<_, bool>(&key).await.unwrap()).then_some(()) }
    })
    .await;
    assert!(gone.is_some(), "stats key of removed {name} still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_prints_metrics_of_every_container() {
    let docker = docker().await;
    let c = ContainerSpec::shell("while :; do :; done").start(&docker).await;
    c.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let p = Process::builder("hemostat-collector").arg("--once").env("RUST_LOG", "warn").spawn();
    let exited = wait_for(Duration::from_secs(30), || async { p.exit_status() }).await;
    assert!(exited.is_some_and(|s| s.success()), "--once failed:\n{}", p.log_tail(20));
    let log = p.log();
    let json = log.lines().find(|l| l.starts_with('{')).expect("no JSON printed");
    let snap: Value = serde_json::from_str(json).unwrap();
    let mine = snap["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == c.name())
        .expect("container missing from the snapshot")
        .clone();
    println!("{mine}");
    assert!(mine["cpu_pct"].as_f64().unwrap() > 10.0, "{mine}");
    assert!(mine["memory_usage"].as_u64().unwrap() > 0, "{mine}");
    assert!(mine["memory_pct"].is_f64(), "{mine}");
    assert!(mine["pids"].as_u64().unwrap() >= 1, "{mine}");
}
