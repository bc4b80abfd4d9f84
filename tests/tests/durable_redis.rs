//! What HemoStat keeps in Redis outlives a crash of Redis, with the
//! durability the local stack runs (`infra/redis/durability.conf`, which
//! `scripts/stack.sh` and compose.yaml's Redis run too: append-only file,
//! fsync every second), on a single node and (with
//! `HEMOSTAT_TEST_REDIS=cluster`) on a whole Redis Cluster:
//!
//! - written through HemoStat's own code: an operator's silence (`hemostat
//!   silence add`), a cooldown and an open circuit breaker (the responder's
//!   gate, under the emulator), the collectors' registry and heartbeats
//!   (two real collectors);
//! - once every node has written it to its append-only file, every
//!   redis-server is SIGKILLed; one collector dies while Redis is down, long enough for its
//!   heartbeat to lapse; Redis starts again on the same data;
//! - all of it is there and still in effect: the silence still refuses, the
//!   cooldown still refuses, the breaker is still open (refused, not opened
//!   again), no command is dispatched, and the exporter reports the
//!   collector that died meanwhile missing, and only that one.
//!
//! Here every client is Redis's default user. With the local stack's ACL
//! users the default user's permissions decide what Redis loads again (see
//! `scripts/lib/redis-users.sh`): `quick_start.rs` restarts `scripts/stack.sh`
//! on its data, and `ship_compose.rs` kills compose's Redis, to check that.

mod exporter_support;

use std::{
    cell::RefCell,
    time::{Duration, Instant},
};

use exporter_support::scheduled_event;
use hemostat_e2e::{
    Process, RedisServer, hemostat_cli, lambda_bearer, redis_server::cluster_mode, report_container, start_emulator,
    stream_events, test_host, test_keys, wait_for, wait_until, workspace_root,
};
use hemostat_protocol::{
    Action, ContainerRef, Envelope, EventKind,
    batch::{self, BatchEvent, BatchResponse},
    connection::Connection,
    envelope::agent,
    event::{IncidentContext, RemediationComplete, RemediationNeeded, RemediationStatus, SystemAlert},
    keys,
    policy::Policy,
};
use redis::AsyncCommands;
use serde_json::Value;

/// Heartbeat of the test's collectors: their key lives three intervals,
/// and the exporter waits three intervals of Redis's uptime before it
/// judges anyone missing: longer than a loaded machine takes to restart a
/// whole cluster and the living collector to reconnect to it.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Redis stays down this long: more than the dead collector's heartbeat TTL
/// (three intervals) after its last beat.
const DOWN: Duration = Duration::from_secs(7);

fn hemostat_json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hemostat_cli(url, &all);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "hemostat {args:?}: {}{text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("hemostat {args:?} --json: {e}: {text}"))
}

/// One synchronous invocation of `function` through the Invoke API, until
/// it succeeds (a function reconnecting to Redis fails a try or two).
async fn invoke(endpoint: &str, function: &str, payload: &Value) -> Value {
    let url = format!("{endpoint}/2015-03-31/functions/{function}/invocations");
    let bearer = lambda_bearer();
    let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
    let body = payload.to_string();
    let last = RefCell::new(String::new());
    let (url, headers, body, last) = (&url, &headers, &body, &last);
    let answer = wait_for(Duration::from_secs(30), || async move {
        let answer = hemostat_e2e::http_request("POST", url, headers, body).await;
        let failed = answer.status != 200 || answer.header("x-amz-function-error").is_some();
        let reply: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        // The responder reports a record it could not finish (Redis
        // unreachable) as one to deliver again: so do we.
        let retry = reply["batchItemFailures"].as_array().is_some_and(|f| !f.is_empty());
        if failed || retry {
            *last.borrow_mut() = format!("{}: {}", answer.status, answer.body);
            tokio::time::sleep(Duration::from_millis(200)).await;
            return None;
        }
        Some(reply)
    })
    .await;
    answer.unwrap_or_else(|| panic!("{function} never succeeded within 30 s: {}", last.borrow()))
}

/// A `remediation_needed` for `c`, the `n`th (each one a new request),
/// attested as the analyzer would.
async fn needed(conn: &Connection, c: &ContainerRef, n: u32) -> BatchEvent {
    let data = RemediationNeeded {
        container: c.name.clone(),
        action: Action::Restart,
        reason: format!("exit 1 (crash {n})"),
        confidence: 0.9,
        metrics: None,
        host: c.host.clone(),
        container_id: None,
        context: IncidentContext { analysis_method: Some("rule_based".into()), ..Default::default() },
        fallback_reason: None,
        llm_cached: false,
    };
    let env = Envelope::new(agent::ANALYZER, EventKind::RemediationNeeded, &data).unwrap();
    hemostat_e2e::attest(conn, &env).await;
    batch::event(vec![batch::record(format!("{n}-0"), EventKind::RemediationNeeded.stream(), env.to_json(), 1)])
}

