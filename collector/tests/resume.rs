//! A collector that was away (stopped, crashed, `kill -9`) reports what
//! happened meanwhile once it is back, once: it resumes from the cursor in
//! its state folder (replay of the engine's events, then reconciliation
//! from state), by the same rules as live events.
//!
//! Needs DOCKER_HOST (the shared private engine), HEMOSTAT_TEST_IMAGE and a
//! redis-server; run through scripts/test.sh.

use std::time::{Duration, Instant};

use bollard::{
    Docker,
    models::{ContainerStateStatusEnum, ContainerUpdateBody, RestartPolicy, RestartPolicyNameEnum},
    query_parameters::EventsOptionsBuilder,
};
use futures::StreamExt;
use hemostat_e2e::{
    ContainerSpec, Process, RedisServer, TestContainer, container::TEST_LABEL, current_test_name, docker, state_dir,
    stream_events, strip_ansi, test_host, wait_for,
};
use hemostat_protocol::{EventKind, connection::Connection, event::HealthAlert};

/// Exits 1 on SIGUSR1: a crash on demand.
const CRASHER: &str = "trap 'exit 1' USR1; while :; do sleep 0.2; done";

/// The collector of `host` (its state folder is the test's and the host's,
/// so a collector started again under the same host resumes).
fn spawn(redis: &RedisServer, host: &str, envs: &[(&str, &str)]) -> Process {
    let b = hemostat_e2e::collector(&redis.url(), host)
        .env("HEMOSTAT_STATS_INTERVAL", "0")
        .env("HEMOSTAT_HEARTBEAT_INTERVAL", "1s");
    envs.iter().fold(b, |b, (k, v)| b.env(k, v)).spawn()
}

/// Starts the collector and waits until it is ready and has written its
/// cursor (a first start writes one at once).
async fn start(redis: &RedisServer, host: &str, envs: &[(&str, &str)]) -> Process {
    let collector = spawn(redis, host, envs);
    collector.wait_for_line("collector ready", Duration::from_secs(60)).await;
    let cursor = state_dir(host).join("cursor.json");
    let written = wait_for(Duration::from_secs(10), || std::future::ready(cursor.exists().then_some(()))).await;
    assert!(written.is_some(), "no {} after start; log:\n{}", cursor.display(), collector.log_tail(30));
    collector
}

async fn alerts_for(conn: &Connection, container: &str) -> Vec<(u64, HealthAlert)> {
    stream_events::<HealthAlert>(&mut conn.clone(), EventKind::HealthAlert)
        .await
        .into_iter()
        .filter(|(_, a)| a.container == container)
        .collect()
}

/// Waits for the first alert of `container`; its arrival time (ms since
/// the epoch, the stream entry's).
async fn first_alert(conn: &Connection, container: &str, timeout: Duration, log: &Process) -> (u64, HealthAlert) {
    let found = wait_for(timeout, || async { alerts_for(conn, container).await.into_iter().next() }).await;
    found.unwrap_or_else(|| panic!("no health_alert for {container}; collector log:\n{}", log.log_tail(60)))
}

async fn crasher(docker: &Docker) -> TestContainer {
    let c = ContainerSpec::shell(CRASHER).start(docker).await;
    c.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    // Let the shell install its trap before signalling.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c
}

/// Crashes `c` (exit 1) and waits until Docker has it exited.
async fn crash(c: &TestContainer) {
    c.kill("USR1").await;
    let state = c.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
    assert_eq!(state.exit_code, Some(1));
}

/// Kill events in the burst of the restart test.
const BURST: usize = 200;

