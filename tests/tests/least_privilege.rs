//! Redis ACL users per role (`hemostat acl`, `hemostat_protocol::acl`) on a
//! real Redis, single node and (with `HEMOSTAT_TEST_REDIS=cluster`) cluster:
//! - the whole stack, every component logged in as its own user, heals a
//!   crashed container, and no component is ever refused a command;
//! - a collector's credentials cannot write another host's command stream,
//!   facts or markers, cannot ask for a remediation (neither on the channel
//!   nor on the stream the bridge delivers from), cannot touch silences or
//!   the gate's state, and cannot run the commands that reach past keys;
//! - nor raise an alert for another host's container: Redis refuses its
//!   attestation, and the analyzer dead-letters the unattested alert;
//! - nor can the bridge's (which writes every stream): the responder acts
//!   only on requests an analyzer attested, so a request put on its stream
//!   by hand, or a forged dead letter an operator replays, is dead-lettered;
//! - a seed-protocol publisher may ask for a remediation and nothing more,
//!   and the dashboard may only read, and publish (and attest) answers to
//!   approvals.

use std::time::Duration;

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{
    ContainerSpec, RedisServer, bench::crash_alert, bin_dir, create_users, docker, stack::StackEnv, start_stack_with,
    stream_events, wait_for,
};
use hemostat_protocol::{
    ContainerRef, Envelope, EventKind,
    acl::Role,
    connection::{Connection, connect},
    event::{RemediationComplete, RemediationNeeded, RemediationStatus},
    keys,
    publisher::{ENVELOPE_FIELD, Publisher, RedisPublisher, dead_letter},
};
use redis::AsyncCommands;

/// What a refused command answers.
const NOPERM: &str = "NoPerm";

async fn as_user(url: &str) -> Connection {
    connect(url).await.unwrap_or_else(|e| panic!("logging in: {e}"))
}

/// Runs `args` as the connection's user; the error's text when refused.
async fn run(conn: &Connection, args: &[&str]) -> Result<(), String> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async::<redis::Value>(&mut conn.clone()).await.map(|_| ()).map_err(|e| e.to_string())
}

async fn refused(conn: &Connection, args: &[&str]) {
    match run(conn, args).await {
        // The line `scripts/security-figures.sh` counts.
        Err(e) if e.contains(NOPERM) => println!("attack refused: redis credentials: {}", args[0]),
        other => panic!("{args:?} was not refused: {other:?}"),
    }
}

async fn allowed(conn: &Connection, args: &[&str]) {
    if let Err(e) = run(conn, args).await {
        panic!("{args:?} was refused: {e}");
    }
}