/// A read that must not fail (Redis is up), retried while a connection
/// that saw Redis die reconnects.
async fn read<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let last = RefCell::new(String::new());
    let last = &last;
    let value = wait_for(Duration::from_secs(20), || {
        let attempt = f();
        async move { attempt.await.map_err(|e| *last.borrow_mut() = e.to_string()).ok() }
    })
    .await;
    value.unwrap_or_else(|| panic!("{what}: {}", last.borrow()))
}

/// How many entries `kind`'s stream holds, strictly (an error is retried,
/// never read as empty).
async fn entries(conn: &Connection, kind: EventKind) -> usize {
    read(&kind.stream(), || {
        let mut conn = conn.clone();
        async move { conn.xlen::<_, usize>(kind.stream()).await }
    })
    .await
}

/// The ids of every entry of `kind`'s stream, oldest first, strictly.
async fn entry_ids(conn: &Connection, kind: EventKind) -> Vec<String> {
    read(&kind.stream(), || {
        let mut conn = conn.clone();
        async move {
            let reply: redis::streams::StreamRangeReply = conn.xrange_all(kind.stream()).await?;
            Ok(reply.ids.into_iter().map(|e| e.id).collect())
        }
    })
    .await
}

async fn commands(conn: &Connection, host: &str) -> usize {
    read("commands", || {
        let mut conn = conn.clone();
        let key = keys::commands(host);
        async move { conn.xlen::<_, usize>(key).await }
    })
    .await
}

/// The responder's refusals for `c`, oldest first.
async fn refusals(conn: &Connection, c: &ContainerRef) -> Vec<String> {
    entries(conn, EventKind::RemediationComplete).await;
    let mut conn = conn.clone();
    stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
        .await
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d.host == c.host && d.container == c.name && d.result.status == RemediationStatus::Rejected)
        .map(|d| d.result.reason.unwrap_or_default())
        .collect()
}

async fn system_alerts(conn: &Connection, kind: &str) -> Vec<SystemAlert> {
    entries(conn, EventKind::SystemAlert).await;
    let mut conn = conn.clone();
    stream_events::<SystemAlert>(&mut conn, EventKind::SystemAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.kind == kind)
        .collect()
}

/// Asks the responder to restart `c` (request `n`): `None` when it
/// dispatched a command, else its refusal's reason.
async fn ask(endpoint: &str, conn: &Connection, c: &ContainerRef, n: u32) -> Option<String> {
    let (commands_before, refusals_before) = (commands(conn, &c.host).await, refusals(conn, c).await.len());
    let answer = invoke(endpoint, "hemostat-responder", &serde_json::to_value(needed(conn, c, n).await).unwrap()).await;
    let answer: BatchResponse = serde_json::from_value(answer).unwrap_or_default();
    assert!(answer.batch_item_failures.is_empty() && answer.rejected_items.is_empty(), "{answer:?}");
    let dispatched = commands(conn, &c.host).await - commands_before;
    let mut refused = refusals(conn, c).await;
    match (dispatched, refused.len() - refusals_before) {
        (1, 0) => None,
        (0, 1) => refused.pop(),
        other => panic!("{c} request {n}: {other:?} (commands, refusals): one or the other"),
    }
}

fn collector(url: &str, host: &str) -> Process {
    hemostat_e2e::collector(url, host)
        .env("HEMOSTAT_HEARTBEAT_INTERVAL", format!("{}s", HEARTBEAT.as_secs()))
        // Liveness only: no sampling.
        .env("HEMOSTAT_STATS_INTERVAL", "0")
        .env("RUST_LOG", "info")
        .spawn()
}

