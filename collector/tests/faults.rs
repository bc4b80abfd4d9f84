//! The collector through faults: Redis restarting under it, dockerd
//! restarting under it. Nothing a container does meanwhile may be lost.
//!
//! Needs DOCKER_HOST (the shared private engine), HEMOSTAT_TEST_IMAGE and
//! root (the dockerd test starts its own daemon); run through
//! scripts/test.sh.

use std::time::{Duration, Instant};

use bollard::{Docker, models::ContainerStateStatusEnum};
use hemostat_e2e::{
    ContainerSpec, PrivateDockerd, Process, RedisServer, TestContainer, docker, stream_events, test_host, wait_for,
};
use hemostat_protocol::connection::Connection;
use hemostat_protocol::{ContainerRef, EventKind, event::HealthAlert, keys};
use redis::AsyncCommands;

fn collector(redis: &RedisServer, host: &str, docker_host: Option<&str>) -> Process {
    let mut builder = hemostat_e2e::collector(&redis.url(), host)
        // Quick heartbeats, so its recovery is seen within the test.
        .env("HEMOSTAT_HEARTBEAT_INTERVAL", "1s")
        .env("HEMOSTAT_STATS_INTERVAL", "0");
    if let Some(docker_host) = docker_host {
        builder = builder.env("DOCKER_HOST", docker_host);
    }
    builder.spawn()
}

/// Every health alert in the stream, in stream order, with its arrival
/// time (ms, from the entry id).
async fn alerts(conn: &mut Connection) -> Vec<(u64, HealthAlert)> {
    stream_events(conn, EventKind::HealthAlert).await
}

/// Waits until every container in `names` has an alert; returns all alerts.
async fn wait_alerts(conn: &Connection, names: &[&str], timeout: Duration, log: &Process) -> Vec<(u64, HealthAlert)> {
    let found = wait_for(timeout, || {
        let mut conn = conn.clone();
        async move {
            let all = alerts(&mut conn).await;
            names.iter().all(|n| all.iter().any(|(_, a)| a.container == *n)).then_some(all)
        }
    })
    .await;
    found.unwrap_or_else(|| panic!("alerts missing for some of {names:?}; collector log:\n{}", log.log_tail(60)))
}

/// A container that exits with `code` on SIGUSR1.
async fn crasher(docker: &Docker, code: u8) -> TestContainer {
    let c = ContainerSpec::shell(&format!("trap 'exit {code}' USR1; while :; do sleep 0.2; done")).start(docker).await;
    c.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    c
}

