//! The escalation ladder on the whole stack (collector, bridge, emulator
//! with every function) and real Redis (one node, or a cluster under
//! `HEMOSTAT_TEST_REDIS=cluster`): a container labelled
//! `hemostat.escalation=restart,recreate,stop` that crashes again after
//! each fix is restarted, then recreated, then stopped with a critical
//! page, each step after the previous one's reported outcome and each
//! named in its `remediation_complete` and the audit.
//!
//! The recreate is the collector's to carry out: until it does, it reports
//! the step failed and leaves the container as it was (exited), so no new
//! crash can come from it; the test then publishes the next failure's
//! request as the analyzer would. Either way the failed or unheld recreate
//! climbs to the stop.

use std::time::Duration;

use bollard::{
    models::{ContainerStateStatusEnum, RestartPolicyNameEnum},
    query_parameters::{KillContainerOptionsBuilder, RemoveContainerOptionsBuilder},
};
use hemostat_e2e::{ContainerSpec, RedisServer, docker, start_stack, stream_events, wait_for};
use hemostat_protocol::{
    Action, ContainerRef, Envelope, EventKind, Publisher, RedisPublisher,
    audit::{self, Verdict},
    connection::Connection,
    envelope::agent,
    event::{RemediationComplete, RemediationStatus, Severity, SystemAlert},
};

/// Exits 1 on SIGUSR1: a crash on demand.
const CRASHER: &str =
    r#"trap 'echo "panic: crashed on demand (SIGUSR1)" >&2; exit 1' USR1; while :; do sleep 0.2; done"#;

/// The outcome of `name`'s `action`, once reported (within 30 s).
async fn reported(conn: &Connection, name: &str, action: Action) -> Option<RemediationComplete> {
    wait_for(Duration::from_secs(30), || async {
        let mut conn = conn.clone();
        stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
            .await
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.container == name && c.action == action && c.result.status != RemediationStatus::Rejected)
    })
    .await
}

/// Crashes the container of that name (a recreated one has another id).
async fn crash(docker: &bollard::Docker, name: &str) {
    let options = KillContainerOptionsBuilder::default().signal("USR1").build();
    docker.kill_container(name, Some(options)).await.unwrap_or_else(|e| panic!("crashing {name}: {e}"));
}

async fn running(docker: &bollard::Docker, name: &str) -> bool {
    let inspect = docker.inspect_container(name, None).await.unwrap();
    inspect.state.and_then(|s| s.status) == Some(ContainerStateStatusEnum::RUNNING)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_then_recreate_then_stop_and_page() {
    let redis = RedisServer::start().await;
    let docker = docker().await;
    let stack = start_stack(&redis.url()).await;
    let conn = redis.connection().await;
    let flaky = ContainerSpec::shell(CRASHER)
        .restart_policy(RestartPolicyNameEnum::NO)
        // A long cooldown: it spaces incidents, not a climbing ladder's steps.
        .label("hemostat.cooldown", "10m")
        .label("hemostat.escalation", "restart,recreate,stop")
        .start(&docker)
        .await;
    let name = flaky.name().to_owned();
    let log = || stack.collector.log_tail(60);

    // Step 1: a restart, named.
    flaky.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    crash(&docker, &name).await;
    let first =
        reported(&conn, &name, Action::Restart).await.unwrap_or_else(|| panic!("no restart reported:\n{}", log()));
    assert_eq!(first.result.status, RemediationStatus::Success, "{first:?}");
    assert!(first.reason.as_deref().unwrap_or("").starts_with("escalation step 1/3: restart: "), "{first:?}");

    // It crashes again: step 2, a recreate, after the restart's outcome.
    flaky.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    crash(&docker, &name).await;
    let second = reported(&conn, &name, Action::Recreate)
        .await
        .unwrap_or_else(|| panic!("no recreate reported:\n{}\nEMULATOR\n{}", log(), stack.emulator.log_tail(80)));
    let reason = second.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("escalation step 2/3: recreate after the restart at "), "{reason}");
    assert!(reason.contains(" did not hold (it was verified, then failed again): "), "{reason}");

    // And fails again: step 3, a stop, and a page.
    let settled = wait_for(Duration::from_secs(10), || async { running(&docker, &name).await.then_some(()) }).await;
    if settled.is_some() {
        crash(&docker, &name).await;
    } else {
        // The recreate was not carried out: the container is still down,
        // the next failure is the analyzer's next request.
        let next = serde_json::json!({
            "container": name, "host": stack.host, "action": "restart",
            "reason": "exit 1 (again)", "confidence": 0.9,
        });
        let env = Envelope::new(agent::ANALYZER, EventKind::RemediationNeeded, &next).unwrap();
        RedisPublisher::new(conn.clone()).publish(&env).await.unwrap();
    }
    let third = reported(&conn, &name, Action::Stop).await.unwrap_or_else(|| panic!("no stop reported:\n{}", log()));
    assert_eq!(third.result.status, RemediationStatus::Success, "{third:?}");
    let reason = third.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("escalation step 3/3: stop after the recreate at "), "{reason}");
    assert!(!running(&docker, &name).await, "stopped");
    let mut c = conn.clone();
    let pages: Vec<SystemAlert> = stream_events::<SystemAlert>(&mut c, EventKind::SystemAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.kind == SystemAlert::ESCALATION_STOPPED && a.container.as_deref() == Some(name.as_str()))
        .collect();
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(pages[0].severity, Severity::Critical);
    assert!(pages[0].message.contains("escalation ladder exhausted"), "{}", pages[0].message);

    // The audit names the three steps, oldest last.
    let mut c = conn.clone();
    let container = ContainerRef::new(&stack.host, &name);
    let steps: Vec<(Verdict, String)> = audit::newest(&mut c, &container, 20)
        .await
        .unwrap()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.verdict == Verdict::Allowed)
        .map(|e| (e.verdict, e.request.action))
        .collect();
    let actions: Vec<&str> = steps.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(actions, ["stop", "recreate", "restart"]);
    // hemostat explain previews the same decision: refused past the top;
    // after a reset, the bottom of the ladder again.
    let explain = |args: &[&str]| {
        let out = hemostat_e2e::hemostat_cli(&redis.url(), args);
        assert!(out.status.success(), "{}", hemostat_e2e::show_output("hemostat", &out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let key = container.key();
    let before: serde_json::Value = serde_json::from_str(&explain(&["--json", "explain", &key])).unwrap();
    assert_eq!(before["policy"]["escalation"], "restart,recreate,stop", "{before}");
    let verdict = before["verdict"].as_str().unwrap_or_default();
    assert!(
        verdict.starts_with("would refuse: escalation ladder exhausted: restart, recreate, stop taken"),
        "{verdict}"
    );
    explain(&["reset", &key]);
    let after: serde_json::Value = serde_json::from_str(&explain(&["--json", "explain", &key])).unwrap();
    let verdict = after["verdict"].as_str().unwrap_or_default();
    assert!(verdict.starts_with("would allow a restart as escalation step 1/3: restart"), "{verdict}");

    println!("escalation: restart ({:?}), recreate ({:?}), stop and page", first.result.status, second.result.status);

    // Whoever holds it now (a recreated container is not the test's).
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    let _ = docker.remove_container(&name, Some(options)).await;
}
