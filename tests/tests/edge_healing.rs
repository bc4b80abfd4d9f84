//! Healing while the control plane is away (`HEMOSTAT_EDGE_HEAL_AFTER`),
//! on a real engine, on a node and on a cluster:
//!
//! - the bridge is down (no function sees the alert): the collector
//!   restarts the crashed container itself, reports it (`analysis_method`
//!   `edge`), and when the bridge is back the control plane's own restart,
//!   ordered late for the same crash, is moot: restarted once;
//! - Redis is down: the same, the report delivered once Redis is back;
//! - the control plane is there and refuses (a silence): the collector
//!   leaves the container alone;
//! - edge healing off: nothing acts without the gate;
//! - a container started while Redis was down, whose facts its collector
//!   could not write, crashes: once Redis is back its alert waits for the
//!   registry's facts, so the gate knows the container and restarts it.

use std::time::Duration;

use bollard::models::ContainerStateStatusEnum;
use hemostat_e2e::{
    RedisServer, Stack, StackEnv, TestContainer, docker, hemostat_cli, outcomes_for, start_bridge, start_stack_with,
    wait_for,
};
use hemostat_protocol::{
    connection::Connection,
    event::{DECIDED_AT_THE_EDGE, RemediationComplete, RemediationStatus},
};

/// How long a crash waits for the control plane in these tests.
const AFTER: Duration = Duration::from_secs(3);

fn stack_env(after: &str) -> StackEnv {
    StackEnv::default().collector("HEMOSTAT_EDGE_HEAL_AFTER", after).collector("HEMOSTAT_VERIFY_SECONDS", "2")
}

async fn crashing_container() -> TestContainer {
    let docker = docker().await;
    let container = hemostat_e2e::container::start_crash_on_usr1(&docker).await;
    // Past the collector's grace for a container just created.
    tokio::time::sleep(Duration::from_secs(2)).await;
    container
}

async fn crash(container: &TestContainer) -> String {
    let before = container.state().await.started_at.unwrap_or_default();
    container.kill("USR1").await;
    let crashed = container.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
    assert_eq!(crashed.exit_code, Some(1));
    before
}

async fn outcomes(conn: &Connection, name: &str) -> Vec<RemediationComplete> {
    outcomes_for(&mut conn.clone(), name).await
}

fn edge(c: &RemediationComplete) -> bool {
    c.context.analysis_method.as_deref() == Some(DECIDED_AT_THE_EDGE)
}

