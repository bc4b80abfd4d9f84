//! Per-container policy on the whole stack, with the real dockerd and a
//! real Redis (one node, or a cluster under `HEMOSTAT_TEST_REDIS=cluster`):
//! what a container's labels tell HemoStat reaches the collector, the
//! analyzer and the gate.
//!
//! - `hemostat.action=notify`: the crash is alerted, and refused by the
//!   gate with `policy: notify`; the container stays down.
//! - `hemostat.action=none`: not even an alert.
//! - `hemostat.action=stop` with its own CPU threshold and sustain window:
//!   a busy loop far below the fleet's threshold is alerted within a second
//!   or two, and stopped instead of restarted.
//! - a label that does not parse is reported once (a `system_alert`), and
//!   the container is healed with the fleet's defaults.
//! - a container's own cooldown and hourly cap: its second crash within
//!   the hour opens its circuit breaker, with a critical `circuit_open`.
//! - an operator's `docker restart` holds HemoStat off the container for
//!   the operator's grace: its crash right after is refused, not healed.
//! - a container compose recreated (label `com.docker.compose.replace`) is
//!   held for the recreate grace in the same way.
//! - forged `remediation_needed` (anyone may publish one) cannot make the
//!   gate act against a container's labels, its cooldown or the fleet
//!   brake, nor on a container no collector reports.

use std::time::Duration;

use bollard::{
    models::{ContainerStateStatusEnum, RestartPolicyNameEnum},
    query_parameters::KillContainerOptionsBuilder,
};
use hemostat_e2e::{
    ContainerSpec, RedisServer, StackEnv, TestContainer, docker, start_stack, start_stack_with, stream_events, wait_for,
};
use hemostat_protocol::{
    Action, ContainerRef, Envelope, EventKind, Publisher, RedisPublisher,
    connection::Connection,
    event::{HealthAlert, RemediationComplete, RemediationStatus, Severity, SystemAlert},
    keys,
    policy::ActionPolicy,
    silence::{self, Silence, TargetKind},
};
use redis::AsyncCommands;

/// Exits 1 on SIGUSR1: a crash on demand.
const CRASHER: &str =
    r#"trap 'echo "panic: crashed on demand (SIGUSR1)" >&2; exit 1' USR1; while :; do sleep 0.2; done"#;

/// Crashes a [`CRASHER`]: SIGUSR1 until it has exited once more. A signal
/// that lands before its shell set the trap is lost (PID 1 ignores what it
/// has no handler for), as happens under load right after a (re)start; a
/// new `FinishedAt` says it exited, even if it was restarted at once.
async fn crash(c: &TestContainer) {
    let before = c.state().await.finished_at;
    let options = KillContainerOptionsBuilder::default().signal("USR1").build();
    for _ in 0..50 {
        // Refused once it is no longer running: what is waited for.
        let _ = c.docker().kill_container(c.id(), Some(options.clone())).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if c.state().await.finished_at != before {
            return;
        }
    }
    panic!("{} did not exit on SIGUSR1", c.name());
}

async fn alerts_for(conn: &Connection, name: &str) -> Vec<HealthAlert> {
    let mut conn = conn.clone();
    stream_events::<HealthAlert>(&mut conn, EventKind::HealthAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.container == name)
        .collect()
}

async fn completions(conn: &Connection, name: &str) -> Vec<RemediationComplete> {
    let mut conn = conn.clone();
    stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
        .await
        .into_iter()
        .map(|(_, c)| c)
        .filter(|c| c.container == name)
        .collect()
}

/// The first outcome for `name` with `status`, within 20 s.
async fn outcome(conn: &Connection, name: &str, status: RemediationStatus) -> Option<RemediationComplete> {
    wait_for(Duration::from_secs(20), || async {
        completions(conn, name).await.into_iter().find(|c| c.result.status == status)
    })
    .await
}

async fn bad_label_reports(conn: &Connection, name: &str) -> usize {
    let mut conn = conn.clone();
    stream_events::<SystemAlert>(&mut conn, EventKind::SystemAlert)
        .await
        .into_iter()
        .filter(|(_, a)| a.kind == SystemAlert::BAD_LABELS && a.container.as_deref() == Some(name))
        .count()
}

