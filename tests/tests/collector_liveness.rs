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
//!
//! The collector's `/healthz`, `/metrics` and heartbeat report each task's
//! progress, and name the watcher stalled once the engine goes silent for
//! good (every connection, old and new).

use std::time::{Duration, Instant};

use bollard::models::ContainerStateStatusEnum;
use hemostat_e2e::{
    Freezer, Process, ProcessBuilder, RedisServer, docker, free_port, http_get, start_collector, stream_events,
    test_host, wait_for,
};
use hemostat_protocol::{
    EventKind,
    connection::Connection,
    event::{HealthAlert, SystemAlert},
    liveness::CollectorHeartbeat,
};

/// The watchdog's idle time in these tests (the default is 60 s).
const IDLE: Duration = Duration::from_secs(3);

/// The live event stream's requests: `GET /v1.xx/events?since=..&filters=..`;
/// a catch-up's replay carries `until` and is left alone.
fn live_events(request: &str) -> bool {
    request.contains("/events?") && !request.contains("until=")
}

struct Setup {
    host: String,
    _redis_guard: RedisServer,
    redis: Connection,
    freezer: Freezer,
    collector: Process,
}

async fn setup(idle: &str) -> Setup {
    setup_with(idle, |c| c).await
}

async fn setup_with(idle: &str, configure: impl FnOnce(ProcessBuilder) -> ProcessBuilder) -> Setup {
    let redis = RedisServer::start_node().await;
    let docker_host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST: run through scripts/test.sh");
    let socket = docker_host.strip_prefix("unix://").expect("the test engine listens on a unix socket");
    let freezer = Freezer::start_unix(socket).await;
    let host = test_host();
    let collector = start_collector(&redis.url(), &host, |c| {
        configure(c.env("DOCKER_HOST", format!("tcp://127.0.0.1:{}", freezer.port())).env("HEMOSTAT_EVENTS_IDLE", idle))
    })
    .await;
    let conn = redis.connection().await;
    Setup { host, _redis_guard: redis, redis: conn, freezer, collector }
}

/// Starts a container that exits 1 on SIGUSR1, once the collector follows
/// the live stream (its start event delivered), then freezes that stream.
async fn crash_behind_a_frozen_stream(s: &Setup) -> (hemostat_e2e::TestContainer, Instant) {
    let docker = docker().await;
    let container = hemostat_e2e::container::start_crash_on_usr1(&docker).await;
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

/// `/healthz`, `/metrics` and the heartbeat report each task's progress;
/// a collector cut off from its engine (every connection, old and new,
/// silent) is named stalled within the watcher's expected period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_the_heartbeat_report_progress_and_name_a_stalled_watcher() {
    let port = free_port();
    let s = setup_with(&format!("{}s", IDLE.as_secs()), |c| {
        c.env("HEMOSTAT_COLLECTOR_LISTEN", format!("127.0.0.1:{port}")).env("HEMOSTAT_HEARTBEAT_INTERVAL", "1s")
    })
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let healthy = http_get(&format!("{base}/healthz"), &[]).await;
    assert_eq!(healthy.status, 200, "{}", healthy.body);
    let body: serde_json::Value = serde_json::from_str(&healthy.body).expect("JSON");
    let tasks: Vec<&str> = body["tasks"].as_array().expect("tasks").iter().filter_map(|t| t["task"].as_str()).collect();
    assert_eq!(tasks, ["watcher", "sampler", "consumer", "outbox"], "{body}");
    let metrics = http_get(&format!("{base}/metrics"), &[]).await;
    for family in
        ["hemostat_collector_healthy 1", "hemostat_collector_events_total", "hemostat_collector_commands_total"]
    {
        assert!(metrics.body.contains(family), "{family} missing:\n{}", metrics.body);
    }
    // The heartbeat carries the same.
    let key = hemostat_protocol::keys::heartbeat(&s.host);
    let beat = wait_for(Duration::from_secs(10), || {
        let mut conn = s.redis.clone();
        let key = key.clone();
        async move {
            let json: Option<String> = redis::AsyncCommands::get(&mut conn, &key).await.ok()?;
            let beat: CollectorHeartbeat = serde_json::from_str(&json?).ok()?;
            (!beat.tasks.is_empty()).then_some(beat)
        }
    })
    .await
    .expect("a heartbeat with the tasks' progress");
    assert!(beat.tasks.iter().all(|t| !t.stalled), "{beat:?}");

    // Cut off: the engine's every connection goes silent, new ones too.
    s.freezer.blackhole();
    let cut = Instant::now();
    let expected = IDLE * 3 + Duration::from_secs(10);
    let stalled = wait_for(expected + Duration::from_secs(20), || async {
        let answer = http_get(&format!("{base}/healthz"), &[]).await;
        (answer.status == 503).then_some(answer.body)
    })
    .await;
    let Some(stalled) = stalled else {
        panic!("/healthz still 200 long after the engine went silent; collector:\n{}", s.collector.log_tail(40));
    };
    let body: serde_json::Value = serde_json::from_str(&stalled).expect("JSON");
    assert!(body["stalled"].as_array().is_some_and(|a| a.iter().any(|t| t == "watcher")), "{body}");
    println!(
        "engine silent: /healthz 503 naming {} after {} ms (watcher's expected period {} s)",
        body["stalled"],
        cut.elapsed().as_millis(),
        expected.as_secs()
    );
}

