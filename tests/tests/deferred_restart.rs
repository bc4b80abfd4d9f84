//! A restart the cooldown refused is asked again when the cooldown ends,
//! on the whole stack (collector, bridge, emulator with every function,
//! each component as its own Redis user) and real Redis (one node, or a
//! cluster under `HEMOSTAT_TEST_REDIS=cluster`): a worker whose database
//! refuses connections exits at once; it is restarted, exits again within
//! its cooldown (the restart is refused, and kept), its database comes
//! back, and when the cooldown ends the responder's schedule asks the gate
//! again: it is restarted and runs. Without it the worker stayed down until
//! a person started it.

use std::time::{Duration, Instant};

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{
    ContainerSpec, RedisServer, StackEnv, docker, hemostat_cli, show_output, start_stack_with, stream_events, wait_for,
};
use hemostat_protocol::{
    Action, EventKind,
    connection::Connection,
    event::{RemediationComplete, RemediationStatus},
};

/// Connects to its database (a file in a bind mount says it is up), and
/// exits 1 with asyncio's refusal when it is not.
const WORKER: &str = "echo 'worker starting'; \
    if [ -f /dep/up ]; then echo 'connected to the database'; while :; do sleep 1; done; fi; \
    echo \"ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 5432)\" >&2; exit 1";

const COOLDOWN_SECONDS: u64 = 20;

/// The first report about `name` that `want` accepts, within `timeout`.
async fn report(
    conn: &Connection,
    name: &str,
    timeout: Duration,
    want: impl Fn(&RemediationComplete) -> bool,
) -> Option<RemediationComplete> {
    wait_for(timeout, || async {
        let mut conn = conn.clone();
        stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
            .await
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.container == name && want(c))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_the_cooldown_refused_is_asked_again_when_it_ends_and_the_dependency_is_back() {
    let redis = RedisServer::start().await;
    let docker = docker().await;
    // The template's rate(1 minute), every second here.
    let env =
        StackEnv::default().least_privilege().emulator_arg("--schedule-interval").emulator_arg("hemostat-responder=1s");
    let stack = start_stack_with(&redis.url(), &env).await;
    let conn = redis.connection().await;
    let dir = std::env::temp_dir().join(format!("hemostat-dep-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let worker = ContainerSpec::shell(WORKER)
        .restart_policy(RestartPolicyNameEnum::NO)
        .label("hemostat.cooldown", format!("{COOLDOWN_SECONDS}s"))
        .bind(format!("{}:/dep:ro", dir.display()))
        .start(&docker)
        .await;
    let name = worker.name().to_owned();
    let log = || stack.collector.log_tail(60);

    // Its first exit: restarted (and it exits again at once).
    let first = report(&conn, &name, Duration::from_secs(30), |c| c.command_id.is_some())
        .await
        .unwrap_or_else(|| panic!("no restart reported:\n{}", log()));
    assert_eq!(first.action, Action::Restart, "{first:?}");
    let acted = Instant::now();
    // Its second: refused by the cooldown, and kept for when it ends.
    let refused = report(&conn, &name, Duration::from_secs(30), |c| c.result.status == RemediationStatus::Rejected)
        .await
        .unwrap_or_else(|| panic!("no refusal reported:\n{}", log()));
    let reason = refused.result.reason.clone().unwrap_or_default();
    let details = refused.result.details.clone().unwrap_or_default();
    assert!(reason.starts_with("cooldown"), "{refused:?}");
    assert!(details.starts_with("asked again at ") && details.contains("when the cooldown ends"), "{refused:?}");
    println!("refused: {reason}; {details}");
    assert_eq!(worker.state().await.running, Some(false), "{:?}", worker.state().await);
    // The operator sees when it is asked again.
    let explain = hemostat_cli(&redis.url(), &["explain", &format!("{}/{name}", stack.host)]);
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        explain.status.success() && text.contains("asked again: a restart at "),
        "{}",
        show_output("explain", &explain)
    );

    // The database comes back; nobody touches the worker.
    std::fs::write(dir.join("up"), "").unwrap();
    let again = report(&conn, &name, Duration::from_secs(COOLDOWN_SECONDS + 30), |c| {
        c.result.reason.as_deref().is_some_and(|r| r.starts_with("asked again after the cooldown: "))
    })
    .await
    .unwrap_or_else(|| panic!("the restart was not asked again:\n{}", log()));
    let waited = acted.elapsed();
    assert_eq!((again.action, again.result.status), (Action::Restart, RemediationStatus::Success), "{again:?}");
    assert_eq!(again.result.verified, Some(true), "{again:?}");
    assert!(waited >= Duration::from_secs(COOLDOWN_SECONDS - 2), "asked again {waited:?} after the first restart");
    worker.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    println!(
        "asked again: restarted {:.1} s after the first restart (cooldown {COOLDOWN_SECONDS} s), verified, running",
        waited.as_secs_f64()
    );
    // Once: nothing more is asked of it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut c = conn.clone();
    let all = stream_events::<RemediationComplete>(&mut c, EventKind::RemediationComplete).await;
    let asked: Vec<_> = all
        .iter()
        .filter(|(_, r)| r.container == name && r.command_id.is_some())
        .map(|(_, r)| (r.action, r.result.status))
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
