//! `hemostat`, the operator's command, run as the built binary against a
//! real Redis (one node, or a cluster under `HEMOSTAT_TEST_REDIS=cluster`),
//! every verb; and on the whole stack with the real dockerd, a silence that
//! holds (the crash is refused with the silence's reason), expires (the next
//! crash is healed), and a manual remediation through the same gate; a
//! label silence, matched by the collector on labels that never leave the
//! host, refuses until it is removed; and `explain` previews the gate's own
//! decision (a container's own cooldown and hourly cap, an alert's `held`)
//! on the bridge, analyzer and responder.

use std::{process::Output, time::Duration};

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{
    ContainerSpec, Process, RedisServer, bench::crash_alert, docker, hemostat_cli, outcomes_for, start_bridge,
    start_emulator, start_stack, stream_events, wait_for, workspace_root,
};
use hemostat_protocol::{
    ContainerRef, Envelope, EventKind, Publisher, RedisPublisher,
    audit::{self, AuditEntry, AuditRequest, Verdict},
    envelope::agent,
    event::{HealthAlert, RemediationComplete, RemediationStatus},
    keys,
    policy::Policy,
};
use redis::AsyncCommands;
use serde_json::{Value, json};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Succeeds, or panics with what it said.
fn ok(url: &str, args: &[&str]) -> String {
    let out = hemostat_cli(url, args);
    assert!(out.status.success(), "hemostat {args:?} exited {}: {}{}", out.status, stdout(&out), stderr(&out));
    stdout(&out)
}

fn ok_json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(url, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("hemostat {args:?} --json: {e}: {text}"))
}

/// Fails with `code` and a one-line message containing `needle`, never a panic or a backtrace.
fn fails(url: &str, args: &[&str], code: i32, needle: &str) -> String {
    let out = hemostat_cli(url, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "hemostat {args:?}: {}{err}", stdout(&out));
    assert!(err.contains(needle), "hemostat {args:?}: expected {needle:?} in: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace") && !err.contains("RUST_BACKTRACE"), "{err}");
    if code == 1 {
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    err
}

fn envelope(kind: EventKind, data: Value) -> Envelope {
    Envelope::new(agent::MONITOR, kind, &data).unwrap()
}