fn ms_since(t: Instant) -> u128 {
    t.elapsed().as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_while_redis_is_down_are_delivered_in_order_when_it_is_back() {
    let mut redis = RedisServer::start_node().await;
    let host = test_host();
    let collector = collector(&redis, &host, None);
    collector.wait_for_line("collector ready", Duration::from_secs(60)).await;
    let docker = docker().await;

    let mut crashers = Vec::new();
    for code in 1..=5 {
        crashers.push(crasher(&docker, code).await);
    }
    // Let the shells install their traps.
    tokio::time::sleep(Duration::from_millis(300)).await;

    redis.stop();
    let down = Instant::now();
    for c in &crashers {
        c.kill("USR1").await;
        c.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
        // Each alert enters the outbox once its evidence is gathered, which
        // with Redis down includes the silences' read timeout (500 ms):
        // crashes closer than that may queue in the order their evidence
        // finished. The outbox's order is what is tested, so each crash's
        // alert is queued before the next crash.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Long enough for several failed attempts (1 s, 2 s, 4 s backoff).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outage_ms = ms_since(down);
    redis.restart().await;
    let back = Instant::now();
    let back_ms = chrono::Utc::now().timestamp_millis() as u64;
    let conn = redis.connection().await;

    let names: Vec<&str> = crashers.iter().map(|c| c.name()).collect();
    let all = wait_alerts(&conn, &names, Duration::from_secs(30), &collector).await;
    let delivered_ms = ms_since(back);
    let ours: Vec<&(u64, HealthAlert)> = all.iter().filter(|(_, a)| names.contains(&a.container.as_str())).collect();
    let order: Vec<&str> = ours.iter().map(|(_, a)| a.container.as_str()).collect();
    let codes: Vec<i64> = ours.iter().filter_map(|(_, a)| a.exit_code).collect();
    let first_lag = ours.first().map(|(ms, _)| ms.saturating_sub(back_ms)).unwrap_or_default();
    println!(
        "redis outage {outage_ms} ms with 5 crashes: all 5 alerts delivered {delivered_ms} ms after Redis was back \
         (first XADD {first_lag} ms after), order {codes:?}, {} alerts in stream",
        all.len()
    );
    assert_eq!(order, names, "alerts out of order or duplicated");
    assert_eq!(codes, [1, 2, 3, 4, 5]);

    // The heartbeat and the registry (empty after the restart) come back.
    let conn2 = conn.clone();
    let member = ContainerRef::new(&host, crashers[0].name()).key();
    let heartbeat_key = format!("hemostat:heartbeat:{host}");
    let recovered = wait_for(Duration::from_secs(15), || {
        let mut conn = conn2.clone();
        let member = member.clone();
        let heartbeat_key = heartbeat_key.clone();
        async move {
            let hb: Option<String> = conn.get(&heartbeat_key).await.ok()?;
            let listed: bool = conn.sismember(keys::CONTAINERS, &member).await.ok()?;
            (hb.is_some() && listed).then_some(())
        }
    })
    .await;
    println!("heartbeat and registry back {} ms after Redis", ms_since(back));
    assert!(recovered.is_some(), "heartbeat or registry not restored; log:\n{}", collector.log_tail(40));

    // And it keeps working live.
    let after = crasher(&docker, 7).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    after.kill("USR1").await;
    wait_alerts(&conn2, &[after.name()], Duration::from_secs(10), &collector).await;
    let total: usize =
        alerts(&mut conn2.clone()).await.iter().filter(|(_, a)| names.contains(&a.container.as_str())).count();
    assert_eq!(total, 5, "duplicates after recovery");
    assert!(collector.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_exit_is_lost_across_dockerd_restarts() {
    let mut dockerd = PrivateDockerd::start().await;
    let docker = dockerd.docker().await;
    let redis = RedisServer::start().await;
    let host = test_host();
    let collector = collector(&redis, &host, Some(&dockerd.host()));
    collector.wait_for_line("collector ready", Duration::from_secs(60)).await;
    let conn = redis.connection().await;

    // 1. A crash before the restart: alerted live.
    let before = crasher(&docker, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    before.kill("USR1").await;
    wait_alerts(&conn, &[before.name()], Duration::from_secs(10), &collector).await;

    // 2. dockerd crashes (SIGKILL): containers live on in their shims. One
    // exits with 3 while the daemon is down, so no event will ever say so;
    // another, still running, is killed by the new daemon's restore (a
    // daemon restart, not an application crash).
    let while_down = ContainerSpec::shell("sleep 2; exit 3").start(&docker).await;
    let victim = ContainerSpec::shell("while :; do sleep 0.2; done").stop_timeout(1).start(&docker).await;
    victim.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    // The collector is frozen across the restart, so that it is still
    // disconnected when the next container crashes (its reconnect backoff
    // could otherwise win the race).
    collector.signal(libc::SIGSTOP);
    dockerd.crash();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    dockerd.start_again().await;
    let down_ms = ms_since(down);

    // 3. A crash right after the restart, before the collector is back.
    let docker = dockerd.docker().await;
    let after = ContainerSpec::shell("sleep 0.2; exit 4").start(&docker).await;
    after.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
    collector.signal(libc::SIGCONT);
    let back = Instant::now();

    let all = wait_alerts(&conn, &[while_down.name(), after.name()], Duration::from_secs(60), &collector).await;
    let reconnect = collector.wait_for_line("caught up with Docker", Duration::from_secs(30)).await;
    println!(
        "dockerd down {down_ms} ms (SIGKILL), collector frozen meanwhile: exit-while-down (from state) and \
         crash-after-restart (from the new daemon's replay) alerted {} ms after the collector resumed; collector: {}",
        ms_since(back),
        reconnect.trim()
    );
    let log = collector.log();
    assert!(
        log.contains("exit found in state after reconnecting (no event for it)") && log.contains(while_down.name()),
        "the exit while dockerd was down should come from state"
    );
    let code = |name: &str| all.iter().find(|(_, a)| a.container == name).and_then(|(_, a)| a.exit_code);
    assert_eq!(code(while_down.name()), Some(3));
    assert_eq!(code(after.name()), Some(4));

    // 4. A graceful restart (SIGTERM: dockerd stops its containers), then
    // a crash once it is back.
    let victim2 = ContainerSpec::shell("while :; do sleep 0.2; done").stop_timeout(1).start(&docker).await;
    victim2.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let t = Instant::now();
    dockerd.restart().await;
    let restart_ms = ms_since(t);
    let docker = dockerd.docker().await;
    let after2 = crasher(&docker, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    after2.kill("USR1").await;
    let t = Instant::now();
    wait_alerts(&conn, &[after2.name()], Duration::from_secs(60), &collector).await;
    println!("graceful dockerd restart took {restart_ms} ms; crash after it alerted in {} ms", ms_since(t));

    // Settle, then check the whole record: each crash once, no alert for
    // what the daemon itself killed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut conn = conn.clone();
    let all = alerts(&mut conn).await;
    let count = |name: &str| all.iter().filter(|(_, a)| a.container == name).count();
    let summary: Vec<(String, i64)> =
        all.iter().map(|(_, a)| (a.container.clone(), a.exit_code.unwrap_or(-1))).collect();
    println!("alerts: {summary:?}");
    for c in [&before, &while_down, &after, &after2] {
        assert_eq!(
            count(c.name()),
            1,
            "{} alerted {} times; log:\n{}",
            c.name(),
            count(c.name()),
            collector.log_tail(60)
        );
    }
    assert_eq!(count(victim.name()), 0, "daemon restore kill reported as a crash");
    assert_eq!(count(victim2.name()), 0, "daemon shutdown stop reported as a crash");
    assert!(collector.is_running());
    drop(collector);
}
