//! The outbox on disk, with the real collector, Docker and Redis (a single
//! node, or a cluster under HEMOSTAT_TEST_REDIS=cluster): an alert raised
//! while Redis is unreachable survives a `kill -9` of the collector, and a
//! record Redis refuses for good no longer blocks the ones after it.
//!
//! Needs DOCKER_HOST (the shared private engine) and HEMOSTAT_TEST_IMAGE;
//! run through scripts/test.sh.

use std::time::Duration;

use bollard::{Docker, models::ContainerStateStatusEnum};
use hemostat_e2e::{
    ContainerSpec, Process, RedisServer, TestContainer, docker, redis_server::cluster_mode, state_dir, stream_events,
    strip_ansi, test_host, wait_for,
};
use hemostat_protocol::{
    EventKind,
    connection::Connection,
    event::{HealthAlert, SystemAlert},
};
use redis::AsyncCommands;

fn collector(url: &str, host: &str) -> Process {
    hemostat_e2e::collector(url, host).env("HEMOSTAT_STATS_INTERVAL", "0").spawn()
}

/// A container that exits with `code` on SIGUSR1.
async fn crasher(docker: &Docker, code: u8) -> TestContainer {
    let c = ContainerSpec::shell(&format!("trap 'exit {code}' USR1; while :; do sleep 0.2; done")).start(docker).await;
    c.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    // Let the shell install its trap.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c
}

