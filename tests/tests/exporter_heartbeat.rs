//! A collector that goes silent is reported, once, and so is its return:
//! a real collector (1 s heartbeat, so its key expires three seconds after
//! its last beat) against the private dockerd, the exporter in the
//! emulator, the schedule's EventBridge event delivered through the Invoke
//! API, and scrapes through the function URL.

mod exporter_support;

use std::time::{Duration, Instant};

use exporter_support::*;
use hemostat_e2e::{Process, RedisServer, stream_events, wait_for};
use hemostat_protocol::{EventKind, event::SystemAlert};

fn collector(redis: &RedisServer, host: &str) -> Process {
    hemostat_e2e::collector(&redis.url(), host)
        .env("HEMOSTAT_HEARTBEAT_INTERVAL", "1s")
        // Liveness only: no sampling.
        .env("HEMOSTAT_STATS_INTERVAL", "0")
        .env("RUST_LOG", "info")
        .spawn()
}

async fn alerts(redis: &RedisServer, host: &str) -> Vec<SystemAlert> {
    let mut conn = redis.connection().await;
    stream_events::<SystemAlert>(&mut conn, EventKind::SystemAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.host == host)
        .collect()
}

async fn up(endpoint: &str, host: &str) -> Option<f64> {
    let reply = get(&metrics_url(endpoint)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    sample(&reply.body, &format!("hemostat_collector_up{{host=\"{host}\"}}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_collector_is_reported_once_and_its_return_once() {
    let redis = RedisServer::start().await;
    let (emulator, endpoint) = start_exporter(&redis, &[]).await;
    let host = format!("e2e-hb-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let first = collector(&redis, &host);
    first.wait_for_line("collector ready", Duration::from_secs(20)).await;

    let seen =
        wait_for(Duration::from_secs(10), || async { (up(&endpoint, &host).await == Some(1.0)).then_some(()) }).await;
    assert!(seen.is_some(), "collector never up\n{}", emulator.log_tail(20));
    let summary = invoke(&endpoint, &scheduled_event()).await;
    assert_eq!(
        (summary["collectors"].as_u64(), summary["collectors_missing"].as_u64()),
        (Some(1), Some(0)),
        "{summary}"
    );

    // kill -9: no goodbye, the heartbeat just stops. The schedule runs
    // every minute in the cloud; here it is invoked every 250 ms.
    first.kill();
    let killed = Instant::now();
    let missing = wait_for(Duration::from_secs(15), || {
        let endpoint = endpoint.clone();
        let host = host.clone();
        let redis = &redis;
        async move {
            let summary = invoke(&endpoint, &scheduled_event()).await;
            let alerts = alerts(redis, &host).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            (!alerts.is_empty()).then_some((summary, alerts))
        }
    })
    .await;
    let Some((summary, found)) = missing else { panic!("no collector_missing within 15 s\n{}", emulator.log_tail(30)) };
    let detected = killed.elapsed();
    println!(
        "kill -9 to collector_missing: {} ms (heartbeat 1 s, TTL 3 s, schedule every ~250 ms)",
        detected.as_millis()
    );
    assert!(detected >= Duration::from_secs(2), "reported before three intervals passed: {detected:?}");
    assert_eq!(summary["collectors_missing"], 1, "{summary}");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, "collector_missing");
    assert!(found[0].missing_for_seconds.is_some_and(|s| s >= 2), "{:?}", found[0]);
    assert!(found[0].last_seen.is_some());
    assert_eq!(up(&endpoint, &host).await, Some(0.0));

    // Still missing: more checks (scrapes and the schedule) say nothing new.
    for _ in 0..3 {
        invoke(&endpoint, &scheduled_event()).await;
        assert_eq!(up(&endpoint, &host).await, Some(0.0));
    }
    assert_eq!(alerts(&redis, &host).await.len(), 1, "one alert per transition");

    // Back: the next scrape sees it and publishes the recovery, once.
    let second = collector(&redis, &host);
    second.wait_for_line("collector ready", Duration::from_secs(20)).await;
    let back =
        wait_for(Duration::from_secs(10), || async { (up(&endpoint, &host).await == Some(1.0)).then_some(()) }).await;
    assert!(back.is_some(), "collector not back up");
    invoke(&endpoint, &scheduled_event()).await;
    let all = alerts(&redis, &host).await;
    let kinds: Vec<&str> = all.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["collector_missing", "collector_recovered"]);
}