/// Waits until the collector lists the container in the fleet registry.
async fn registered(conn: &Connection, host: &str, name: &str) {
    let key = ContainerRef::new(host, name).key();
    let seen = wait_for(Duration::from_secs(15), || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move { conn.sismember::<_, _, bool>(keys::CONTAINERS, &key).await.unwrap_or(false).then_some(()) }
    })
    .await;
    assert!(seen.is_some(), "the collector never reported {key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containers_labels_decide_whether_and_how_hemostat_acts() {
    let redis = RedisServer::start().await;
    let docker = docker().await;
    let stack = start_stack(&redis.url()).await;
    let conn = redis.connection().await;

    let spec = |action: &str| {
        ContainerSpec::shell(CRASHER).restart_policy(RestartPolicyNameEnum::NO).label("hemostat.action", action)
    };
    let notify = spec("notify").start(&docker).await;
    let none = spec("NONE").start(&docker).await;
    let mislabelled = ContainerSpec::shell(CRASHER)
        .restart_policy(RestartPolicyNameEnum::NO)
        .label("hemostat.cooldown", "soon")
        .label("hemostat.cpu_threshold", "150")
        .start(&docker)
        .await;
    // 40 % of a core, well under the fleet's 85 % threshold, pegged for good.
    let burner = ContainerSpec::shell(
        r#"trap 'exit 143' TERM
while :; do timeout 0.4 sh -c 'while :; do :; done'; sleep 0.6; done"#,
    )
    .restart_policy(RestartPolicyNameEnum::NO)
    .label("hemostat.action", "stop")
    .label("hemostat.cpu_threshold", "20")
    .label("hemostat.sustain", "2s")
    .start(&docker)
    .await;
    let operated = ContainerSpec::shell(CRASHER).restart_policy(RestartPolicyNameEnum::NO).start(&docker).await;
    // Its own limits: no cooldown, one action an hour.
    let flaky = ContainerSpec::shell(CRASHER)
        .restart_policy(RestartPolicyNameEnum::NO)
        .label("hemostat.cooldown", "0s")
        .label("hemostat.max_actions_per_hour", "1")
        .start(&docker)
        .await;
    // What `compose up` creates after a change: labelled with the container it replaces.
    let recreated = ContainerSpec::shell(CRASHER)
        .restart_policy(RestartPolicyNameEnum::NO)
        .label("com.docker.compose.replace", "shop-web-1")
        .start(&docker)
        .await;
    for c in [&notify, &none, &mislabelled, &burner, &operated, &flaky, &recreated] {
        registered(&conn, &stack.host, c.name()).await;
    }

    // compose recreated it a moment ago and it crashes: within the
    // recreate grace (60 s by default) HemoStat alerts but does not act.
    crash(&recreated).await;
    let deploy = outcome(&conn, recreated.name(), RemediationStatus::Rejected)
        .await
        .unwrap_or_else(|| panic!("the recreated container was not left alone:\n{}", stack.collector.log_tail(40)));
    let reason = deploy.result.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("deploy: compose recreated it ") && reason.ends_with(", replacing shop-web-1 (grace 60 s)"),
        "{reason}"
    );
    assert_eq!(recreated.state().await.status, Some(ContainerStateStatusEnum::EXITED));

    // An operator restarts a container, which then crashes: within the
    // operator's grace (30 s by default) HemoStat alerts but does not act.
    docker.restart_container(operated.id(), None).await.unwrap();
    operated.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    crash(&operated).await;
    let left_alone = outcome(&conn, operated.name(), RemediationStatus::Rejected)
        .await
        .unwrap_or_else(|| panic!("the operator's container was not left alone:\n{}", stack.collector.log_tail(40)));
    let reason = left_alone.result.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("operator: docker restart ") && reason.ends_with(" s ago (grace 30 s)"), "{reason}");
    assert_eq!(alerts_for(&conn, operated.name()).await[0].held.as_deref(), Some(reason.as_str()));
    assert_eq!(operated.state().await.status, Some(ContainerStateStatusEnum::EXITED));

    // notify: alerted with its policy, refused by the gate, left down.
    let notify_start = notify.state().await.started_at;
    crash(&notify).await;
    crash(&none).await;
    crash(&mislabelled).await;
    let refused = outcome(&conn, notify.name(), RemediationStatus::Rejected)
        .await
        .unwrap_or_else(|| panic!("the notify container's crash was not refused:\n{}", stack.collector.log_tail(40)));
    assert_eq!(
        refused.result.reason.as_deref(),
        Some("policy: notify (hemostat.action=notify: alert only, never act)"),
        "{refused:?}"
    );
    let alerts = alerts_for(&conn, notify.name()).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].policy.as_ref().map(|p| p.action), Some(ActionPolicy::Notify));
    let state = notify.state().await;
    assert_eq!((state.status, state.started_at), (Some(ContainerStateStatusEnum::EXITED), notify_start));

    // The mislabelled container is healed with the defaults, its labels
    // reported once; a second crash raises a second alert, not a second report.
    let healed = outcome(&conn, mislabelled.name(), RemediationStatus::Success)
        .await
        .unwrap_or_else(|| panic!("the mislabelled container was not healed:\n{}", stack.collector.log_tail(40)));
    assert_eq!(healed.action, Action::Restart);
    mislabelled.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    crash(&mislabelled).await;
    let second = wait_for(Duration::from_secs(15), || async {
        (alerts_for(&conn, mislabelled.name()).await.len() >= 2).then_some(())
    })
    .await;
    assert!(second.is_some(), "no second alert for the mislabelled container");
    assert_eq!(bad_label_reports(&conn, mislabelled.name()).await, 1);
    let alert = &alerts_for(&conn, mislabelled.name()).await[0];
    assert!(alert.policy.is_none(), "bad labels leave the fleet's policy: {:?}", alert.policy);
    let log = stack.collector.log_tail(400);
    assert!(log.contains("bad labels") && log.contains("hemostat.cooldown"), "the log names the label:\n{log}");

    // One fix an hour: the first crash is healed, the second opens its
    // circuit breaker (the fix did not hold), with a critical alert.
    crash(&flaky).await;
    let first = outcome(&conn, flaky.name(), RemediationStatus::Success).await;
    assert!(first.is_some(), "the flaky container's first crash was not healed:\n{}", stack.collector.log_tail(40));
    flaky.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    crash(&flaky).await;
    let opened = outcome(&conn, flaky.name(), RemediationStatus::Rejected)
        .await
        .unwrap_or_else(|| panic!("the second crash was not refused:\n{}", stack.collector.log_tail(40)));
    let reason = opened.result.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("circuit breaker open: 1 actions in the last hour did not hold (max 1)"), "{reason}");
    let mut c = conn.clone();
    let critical: Vec<SystemAlert> = stream_events::<SystemAlert>(&mut c, EventKind::SystemAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.kind == SystemAlert::CIRCUIT_OPEN && a.container.as_deref() == Some(flaky.name()))
        .collect();
    assert_eq!(critical.len(), 1, "{critical:?}");
    assert_eq!(critical[0].severity, Severity::Critical);
    assert!(critical[0].message.contains("hemostat reset"), "{}", critical[0].message);

    // none: by now its crash would have been alerted long ago.
    assert!(alerts_for(&conn, none.name()).await.is_empty(), "hemostat.action=none still alerted");
    assert!(completions(&conn, none.name()).await.is_empty());
    assert_eq!(none.state().await.status, Some(ContainerStateStatusEnum::EXITED));

    // stop, with its own threshold and sustain: stopped, not restarted.
    let stopped = wait_for(Duration::from_secs(30), || async {
        completions(&conn, burner.name()).await.into_iter().find(|c| c.result.status == RemediationStatus::Success)
    })
    .await
    .unwrap_or_else(|| panic!("the burner was not stopped:\n{}", stack.collector.log_tail(60)));
    assert_eq!(stopped.action, Action::Stop, "{stopped:?}");
    assert!(stopped.reason.as_deref().unwrap_or("").contains("a stop instead of a restart"), "{stopped:?}");
    let alert = &alerts_for(&conn, burner.name()).await[0];
    assert_eq!(alert.metrics.extra_f64("sustain_seconds"), Some(2.0), "the label's window: {alert:?}");
    assert_eq!(alert.anomalies[0].threshold, Some(20.0));
    assert_eq!(burner.state().await.status, Some(ContainerStateStatusEnum::EXITED));
}

