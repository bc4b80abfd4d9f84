//! The bridge tells what it does, with real processes (redis-server, the
//! emulator running `bridge-test-function`, `hemostat-bridge`): its
//! heartbeat carries each stream's lag, a `bridge_lag` system alert fires
//! when records wait past a threshold, records dead-lettered as stale raise
//! a `stale_dead_lettered` alert, and `/healthz` and `/metrics` say whether
//! every route still reads, turning 503 when Redis goes away.
//!
//! Needs `cargo build --bins -p hemostat-bridge -p hemostat-local`.

mod bridge_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bridge_support::*;
use hemostat_e2e::{Process, RedisServer, http_get, stream_events, wait_for, wait_until};
use hemostat_protocol::{EventKind, event::SystemAlert, keys, liveness::BridgeHeartbeat};
use redis::AsyncCommands;
use serde_json::json;

/// The address the bridge serves `/healthz` and `/metrics` on.
async fn served_at(bridge: &Process) -> String {
    // Printed before "bridge ready", which starting the bridge waited for.
    let log = bridge.log();
    let line = log.lines().find(|l| l.contains("serving /healthz and /metrics")).expect("no serving line").to_owned();
    let at = line.find("127.0.0.1:").unwrap_or_else(|| panic!("no address in {line}"));
    let addr: String = line[at..].chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
    format!("http://{addr}")
}

async fn system_alerts(conn: &mut hemostat_protocol::connection::Connection, kind: &str) -> Vec<SystemAlert> {
    stream_events::<SystemAlert>(conn, EventKind::SystemAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.kind == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_reports_lag_and_stale_records_and_serves_its_health() {
    let env = Env::start(10).await;
    let mut conn = env.conn().await;
    let bridge = env
        .bridge(
            "bridge",
            &[
                "--heartbeat-interval",
                "300ms",
                "--lag-alert",
                "5",
                "--wait-alert",
                "0",
                "--listen",
                "127.0.0.1:0",
                "--max-in-flight",
                "1",
                "--batch-size",
                "1",
                "--max-age-seconds",
                "60",
            ],
        )
        .await;
    let base = served_at(&bridge).await;
    let health = http_get(&format!("{base}/healthz"), &[]).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"), "{}", bridge.log_tail(20));

    // The analyzer takes a second per record, one at a time: records pile up.
    for i in 0..20 {
        publish(&mut conn, ALERTS, &format!("slow{i}"), "sleep", json!({"sleep_ms": 1000})).await;
    }
    let lagging = wait_for(Duration::from_secs(20), || {
        let mut conn = conn.clone();
        async move {
            let name = consumer(&mut conn).await?;
            let text: String = conn.get(keys::bridge_heartbeat(&name)).await.ok()?;
            let beat: BridgeHeartbeat = serde_json::from_str(&text).ok()?;
            beat.routes.iter().find(|r| r.stream == ALERTS && r.lag.unwrap_or(0) >= 5).cloned()
        }
    })
    .await
    .unwrap_or_else(|| panic!("no heartbeat with the lag\n{}", bridge.log_tail(30)));
    println!("heartbeat: {lagging:?}");
    let alerted = wait_for(Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move { system_alerts(&mut conn, SystemAlert::BRIDGE_LAG).await.into_iter().next() }
    })
    .await
    .unwrap_or_else(|| panic!("no bridge_lag alert\n{}", bridge.log_tail(30)));
    assert!(alerted.message.contains(ALERTS), "{alerted:?}");
    // Busy delivering is not stalled.
    assert_eq!(http_get(&format!("{base}/healthz"), &[]).await.status, 200);
    let metrics = http_get(&format!("{base}/metrics"), &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.head.to_ascii_lowercase().contains("text/plain; version=0.0.4"), "{}", metrics.head);
    let lag_line = format!("hemostat_bridge_route_lag{{stream=\"{ALERTS}\",group=\"{ANALYZER_GROUP}\"}}");
    assert!(metrics.body.contains(&lag_line), "{}", metrics.body);
    assert!(metrics.body.contains("hemostat_bridge_healthy 1"), "{}", metrics.body);
    // One alert per episode, whatever the number of beats.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(system_alerts(&mut conn, SystemAlert::BRIDGE_LAG).await.len(), 1);

    // An hour-old record is given up as stale, and people hear of it.
    let hour_ago = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 - 3_600_000;
    let body = envelope(NEEDED, "old", "ok", json!({}));
    let _: String = conn.xadd(NEEDED, format!("{hour_ago}-0"), &[("envelope", body)]).await.unwrap();
    let stale = wait_for(Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move { system_alerts(&mut conn, SystemAlert::STALE_DEAD_LETTERED).await.into_iter().next() }
    })
    .await
    .unwrap_or_else(|| panic!("no stale_dead_lettered alert\n{}", bridge.log_tail(30)));
    assert!(stale.message.starts_with("1 record(s)"), "{stale:?}");
    let metrics = http_get(&format!("{base}/metrics"), &[]).await;
    assert!(metrics.body.contains("hemostat_bridge_stale_total 1"), "{}", metrics.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_503_when_the_routes_stop_reading() {
    // A single node, killed and restarted (a cluster's outage is the failover tests').
    let mut env = Env::start_on(RedisServer::start_node().await, 10).await;
    let bridge = env.bridge("bridge", &["--listen", "127.0.0.1:0", "--heartbeat-interval", "1s"]).await;
    let base = served_at(&bridge).await;
    assert_eq!(http_get(&format!("{base}/healthz"), &[]).await.status, 200);
    env.redis.kill();
    let down = wait_until(Duration::from_secs(30), || {
        let url = format!("{base}/healthz");
        async move {
            let answer = http_get(&url, &[]).await;
            answer.status == 503 && answer.body.contains("has not read")
        }
    })
    .await;
    assert!(down, "healthz never said the routes stopped reading\n{}", bridge.log_tail(20));
    env.redis.restart().await;
    let up = wait_until(Duration::from_secs(30), || {
        let url = format!("{base}/healthz");
        async move { http_get(&url, &[]).await.status == 200 }
    })
    .await;
    assert!(up, "healthz never recovered with Redis\n{}", bridge.log_tail(20));
}

/// The one bridge replica's consumer name, from the replica set.
async fn consumer(conn: &mut hemostat_protocol::connection::Connection) -> Option<String> {
    let names: Vec<String> = conn.zrange(keys::BRIDGES, 0, -1).await.ok()?;
    names.into_iter().next()
}