/// The collector's `collector_degraded` and `collector_tasks_recovered`
/// system alerts about `host`, in order.
async fn liveness_alerts(conn: &Connection, host: &str) -> Vec<SystemAlert> {
    stream_events::<SystemAlert>(&mut conn.clone(), EventKind::SystemAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| {
            a.host == host
                && [SystemAlert::COLLECTOR_DEGRADED, SystemAlert::COLLECTOR_RECOVERED_TASKS].contains(&a.kind.as_str())
        })
        .collect()
}

/// A watcher cut off from its engine makes no progress: it is restarted
/// once (logged, counted in `/metrics`); the new instance makes none
/// either, and the collector reports itself degraded, once; when the
/// engine is back, the recovery. Sampling is off, so the watcher is the
/// only task the cut stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_stays_stalled_is_restarted_once_then_reported_degraded_once_then_recovered() {
    const IDLE: Duration = Duration::from_secs(1);
    let port = free_port();
    let s = setup_with(&format!("{}s", IDLE.as_secs()), |c| {
        c.env("HEMOSTAT_COLLECTOR_LISTEN", format!("127.0.0.1:{port}")).env("HEMOSTAT_STATS_INTERVAL", "0")
    })
    .await;
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let restarts = |page: &str| {
        page.lines()
            .find_map(|l| l.strip_prefix(r#"hemostat_collector_task_restarts_total{task="watcher"} "#))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    assert_eq!(restarts(&http_get(&metrics, &[]).await.body), Some(0.0));
    // The watcher's expected period with this idle time.
    let period = IDLE * 3 + Duration::from_secs(10);

    s.freezer.blackhole();
    let cut = Instant::now();
    s.collector.wait_for_line("restarting it", period + Duration::from_secs(10)).await;
    let restarted = cut.elapsed();
    let page = http_get(&metrics, &[]).await.body;
    assert_eq!(restarts(&page), Some(1.0), "{page}");

    let degraded = wait_for(period + Duration::from_secs(10), || async {
        liveness_alerts(&s.redis, &s.host).await.into_iter().next()
    })
    .await;
    let Some(degraded) = degraded else {
        panic!("no collector_degraded alert; collector:\n{}", s.collector.log_tail(40));
    };
    let reported = cut.elapsed();
    assert_eq!(degraded.kind, SystemAlert::COLLECTOR_DEGRADED, "{degraded:?}");
    assert!(degraded.message.contains("watcher") && degraded.message.contains(&s.host), "{degraded:?}");
    assert!(degraded.missing_for_seconds.is_some_and(|n| n >= period.as_secs()), "{degraded:?}");
    let page = http_get(&metrics, &[]).await.body;
    assert!(page.contains("hemostat_collector_degraded 1"), "{page}");

    // Kept stalled for another period: no second report, no second restart.
    tokio::time::sleep(period).await;
    let alerts = liveness_alerts(&s.redis, &s.host).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}\ncollector:\n{}", s.collector.log_tail(40));
    assert_eq!(restarts(&http_get(&metrics, &[]).await.body), Some(1.0));

    s.freezer.thaw();
    let thawed = Instant::now();
    let recovered =
        wait_for(Duration::from_secs(20), || async { liveness_alerts(&s.redis, &s.host).await.into_iter().nth(1) })
            .await;
    let Some(recovered) = recovered else {
        panic!("no recovery after the thaw; collector:\n{}", s.collector.log_tail(40));
    };
    assert_eq!(recovered.kind, SystemAlert::COLLECTOR_RECOVERED_TASKS, "{recovered:?}");
    assert!(recovered.message.contains("watcher"), "{recovered:?}");
    let page = http_get(&metrics, &[]).await.body;
    assert!(page.contains("hemostat_collector_degraded 0"), "{page}");
    println!(
        "engine cut off: watcher restarted after {} ms, collector_degraded after {} ms (expected period {} s); recovered {} ms after the engine came back",
        restarted.as_millis(),
        reported.as_millis(),
        period.as_secs(),
        thawed.elapsed().as_millis()
    );
    let alerts = liveness_alerts(&s.redis, &s.host).await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
}