/// Crashes `c` and waits until the collector has queued its alert.
async fn crash(c: &TestContainer, collector: &Process) {
    c.kill("USR1").await;
    c.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
    let queued = wait_for(Duration::from_secs(20), || {
        let log = collector.log();
        std::future::ready(log.lines().any(|l| l.contains("health alert") && l.contains(c.name())).then_some(()))
    })
    .await;
    assert!(queued.is_some(), "no alert for {}; log:\n{}", c.name(), collector.log_tail(40));
    // The append follows the log line at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// The containers of `names` in the order their alerts are in the stream,
/// once all are there (each as many times as it is there).
async fn alerts_in_order(conn: &Connection, names: &[&str], log: &Process) -> Vec<String> {
    let found = wait_for(Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move {
            let all: Vec<(u64, HealthAlert)> = stream_events(&mut conn, EventKind::HealthAlert).await;
            let ours: Vec<String> =
                all.into_iter().map(|(_, a)| a.container).filter(|c| names.contains(&c.as_str())).collect();
            names.iter().all(|n| ours.iter().any(|c| c == n)).then_some(ours)
        }
    })
    .await;
    found.unwrap_or_else(|| panic!("alerts missing for some of {names:?}; collector log:\n{}", log.log_tail(60)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_raised_while_redis_is_down_survives_a_kill_9_of_the_collector() {
    // Redis unreachable: a redis-server started, then stopped; its port is dead.
    let mut redis = RedisServer::start_node().await;
    let dead_url = redis.url();
    redis.stop();
    let host = test_host();
    let first = collector(&dead_url, &host);
    first.wait_for_line("collector ready", Duration::from_secs(60)).await;
    let docker = docker().await;
    let (a, b, c) = (crasher(&docker, 1).await, crasher(&docker, 2).await, crasher(&docker, 3).await);

    crash(&a, &first).await;
    crash(&b, &first).await;
    first.wait_for_line("holding events until Redis is back", Duration::from_secs(10)).await;
    // No goodbye: the process dies with two alerts on disk, undelivered.
    first.kill();

    // Both come back: Redis (the same node on the same port, or the
    // cluster of the run) and the collector (same host, same state folder).
    let redis = if cluster_mode() {
        RedisServer::start().await
    } else {
        redis.restart().await;
        redis
    };
    let conn = redis.connection().await;
    let second = collector(&redis.url(), &host);
    second.wait_for_line("collector ready", Duration::from_secs(60)).await;
    crash(&c, &second).await;

    let order = alerts_in_order(&conn, &[a.name(), b.name(), c.name()], &second).await;
    // Settle: a duplicate would show now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = alerts_in_order(&conn, &[a.name(), b.name(), c.name()], &second).await;
    println!(
        "kill -9 with 2 alerts undelivered (Redis unreachable): after the restart the stream holds {settled:?}; \
         state folder {}",
        state_dir(&host).display()
    );
    assert_eq!(order, [a.name(), b.name(), c.name()], "out of order");
    assert_eq!(settled, order, "an alert was delivered twice");
    let replayed = strip_ansi(&second.log());
    assert!(
        replayed.contains("events a previous run did not deliver are sent first, in order pending=2"),
        "the restart did not replay the outbox; log:\n{}",
        second.log_tail(40)
    );
    assert!(second.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_redis_refuses_for_good_is_dead_lettered_and_later_ones_arrive() {
    let redis = RedisServer::start().await;
    let mut conn = redis.connection().await;
    let host = test_host();
    let collector = collector(&redis.url(), &host);
    collector.wait_for_line("collector ready", Duration::from_secs(60)).await;
    let docker = docker().await;
    let (refused, after) = (crasher(&docker, 1).await, crasher(&docker, 2).await);

    // The alerts' stream is something else: every XADD to it is WRONGTYPE.
    let stream = EventKind::HealthAlert.stream();
    let _: () = conn.set(&stream, "not a stream").await.unwrap();
    refused.kill("USR1").await;
    let line = collector.wait_for_line("dead-lettered", Duration::from_secs(30)).await;
    println!("collector: {}", line.trim());
    assert!(line.contains("WRONGTYPE"), "{line}");

    // Repaired: the next alert goes through, the refused one is not retried.
    let _: () = conn.del(&stream).await.unwrap();
    crash(&after, &collector).await;
    let order = alerts_in_order(&conn, &[after.name()], &collector).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all: Vec<(u64, HealthAlert)> = stream_events(&mut conn, EventKind::HealthAlert).await;
    assert!(all.iter().all(|(_, a)| a.container != refused.name()), "the refused alert reached Redis after all");
    assert_eq!(order, [after.name()]);

    // The refused one is in the dead-letter file, with the reason.
    let file = state_dir(&host).join("outbox/dead-letters.jsonl");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let letters: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(letters.len(), 1, "{text}");
    assert_eq!(letters[0]["envelope"]["data"]["container"], refused.name());
    assert_eq!(letters[0]["kind"], "health_alert");
    assert!(letters[0]["reason"].as_str().unwrap_or("").contains("WRONGTYPE"), "{text}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // And people are told, naming the host, the container and the file.
    let reports: Vec<SystemAlert> = stream_events::<SystemAlert>(&mut conn, EventKind::SystemAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.kind == SystemAlert::OUTBOX_DEAD_LETTERED)
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!((reports[0].host.as_str(), reports[0].container.as_deref()), (host.as_str(), Some(refused.name())));
    assert!(
        reports[0].message.contains("WRONGTYPE") && reports[0].message.contains("dead-letters.jsonl"),
        "{reports:?}"
    );

    // The cause is fixed (the stream is a stream again): replayed while the
    // collector runs, the alert is in its stream once and leaves the file;
    // a second replay finds nothing to do.
    let replay =
        |name: &str| hemostat_e2e::collector(&redis.url(), &host).name(name).args(["dead-letters", "replay"]).spawn();
    let first = replay("replay-1");
    let status = first.wait_exit(Duration::from_secs(60)).await;
    let out = strip_ansi(&first.log());
    println!("replay: {out}");
    assert!(status.is_some_and(|s| s.success()), "{out}");
    assert!(out.contains("replayed 1, refused again 0, left 0"), "{out}");
    let all: Vec<(u64, HealthAlert)> = stream_events(&mut conn, EventKind::HealthAlert).await;
    assert_eq!(all.iter().filter(|(_, a)| a.container == refused.name()).count(), 1, "replayed once");
    let left = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(left.trim().is_empty(), "the file keeps no replayed record: {left}");
    let second = replay("replay-2");
    second.wait_exit(Duration::from_secs(60)).await;
    assert!(strip_ansi(&second.log()).contains("replayed 0, refused again 0, left 0"), "{}", second.log());
    let all: Vec<(u64, HealthAlert)> = stream_events(&mut conn, EventKind::HealthAlert).await;
    assert_eq!(all.iter().filter(|(_, a)| a.container == refused.name()).count(), 1, "still once");
    assert!(collector.is_running());
}