fn needed(container: &str) -> Envelope {
    let data = serde_json::json!({
        "container": container, "host": "web-2", "action": "restart", "reason": "forged",
        "confidence": 1.0, "analysis_method": "rule_based",
    });
    Envelope::new("custom-analyzer", EventKind::RemediationNeeded, &data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collectors_credentials_reach_its_own_host_only() {
    let redis = RedisServer::start().await;
    let (mine, theirs) = ("web-1", "web-2");
    let roles = [Role::Collector(mine.into()), Role::Publisher, Role::Dashboard];
    let users = create_users(&redis.url(), &roles).await;
    let collector = as_user(users.url(&roles[0])).await;

    // Its own host: the command stream it reads, its facts, stats, markers.
    let own = ContainerRef::new(mine, "db");
    allowed(&collector, &["XADD", &keys::commands(mine), "*", "k", "v"]).await;
    allowed(&collector, &["HSET", &keys::facts(&own), "container", "{}"]).await;
    allowed(&collector, &["SET", &keys::stats(&own), "{}"]).await;
    allowed(&collector, &["SET", &keys::command_seen(mine, "c1"), "done:success"]).await;
    allowed(&collector, &["ZRANGE", keys::SILENCES, "0", "-1"]).await;
    allowed(&collector, &["HGETALL", keys::MAINTENANCE]).await;

    // Another host's.
    let other = ContainerRef::new(theirs, "db");
    refused(&collector, &["XADD", &keys::commands(theirs), "*", "k", "v"]).await;
    refused(&collector, &["HSET", &keys::facts(&other), "container", "{}"]).await;
    refused(&collector, &["SET", &keys::command_seen(theirs, "c1"), "done:success"]).await;
    refused(&collector, &["SET", &keys::heartbeat(theirs), "{}"]).await;
    // Asking for a remediation, by channel (the bridge relays it) or stream.
    refused(&collector, &["PUBLISH", &EventKind::RemediationNeeded.channel(), "{}"]).await;
    refused(&collector, &["XADD", &EventKind::RemediationNeeded.stream(), "*", "envelope", "{}"]).await;
    let forged = RedisPublisher::new(collector.clone()).publish(&needed("db")).await;
    assert!(forged.is_err_and(|e| e.to_string().contains(NOPERM)), "a collector published a remediation_needed");
    println!("attack refused: redis credentials: a collector publishes remediation_needed");
    // Silences, the gate's state, every key, the server.
    refused(&collector, &["ZADD", keys::SILENCES, "1", "x"]).await;
    refused(&collector, &["HSET", keys::MAINTENANCE, "x", "{}"]).await;
    refused(&collector, &["DEL", &keys::remediation(&own)]).await;
    refused(&collector, &["DEL", &keys::breaker(&own)]).await;
    refused(&collector, &["FLUSHALL"]).await;
    // (KEYS fans out to every node of a cluster, where the client reports
    // the refusal as a reply of the wrong type; SORT is as dangerous and
    // routed by its key.)
    refused(&collector, &["SORT", &keys::stats(&own)]).await;
    refused(&collector, &["CONFIG", "SET", "requirepass", "x"]).await;
    refused(&collector, &["ACL", "SETUSER", "evil", "on", "nopass", "+@all", "~*"]).await;
    // What it publishes itself still goes through.
    let alert = Envelope::new(
        "collector",
        EventKind::SystemAlert,
        &serde_json::json!({"host": mine, "kind": "test", "message": "ok", "severity": "info"}),
    )
    .unwrap();
    RedisPublisher::new(collector.clone()).publish(&alert).await.expect("a collector publishes system alerts");

    // A custom analyzer asks for remediations (the gate decides), and no more.
    let publisher = as_user(users.url(&Role::Publisher)).await;
    RedisPublisher::new(publisher.clone()).publish(&needed("db")).await.expect("a publisher asks");
    refused(&publisher, &["XADD", &keys::commands(theirs), "*", "k", "v"]).await;
    refused(&publisher, &["HSET", &keys::facts(&other), "container", "{}"]).await;

    // The dashboard reads, and publishes answers to approvals (attested as
    // its own) and nothing else.
    let dashboard = as_user(users.url(&Role::Dashboard)).await;
    allowed(&dashboard, &["GET", &keys::stats(&own)]).await;
    refused(&dashboard, &["SET", &keys::stats(&own), "{}"]).await;
    refused(&dashboard, &["ZADD", keys::SILENCES, "1", "x"]).await;
    let answer = hemostat_protocol::approval::ApprovalAnswer::from_dashboard(
        "0123456789abcdef0123456789abcdef",
        hemostat_protocol::approval::Decision::Approve,
        None,
        None,
    );
    let answer =
        Envelope::new(hemostat_protocol::envelope::agent::DASHBOARD, EventKind::ApprovalAnswer, &answer).unwrap();
    RedisPublisher::new(dashboard.clone()).publish(&answer).await.expect("the dashboard publishes an answer");
    refused(&dashboard, &["XADD", &EventKind::RemediationNeeded.stream(), "*", ENVELOPE_FIELD, "{}"]).await;
    refused(&dashboard, &["SET", &keys::request_attestation("d"), "1"]).await;
    refused(&dashboard, &["HSET", &keys::approval(&own, "0123456789abcdef0123456789abcdef"), "state", "approved"])
        .await;
    refused(&dashboard, &["ZADD", keys::APPROVALS, "1", "x"]).await;
    refused(&dashboard, &["XADD", &keys::commands(mine), "*", "k", "v"]).await;
    // Nor may a collector vouch for an answer.
    refused(&collector, &["SET", &keys::answer_attestation("d"), "1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_heals_with_every_component_as_its_own_redis_user() {
    let redis = RedisServer::start().await;
    let docker = docker().await;
    let stack = start_stack_with(&redis.url(), &StackEnv::default().least_privilege()).await;
    let conn = redis.connection().await;

    let container = ContainerSpec::shell(
        r#"trap 'echo "panic: crashed on demand (SIGUSR1)" >&2; exit 1' USR1; while :; do sleep 0.2; done"#,
    )
    .restart_policy(RestartPolicyNameEnum::NO)
    .start(&docker)
    .await;
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    container.kill("USR1").await;
    let name = container.name().to_owned();
    let done = wait_for(Duration::from_secs(30), || {
        let (mut conn, name) = (conn.clone(), name.clone());
        async move {
            stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
                .await
                .into_iter()
                .map(|(_, c)| c)
                .find(|c| c.container == name)
        }
    })
    .await;
    let logs = || {
        format!(
            "collector:\n{}\nemulator:\n{}\nbridge:\n{}",
            stack.collector.log_tail(30),
            stack.emulator.log_tail(30),
            stack.bridge.log_tail(20)
        )
    };
    let done = done.unwrap_or_else(|| panic!("not healed\n{}", logs()));
    assert_eq!(done.result.status, RemediationStatus::Success, "{done:?}");
    assert_eq!(done.result.verified, Some(true), "{done:?}");
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;

    // The operator's user runs `hemostat status` (it reads every key).
    let users = stack.users.as_ref().expect("least privilege made users");
    let operator = create_users(&redis.url(), &[Role::Operator]).await;
    let status = std::process::Command::new(bin_dir().join("hemostat"))
        .args(["status", "--json"])
        .env("REDIS_URL", operator.url(&Role::Operator))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{out}{}", String::from_utf8_lossy(&status.stderr));
    assert!(out.contains(&stack.host), "{out}");

    // No component was refused anything on the way.
    for (what, log) in [("collector", &stack.collector), ("emulator", &stack.emulator), ("bridge", &stack.bridge)] {
        let text = std::fs::read_to_string(log.log_path()).unwrap_or_default();
        assert!(!text.contains("NoPerm") && !text.contains("NOPERM"), "{what} was refused:\n{}", logs());
    }
    // And the credentials were theirs: the collector's cannot command its neighbour.
    let collector = as_user(users.url(&Role::Collector(stack.host.clone()))).await;
    refused(&collector, &["XADD", &keys::commands("another-host"), "*", "k", "v"]).await;

    // Another host's collector raises an alert for this host's container:
    // Redis refuses its attestation, so HemoStat's publisher does not send
    // it; put on the stream by hand, the analyzer dead-letters it unread.
    let intruder = create_users(&redis.url(), &[Role::Collector("intruder".into())]).await;
    let intruder = as_user(intruder.url(&Role::Collector("intruder".into()))).await;
    let forged = crash_alert(&stack.host, &name, Some(container.id()), "forged/image:1");
    match RedisPublisher::new(intruder.clone()).publish(&forged).await {
        Err(e) if e.to_string().contains(NOPERM) => {
            println!("attack refused: forged alert: attested as {}", stack.host)
        }
        other => panic!("another host's collector attested an alert of {}: {other:?}", stack.host),
    }
    let asked = || {
        let (mut conn, name) = (conn.clone(), name.clone());
        async move {
            stream_events::<RemediationNeeded>(&mut conn, EventKind::RemediationNeeded)
                .await
                .into_iter()
                .filter(|(_, n)| n.container == name)
                .count()
        }
    };
    let before = asked().await;
    allowed(&intruder, &["XADD", &EventKind::HealthAlert.stream(), "*", ENVELOPE_FIELD, &forged.to_json()]).await;
    let reason = wait_for(Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move {
            let dead: redis::streams::StreamRangeReply = conn.xrange_all(keys::DEAD_LETTER_STREAM).await.ok()?;
            dead.ids.iter().filter_map(|e| e.get::<String>(dead_letter::REASON)).find(|r| r.contains("not attested"))
        }
    })
    .await
    .unwrap_or_else(|| panic!("the forged alert was not refused\n{}", logs()));
    println!("attack refused: forged alert: {reason}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(asked().await, before, "a remediation was asked for on a forged alert");

    // The bridge's credentials write every stream: a stolen bridge password
    // puts a request to stop the container on the responder's stream, and
    // the responder, finding no analyzer's attestation, dead-letters it.
    let bridge = as_user(users.url(&Role::Bridge)).await;
    let stop = |why: &str| {
        let data = serde_json::json!({
            "container": name, "host": stack.host, "action": "stop", "reason": why, "confidence": 1.0,
        });
        Envelope::new(hemostat_protocol::envelope::agent::ANALYZER, EventKind::RemediationNeeded, &data).unwrap()
    };
    let refusals = |why: String| {
        let conn = conn.clone();
        async move {
            let mut conn = conn.clone();
            let dead: redis::streams::StreamRangeReply = conn.xrange_all(keys::DEAD_LETTER_STREAM).await.ok()?;
            let found = dead.ids.iter().any(|e| {
                e.get::<String>(ENVELOPE_FIELD).is_some_and(|b| b.contains(&why))
                    && e.get::<String>(dead_letter::REASON).is_some_and(|r| r.contains("not attested by an analyzer"))
            });
            found.then_some(())
        }
    };
    let forged = stop("forged by the bridge's credentials");
    allowed(&bridge, &["XADD", &EventKind::RemediationNeeded.stream(), "*", ENVELOPE_FIELD, &forged.to_json()]).await;
    wait_for(Duration::from_secs(30), || refusals("forged by the bridge's".into()))
        .await
        .unwrap_or_else(|| panic!("the forged request was not refused\n{}", logs()));
    println!("attack refused: forged request: written to the stream with the bridge's credentials");

    // A dead letter the bridge forged, replayed by an operator who trusts
    // the list: the request reaches the responder again, and is refused again.
    let letter = stop("a dead letter the bridge forged");
    let stream = EventKind::RemediationNeeded.stream();
    let fields = [
        (dead_letter::STREAM, stream.as_str()),
        (dead_letter::ID, "1-0"),
        (dead_letter::REASON, "responder failed"),
        (ENVELOPE_FIELD, &letter.to_json()),
    ];
    let id: String = bridge.clone().xadd(keys::DEAD_LETTER_STREAM, "*", &fields).await.unwrap();
    let replay = std::process::Command::new(bin_dir().join("hemostat"))
        .args(["dead-letters", "replay", &id])
        .env("REDIS_URL", operator.url(&Role::Operator))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    wait_for(Duration::from_secs(30), || refusals("a dead letter the bridge forged".into()))
        .await
        .unwrap_or_else(|| panic!("the replayed forged request was not refused\n{}", logs()));
    println!("attack refused: forged request: a forged dead letter replayed by the operator");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let state = container.state().await;
    assert_eq!(state.status, Some(ContainerStateStatusEnum::RUNNING), "a forged request stopped it");
}
