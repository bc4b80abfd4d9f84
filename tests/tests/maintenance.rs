//! Maintenance windows on the whole stack, with the real dockerd and a real
//! Redis (one node, or a cluster under `HEMOSTAT_TEST_REDIS=cluster`):
//!
//! - a container labelled `hemostat.maintenance` with a window open now
//!   crashes (as a database its backup job stops): alerted, refused with
//!   `silenced: hemostat.maintenance=... (maintenance window until ...)`,
//!   audited, left down;
//! - an operator's recurring silence set with `hemostat silence add
//!   --every`, open now: the same, with its reason;
//! - a closed window, of either kind: the crash is healed;
//! - `hemostat silence ls` shows the windows with their next opening, and
//!   `silence rm` removes one, after which a crash is healed.

use std::{process::Output, time::Duration};

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{
    ContainerSpec, RedisServer, TestContainer, docker, hemostat_cli, outcomes_for, start_stack, wait_for,
};
use hemostat_protocol::{
    ContainerRef,
    audit::{self, Verdict},
    connection::Connection,
    event::{RemediationComplete, RemediationStatus},
    keys,
};
use redis::AsyncCommands;
use serde_json::Value;

/// Exits 1 on SIGUSR1: a crash on demand.
const CRASHER: &str =
    r#"trap 'echo "panic: crashed on demand (SIGUSR1)" >&2; exit 1' USR1; while :; do sleep 0.2; done"#;

fn cli_json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out: Output = hemostat_cli(url, &all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "hemostat {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("hemostat {args:?} --json: {e}: {text}"))
}

/// `HH:MM` in UTC, `minutes` from now.
fn utc_clock(minutes: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes)).format("%H:%M").to_string()
}

/// A daily UTC window opening `minutes` from now (negative: opened already).
fn label(minutes: i64, length: &str) -> String {
    format!("every day at {} for {length} tz UTC", utc_clock(minutes))
}

async fn crashable(
    docker: &bollard::Docker,
    conn: &Connection,
    host: &str,
    labels: &[(&str, &str)],
) -> (TestContainer, ContainerRef) {
    let mut spec = ContainerSpec::shell(CRASHER).restart_policy(RestartPolicyNameEnum::NO);
    for (k, v) in labels {
        spec = spec.label(*k, *v);
    }
    let container = spec.start(docker).await;
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let c = ContainerRef::new(host, container.name());
    let reported = wait_for(Duration::from_secs(15), || {
        let mut conn = conn.clone();
        let key = c.key();
        async move { conn.sismember::<_, _, bool>(keys::CONTAINERS, &key).await.unwrap_or(false).then_some(()) }
    })
    .await;
    assert!(reported.is_some(), "the collector never reported {c}");
    (container, c)
}

/// The first outcome for `name` with `status`, within 20 s.
async fn outcome(conn: &Connection, name: &str, status: RemediationStatus) -> Option<RemediationComplete> {
    wait_for(Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let name = name.to_owned();
        async move { outcomes_for(&mut conn, &name).await.into_iter().find(|c| c.result.status == status) }
    })
    .await
}

