//! The walking skeleton, end to end on real services: dockerd, redis-server,
//! the Lambda emulator running the analyzer and responder binaries, the
//! bridge and the collector, each its own process.
//!
//! A container whose process exits 1 must be running again, restarted by
//! HemoStat (no Docker restart policy), with its `remediation_complete` in
//! Redis; a second crash inside the cooldown must be refused and the
//! refusal recorded; everything on the seed channels must be a seed envelope.

use std::{sync::Arc, time::Duration};

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use futures::StreamExt;
use hemostat_e2e::{ContainerSpec, RedisServer, docker, outcomes_for, start_stack, wait_for};
use hemostat_protocol::{ContainerRef, Envelope, EventKind, event::RemediationStatus, keys};
use redis::AsyncCommands;
use tokio::sync::Mutex;

/// Every component of the stack, killed when dropped.
/// Every message `redis-cli SUBSCRIBE "hemostat:*"` (the seed's documented
/// command: a plain SUBSCRIBE, not a pattern) receives while the test runs.
async fn record_pubsub(redis: &RedisServer) -> Arc<Mutex<Vec<(String, String)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut pubsub = redis.client().get_async_pubsub().await.unwrap();
    pubsub.subscribe("hemostat:*").await.unwrap();
    let sink = seen.clone();
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let payload: String = msg.get_payload().unwrap_or_default();
            sink.lock().await.push((msg.get_channel_name().to_owned(), payload));
        }
    });
    seen
}

use hemostat_e2e::container::docker_time as parse_time;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_container_is_healed_end_to_end_and_a_second_crash_is_refused() {
    let redis = RedisServer::start().await;
    let docker = docker().await;
    let stack = start_stack(&redis.url()).await;
    let seen = record_pubsub(&redis).await;
    let mut conn = redis.connection().await;

    // USR1 makes the process exit 1: a crash, not a requested stop.
    let container = ContainerSpec::shell(
        r#"trap 'echo "panic: crashed on demand (SIGUSR1)" >&2; exit 1' USR1; while :; do sleep 0.2; done"#,
    )
    .restart_policy(RestartPolicyNameEnum::NO)
    .start(&docker)
    .await;
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let first_start = parse_time(&container.state().await.started_at);

    container.kill("USR1").await;
    let healed = container.restarted_since(first_start, Duration::from_secs(15)).await;
    let Some(healed) = healed else {
        panic!(
            "container was not restarted.\ncollector:\n{}\nbridge:\n{}",
            stack.collector.log_tail(40),
            stack.bridge.log_tail(40)
        );
    };
    let state = healed.state.unwrap();
    let exit_to_running = parse_time(&state.started_at) - parse_time(&state.finished_at);
    let exit_to_running_ms = exit_to_running.num_milliseconds();
    println!(
        "exit-to-running: {exit_to_running_ms} ms (Docker's FinishedAt of the crash to StartedAt of HemoStat's restart)"
    );
    assert_eq!(state.exit_code, Some(0), "running again");
    assert_eq!(healed.restart_count, Some(0), "restarted by HemoStat, not by a Docker restart policy");
    assert!(exit_to_running_ms <= 3000, "exit-to-running {exit_to_running_ms} ms exceeds 3 s");

    // The outcome is in Redis, with the real result.
    let done = wait_for(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        let name = container.name().to_owned();
        async move {
            let all = outcomes_for(&mut conn, &name).await;
            all.into_iter().find(|c| c.result.status == RemediationStatus::Success)
        }
    })
    .await
    .expect("remediation_complete with status success");
    assert_eq!(done.host, stack.host);
    assert_eq!(done.action, hemostat_protocol::Action::Restart);
    assert!(done.result.duration_ms.is_some());
    let record: String = conn.get(keys::remediation(&ContainerRef::new(&stack.host, container.name()))).await.unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["count"], 1, "seed remediation record: {record}");

    // Second crash inside the cooldown: refused, recorded, not restarted.
    let second_start = parse_time(&state.started_at);
    container.kill("USR1").await;
    let refused = wait_for(Duration::from_secs(15), || {
        let mut conn = conn.clone();
        let name = container.name().to_owned();
        async move {
            let all = outcomes_for(&mut conn, &name).await;
            all.into_iter().find(|c| c.result.status == RemediationStatus::Rejected)
        }
    })
    .await;
    let Some(refused) = refused else {
        panic!(
            "no refusal recorded.\nbridge:\n{}\ncollector:\n{}",
            stack.bridge.log_tail(40),
            stack.collector.log_tail(40)
        );
    };
    let reason = refused.result.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("cooldown"), "refusal reason: {reason}");
    let audit: Vec<String> =
        conn.lrange(keys::audit(&ContainerRef::new(&stack.host, container.name())), 0, -1).await.unwrap();
    assert!(audit.len() >= 2 && audit[0].contains("\"refused\""), "audit trail: {audit:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = container.state().await;
    assert_eq!(after.status, Some(ContainerStateStatusEnum::EXITED), "refused: must stay down");
    assert_eq!(parse_time(&after.started_at), second_start, "no restart after the refusal");

    // What `redis-cli SUBSCRIBE "hemostat:*"` showed: seed envelopes of every kind.
    let seen = seen.lock().await.clone();
    let mut kinds = Vec::new();
    for (channel, payload) in &seen {
        let value: serde_json::Value =
            serde_json::from_str(payload).unwrap_or_else(|e| panic!("{channel}: {e}: {payload}"));
        let mut fields: Vec<&String> = value.as_object().expect("object").keys().collect();
        fields.sort();
        assert_eq!(fields, ["agent", "data", "timestamp", "type"], "{channel}: {payload}");
        kinds.push(Envelope::parse(payload.as_bytes()).unwrap().kind);
    }
    for kind in [EventKind::HealthAlert, EventKind::RemediationNeeded, EventKind::RemediationComplete] {
        assert!(kinds.contains(&kind), "SUBSCRIBE \"hemostat:*\" showed no {kind}: {kinds:?}");
    }
    println!("SUBSCRIBE \"hemostat:*\" received {} seed envelopes: {kinds:?}", seen.len());

    // On a cluster as on one node: no component ever met a redirection or a
    // cross-slot error (the connection routes every command itself).
    for p in [&stack.emulator, &stack.bridge, &stack.collector] {
        let log = p.log();
        for word in ["MOVED", "Moved:", "ASK ", "CROSSSLOT", "CrossSlot"] {
            assert!(!log.contains(word), "{} logged {word}:\n{}", p.name(), p.log_tail(40));
        }
    }
}