/// The number after `name=` in a log line.
fn field(line: &str, name: &str) -> Option<u64> {
    let line = strip_ansi(line);
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

/// Kills the collector the hard way, once its cursor had time to follow
/// what it handled (it is written at most every 200 ms).
async fn kill_9(collector: &Process) {
    tokio::time::sleep(Duration::from_millis(600)).await;
    collector.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_state_folder_stops_the_collector_with_the_setting_named() {
    let redis = RedisServer::start().await;
    // No folder can be made under /proc, root or not.
    let collector =
        spawn(&redis, &test_host(), &[("HEMOSTAT_COLLECTOR_STATE_DIR", "/proc/hemostat-no-such-folder/collector")]);
    let status = collector.wait_exit(Duration::from_secs(30)).await;
    let log = collector.log();
    assert!(status.is_some_and(|s| !s.success()), "exit: {status:?}; log:\n{log}");
    assert!(log.contains("HEMOSTAT_COLLECTOR_STATE_DIR") && log.contains("/proc/hemostat-no-such-folder"), "{log}");
    assert!(!log.contains("collector ready"), "{log}");
}

/// (d) A crash while the collector was killed (-9) is alerted when it is
/// back, once; stopping it (SIGTERM) and killing it again afterwards brings
/// no second alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_away_is_alerted_once_and_restarts_do_not_repeat_it() {
    let redis = RedisServer::start().await;
    let conn = redis.connection().await;
    let host = test_host();
    let docker = docker().await;
    let collector = start(&redis, &host, &[]).await;
    let c = crasher(&docker).await;

    kill_9(&collector).await;
    crash(&c).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(alerts_for(&conn, c.name()).await.is_empty(), "alerted with no collector running");

    let started_ms = now_ms();
    let started = Instant::now();
    let collector = spawn(&redis, &host, &[]);
    let (arrived_ms, alert) = first_alert(&conn, c.name(), Duration::from_secs(30), &collector).await;
    let to_alert_ms = arrived_ms.saturating_sub(started_ms);
    let caught_up = collector.wait_for_line("caught up with Docker", Duration::from_secs(10)).await;
    println!(
        "resume after kill -9: crash while away alerted {to_alert_ms} ms after the collector started \
         (spawn to XADD; {} ms to seeing it here); collector: {}",
        started.elapsed().as_millis(),
        strip_ansi(&caught_up).trim()
    );
    assert_eq!((alert.exit_code, alert.container_id.as_deref()), (Some(1), Some(c.id())));
    assert!(collector.log().contains("resuming from the cursor"), "{}", collector.log_tail(40));
    assert!(to_alert_ms < 10_000, "took {to_alert_ms} ms");

    // A burst of events (another test's container, out of scope: each
    // signal through the API is a `kill` event the watcher handles) is not
    // a write per event. A graceful stop writes the cursor once more and
    // logs what the writes cost.
    let noise = ContainerSpec::shell("trap ':' USR2; while :; do sleep 0.2; done")
        .label(TEST_LABEL, format!("{}-noise", current_test_name()))
        .start(&docker)
        .await;
    noise.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let burst = Instant::now();
    for _ in 0..BURST {
        noise.kill("USR2").await;
    }
    let burst_ms = burst.elapsed().as_millis();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = collector.stop(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "SIGTERM exit: {status:?}");
    let saved = collector.log().lines().find(|l| l.contains("cursor saved")).map(str::to_owned);
    let Some(saved) = saved else { panic!("no cursor line at a graceful stop:\n{}", collector.log_tail(20)) };
    let writes: u64 = field(&saved, "writes").unwrap_or(u64::MAX);
    let lived_ms = started.elapsed().as_millis() as u64;
    println!(
        "graceful stop after {lived_ms} ms, {BURST} kill events in {burst_ms} ms among them: {}",
        strip_ansi(&saved).trim()
    );
    // At most one write per 200 ms, and one at the stop.
    assert!(writes <= lived_ms / 200 + 2, "{writes} cursor writes in {lived_ms} ms");

    let again = start(&redis, &host, &[]).await;
    again.wait_for_line("caught up with Docker", Duration::from_secs(20)).await;
    kill_9(&again).await;
    let third = start(&redis, &host, &[]).await;
    third.wait_for_line("caught up with Docker", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let all = alerts_for(&conn, c.name()).await;
    assert_eq!(all.len(), 1, "alerted {} times across three restarts; last log:\n{}", all.len(), third.log_tail(40));
    assert!(third.is_running());
}

/// A crash alerted live just before the collector is killed: its `die` is
/// the last event handled, inside the window a restart replays, and is not
/// alerted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_alerted_just_before_a_kill_is_not_alerted_again() {
    let redis = RedisServer::start().await;
    let conn = redis.connection().await;
    let host = test_host();
    let docker = docker().await;
    let collector = start(&redis, &host, &[]).await;
    let c = crasher(&docker).await;
    crash(&c).await;
    first_alert(&conn, c.name(), Duration::from_secs(10), &collector).await;
    kill_9(&collector).await;

    let collector = spawn(&redis, &host, &[]);
    let caught_up = collector.wait_for_line("caught up with Docker", Duration::from_secs(60)).await;
    println!("restart right after a live alert: {}", strip_ansi(&caught_up).trim());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = alerts_for(&conn, c.name()).await;
    assert_eq!(all.len(), 1, "alerted {} times; log:\n{}", all.len(), collector.log_tail(40));
}

/// (b) Away long enough for other containers' events to overrun the
/// engine's buffer (256 events): the crash's `die` is no longer there to
/// replay, so it must come from state. The events are updates, which the
/// collector does not follow, so its place stays before the
/// crash: started again, it must still not report the crash twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_whose_event_the_engine_no_longer_holds_is_found_in_state() {
    let redis = RedisServer::start().await;
    let conn = redis.connection().await;
    let host = test_host();
    let docker = docker().await;
    let collector = start(&redis, &host, &[]).await;
    let c = crasher(&docker).await;
    // Out of the collector's scope: its events only fill the buffer.
    let noise = ContainerSpec::shell("while :; do sleep 0.2; done")
        .label(TEST_LABEL, format!("{}-noise", current_test_name()))
        .start(&docker)
        .await;
    noise.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;

    kill_9(&collector).await;
    let crashed_at = chrono::Utc::now().timestamp() - 1;
    crash(&c).await;
    let noise_started = Instant::now();
    // `docker update`: an `update` event each, which the collector does
    // not follow.
    let update = ContainerUpdateBody {
        restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
        ..Default::default()
    };
    for _ in 0..300 {
        docker.update_container(noise.id(), update.clone()).await.expect("updating the noise container");
    }
    let noise_ms = noise_started.elapsed().as_millis();
    // The engine no longer holds the crash's die.
    let replay = EventsOptionsBuilder::new()
        .since(&crashed_at.to_string())
        .until(&chrono::Utc::now().timestamp().to_string())
        .filters(&std::collections::HashMap::from([("container", vec![c.id()])]))
        .build();
    let held: Vec<String> =
        docker.events(Some(replay)).filter_map(|e| async move { e.ok()?.action }).collect::<Vec<_>>().await;
    assert!(!held.iter().any(|a| a == "die"), "the engine still holds the die: {held:?}");

    let started_ms = now_ms();
    let collector = spawn(&redis, &host, &[]);
    let (arrived_ms, alert) = first_alert(&conn, c.name(), Duration::from_secs(30), &collector).await;
    let caught_up = collector.wait_for_line("caught up with Docker", Duration::from_secs(10)).await;
    println!(
        "resume after the engine's buffer was overrun (300 update events in {noise_ms} ms): crash alerted \
         from state {} ms after the collector started; collector: {}",
        arrived_ms.saturating_sub(started_ms),
        strip_ansi(&caught_up).trim()
    );
    assert_eq!(alert.exit_code, Some(1));
    let log = collector.log();
    assert!(
        log.lines().any(|l| l.contains("exit found in state") && l.contains(c.name())),
        "not from state:\n{}",
        collector.log_tail(40)
    );

    // Killed and started again: the exit is still after its place, and
    // still no event covers it; it was reported, which it remembers.
    kill_9(&collector).await;
    let again = spawn(&redis, &host, &[]);
    again.wait_for_line("caught up with Docker", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = alerts_for(&conn, c.name()).await;
    assert_eq!(all.len(), 1, "alerted {} times; log:\n{}", all.len(), again.log_tail(40));
    assert!(alerts_for(&conn, noise.name()).await.is_empty());
}

/// (c) An operator's `docker stop` while the collector was away is not a
/// crash, even when the process exits 1 on SIGTERM (only the replayed
/// `kill` event tells it from a crash), nor when the stop began before the
/// collector went away and ended after (the kill it saw is kept in its
/// state). A real crash meanwhile still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_stop_while_away_is_not_alerted() {
    let redis = RedisServer::start().await;
    let conn = redis.connection().await;
    let host = test_host();
    let docker = docker().await;
    let collector = start(&redis, &host, &[]).await;
    let term_exits_1 = ContainerSpec::shell("trap 'exit 1' TERM; while :; do sleep 0.2; done").start(&docker).await;
    let ignores_term = ContainerSpec::shell("while :; do sleep 0.2; done").stop_timeout(1).start(&docker).await;
    // Exits 1 three seconds after SIGTERM: a slow shutdown.
    let slow = ContainerSpec::shell("trap 'sleep 3; exit 1' TERM; while :; do sleep 0.2; done").start(&docker).await;
    let c = crasher(&docker).await;
    for s in [&term_exits_1, &ignores_term, &slow] {
        s.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    }

    // The slow stop begins while the collector watches, and ends after it
    // was killed.
    let slow_stop = {
        let docker = docker.clone();
        let id = slow.id().to_owned();
        tokio::spawn(async move {
            let options = bollard::query_parameters::StopContainerOptionsBuilder::default().t(10).build();
            docker.stop_container(&id, Some(options)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill_9(&collector).await;
    term_exits_1.stop(10).await;
    ignores_term.stop(1).await;
    crash(&c).await;
    slow_stop.await.expect("stop task").expect("docker stop");
    assert_eq!(term_exits_1.state().await.exit_code, Some(1));
    assert_eq!(slow.state().await.exit_code, Some(1));
    assert_eq!(ignores_term.state().await.exit_code, Some(137));

    let collector = spawn(&redis, &host, &[]);
    first_alert(&conn, c.name(), Duration::from_secs(30), &collector).await;
    collector.wait_for_line("caught up with Docker", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in [&term_exits_1, &ignores_term, &slow] {
        let alerts = alerts_for(&conn, s.name()).await;
        assert!(alerts.is_empty(), "{} stopped by an operator was alerted:\n{}", s.name(), collector.log_tail(40));
    }
    let log = collector.log();
    let stop = |name: &str| log.lines().any(|l| l.contains(name) && l.contains("requested stop (signal 15)"));
    assert!(stop(term_exits_1.name()), "the replayed kill should make it a requested stop:\n{log}");
    assert!(stop(slow.name()), "the kill seen before the collector went away should be kept:\n{log}");
    assert_eq!(alerts_for(&conn, c.name()).await.len(), 1);
}

/// Away for longer than HEMOSTAT_RESUME_MAX_AGE: only the exits within it
/// are reported, and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_absence_catches_up_on_the_last_max_age_only() {
    let redis = RedisServer::start().await;
    let conn = redis.connection().await;
    let host = test_host();
    let docker = docker().await;
    // Wide enough for a slow start on a loaded machine to keep the recent
    // crash within it.
    let max_age = [("HEMOSTAT_RESUME_MAX_AGE", "6s")];
    let collector = start(&redis, &host, &max_age).await;
    let old = crasher(&docker).await;
    let recent = crasher(&docker).await;

    kill_9(&collector).await;
    crash(&old).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    crash(&recent).await;

    let collector = spawn(&redis, &host, &max_age);
    first_alert(&conn, recent.name(), Duration::from_secs(30), &collector).await;
    collector.wait_for_line("caught up with Docker", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(alerts_for(&conn, old.name()).await.is_empty(), "an exit older than the bound was reported");
    assert!(collector.log().contains("away longer than HEMOSTAT_RESUME_MAX_AGE"), "{}", collector.log_tail(30));
}