fn started_at(c: &bollard::models::ContainerState) -> String {
    c.started_at.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_window_keeps_a_crash_from_being_healed_and_says_why_a_closed_one_does_not() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let docker = docker().await;
    let stack = start_stack(&url).await;
    let conn = redis.connection().await;
    let host = stack.host.clone();

    // A window opened 5 minutes ago for an hour, and one that opens in 2 hours.
    let open_label = label(-5, "1h");
    let (backed_up, backed_up_ref) = crashable(&docker, &conn, &host, &[("hemostat.maintenance", &open_label)]).await;
    let closed_label = label(120, "30m");
    let (later, _) = crashable(&docker, &conn, &host, &[("hemostat.maintenance", &closed_label)]).await;
    let (operated, operated_ref) = crashable(&docker, &conn, &host, &[]).await;
    let (scheduled, scheduled_ref) = crashable(&docker, &conn, &host, &[]).await;

    // Operators' recurring silences, by the CLI: one open now, one closed.
    let open_at = utc_clock(-5);
    let added = cli_json(
        &url,
        &[
            "silence",
            "add",
            &operated_ref.key(),
            "--every",
            "day",
            "--at",
            &open_at,
            "--for",
            "1h",
            "--tz",
            "UTC",
            "--reason",
            "nightly backup",
        ],
    );
    let operated_id = added["id"].as_str().expect("an id").to_owned();
    assert_eq!(added["next_window"]["open"], Value::Bool(true), "{added}");
    let closed_at = utc_clock(120);
    let added = cli_json(
        &url,
        &[
            "silence",
            "add",
            &scheduled_ref.key(),
            "--every",
            "mon,tue,wed,thu,fri,sat,sun",
            "--at",
            &closed_at,
            "--for",
            "30m",
            "--reason",
            "weekly vacuum",
        ],
    );
    assert_eq!(added["schedule"], format!("every day at {closed_at} for 30m tz UTC"), "{added}");
    assert_eq!(added["next_window"]["open"], Value::Bool(false), "{added}");

    // `silence ls`: both windows, with their next opening.
    let listed = cli_json(&url, &["silence", "ls"]);
    let windows: Vec<&Value> = listed.as_array().unwrap().iter().filter(|v| v.get("schedule").is_some()).collect();
    assert_eq!(windows.len(), 2, "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 2, "an open window is listed once, as a window: {listed}");

    let before = |c: &TestContainer| {
        let c = c.id().to_owned();
        let docker = docker.clone();
        async move { started_at(&docker.inspect_container(&c, None).await.unwrap().state.unwrap()) }
    };
    let (backed_up_start, operated_start) = (before(&backed_up).await, before(&operated).await);
    for c in [&backed_up, &later, &operated, &scheduled] {
        c.kill("USR1").await;
    }

    // Open windows: refused with the window's reason and end, audited, left down.
    let refused = outcome(&conn, backed_up.name(), RemediationStatus::Rejected)
        .await
        .unwrap_or_else(|| panic!("the labelled crash was not refused:\n{}", stack.collector.log_tail(40)));
    let reason = refused.result.reason.clone().unwrap_or_default();
    let want = format!("silenced: hemostat.maintenance={open_label} (maintenance window until ");
    assert!(reason.starts_with(&want), "{reason}");
    let mut c = conn.clone();
    let audited = audit::newest(&mut c, &backed_up_ref, 10).await.unwrap();
    assert!(audited.iter().flatten().any(|e| e.verdict == Verdict::Refused && e.reason == reason), "{audited:?}");
    let refused = outcome(&conn, operated.name(), RemediationStatus::Rejected)
        .await
        .unwrap_or_else(|| panic!("the operator's window did not refuse:\n{}", stack.collector.log_tail(40)));
    let reason = refused.result.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("silenced: nightly backup (maintenance window until "), "{reason}");

    // Closed windows: healed.
    for c in [&later, &scheduled] {
        let healed = outcome(&conn, c.name(), RemediationStatus::Success).await;
        assert!(healed.is_some(), "{} was not healed:\n{}", c.name(), stack.collector.log_tail(40));
    }
    for (c, start) in [(&backed_up, backed_up_start), (&operated, operated_start)] {
        let state = c.state().await;
        assert_eq!((state.status, started_at(&state)), (Some(ContainerStateStatusEnum::EXITED), start));
    }

    // `silence rm` lifts the operator's window: the next crash is healed.
    let removed = cli_json(&url, &["silence", "rm", &operated_id]);
    assert_eq!(removed["removed"], operated_id.as_str());
    docker.start_container(operated.id(), None).await.unwrap();
    operated.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    operated.kill("USR1").await;
    let healed = outcome(&conn, operated.name(), RemediationStatus::Success).await;
    assert!(healed.is_some(), "not healed once its window was removed:\n{}", stack.collector.log_tail(40));
    let listed = cli_json(&url, &["silence", "ls"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}
