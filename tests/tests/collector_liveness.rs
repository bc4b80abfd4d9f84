//! A collector whose Docker event stream hangs is not blind for long: the
//! stream's connection is frozen (open, silent: a half-open connection
//! bollard's timeouts never notice), a container crashes behind the freeze,
//! and the idle watchdog reopens the stream from the cursor, replaying the
//! crash, within the idle time. Without the watchdog the same freeze loses
//! the crash, which shows the freeze is real.
//!
//! The collector reaches the test engine through a [`Freezer`] (tcp:// to
//! the engine's unix socket) that freezes only the live event stream (an
//! `/events` request without `until`), as a hung stream does while the
//! engine's other calls still answer.

use std::time::{Duration, Instant};

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{
    ContainerSpec, Freezer, Process, RedisServer, docker, start_collector, stream_events, test_host, wait_for,
};
use hemostat_protocol::{EventKind, connection::Connection, event::HealthAlert};

/// The watchdog's idle time in these tests (the default is 60 s).
const IDLE: Duration = Duration::from_secs(3);

/// The live event stream's requests: `GET /v1.xx/events?since=..&filters=..`;
/// a catch-up's replay carries `until` and is left alone.
fn live_events(request: &str) -> bool {
    request.contains("/events?") && !request.contains("until=")
}

struct Setup {
    _redis_guard: RedisServer,
    redis: Connection,
    freezer: Freezer,
    collector: Process,
}

async fn setup(idle: &str) -> Setup {
    let redis = RedisServer::start().await;
    let docker_host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST: run through scripts/test.sh");
    let socket = docker_host.strip_prefix("unix://").expect("the test engine listens on a unix socket");
    let freezer = Freezer::start_unix(socket).await;
    let collector = start_collector(&redis.url(), &test_host(), |c| {
        c.env("DOCKER_HOST", format!("tcp://127.0.0.1:{}", freezer.port())).env("HEMOSTAT_EVENTS_IDLE", idle)
    })
    .await;
    let conn = redis.connection().await;
    Setup { _redis_guard: redis, redis: conn, freezer, collector }
}

/// Starts a container that exits 1 on SIGUSR1, once the collector follows
/// the live stream (its start event delivered), then freezes that stream.
async fn crash_behind_a_frozen_stream(s: &Setup) -> (hemostat_e2e::TestContainer, Instant) {
    let docker = docker().await;
    let container = ContainerSpec::shell(r#"trap "exit 1" USR1; while :; do sleep 0.2; done"#)
        .restart_policy(RestartPolicyNameEnum::NO)
        .start(&docker)
        .await;
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    // The start went through the live stream (the registry has it), so the
    // stream is up and the watchdog's clock was just reset.
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.freezer.freeze_requests(live_events);
    container.kill("USR1").await;
    let crashed = container.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
    assert_eq!(crashed.exit_code, Some(1));
    (container, Instant::now())
}

async fn alerts_for(conn: &Connection, name: &str) -> Vec<HealthAlert> {
    stream_events::<HealthAlert>(&mut conn.clone(), EventKind::HealthAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.container == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_event_stream_is_reopened_and_the_crash_behind_it_alerted() {
    let s = setup(&format!("{}s", IDLE.as_secs())).await;
    let (container, crashed) = crash_behind_a_frozen_stream(&s).await;

    // Idle time, the ping and the replay, the alert's evidence and the
    // outbox: a few seconds past the idle time on a loaded machine.
    let deadline = IDLE + Duration::from_secs(6);
    let alert = wait_for(deadline, || async { alerts_for(&s.redis, container.name()).await.into_iter().next() }).await;
    let Some(alert) = alert else {
        panic!("no alert within {deadline:?} of the crash; collector:\n{}", s.collector.log_tail(40));
    };
    let waited = crashed.elapsed();
    assert_eq!(alert.exit_code, Some(1));
    // Through the watchdog's reopening, which says so once its catch-up
    // is over (the alert may go out before).
    s.collector.wait_for_line("Docker event stream had stalled", Duration::from_secs(10)).await;
    println!(
        "event stream frozen, container crashed: alert {} ms after the crash (idle watchdog {} s)",
        waited.as_millis(),
        IDLE.as_secs()
    );
    // Once: the replay and the new live stream do not report it again.
    tokio::time::sleep(IDLE + Duration::from_secs(1)).await;
    let all = stream_events::<HealthAlert>(&mut s.redis.clone(), EventKind::HealthAlert).await;
    let ours: Vec<_> = all.iter().filter(|(_, a)| a.container == container.name()).collect();
    assert_eq!(ours.len(), 1, "alerted {} times: {ours:?}\ncollector:\n{}", ours.len(), s.collector.log_tail(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_watchdog_a_hung_event_stream_is_blind() {
    let s = setup("0").await;
    let (container, _) = crash_behind_a_frozen_stream(&s).await;
    tokio::time::sleep(IDLE + Duration::from_secs(6)).await;
    let alerts = alerts_for(&s.redis, container.name()).await;
    assert!(
        alerts.is_empty(),
        "the frozen stream still delivered the crash: the freeze did not hold; collector:\n{}",
        s.collector.log_tail(40)
    );
}