/// Waits until the container runs again in a run after `before`; its StartedAt.
async fn running_again(container: &TestContainer, before: &str, within: Duration, stack: &Stack) -> String {
    let started = wait_for(within, || async {
        let state = container.state().await;
        let started = state.started_at.unwrap_or_default();
        (state.running == Some(true) && started.as_str() > before).then_some(started)
    })
    .await;
    started.unwrap_or_else(|| panic!("never running again; collector:\n{}", stack.collector.log_tail(40)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_the_bridge_is_down_is_restarted_by_its_collector_once() {
    let redis = RedisServer::start_node().await;
    let conn = redis.connection().await;
    let mut stack = start_stack_with(&redis.url(), &stack_env(&format!("{}s", AFTER.as_secs()))).await;
    let container = crashing_container().await;

    // No bridge: the alert reaches its stream, no function ever reads it.
    stack.bridge.kill();
    let before = crash(&container).await;
    let crashed = std::time::Instant::now();
    let started = running_again(&container, &before, AFTER + Duration::from_secs(15), &stack).await;
    let waited = crashed.elapsed();
    assert!(waited >= AFTER, "restarted {waited:?} after the crash: before the control plane's time was up");
    let reported =
        wait_for(Duration::from_secs(10), || async { outcomes(&conn, container.name()).await.into_iter().find(edge) })
            .await;
    let reported = reported.unwrap_or_else(|| panic!("no edge report; collector:\n{}", stack.collector.log_tail(40)));
    assert_eq!(reported.result.status, RemediationStatus::Success, "{reported:?}");
    assert_eq!(reported.result.verified, Some(true), "{reported:?}");
    assert!(
        reported.reason.as_deref().is_some_and(|r| r.contains("the analyzer had not taken its alert")),
        "{reported:?}"
    );
    println!(
        "bridge down: the crashed container ran again {:.1} s after its crash (edge wait {AFTER:?})",
        waited.as_secs_f64()
    );

    // The bridge is back: the analyzer reads the old alert and the
    // responder orders a restart, which finds the container running since
    // after the crash.
    let endpoint = stack.endpoint.clone();
    stack.bridge = start_bridge(|b| {
        b.env("REDIS_URL", redis.url()).env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint).env("RUST_LOG", "info")
    })
    .await;
    let late = wait_for(Duration::from_secs(30), || async {
        outcomes(&conn, container.name()).await.into_iter().find(|c| !edge(c))
    })
    .await;
    let late =
        late.unwrap_or_else(|| panic!("the control plane never answered; bridge:\n{}", stack.bridge.log_tail(30)));
    assert_eq!(late.result.status, RemediationStatus::NotApplicable, "{late:?}");
    assert!(late.result.details.as_deref().is_some_and(|d| d.starts_with("already running again since")), "{late:?}");
    let state = container.state().await;
    assert_eq!(state.started_at.as_deref(), Some(started.as_str()), "restarted twice for one crash");
    assert_eq!(state.running, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_redis_is_down_is_restarted_and_reported_once_redis_is_back() {
    let mut redis = RedisServer::start_durable_node().await;
    let conn = redis.connection().await;
    let stack = start_stack_with(&redis.url(), &stack_env(&format!("{}s", AFTER.as_secs()))).await;
    let container = crashing_container().await;

    redis.wait_aof_written().await;
    redis.crash();
    let before = crash(&container).await;
    running_again(&container, &before, AFTER + Duration::from_secs(15), &stack).await;
    redis.recover().await;
    let reported =
        wait_for(Duration::from_secs(30), || async { outcomes(&conn, container.name()).await.into_iter().find(edge) })
            .await;
    let reported = reported.unwrap_or_else(|| panic!("no edge report; collector:\n{}", stack.collector.log_tail(40)));
    assert_eq!(reported.result.status, RemediationStatus::Success, "{reported:?}");
    assert!(reported.reason.as_deref().is_some_and(|r| r.contains("had not reached Redis")), "{reported:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_the_control_plane_refuses_is_left_alone() {
    let redis = RedisServer::start_node().await;
    let conn = redis.connection().await;
    let stack = start_stack_with(&redis.url(), &stack_env(&format!("{}s", AFTER.as_secs()))).await;
    let container = crashing_container().await;
    let target = format!("{}/{}", stack.host, container.name());
    let out = hemostat_cli(&redis.url(), &["silence", "add", &target, "--for", "1h", "--reason", "disk swap"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    crash(&container).await;
    let refused = wait_for(Duration::from_secs(20), || async {
        outcomes(&conn, container.name()).await.into_iter().find(|c| c.result.status == RemediationStatus::Rejected)
    })
    .await;
    assert!(refused.is_some(), "the gate never refused; collector:\n{}", stack.collector.log_tail(30));
    tokio::time::sleep(AFTER + Duration::from_secs(3)).await;
    let state = container.state().await;
    assert_eq!(state.running, Some(false), "restarted against the gate's refusal");
    assert!(!outcomes(&conn, container.name()).await.iter().any(edge));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_edge_healing_off_nothing_acts_without_the_gate() {
    let redis = RedisServer::start_node().await;
    let conn = redis.connection().await;
    let stack = start_stack_with(&redis.url(), &stack_env("0")).await;
    let container = crashing_container().await;
    stack.bridge.kill();
    crash(&container).await;
    tokio::time::sleep(AFTER + Duration::from_secs(4)).await;
    assert_eq!(container.state().await.running, Some(false), "restarted without the gate");
    assert!(!outcomes(&conn, container.name()).await.iter().any(edge));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_started_during_a_redis_outage_is_healed_by_the_gate_once_redis_is_back() {
    let mut redis = RedisServer::start_durable_node().await;
    let conn = redis.connection().await;
    let stack = start_stack_with(&redis.url(), &stack_env("0")).await;
    redis.wait_aof_written().await;
    redis.crash();
    // Created during the outage: its collector cannot write its facts.
    let container = crashing_container().await;
    let before = crash(&container).await;
    // Its alert waits in the outbox.
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.recover().await;
    running_again(&container, &before, Duration::from_secs(30), &stack).await;
    let outcome = wait_for(Duration::from_secs(15), || async {
        outcomes(&conn, container.name()).await.into_iter().find(|c| !edge(c))
    })
    .await;
    let outcome = outcome.unwrap_or_else(|| panic!("no outcome; collector:\n{}", stack.collector.log_tail(40)));
    assert_eq!(outcome.result.status, RemediationStatus::Success, "{outcome:?}");
    let all = outcomes(&conn, container.name()).await;
    assert!(all.iter().all(|c| c.result.status != RemediationStatus::Rejected), "{all:?}");
}