async fn heartbeat_alive(conn: &Connection, host: &str) -> bool {
    let mut conn = conn.clone();
    conn.exists::<_, bool>(keys::heartbeat(host)).await.unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_cooldowns_breakers_and_collectors_outlive_a_crash_of_redis() {
    let mut redis = RedisServer::start_durable().await;
    let url = redis.url();
    let mode = if cluster_mode() { "cluster (6 nodes)" } else { "single node" };
    let template = workspace_root().join("template.yaml");
    let (emulator, endpoint) = start_emulator(|b| {
        b.args(["--template", template.to_str().unwrap()])
            .args(["--functions", "hemostat-responder,hemostat-exporter"])
            // The exporter checks the collectors when the test says so.
            .arg("--no-schedules")
            .env("REDIS_URL", &url)
            .env("HEMOSTAT_COMMAND_SIGNING_KEY", &test_keys().private)
            .env("EXPORTER_CLOUDWATCH_ENABLED", "false")
            .env("RUST_LOG", "info")
    })
    .await;
    let conn = redis.connection().await;

    // Three containers, as their collector reports them: one under the
    // fleet's cooldown (an hour), one whose own labels allow one action an
    // hour without cooldown (its second request opens the breaker), one an
    // operator silences.
    let host = test_host();
    let cooling = ContainerRef::new(&host, "cooling");
    let breaking = ContainerRef::new(&host, "breaking");
    let silenced = ContainerRef::new(&host, "silenced");
    let once_an_hour = Policy { cooldown_seconds: Some(0), max_actions_per_hour: Some(1), ..Policy::default() };
    report_container(&conn, &cooling, "shop/cooling:1", Policy::default()).await;
    report_container(&conn, &breaking, "shop/breaking:1", once_an_hour).await;
    report_container(&conn, &silenced, "shop/silenced:1", Policy::default()).await;

    // Before: the gate acts once, then refuses, for each reason.
    let silence = hemostat_json(&url, &["silence", "add", &silenced.key(), "--for", "2h", "--reason", "disk swap"]);
    let silence_id = silence["id"].as_str().unwrap().to_owned();
    let silence_until = silence["until"].as_str().unwrap().to_owned();
    let silenced_because = format!("silenced: disk swap (until {silence_until})");
    assert_eq!(ask(&endpoint, &conn, &silenced, 1).await.as_deref(), Some(silenced_because.as_str()));
    assert_eq!(ask(&endpoint, &conn, &cooling, 1).await, None, "the first crash is acted on");
    let cooldown = ask(&endpoint, &conn, &cooling, 2).await.unwrap_or_default();
    assert!(cooldown.starts_with("cooldown: "), "{cooldown}");
    assert_eq!(ask(&endpoint, &conn, &breaking, 1).await, None, "the first crash is acted on");
    let opened = ask(&endpoint, &conn, &breaking, 2).await.unwrap_or_default();
    assert!(opened.starts_with("circuit breaker open"), "{opened}");
    let breaker_alerts = system_alerts(&conn, SystemAlert::CIRCUIT_OPEN).await;
    assert_eq!(breaker_alerts.len(), 1, "{breaker_alerts:?}");
    let dispatched = commands(&conn, &host).await;
    assert_eq!(dispatched, 2);

    // Two collectors beat every second; the exporter sees both up.
    let (gone_host, alive_host) = (test_host(), test_host());
    let gone = collector(&url, &gone_host);
    let alive = collector(&url, &alive_host);
    gone.wait_for_line("collector ready", Duration::from_secs(60)).await;
    alive.wait_for_line("collector ready", Duration::from_secs(60)).await;
    let beating = wait_until(Duration::from_secs(10), || async {
        heartbeat_alive(&conn, &gone_host).await && heartbeat_alive(&conn, &alive_host).await
    })
    .await;
    assert!(beating, "the collectors never beat");
    let summary = invoke(&endpoint, "hemostat-exporter", &scheduled_event()).await;
    assert_eq!(
        (summary["collectors"].as_u64(), summary["collectors_missing"].as_u64()),
        (Some(2), Some(0)),
        "{summary}"
    );

    // What the operator sees before the crash.
    let explain_cooling = hemostat_json(&url, &["explain", &cooling.key()]);
    let explain_breaking = hemostat_json(&url, &["explain", &breaking.key()]);
    assert_eq!(explain_breaking["circuit_breaker_reason"].as_str(), Some(opened.as_str()), "{explain_breaking}");
    let events_before = {
        let mut ids = Vec::new();
        for kind in [EventKind::RemediationNeeded, EventKind::RemediationComplete, EventKind::SystemAlert] {
            ids.push(entry_ids(&conn, kind).await);
        }
        ids
    };

    // The crash: every redis-server SIGKILLed once each has written what
    // it acknowledged to its append-only file (a SIGKILL loses none of
    // that; only a postponed write, see wait_aof_written).
    redis.wait_aof_written().await;
    redis.crash();
    let crashed = Instant::now();
    // One collector dies while Redis is down, with no goodbye, and stays
    // dead past its heartbeat's TTL; the other keeps trying.
    gone.kill();
    tokio::time::sleep(DOWN).await;
    let restarting = Instant::now();
    redis.recover().await;
    let recovered = Instant::now();
    // The schedule's check right away: every heartbeat expired while Redis
    // was down, the living collector's too; it is not reported missing.
    let early = invoke(&endpoint, "hemostat-exporter", &scheduled_event()).await;
    println!("{mode}: the exporter's check right after Redis's start: {early}");
    println!(
        "{mode}: Redis down {:.1} s; from its start to answering with its data loaded{}: {:.2} s",
        (recovered - crashed).as_secs_f64(),
        if cluster_mode() { " and the cluster healthy again" } else { "" },
        (recovered - restarting).as_secs_f64()
    );

    // The collectors' registry: both hosts, though one will never beat again.
    let registry: Vec<String> = read("collectors", || {
        let mut conn = conn.clone();
        async move { conn.zrange::<_, Vec<String>>(keys::COLLECTORS, 0, -1).await }
    })
    .await;
    assert!(registry.contains(&gone_host) && registry.contains(&alive_host), "{registry:?}");
    assert!(!heartbeat_alive(&conn, &gone_host).await, "the dead collector's heartbeat outlived its TTL");

    // The streams: every event still there, the two commands too. (The
    // exporter's first check may have added one: the dead collector's
    // `collector_missing`, once a loaded cluster took longer to heal than
    // the three heartbeats it waits.)
    for (kind, before) in [EventKind::RemediationNeeded, EventKind::RemediationComplete, EventKind::SystemAlert]
        .into_iter()
        .zip(events_before)
    {
        let after = entry_ids(&conn, kind).await;
        assert!(after.starts_with(&before), "{} lost entries: {before:?} before, {after:?} after", kind.stream());
    }
    assert_eq!(commands(&conn, &host).await, dispatched);

    // The silence: listed as it was, and it still refuses.
    let listed = hemostat_json(&url, &["silence", "ls"]);
    let ids: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, [silence_id.as_str()], "{listed}");
    assert_eq!(listed[0]["until"].as_str(), Some(silence_until.as_str()));
    assert_eq!(ask(&endpoint, &conn, &silenced, 3).await.as_deref(), Some(silenced_because.as_str()));

    // The cooldown: as much of it left as before (less the time that
    // passed), and it still refuses.
    let after = hemostat_json(&url, &["explain", &cooling.key()]);
    let (left_before, left_after) = (
        explain_cooling["cooldown_remaining_seconds"].as_i64().unwrap(),
        after["cooldown_remaining_seconds"].as_i64().unwrap(),
    );
    let passed = crashed.elapsed().as_secs() as i64 + 20;
    assert!(
        left_after > 3000 && left_before - left_after <= passed,
        "cooldown left: {left_before} s, then {left_after} s"
    );
    assert_eq!(after["actions_last_hour"], explain_cooling["actions_last_hour"], "{after}");
    let cooldown = ask(&endpoint, &conn, &cooling, 3).await.unwrap_or_default();
    assert!(cooldown.starts_with("cooldown: "), "{cooldown}");

    // The breaker: still open with its reason, so refused, not opened
    // again (no second critical alert).
    let after = hemostat_json(&url, &["explain", &breaking.key()]);
    assert_eq!(after["circuit_breaker_reason"].as_str(), Some(opened.as_str()), "{after}");
    assert_eq!(ask(&endpoint, &conn, &breaking, 3).await.as_deref(), Some(opened.as_str()));
    assert_eq!(system_alerts(&conn, SystemAlert::CIRCUIT_OPEN).await.len(), 1, "the breaker was opened again");
    assert_eq!(commands(&conn, &host).await, dispatched, "no command after the crash");

    // The collectors: the living one beats again by itself; the exporter
    // then reports the one that died while Redis was down, and only it.
    let beating = wait_until(Duration::from_secs(30), || heartbeat_alive(&conn, &alive_host)).await;
    assert!(beating, "the living collector never beat again\n{}", alive.log_tail(30));
    println!("{mode}: the living collector's heartbeat is back {:.1} s after Redis", recovered.elapsed().as_secs_f64());
    // Right after Redis's start every heartbeat had expired, the living
    // one's too: the exporter waits three heartbeats of Redis's uptime
    // before it judges, then reports the dead one.
    let summary = invoke(&endpoint, "hemostat-exporter", &scheduled_event()).await;
    assert_eq!(
        (summary["collectors"].as_u64(), summary["collectors_up"].as_u64(), summary["collectors_missing"].as_u64()),
        (Some(2), Some(1), Some(1)),
        "{summary}\n{}",
        emulator.log_tail(30)
    );
    let reported = wait_until(Duration::from_secs(30), || {
        let (endpoint, conn) = (endpoint.clone(), conn.clone());
        async move {
            invoke(&endpoint, "hemostat-exporter", &scheduled_event()).await;
            !system_alerts(&conn, "collector_missing").await.is_empty()
        }
    })
    .await;
    assert!(reported, "the dead collector was never reported\n{}", emulator.log_tail(30));
    let missing = system_alerts(&conn, "collector_missing").await;
    let hosts: Vec<&str> = missing.iter().map(|a| a.host.as_str()).collect();
    assert_eq!(hosts, [gone_host.as_str()], "{missing:?}");
    assert!(missing[0].missing_for_seconds.is_some_and(|s| s >= 3), "{:?}", missing[0]);
}