/// A `remediation_needed` as anyone who can publish to Redis sends it (the
/// seed protocol invites custom analyzers to): `extra` adds what it claims
/// about the container.
fn forged(host: &str, name: &str, action: &str, extra: serde_json::Value) -> Envelope {
    let mut data = serde_json::json!({
        "container": name, "host": host, "action": action, "reason": "forged", "confidence": 1.0,
    });
    if let (Some(data), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
        data.extend(extra.clone());
    }
    Envelope::new("custom-analyzer", EventKind::RemediationNeeded, &data).unwrap()
}

/// Refusals of `name`, with their reasons, once there are `count`.
async fn refusals(conn: &Connection, name: &str, count: usize) -> Vec<String> {
    let found = wait_for(Duration::from_secs(20), || async {
        let refused: Vec<String> = completions(conn, name)
            .await
            .into_iter()
            .filter(|c| c.result.status == RemediationStatus::Rejected)
            .map(|c| c.result.reason.unwrap_or_default())
            .collect();
        (refused.len() >= count).then_some(refused)
    })
    .await;
    found.unwrap_or_else(|| panic!("fewer than {count} refusals of {name}"))
}

/// Forged requests cannot turn the gate against a container: it believes
/// what the container's collector wrote (its labels, identity, image, its
/// cooldown), not what a request claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_requests_cannot_turn_the_gate_against_a_container() {
    let redis = RedisServer::start().await;
    let docker = docker().await;
    let env = StackEnv::default().collector("HEMOSTAT_HEARTBEAT_INTERVAL", "1s");
    let stack = start_stack_with(&redis.url(), &env).await;
    let conn = redis.connection().await;
    let publisher = RedisPublisher::new(conn.clone());
    const SERVER: &str = "while :; do sleep 0.2; done";
    let none = ContainerSpec::shell(SERVER).label("hemostat.action", "none").start(&docker).await;
    let notify = ContainerSpec::shell(SERVER).label("hemostat.action", "notify").start(&docker).await;
    let plain = ContainerSpec::shell(CRASHER).restart_policy(RestartPolicyNameEnum::NO).start(&docker).await;
    for c in [&none, &notify, &plain] {
        registered(&conn, &stack.host, c.name()).await;
    }
    let started = |c: &hemostat_e2e::TestContainer| {
        let c = c.id().to_owned();
        let docker = docker.clone();
        async move { docker.inspect_container(&c, None).await.unwrap().state.unwrap().started_at }
    };

    // Labelled none; the request claims a restart policy and no cooldown.
    let before = started(&none).await;
    let claims = serde_json::json!({"policy": {"action": "restart", "cooldown_seconds": 0}, "image": "fresh:1"});
    publisher.publish(&forged(&stack.host, none.name(), "stop", claims)).await.unwrap();
    // Labelled notify; a seed-shaped request says nothing of its policy.
    publisher.publish(&forged(&stack.host, notify.name(), "restart", serde_json::json!({}))).await.unwrap();
    assert_eq!(refusals(&conn, none.name(), 1).await, ["policy: none (hemostat.action=none: never act)"]);
    let refused = refusals(&conn, notify.name(), 1).await;
    assert!(refused[0].starts_with("policy: notify"), "{refused:?}");
    assert_eq!((none.state().await.status, started(&none).await), (Some(ContainerStateStatusEnum::RUNNING), before));
    assert_eq!(notify.state().await.status, Some(ContainerStateStatusEnum::RUNNING));
    // The lines `scripts/security-figures.sh` counts.
    println!("attack refused: forged request: stop a container labelled none, claiming policy restart");
    println!("attack refused: forged request: restart a container labelled notify, claiming no policy");

    // Healed once for real; then requests that claim no cooldown and a new
    // image each time (to dodge the fleet brake) meet the fleet's hour.
    crash(&plain).await;
    assert!(outcome(&conn, plain.name(), RemediationStatus::Success).await.is_some(), "the crash was not healed");
    let healed_at = started(&plain).await;
    for i in 0..3 {
        let claims = serde_json::json!({"policy": {"cooldown_seconds": 0}, "image": format!("fresh:{i}")});
        publisher.publish(&forged(&stack.host, plain.name(), "restart", claims)).await.unwrap();
    }
    let refused = refusals(&conn, plain.name(), 3).await;
    assert!(refused.iter().all(|r| r.starts_with("cooldown: ")), "{refused:?}");
    assert_eq!(started(&plain).await, healed_at, "restarted by a forged request");
    for i in 0..3 {
        println!("attack refused: forged request: claims cooldown 0 and a fresh image ({i})");
    }

    // A label silence added since its last alert: the collector matches it
    // on the host within a heartbeat; a request that names no silence is
    // refused with it all the same.
    let frozen = ContainerSpec::shell(SERVER).label("team", "payments").start(&docker).await;
    registered(&conn, &stack.host, frozen.name()).await;
    let now = chrono::Utc::now();
    let freeze = Silence {
        id: "freeze".into(),
        kind: TargetKind::Label,
        target: "team=payments".into(),
        reason: "payments freeze".into(),
        created: now.to_rfc3339(),
        until: (now + chrono::Duration::minutes(10)).to_rfc3339(),
        by: "tester".into(),
        window: None,
    };
    silence::add(&mut conn.clone(), &freeze).await.unwrap();
    let key = keys::facts(&ContainerRef::new(&stack.host, frozen.name()));
    let matched = wait_for(Duration::from_secs(10), || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let ids: Option<String> = conn.hget(&key, "silenced_by").await.ok()?;
            ids.filter(|ids| ids.contains("freeze"))
        }
    })
    .await;
    assert!(matched.is_some(), "the collector never wrote the silence to the facts");
    publisher.publish(&forged(&stack.host, frozen.name(), "restart", serde_json::json!({}))).await.unwrap();
    let refused = refusals(&conn, frozen.name(), 1).await;
    assert!(refused[0].starts_with("silenced: payments freeze"), "{refused:?}");
    println!("attack refused: forged request: names no silence for a silenced container");

    // Nothing its collector reports: nothing to act on.
    publisher.publish(&forged(&stack.host, "ghost", "restart", serde_json::json!({}))).await.unwrap();
    let refused = refusals(&conn, "ghost", 1).await;
    assert!(refused[0].starts_with("unknown container: no collector reports"), "{refused:?}");
    println!("attack refused: forged request: a container no collector reports");
    let commands: usize = conn.clone().xlen(keys::commands(&stack.host)).await.unwrap();
    assert_eq!(commands, 1, "only the real crash was acted on");
}
