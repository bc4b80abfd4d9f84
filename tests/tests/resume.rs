//! A crash while the collector is down (killed with SIGKILL: an upgrade
//! gone wrong, the OOM killer) is healed once the collector is back, end to
//! end: the collector resumes from its cursor, the alert goes through the
//! bridge, the analyzer and the responder, and the collector restarts the
//! container. Once: no second alert.

use std::time::{Duration, Instant};

use bollard::models::ContainerStateStatusEnum;
use hemostat_e2e::{RedisServer, docker, start_stack, state_dir, stream_events, wait_for};
use hemostat_protocol::{
    EventKind,
    event::{HealthAlert, RemediationComplete, RemediationStatus},
};

use hemostat_e2e::container::docker_time as parse_time;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_the_collector_was_killed_is_healed_once_it_is_back() {
    let redis = RedisServer::start().await;
    let docker = docker().await;
    let mut stack = start_stack(&redis.url()).await;
    let conn = redis.connection().await;
    let cursor = state_dir(&stack.host).join("cursor.json");
    let written = wait_for(Duration::from_secs(10), || std::future::ready(cursor.exists().then_some(()))).await;
    assert!(written.is_some(), "no {}; collector:\n{}", cursor.display(), stack.collector.log_tail(30));

    let container = hemostat_e2e::container::start_crash_on_usr1(&docker).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let first_start = parse_time(&container.state().await.started_at);

    // kill -9: no shutdown, the cursor is whatever it last wrote.
    stack.collector.kill();
    container.kill("USR1").await;
    let crashed = container.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
    assert_eq!(crashed.exit_code, Some(1));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Back, as the stack started it.
    let docker_host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST: run through scripts/test.sh");
    let started_ms = chrono::Utc::now().timestamp_millis() as u64;
    let started = Instant::now();
    stack.collector = hemostat_e2e::collector(&redis.url(), &stack.host)
        .env("DOCKER_HOST", &docker_host)
        .env("RUST_LOG", "info")
        .spawn();

    let alerts = || async {
        stream_events::<HealthAlert>(&mut conn.clone(), EventKind::HealthAlert)
            .await
            .into_iter()
            .filter(|(_, a)| a.container == container.name())
            .collect::<Vec<_>>()
    };
    let first = wait_for(Duration::from_secs(30), || async { alerts().await.into_iter().next() }).await;
    let Some((alert_ms, _)) = first else {
        panic!("no alert after the collector came back; collector:\n{}", stack.collector.log_tail(40));
    };
    let healed = wait_for(Duration::from_secs(30), || async {
        let state = container.state().await;
        (state.running == Some(true) && parse_time(&state.started_at) > first_start).then_some(state)
    })
    .await;
    let Some(healed) = healed else {
        panic!(
            "not restarted after the collector came back.\ncollector:\n{}\nbridge:\n{}",
            stack.collector.log_tail(40),
            stack.bridge.log_tail(40)
        );
    };
    let healed_ms = started.elapsed().as_millis();
    let done = wait_for(Duration::from_secs(10), || async {
        stream_events::<RemediationComplete>(&mut conn.clone(), EventKind::RemediationComplete)
            .await
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.container == container.name() && c.result.status == RemediationStatus::Success)
    })
    .await;
    assert!(done.is_some(), "no successful remediation_complete");
    println!(
        "collector killed (-9), crash while it was down, collector started again: alert {} ms after its start \
         (spawn to XADD), running again {healed_ms} ms after it (StartedAt {})",
        alert_ms.saturating_sub(started_ms),
        healed.started_at.as_deref().unwrap_or("?")
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = alerts().await;
    assert_eq!(all.len(), 1, "alerted {} times; collector:\n{}", all.len(), stack.collector.log_tail(40));
}
