//! The engine restarting under a command, on a real `dockerd` (private,
//! `--live-restore`, as production engines run), on a node and on a
//! cluster: a restart the control plane ordered reaches the collector
//! while `dockerd` is away; the collector waits for the engine instead of
//! reporting the restart failed, then restarts the container once.

use std::time::Duration;

use bollard::models::ContainerStateStatusEnum;
use hemostat_e2e::{
    PrivateDockerd, RedisServer, StackEnv, outcomes_for, start_bridge, start_stack_with, stream_events, wait_for,
};
use hemostat_protocol::{
    EventKind,
    event::{HealthAlert, RemediationComplete, RemediationStatus},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_ordered_while_the_engine_restarts_runs_once_it_is_back() {
    let mut engine = PrivateDockerd::start_live_restore().await;
    let redis = RedisServer::start_node().await;
    let conn = redis.connection().await;
    // Edge healing off: the restart must come from the control plane.
    let env = StackEnv::default()
        .collector("DOCKER_HOST", engine.host())
        .collector("HEMOSTAT_EDGE_HEAL_AFTER", "0")
        .collector("HEMOSTAT_VERIFY_SECONDS", "2");
    let mut stack = start_stack_with(&redis.url(), &env).await;
    let docker = engine.docker().await;
    let container = hemostat_e2e::container::start_crash_on_usr1(&docker).await;
    // Past the collector's grace for a container just created.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The alert waits in its stream while the bridge is down.
    stack.bridge.kill();
    let before = container.state().await.started_at.unwrap_or_default();
    container.kill("USR1").await;
    container.wait_for_status(ContainerStateStatusEnum::EXITED, Duration::from_secs(10)).await;
    let alerted = wait_for(Duration::from_secs(15), || async {
        let alerts = stream_events::<HealthAlert>(&mut conn.clone(), EventKind::HealthAlert).await;
        alerts.iter().any(|(_, a)| a.container == container.name()).then_some(())
    })
    .await;
    assert!(alerted.is_some(), "no alert; collector:\n{}", stack.collector.log_tail(40));

    // The engine goes away; the bridge comes back and the restart is
    // ordered while it is away.
    engine.stop();
    let endpoint = stack.endpoint.clone();
    stack.bridge = start_bridge(|b| {
        b.env("REDIS_URL", redis.url()).env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint).env("RUST_LOG", "info")
    })
    .await;
    stack.collector.wait_for_line("the engine did not answer; waiting for it", Duration::from_secs(30)).await;
    let away = std::time::Instant::now();
    engine.start_again().await;
    println!("engine away for {:.1} s while the command waited", away.elapsed().as_secs_f64());

    let outcome = wait_for(Duration::from_secs(40), || async {
        outcomes_for(&mut conn.clone(), container.name()).await.into_iter().next()
    })
    .await;
    let outcome = outcome.unwrap_or_else(|| {
        panic!("no outcome; collector:\n{}\ndockerd:\n{}", stack.collector.log_tail(40), engine.log_tail(20))
    });
    assert_eq!(outcome.result.status, RemediationStatus::Success, "{outcome:?}\n{}", stack.collector.log_tail(40));
    assert_eq!(outcome.result.verified, Some(true), "{outcome:?}");
    let state = container.state().await;
    assert_eq!(state.running, Some(true), "{state:?}");
    assert!(state.started_at.unwrap_or_default() > before, "not restarted");
    // Once: no second outcome for the one crash.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outcomes = stream_events::<RemediationComplete>(&mut conn.clone(), EventKind::RemediationComplete).await;
    let for_it = outcomes.iter().filter(|(_, c)| c.container == container.name()).count();
    assert_eq!(for_it, 1, "outcomes for the one crash: {for_it}");
}