/// A successful restart of `cli-host/<container>` that took `ms`.
fn restarted(container: &str, ms: u64) -> Envelope {
    envelope(
        EventKind::RemediationComplete,
        json!({"container": container, "host": "cli-host", "action": "restart",
               "result": {"status": "success", "action": "restart", "container": container, "duration_ms": ms}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_on_redis() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let mut conn = redis.connection().await;
    let c = ContainerRef::new("cli-host", "api");
    let now = chrono::Utc::now().timestamp_millis();

    // What a collector and the gate leave in Redis: a heartbeat, a
    // container with stats, three actions this hour (breaker open), audit.
    let _: () = conn.zadd(keys::COLLECTORS, &c.host, now - 2000).await.unwrap();
    let _: () = conn.set_ex(keys::heartbeat(&c.host), "{}", 30).await.unwrap();
    hemostat_e2e::report_container(&conn, &c, "shop/api:2", Policy::default()).await;
    let stats = json!({"name": "api", "status": "running", "cpu_pct": 12.5, "memory_pct": 40.0, "health": "healthy", "image": "shop/api:2"});
    let _: () = conn.set_ex(keys::stats(&c), stats.to_string(), 300).await.unwrap();
    for (i, ago) in [50_000, 30_000, 10_000].iter().enumerate() {
        let _: () = conn.zadd(keys::action_log(&c), format!("cmd-{i}"), now - ago).await.unwrap();
    }
    let _: () = conn.set_ex(keys::remediation(&c), r#"{"last_action":"x","count":3}"#, 3600).await.unwrap();
    for (verdict, reason) in
        [(Verdict::Allowed, ""), (Verdict::Refused, "cooldown: last action 5.0s ago, cooldown is 3600s")]
    {
        let request = AuditRequest {
            host: c.host.clone(),
            container: c.name.clone(),
            action: "restart".into(),
            ..Default::default()
        };
        let entry = AuditEntry { request, verdict, reason: reason.into(), at_ms: now };
        let mut pipe = redis::pipe();
        audit::push(&mut pipe, &c, &entry).unwrap();
        let () = pipe.query_async(&mut conn).await.unwrap();
    }

    // status: hosts, containers, breakers, in text and JSON.
    let text = ok(&url, &["status"]);
    assert!(text.contains("cli-host") && text.contains("alive") && text.contains("cli-host/api"), "{text}");
    assert!(text.contains("12.5%") && text.contains("healthy"), "{text}");
    let status = ok_json(&url, &["status"]);
    assert_eq!(status["hosts"][0]["host"], "cli-host");
    assert_eq!(status["hosts"][0]["alive"], true);
    assert_eq!(status["containers"][0]["cpu_pct"], 12.5);
    assert_eq!(status["circuit_breakers"][0]["container"], "cli-host/api", "{status}");

    // audit: newest first.
    let audit = ok_json(&url, &["audit", "cli-host/api"]);
    assert_eq!(audit[0]["verdict"], "refused");
    assert_eq!(audit[1]["verdict"], "allowed");
    assert!(ok(&url, &["audit", "cli-host/api"]).lines().next().unwrap().contains("refused"));

    // explain: cooldown remaining, actions against the limit, the verdict.
    let explain = ok_json(&url, &["explain", "cli-host/api"]);
    assert_eq!(explain["actions_last_hour"], 3);
    assert_eq!(explain["circuit_breaker_open"], true);
    let left = explain["cooldown_remaining_seconds"].as_i64().unwrap();
    assert!((3580..=3590).contains(&left), "cooldown left: {left}");
    assert!(explain["verdict"].as_str().unwrap().starts_with("would refuse: cooldown"), "{explain}");
    let with_short_cooldown = ok_json(&url, &["explain", "cli-host/api", "--cooldown", "5s"]);
    assert!(with_short_cooldown["verdict"].as_str().unwrap().contains("circuit breaker"), "{with_short_cooldown}");

    // silences: add, listed everywhere, matched by explain, removed, expired.
    let added = ok_json(&url, &["silence", "add", "cli-host/api", "--for", "2h", "--reason", "db migration"]);
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!((added["kind"].as_str(), added["by"].as_str()), (Some("container"), Some("tester")));
    let explain = ok_json(&url, &["explain", "cli-host/api"]);
    let verdict = explain["verdict"].as_str().unwrap();
    assert!(verdict.starts_with("would refuse: silenced: db migration (until "), "{verdict}");
    let _ = ok_json(&url, &["silence", "add", "image:shop/api", "--for", "1s", "--reason", "short"]);
    let listed = ok_json(&url, &["silence", "ls"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(ok(&url, &["status"]).contains("db migration"));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let listed = ok_json(&url, &["silence", "ls"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "the 1s silence expired by itself: {listed}");
    ok(&url, &["silence", "rm", &id]);
    assert_eq!(ok_json(&url, &["silence", "ls"]), json!([]));
    fails(&url, &["silence", "rm", &id], 1, "no silence");

    // reset: cooldown and breaker gone, the audit says who.
    let text = ok(&url, &["reset", "cli-host/api"]);
    assert!(text.contains("3 recorded actions forgotten"), "{text}");
    let actions: u64 = conn.zcard(keys::action_log(&c)).await.unwrap();
    let record: Option<String> = conn.get(keys::remediation(&c)).await.unwrap();
    assert_eq!((actions, record), (0, None));
    let audit = ok_json(&url, &["audit", "cli-host/api", "--limit", "1"]);
    assert_eq!(audit.as_array().unwrap().len(), 1);
    assert_eq!(audit[0]["reason"], "reset by operator tester");
    let explain = ok_json(&url, &["explain", "cli-host/api"]);
    assert_eq!(
        (explain["cooldown_remaining_seconds"].as_i64(), explain["circuit_breaker_open"].as_bool()),
        (Some(0), Some(false))
    );
    assert_eq!(ok_json(&url, &["status"])["circuit_breakers"], json!([]));

    // events: the newest, filtered by container and type.
    let publisher = RedisPublisher::new(redis.connection().await);
    let alert = envelope(
        EventKind::HealthAlert,
        json!({"container": "api", "host": "cli-host", "issues": ["Exited with code 1"], "metrics": {"name": "api"}}),
    );
    let other = envelope(
        EventKind::HealthAlert,
        json!({"container": "db", "host": "cli-host", "issues": ["High CPU: 99%"], "metrics": {"name": "db"}}),
    );
    publisher.publish(&alert).await.unwrap();
    publisher.publish(&other).await.unwrap();
    let text = ok(&url, &["events", "--container", "cli-host/api"]);
    assert!(
        text.contains("health_alert") && text.contains("Exited with code 1") && !text.contains("High CPU"),
        "{text}"
    );
    let text = ok(&url, &["events", "--type", "false_alarm"]);
    assert!(text.trim().is_empty(), "{text}");
    assert!(ok(&url, &["status"]).contains("ACTIVE ISSUES (2)"));

    // events --follow: the live stream, readable, filtered.
    let follow =
        Process::builder("hemostat").args(["events", "--follow", "--container", "api"]).env("REDIS_URL", &url).spawn();
    follow.wait_for_line("following hemostat:*", Duration::from_secs(10)).await;
    publisher.publish(&other).await.unwrap();
    let done = restarted("api", 812);
    publisher.publish(&done).await.unwrap();
    let line = follow.wait_for_line("remediation_complete", Duration::from_secs(10)).await;
    assert!(line.contains("cli-host/api") && line.contains("restart success") && line.contains("812 ms"), "{line}");
    assert!(!follow.log().contains("High CPU"), "filtered out: {}", follow.log());
    follow.kill();

    // dlq: listed with the reason, replayed into its stream, dropped.
    let stream = EventKind::FalseAlarm.stream();
    let body = envelope(EventKind::FalseAlarm, json!({"container": "api", "reason": "replayed"})).to_json();
    let fields = [
        ("stream", stream.as_str()),
        ("group", "hemostat-alert"),
        ("function", "alert"),
        ("id", "1-0"),
        ("reason", "malformed: x"),
        ("attempts", "5"),
    ];
    let mut dead: Vec<String> = Vec::new();
    for _ in 0..3 {
        let mut all = fields.to_vec();
        all.push(("envelope", &body));
        dead.push(conn.xadd(keys::DEAD_LETTER_STREAM, "*", &all).await.unwrap());
    }
    let text = ok(&url, &["dlq", "ls"]);
    assert!(text.contains("DEAD LETTERS (3)") && text.contains("malformed: x"), "{text}");
    let before: usize = conn.xlen(&stream).await.unwrap();
    ok(&url, &["dlq", "replay", &dead[0]]);
    let after: usize = conn.xlen(&stream).await.unwrap();
    assert_eq!(after, before + 1, "replayed into {stream}");
    let newest: redis::streams::StreamRangeReply = conn.xrevrange_count(&stream, "+", "-", 1).await.unwrap();
    let replay_for: Option<String> = newest.ids[0].get(hemostat_protocol::publisher::REPLAY_FOR_FIELD);
    assert_eq!(replay_for.as_deref(), Some("hemostat-alert"), "for the group that gave up on it only");
    ok(&url, &["dlq", "drop", &dead[1]]);
    fails(&url, &["dlq", "drop", &dead[1]], 1, "no dead letter");
    let rows = ok_json(&url, &["dlq", "ls"]);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    ok(&url, &["dlq", "replay", "--all"]);
    assert_eq!(ok_json(&url, &["dlq", "ls"]), json!([]));
    assert_eq!(conn.xlen::<_, usize>(&stream).await.unwrap(), before + 2);

    // Bad input: a clear line and a non-zero exit, never a backtrace.
    fails(&url, &["explain", "cli-host/nope"], 1, "unknown container cli-host/nope");
    fails(&url, &["audit", "nohost"], 2, "expected host/name");
    fails(&url, &["silence", "add", "cli-host/api", "--for", "2 fortnights", "--reason", "x"], 2, "--for");
    fails(&url, &["silence", "add", "planet:mars", "--for", "1h", "--reason", "x"], 2, "expected host/name");
    fails(&url, &["remediate", "cli-host/api", "reboot"], 2, "expected one of restart");
    fails(&url, &["events", "--type", "gossip"], 2, "expected one of health_alert");
    let err = fails("redis://:pw-5ecret@127.0.0.1:1", &["status"], 1, "cannot reach Redis at redis://***@127.0.0.1:1");
    assert!(!err.contains("5ecret"), "{err}");
    for verb in [
        &["status"][..],
        &["events"],
        &["explain"],
        &["audit"],
        &["silence", "add"],
        &["silence", "ls"],
        &["silence", "rm"],
        &["reset"],
        &["remediate"],
        &["dlq", "ls"],
        &["dlq", "replay"],
        &["dlq", "drop"],
    ] {
        let mut args = verb.to_vec();
        args.push("--help");
        let help = ok("redis://127.0.0.1:1", &args);
        assert!(help.contains("Usage: hemostat") && help.contains("--json"), "{verb:?} --help: {help}");
    }
}

fn started_at(state: &bollard::models::ContainerState) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(state.started_at.as_deref().unwrap()).unwrap().into()
}

/// A container that exits 1 on `SIGUSR1` (a crash on demand), running and
/// reported by the stack's collector.
async fn crashable(
    docker: &bollard::Docker,
    stack: &hemostat_e2e::Stack,
    conn: &hemostat_protocol::connection::Connection,
    labels: &[(&str, &str)],
) -> (hemostat_e2e::TestContainer, ContainerRef) {
    let mut spec = ContainerSpec::shell(
        r#"trap 'echo "panic: crashed on demand (SIGUSR1)" >&2; exit 1' USR1; while :; do sleep 0.2; done"#,
    )
    .restart_policy(RestartPolicyNameEnum::NO);
    for (k, v) in labels {
        spec = spec.label(*k, *v);
    }
    let container = spec.start(docker).await;
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let c = ContainerRef::new(&stack.host, container.name());
    let reported = wait_for(Duration::from_secs(15), || {
        let mut conn = conn.clone();
        let key = c.key();
        async move { conn.sismember::<_, _, bool>(keys::CONTAINERS, &key).await.unwrap_or(false).then_some(()) }
    })
    .await;
    assert!(reported.is_some(), "the collector never reported {c}:\n{}", stack.collector.log_tail(40));
    (container, c)
}

/// The first outcome for `name` with `status`, within `within`.
async fn outcome(
    conn: &hemostat_protocol::connection::Connection,
    name: &str,
    status: RemediationStatus,
    within: Duration,
) -> Option<RemediationComplete> {
    wait_for(within, || {
        let mut conn = conn.clone();
        let name = name.to_owned();
        async move { outcomes_for(&mut conn, &name).await.into_iter().find(|c| c.result.status == status) }
    })
    .await
}

/// Starts `container` again, crashes it, and waits for HemoStat to restart it.
async fn crash_is_healed(container: &hemostat_e2e::TestContainer, docker: &bollard::Docker) -> bool {
    docker.start_container(container.id(), None).await.unwrap();
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let start = started_at(&container.state().await);
    container.kill("USR1").await;
    wait_for(Duration::from_secs(20), || async {
        let state = container.state().await;
        (state.running == Some(true) && started_at(&state) > start).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_refuses_until_it_expires_and_remediate_goes_through_the_gate() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let docker = docker().await;
    let stack = start_stack(&url).await;
    let conn = redis.connection().await;

    let (container, c) = crashable(&docker, &stack, &conn, &[]).await;
    let target = c.key();

    // Silenced: the crash is refused with the silence's reason, and stays down.
    let silence = ok_json(&url, &["silence", "add", &target, "--for", "3s", "--reason", "maintenance window"]);
    let until = silence["until"].as_str().unwrap().to_owned();
    let first_start = started_at(&container.state().await);
    container.kill("USR1").await;
    let refused = outcome(&conn, container.name(), RemediationStatus::Rejected, Duration::from_secs(15))
        .await
        .unwrap_or_else(|| {
            panic!("no refusal.\nbridge:\n{}\ncollector:\n{}", stack.bridge.log_tail(40), stack.collector.log_tail(40))
        });
    let reason = refused.result.reason.clone().unwrap_or_default();
    assert_eq!(reason, format!("silenced: maintenance window (until {until})"));
    assert!(refused.result.details.as_deref().unwrap_or("").contains("by tester"), "{:?}", refused.result.details);
    let audit = ok_json(&url, &["audit", &target]);
    assert_eq!((audit[0]["verdict"].as_str(), audit[0]["reason"].as_str()), (Some("refused"), Some(reason.as_str())));
    let explained = ok(&url, &["explain", &target]);
    assert!(explained.contains("maintenance window"), "{explained}");
    let state = container.state().await;
    assert_eq!(state.status, Some(ContainerStateStatusEnum::EXITED), "silenced: not restarted");
    assert_eq!(started_at(&state), first_start);

    // Expired: the silence ends by itself and the next crash is healed.
    let expired = wait_for(Duration::from_secs(10), || {
        let url = url.clone();
        async move { (ok_json(&url, &["silence", "ls"]) == json!([])).then_some(()) }
    })
    .await;
    assert!(expired.is_some(), "the 3s silence did not expire");
    let healed = crash_is_healed(&container, &docker).await;
    assert!(healed, "not healed after the silence expired.\ncollector:\n{}", stack.collector.log_tail(40));
    let success = outcome(&conn, container.name(), RemediationStatus::Success, Duration::from_secs(10)).await;
    assert!(success.is_some(), "no success recorded");

    // remediate: through the same gate, so the cooldown refuses it...
    let out = hemostat_cli(&url, &["remediate", &target, "restart", "--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1), "refused by the cooldown: {}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("rejected: cooldown"), "{}{}", stdout(&out), stderr(&out));
    // ...and after a reset the manual restart is executed and verified.
    ok(&url, &["reset", &target]);
    let before = started_at(&container.state().await);
    let outcome = ok_json(&url, &["remediate", &target, "restart", "--timeout", "30s"]);
    assert_eq!(outcome["data"]["result"]["status"], "success", "{outcome}");
    assert_eq!(outcome["data"]["analysis_method"], "manual", "{outcome}");
    assert!(outcome["data"]["reason"].as_str().unwrap().starts_with("manual restart by operator tester"), "{outcome}");
    assert!(started_at(&container.state().await) > before, "restarted by the manual remediation");
    let audit = ok_json(&url, &["audit", &target, "--limit", "3"]);
    assert_eq!(audit[0]["verdict"], "allowed");
    assert_eq!(audit[1]["reason"], "reset by operator tester");
}

/// `remediate <c> recreate`: through the same gate, signed, carried out by
/// the collector: a new container of the same configuration under the same
/// name, verified, the old one removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediate_recreate_replaces_the_container_through_the_gate() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let docker = docker().await;
    let stack = start_stack(&url).await;
    let conn = redis.connection().await;
    let (container, c) = crashable(&docker, &stack, &conn, &[("app.tier", "edge")]).await;

    let outcome = ok_json(&url, &["remediate", &c.key(), "recreate", "--timeout", "30s"]);
    let now = docker
        .inspect_container(container.name(), None::<bollard::query_parameters::InspectContainerOptions>)
        .await
        .unwrap();
    // The new container, under the old one's name: its guard removes by id.
    let options = bollard::query_parameters::RemoveContainerOptions { force: true, v: true, link: false };
    docker.remove_container(container.name(), Some(options)).await.unwrap();
    assert_eq!(outcome["data"]["result"]["status"], "success", "{outcome}");
    assert_eq!(outcome["data"]["result"]["verified"], true, "{outcome}");
    assert_eq!(outcome["data"]["action"], "recreate", "{outcome}");
    assert!(outcome["data"]["reason"].as_str().unwrap().starts_with("manual recreate by operator tester"), "{outcome}");
    assert_ne!(now.id.as_deref(), Some(container.id()), "a new container");
    let labels = now.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(labels.get("app.tier").map(String::as_str), Some("edge"), "{labels:?}");
    assert_eq!(now.state.and_then(|s| s.running), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_silence_is_matched_on_the_host_and_lifted_by_silence_rm() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let docker = docker().await;
    let stack = start_stack(&url).await;
    let conn = redis.connection().await;
    // A label that is nobody's business off the host rides along.
    let labels = [("team", "payments"), ("db.password", "hunter2-label-secret")];
    let (container, c) = crashable(&docker, &stack, &conn, &labels).await;
    let target = c.key();

    let silence =
        ok_json(&url, &["silence", "add", "label:team=payments", "--for", "1h", "--reason", "payments freeze"]);
    let (id, until) = (silence["id"].as_str().unwrap().to_owned(), silence["until"].as_str().unwrap().to_owned());
    let other = ok_json(&url, &["silence", "add", "label:team=ops", "--for", "1h", "--reason", "not this one"]);
    container.kill("USR1").await;
    let refused = outcome(&conn, container.name(), RemediationStatus::Rejected, Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("no refusal.\ncollector:\n{}", stack.collector.log_tail(40)));
    assert_eq!(refused.result.reason.as_deref(), Some(format!("silenced: payments freeze (until {until})").as_str()));
    assert_eq!(container.state().await.status, Some(ContainerStateStatusEnum::EXITED), "silenced: not restarted");

    // The alert names the silence that selected it, and no label travels.
    let alerts: Vec<Value> = stream_events::<Value>(&mut conn.clone(), EventKind::HealthAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a["container"] == container.name())
        .collect();
    assert_eq!(alerts.last().map(|a| a["silenced_by"].clone()), Some(json!([id])), "{alerts:?}");
    let everything = serde_json::to_string(&alerts).unwrap();
    assert!(!everything.contains("hunter2") && !everything.contains("payments"), "labels left the host: {everything}");
    let explained = ok(&url, &["explain", &target]);
    assert!(explained.contains("would refuse: silenced: payments freeze"), "{explained}");

    // Removed: the next crash is healed, though the alert still names it
    // until the collector's list is read again: the gate asks which still hold.
    ok(&url, &["silence", "rm", &id]);
    ok(&url, &["silence", "rm", other["id"].as_str().unwrap()]);
    assert!(crash_is_healed(&container, &docker).await, "not healed.\ncollector:\n{}", stack.collector.log_tail(40));
}

/// A crash alert of `gate-host/<name>`, as its collector publishes it, with
/// what its labels and the collector tell the gate.
fn crash(name: &str, policy: Option<Policy>, held: Option<&str>) -> Envelope {
    let mut alert: HealthAlert =
        crash_alert("gate-host", name, None, "shop/api:1").data_of(EventKind::HealthAlert).unwrap();
    alert.policy = policy;
    alert.held = held.map(str::to_owned);
    // A crash of a cause a restart can fix, provoked from outside (`docker
    // kill -s USR1`, as the collector's events show it), so a second one
    // within minutes is still restarted (one nothing explains would not
    // be, nor the same failure on its own).
    let mut evidence = hemostat_protocol::evidence::Evidence::default();
    evidence.logs.lines = vec![hemostat_protocol::evidence::LogLine {
        stream: hemostat_protocol::evidence::LogStream::Stderr,
        line: "panic: crashed on demand (SIGUSR1)".into(),
        timestamp: None,
    }];
    let event = |action: &str, signal| hemostat_protocol::evidence::DockerEvent {
        action: action.into(),
        signal,
        ..Default::default()
    };
    evidence.events = vec![event("start", None), event("kill", Some(10)), event("die", None)];
    (evidence.state.exit_code, evidence.state.status) = (Some(1), Some("exited".into()));
    alert.evidence = Some(evidence);
    Envelope::new(agent::MONITOR, EventKind::HealthAlert, &alert).unwrap()
}

/// The newest gate decision on `target` once there are `count`, within 20 s.
fn decisions(url: &str, target: &str, count: usize) -> Option<Value> {
    for _ in 0..200 {
        let audit = ok_json(url, &["audit", target]);
        if audit.as_array().is_some_and(|a| a.len() >= count) {
            return Some(audit[0].clone());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn verdict(url: &str, target: &str) -> String {
    ok_json(url, &["explain", target])["verdict"].as_str().unwrap_or_default().to_owned()
}

/// The bridge, the analyzer and the responder (no collector: the tests
/// publish its alerts), and what a collector on `gate-host` reports of
/// `containers` (each with the policy its labels make).
async fn functions_on(redis: &RedisServer, containers: &[(&str, Policy)]) -> (Process, Process) {
    let url = redis.url();
    let template = workspace_root().join("template.yaml");
    let (emulator, endpoint) = start_emulator(|b| {
        b.args(["--template", template.to_str().unwrap()])
            .env("REDIS_URL", &url)
            .env("HEMOSTAT_COMMAND_SIGNING_KEY", &hemostat_e2e::test_keys().private)
            .env("RUST_LOG", "info")
    })
    .await;
    let bridge =
        start_bridge(|b| b.env("REDIS_URL", &url).env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint).env("RUST_LOG", "info"))
            .await;
    let conn = redis.connection().await;
    for (name, policy) in containers {
        hemostat_e2e::report_container(&conn, &ContainerRef::new("gate-host", *name), "shop/api:1", policy.clone())
            .await;
    }
    (emulator, bridge)
}

/// What `explain` says is what the gate then does, by a container's own
/// cooldown (5 s, the fleet's is an hour) and hourly cap (2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_and_the_gate_go_by_a_containers_own_cooldown_and_cap() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    // hemostat.cooldown=5s, hemostat.max_actions_per_hour=2.
    let policy = Policy { cooldown_seconds: Some(5), max_actions_per_hour: Some(2), ..Policy::default() };
    let _functions = functions_on(&redis, &[("quick", policy.clone())]).await;
    let mut conn = redis.connection().await;
    let publisher = RedisPublisher::new(conn.clone());
    let quick = "gate-host/quick";
    publisher.publish(&crash("quick", Some(policy.clone()), None)).await.unwrap();
    let first = decisions(&url, quick, 1).expect("no gate decision on the first crash");
    assert_eq!(first["verdict"], "allowed", "{first}");
    let acted_ms = first["at_ms"].as_i64().unwrap();
    let said = verdict(&url, quick);
    if chrono::Utc::now().timestamp_millis() - acted_ms < 4000 {
        assert!(said.starts_with("would refuse: cooldown: ") && said.ends_with("cooldown is 5s"), "{said}");
    }
    // Its own cooldown over (the fleet's is not): allowed, and so it is.
    let wait = (acted_ms + 5200 - chrono::Utc::now().timestamp_millis()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let said = verdict(&url, quick);
    assert_eq!(said, "would allow an action now (unless the fleet brake holds for its image)");
    publisher.publish(&crash("quick", Some(policy.clone()), None)).await.unwrap();
    let second = decisions(&url, quick, 2).expect("no gate decision on the second crash");
    assert_eq!((second["verdict"].as_str(), second["reason"].as_str()), (Some("allowed"), Some("")), "{second}");
    let commands: usize = conn.xlen(keys::commands("gate-host")).await.unwrap();
    assert_eq!(commands, 2, "both crashes were acted on");
    // Its own hourly cap reached: status lists its breaker with its cap.
    let status = ok_json(&url, &["status"]);
    let breakers = status["circuit_breakers"].as_array().unwrap();
    assert!(breakers.iter().any(|b| b["container"] == quick && b["max"] == 2), "{status}");
}

/// A held container (an operator's own docker restart, within the grace):
/// `explain` and the gate refuse it with the collector's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_and_the_gate_refuse_a_held_container_alike() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let _functions = functions_on(&redis, &[("held", Policy::default())]).await;
    let mut conn = redis.connection().await;
    let publisher = RedisPublisher::new(conn.clone());

    let held = "operator: docker restart 1 s ago (grace 30 s)";
    let target = "gate-host/held";
    publisher.publish(&crash("held", None, Some(held))).await.unwrap();
    let refused = decisions(&url, target, 1).expect("no gate decision on the held crash");
    assert_eq!((refused["verdict"].as_str(), refused["reason"].as_str()), (Some("refused"), Some(held)), "{refused}");
    assert_eq!(verdict(&url, target), format!("would refuse: {held}"));
    let commands: usize = conn.xlen(keys::commands("gate-host")).await.unwrap();
    assert_eq!(commands, 0, "nothing dispatched for the held container");
}

/// `events --follow` given one seed of a cluster goes on after that node
/// dies: it resubscribes on a node the cluster names, and the next event is
/// printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_outlives_the_node_it_follows_on_a_cluster() {
    if !hemostat_e2e::redis_server::cluster_mode() {
        eprintln!("cluster only (HEMOSTAT_TEST_REDIS=cluster): a single node has no other node to move to");
        return;
    }
    let mut cluster = hemostat_e2e::RedisCluster::start().await;
    // `follow` subscribes first on the first node the cluster names: that
    // node is given as the only seed, and killed.
    let probe = hemostat_protocol::connection::Target::from_env(&cluster.url()).unwrap();
    let first = probe.subscriber_clients(&probe.connect().await.unwrap()).await.remove(0);
    let seed = first.get_connection_info().addr().to_string();
    let seed_port: u16 = seed.rsplit(':').next().and_then(|p| p.parse().ok()).expect("host:port");
    let follow = Process::builder("hemostat")
        .args(["events", "--follow"])
        .env("REDIS_URL", format!("redis://{seed}"))
        .env_remove("REDIS_CLUSTER")
        .spawn();
    follow.wait_for_line(&format!("following hemostat:* on {seed}"), Duration::from_secs(10)).await;

    cluster.kill(seed_port);
    cluster.wait_for_failover(seed_port, Duration::from_secs(30)).await;
    follow.wait_for_line(&format!("the subscription on {seed} ended"), Duration::from_secs(10)).await;
    let again = follow.wait_for_line("following hemostat:* on", Duration::from_secs(30)).await;
    assert!(!again.contains(&seed), "resubscribed on the dead node: {again}");

    let survivors: Vec<String> =
        cluster.ports().into_iter().filter(|&p| p != seed_port).map(|p| format!("redis://127.0.0.1:{p}")).collect();
    let publisher = RedisPublisher::new(hemostat_protocol::connection::connect(&survivors.join(",")).await.unwrap());
    let done = restarted("after-failover", 90);
    publisher.publish(&done).await.unwrap();
    let line = follow.wait_for_line("cli-host/after-failover", Duration::from_secs(10)).await;
    assert!(line.contains("restart success"), "{line}");
    follow.kill();
}

/// `events --follow` on a single node that restarts (a package upgrade, an
/// OOM kill under systemd) picks the stream up again on the same node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_picks_up_again_after_its_redis_restarts() {
    let mut redis = RedisServer::start_node().await;
    let url = redis.url();
    let follow = Process::builder("hemostat").args(["events", "--follow"]).env("REDIS_URL", &url).spawn();
    follow.wait_for_line("following hemostat:* on", Duration::from_secs(10)).await;

    // Down for a few seconds: a follower that gave up at the first refusal
    // would have exited by the time it is back.
    redis.stop();
    follow.wait_for_line("ended (Redis closed the connection)", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.restart().await;
    follow.wait_for_line("following hemostat:* on", Duration::from_secs(20)).await;
    let publisher = RedisPublisher::new(redis.connection().await);
    let done = restarted("after-restart", 70);
    publisher.publish(&done).await.unwrap();
    let line = follow.wait_for_line("cli-host/after-restart", Duration::from_secs(10)).await;
    assert!(line.contains("restart success"), "{line}");
    follow.kill();
}
