//! Approvals on the bridge and the responder (under the Lambda emulator),
//! answered with the built `hemostat`, on a real Redis (one node, or a
//! cluster under `HEMOSTAT_TEST_REDIS=cluster`): an action that needs a
//! yes (the container's `hemostat.approve`) is parked and asked for, never
//! executed; approved, it goes through the gate once and its command names
//! the approval; denied, it is dropped and reported; unanswered by its
//! deadline, it is only notified. Each move is audited; a second answer, an
//! unknown id, a late answer and a replayed request change nothing.
//!
//! Answered from Slack's buttons and the dashboard (its function URL, as
//! the emulator serves it): a signed press approves (the command goes out
//! once, even when the press is replayed) or denies (reported); a press
//! with a bad signature, a stale timestamp or no signature is refused at
//! the door (401) and nothing moves; an `approval_answer` put on the stream
//! with the bridge's credentials (which write every stream) is
//! dead-lettered by the responder; the dashboard's own answer needs its
//! header and its own origin (403 otherwise), then goes through. And the
//! whole stack (real collector and Docker engine, every component its own
//! Redis user): a crashed container that waits for a yes is restarted once
//! a signed Slack press arrives, not before.

use std::{collections::HashMap, process::Output, time::Duration};

use bollard::models::{ContainerStateStatusEnum, RestartPolicyNameEnum};
use hemostat_e2e::{
    ContainerSpec, Process, RedisServer, StackEnv, create_users, docker, free_port, hemostat_cli, http::Answer,
    http_request, start_bridge, start_emulator, start_stack_with, stream_events, wait_for, workspace_root,
};
use hemostat_protocol::{
    Action, Command, ContainerRef, Envelope, EventKind, Publisher, RedisPublisher,
    acl::Role,
    approval::{self, ApprovalAnswer, Decision, State, slack},
    audit::{self, Verdict},
    command::SignedCommand,
    connection::Connection,
    envelope::agent,
    event::{
        IncidentContext, RemediationComplete, RemediationNeeded, RemediationResult, RemediationStatus, SystemAlert,
    },
    keys,
    policy::Policy,
    publisher::{ENVELOPE_FIELD, dead_letter},
};
use redis::AsyncCommands;
use serde_json::Value;

const HOST: &str = "approval-host";

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Fails with exit 1 and one line containing `needle`.
fn refused(url: &str, args: &[&str], needle: &str) {
    let out = hemostat_cli(url, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "hemostat {args:?}: {}", text(&out));
    assert!(err.contains(needle) && err.trim_end().lines().count() == 1, "hemostat {args:?}: {err}");
}

/// The bridge and the functions, with `env` for them, and what a collector
/// on [`HOST`] reports of `containers` (each with its labels' policy).
async fn functions(
    redis: &RedisServer,
    env: &[(&str, &str)],
    args: &[&str],
    containers: &[(&str, Policy)],
) -> (Process, Process) {
    let url = redis.url();
    let template = workspace_root().join("template.yaml");
    let (emulator, endpoint) = start_emulator(|b| {
        let mut b = b
            .args(["--template", template.to_str().unwrap()])
            .args(args)
            .env("REDIS_URL", &url)
            .env("HEMOSTAT_COMMAND_SIGNING_KEY", &hemostat_e2e::test_keys().private)
            .env("RUST_LOG", "info");
        for (k, v) in env {
            b = b.env(k, v);
        }
        b
    })
    .await;
    let bridge =
        start_bridge(|b| b.env("REDIS_URL", &url).env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint).env("RUST_LOG", "info"))
            .await;
    let conn = redis.connection().await;
    for (name, policy) in containers {
        hemostat_e2e::report_container(&conn, &ContainerRef::new(HOST, *name), "shop/api:1", policy.clone()).await;
    }
    (emulator, bridge)
}

fn needed(name: &str, action: Action, reason: &str) -> RemediationNeeded {
    RemediationNeeded {
        container: name.into(),
        action,
        reason: reason.into(),
        confidence: 0.9,
        metrics: None,
        host: HOST.into(),
        container_id: None,
        fallback_reason: None,
        llm_cached: false,
        context: IncidentContext { analysis_method: Some("rule_based".into()), ..Default::default() },
    }
}

async fn ask(conn: &Connection, request: &RemediationNeeded) {
    let env = Envelope::new(agent::ANALYZER, EventKind::RemediationNeeded, request).unwrap();
    RedisPublisher::new(conn.clone()).publish(&env).await.unwrap();
}

/// The pending approval of `name`, once `hemostat approvals` lists it.
async fn pending_of(url: &str, name: &str) -> Value {
    let url = url.to_owned();
    let name = name.to_owned();
    wait_for(Duration::from_secs(20), || {
        let (url, name) = (url.clone(), name.clone());
        async move {
            let out = hemostat_cli(&url, &["--json", "approvals"]);
            assert!(out.status.success(), "{}", text(&out));
            let all: Value = serde_json::from_slice(&out.stdout).unwrap();
            all.as_array().unwrap().iter().find(|a| a["container"] == name.as_str()).cloned()
        }
    })
    .await
    .unwrap_or_else(|| panic!("no approval pending for {name}"))
}

async fn commands(conn: &Connection) -> Vec<Command> {
    let reply: redis::streams::StreamRangeReply = conn.clone().xrange_all(keys::commands(HOST)).await.unwrap();
    reply
        .ids
        .iter()
        .map(|e| {
            let fields: HashMap<String, String> =
                e.map.iter().filter_map(|(k, v)| Some((k.clone(), redis::from_redis_value(v.clone()).ok()?))).collect();
            serde_json::from_str(&SignedCommand::from_fields(&fields).expect("a command entry").json).unwrap()
        })
        .collect()
}

async fn verdicts(conn: &Connection, name: &str) -> Vec<(Verdict, String)> {
    let entries = audit::newest(&mut conn.clone(), &ContainerRef::new(HOST, name), 50).await.unwrap();
    entries.into_iter().rev().filter_map(Result::ok).map(|e| (e.verdict, e.reason)).collect()
}

async fn outcome_of(conn: &Connection, name: &str, status: RemediationStatus) -> RemediationComplete {
    let conn = conn.clone();
    wait_for(Duration::from_secs(20), || {
        let mut conn = conn.clone();
        async move {
            stream_events::<RemediationComplete>(&mut conn, EventKind::RemediationComplete)
                .await
                .into_iter()
                .map(|(_, c)| c)
                .find(|c| c.container == name && c.result.status == status)
        }
    })
    .await
    .unwrap_or_else(|| panic!("no {status:?} outcome for {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_runs_through_the_gate_once_and_denied_is_dropped() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let restart_only = Policy { approve: Some("restart".into()), ..Policy::default() };
    let all = Policy { approve: Some("all".into()), ..Policy::default() };
    let (emulator, _bridge) =
        functions(&redis, &[], &[], &[("api", restart_only), ("db", all.clone()), ("cache", all)]).await;
    let conn = redis.connection().await;

    // Parked, asked for once (a second request finds it waiting), not executed.
    ask(&conn, &needed("api", Action::Restart, "exit 1")).await;
    let api = pending_of(&url, "api").await;
    let id = api["id"].as_str().unwrap().to_owned();
    assert_eq!((api["action"].as_str(), api["state"].as_str()), (Some("restart"), Some("pending")), "{api}");
    ask(&conn, &needed("api", Action::Restart, "exit 1 again")).await;
    emulator.wait_for_line("already waiting for approval", Duration::from_secs(20)).await;
    assert!(commands(&conn).await.is_empty(), "nothing runs before a yes");
    let asked: Vec<SystemAlert> = stream_events::<SystemAlert>(&mut conn.clone(), EventKind::SystemAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.kind == SystemAlert::APPROVAL_REQUESTED)
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].approval.as_deref(), Some(id.as_str()));
    assert!(asked[0].message.contains(&format!("hemostat approve {id}")), "{}", asked[0].message);

    // A forged request naming the pending approval, an unknown id: nothing.
    ask(
        &conn,
        &RemediationNeeded {
            context: IncidentContext { approval: Some(id.clone()), ..Default::default() },
            ..needed("api", Action::Restart, "forged")
        },
    )
    .await;
    emulator.wait_for_line("not approved (or was executed)", Duration::from_secs(20)).await;
    assert!(commands(&conn).await.is_empty(), "a request cannot approve itself");
    refused(&url, &["approve", "0123456789abcdef0123456789abcdef"], "no such approval");
    refused(&url, &["approve", "../../etc"], "no such approval");

    // Approved: the responder runs the parked request through the gate; the
    // command names the approval; the collector's outcome ends the wait.
    let approving = {
        let (url, id) = (url.clone(), id.clone());
        tokio::task::spawn_blocking(move || hemostat_cli(&url, &["approve", &id, "--by", "alice", "--timeout", "30s"]))
    };
    let command = wait_for(Duration::from_secs(20), || {
        let conn = conn.clone();
        async move { commands(&conn).await.into_iter().next() }
    })
    .await
    .expect("no command after the approval");
    assert_eq!((command.container.as_str(), command.action), ("api", Action::Restart));
    assert_eq!(command.context.approval.as_deref(), Some(id.as_str()));
    assert_eq!(command.reason, "exit 1", "the parked request, not a later one");
    let done = RemediationComplete {
        container: "api".into(),
        action: Action::Restart,
        result: RemediationResult {
            status: RemediationStatus::Success,
            action: Action::Restart,
            container: "api".into(),
            error: None,
            reason: None,
            details: None,
            duration_ms: Some(120),
            verified: Some(true),
            dependents: Vec::new(),
        },
        host: HOST.into(),
        command_id: Some(command.id.clone()),
        dry_run: false,
        confidence: Some(0.9),
        reason: Some(command.reason.clone()),
        context: command.context.clone(),
    };
    let report = Envelope::new(agent::MONITOR, EventKind::RemediationComplete, &done).unwrap();
    RedisPublisher::new(conn.clone()).publish(&report).await.unwrap();
    let out = approving.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("restart success"), "{}", text(&out));

    // Answered twice, replayed: nothing more runs.
    refused(&url, &["approve", &id], "already approved and executed by alice");
    refused(&url, &["deny", &id], "already approved and executed by alice");
    ask(
        &conn,
        &RemediationNeeded {
            context: IncidentContext { approval: Some(id.clone()), ..Default::default() },
            ..needed("api", Action::Restart, "replay")
        },
    )
    .await;
    emulator.wait_for_line("not approved (or was executed)", Duration::from_secs(20)).await;
    assert_eq!(commands(&conn).await.len(), 1, "executed once");
    let trail = verdicts(&conn, "api").await;
    let kinds: Vec<Verdict> = trail.iter().map(|(v, _)| *v).collect();
    assert_eq!(kinds, [Verdict::ApprovalRequested, Verdict::Approved, Verdict::Allowed], "{trail:?}");
    assert_eq!(trail[1].1, "approved by alice");

    // Denied: dropped, reported with who and why, audited; then closed.
    ask(&conn, &needed("db", Action::Stop, "memory leak")).await;
    let db = pending_of(&url, "db").await;
    let db_id = db["id"].as_str().unwrap();
    let out = hemostat_cli(&url, &["deny", db_id, "--by", "bob", "--reason", "not during the sale"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = outcome_of(&conn, "db", RemediationStatus::Rejected).await;
    assert_eq!(report.result.reason.as_deref(), Some("approval denied by bob: not during the sale"));
    assert_eq!(report.context.approval.as_deref(), Some(db_id));
    refused(&url, &["approve", db_id], "already denied by bob");
    let trail = verdicts(&conn, "db").await;
    assert_eq!(trail.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [Verdict::ApprovalRequested, Verdict::Denied]);
    assert_eq!(trail[1].1, "denied by bob: not during the sale");
    assert!(commands(&conn).await.iter().all(|c| c.container != "db"), "nothing runs for a denied action");

    // Approved, but the request it handed back was lost (a failure between
    // the move and the publish): approving again hands it back, and it runs once.
    ask(&conn, &needed("cache", Action::Restart, "exit 137")).await;
    let cache = pending_of(&url, "cache").await;
    let cache_id = cache["id"].as_str().unwrap().to_owned();
    let moved = approval::answer(&mut conn.clone(), &cache_id, &approval::Answer::Approve { by: "carol".into() })
        .await
        .unwrap();
    assert!(moved.is_ok(), "{moved:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(commands(&conn).await.iter().all(|c| c.container != "cache"), "nothing was handed back yet");
    let publisher = RedisPublisher::new(conn.clone());
    let again = approval::approve(&mut conn.clone(), &publisher, &cache_id, "carol").await.unwrap();
    assert!(again.is_ok(), "{again:?}");
    let ran =
        wait_for(Duration::from_secs(20), || {
            let conn = conn.clone();
            async move {
                Some(commands(&conn).await.into_iter().filter(|c| c.container == "cache").count()).filter(|n| *n > 0)
            }
        })
        .await;
    assert_eq!(ran, Some(1), "the approved restart of cache was not handed back");
    // Once taken, another approve is refused, and nothing runs twice.
    let taken = wait_for(Duration::from_secs(20), || {
        let conn = conn.clone();
        let id = cache_id.clone();
        async move {
            match approval::approve(&mut conn.clone(), &RedisPublisher::new(conn.clone()), &id, "dave").await.unwrap() {
                Err(refusal) => Some(refusal.to_string()),
                Ok(_) => None,
            }
        }
    })
    .await
    .expect("the approval was never taken");
    assert!(taken.starts_with("already approved and executed by carol"), "{taken}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(commands(&conn).await.iter().filter(|c| c.container == "cache").count(), 1, "executed twice");

    let out = hemostat_cli(&url, &["--json", "approvals"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), Value::Array(Vec::new()), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_by_its_deadline_it_is_only_notified() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let all = Policy { approve: Some("all".into()), ..Policy::default() };
    let (_emulator, _bridge) = functions(
        &redis,
        &[("RESPONDER_APPROVAL_TIMEOUT_SECONDS", "2")],
        &[],
        &[("cache", all), ("free", Policy::default())],
    )
    .await;
    let conn = redis.connection().await;

    ask(&conn, &needed("cache", Action::Restart, "exit 137")).await;
    let cache = pending_of(&url, "cache").await;
    let id = cache["id"].as_str().unwrap().to_owned();
    let deadline = chrono::DateTime::parse_from_rfc3339(cache["deadline"].as_str().unwrap()).unwrap();
    let wait = (deadline.timestamp_millis() - chrono::Utc::now().timestamp_millis() + 300).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    // Too late to answer, even before the responder noticed.
    refused(&url, &["approve", &id], "deadline passed");

    // The responder's next batch expires it: reported, audited, gone.
    ask(&conn, &needed("free", Action::Restart, "exit 1")).await;
    let report = outcome_of(&conn, "cache", RemediationStatus::Rejected).await;
    assert_eq!(report.result.reason.as_deref(), Some("approval timed out: notified only"));
    let trail = verdicts(&conn, "cache").await;
    assert_eq!(
        trail.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [Verdict::ApprovalRequested, Verdict::ApprovalExpired],
        "{trail:?}"
    );
    refused(&url, &["approve", &id], "deadline passed");
    let mut c = conn.clone();
    let left: usize = c.zcard(keys::APPROVALS).await.unwrap();
    assert_eq!(left, 0);
    assert!(commands(&conn).await.iter().all(|c| c.container != "cache"), "nothing runs unanswered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_responders_schedule_expires_it_on_time_without_another_request() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let all = Policy { approve: Some("all".into()), ..Policy::default() };
    // The template's rate(1 minute), every second here.
    let (_emulator, _bridge) = functions(
        &redis,
        &[("RESPONDER_APPROVAL_TIMEOUT_SECONDS", "2")],
        &["--schedule-interval", "hemostat-responder=1s"],
        &[("cache", all)],
    )
    .await;
    let conn = redis.connection().await;

    ask(&conn, &needed("cache", Action::Restart, "exit 137")).await;
    let id = pending_of(&url, "cache").await["id"].as_str().unwrap().to_owned();
    // No request follows: the schedule alone reports it, within a few ticks
    // of its deadline.
    let report = outcome_of(&conn, "cache", RemediationStatus::Rejected).await;
    assert_eq!(report.result.reason.as_deref(), Some("approval timed out: notified only"));
    assert_eq!(report.context.approval.as_deref(), Some(id.as_str()));
    let trail = verdicts(&conn, "cache").await;
    assert_eq!(trail.last().map(|(v, _)| *v), Some(Verdict::ApprovalExpired), "{trail:?}");
    refused(&url, &["approve", &id], "deadline passed");
    assert!(commands(&conn).await.is_empty(), "nothing runs unanswered");
}

const SLACK_SECRET: &str = "e2e-slack-signing-secret";
const DASHBOARD_TOKEN: &str = "e2e-dashboard-token";

/// The body Slack posts when `user` presses a button (`action`) on approval `id`.
fn press(action: &str, id: &str, user: &str) -> String {
    let payload = serde_json::json!({"type": "block_actions", "user": {"id": user, "username": "someone"},
        "team": {"id": "T1"}, "actions": [{"action_id": action, "value": id, "type": "button"}],
        "response_url": "https://hooks.slack.com/actions/T1/1/x"});
    form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish()
}

/// Slack's headers for `body` sent at `at` (epoch seconds), signed with `secret`.
fn signed(secret: &str, at: i64, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/x-www-form-urlencoded".to_owned()),
        ("x-slack-request-timestamp", at.to_string()),
        ("x-slack-signature", slack::sign(secret.as_bytes(), &at.to_string(), body.as_bytes())),
    ]
}

async fn post(url: &str, headers: &[(&str, String)], body: &str) -> Answer {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http_request("POST", url, &headers, body).await
}

async fn state_of(conn: &Connection, id: &str) -> State {
    approval::get(&mut conn.clone(), id).await.unwrap().expect("the approval exists").state
}

async fn commands_of(conn: &Connection, name: &str) -> Vec<Command> {
    commands(conn).await.into_iter().filter(|c| c.container == name).collect()
}

async fn first_command_of(conn: &Connection, name: &str) -> Command {
    let conn = conn.clone();
    let name = name.to_owned();
    wait_for(Duration::from_secs(20), || {
        let (conn, name) = (conn.clone(), name.clone());
        async move { commands_of(&conn, &name).await.into_iter().next() }
    })
    .await
    .unwrap_or_else(|| panic!("no command for {name} after its approval"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_from_slack_and_the_dashboard_once_the_responder_vouched_for_it() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let all = Policy { approve: Some("all".into()), ..Policy::default() };
    let port = free_port();
    let url_port = format!("hemostat-dashboard={port}");
    let (emulator, _bridge) = functions(
        &redis,
        &[
            ("SLACK_SIGNING_SECRET", SLACK_SECRET),
            ("DASHBOARD_AUTH_TOKEN", DASHBOARD_TOKEN),
            ("HEMOSTAT_LOCAL_PARAMETER_OVERRIDES", "DashboardUrlAuthType=NONE"),
        ],
        &["--url-port", &url_port],
        &[("api", all.clone()), ("db", all.clone()), ("cache", all)],
    )
    .await;
    let conn = redis.connection().await;
    let slack_url = format!("http://127.0.0.1:{port}/slack/actions");

    // Refused at the door: nothing is published, nothing moves.
    ask(&conn, &needed("api", Action::Restart, "exit 1")).await;
    let id = pending_of(&url, "api").await["id"].as_str().unwrap().to_owned();
    let body = press(slack::APPROVE_ACTION, &id, "U2CERLKJA");
    let now = chrono::Utc::now().timestamp();
    let mut unsigned = signed(SLACK_SECRET, now, &body);
    unsigned.truncate(1);
    for (headers, what) in [
        (signed("a guessed secret", now, &body), "a bad signature"),
        (signed(SLACK_SECRET, now - slack::MAX_AGE_SECONDS - 60, &body), "a stale timestamp"),
        (unsigned, "no signature headers"),
    ] {
        let answer = post(&slack_url, &headers, &body).await;
        assert_eq!(answer.status, 401, "{what}: {}\n{}", answer.body, emulator.log_tail(20));
        // The line `scripts/security-figures.sh` counts.
        println!("attack refused: slack: {what}");
    }
    let mut c = conn.clone();
    assert_eq!(c.xlen::<_, usize>(EventKind::ApprovalAnswer.stream()).await.unwrap(), 0, "published at the door");
    assert_eq!(state_of(&conn, &id).await, State::Pending);
    assert!(!emulator.log().contains(SLACK_SECRET), "the secret is never logged");

    // A signed press: answered within Slack's 3 s; the responder verifies
    // it again and runs the parked request through the gate once.
    let headers = signed(SLACK_SECRET, now, &body);
    let started = std::time::Instant::now();
    let answer = post(&slack_url, &headers, &body).await;
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, emulator.log_tail(20));
    assert!(took < Duration::from_secs(3), "Slack waits 3 s at most: {took:?}");
    println!("Slack's press answered in {} ms", took.as_millis());
    let command = first_command_of(&conn, "api").await;
    assert_eq!((command.action, command.context.approval.as_deref()), (Action::Restart, Some(id.as_str())));
    let trail = verdicts(&conn, "api").await;
    assert_eq!(
        trail.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [Verdict::ApprovalRequested, Verdict::Approved, Verdict::Allowed],
        "{trail:?}"
    );
    assert_eq!(trail[1].1, "approved by slack:U2CERLKJA");
    // The same press again, within Slack's 5 minutes: passed on, and nothing more happens.
    let answer = post(&slack_url, &headers, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    emulator.wait_for_line("approval answer changed nothing", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(commands_of(&conn, "api").await.len(), 1, "a replayed press acted twice");
    println!("attack refused: slack: a replayed press");

    // Denied from Slack: dropped and reported with who.
    ask(&conn, &needed("db", Action::Stop, "memory leak")).await;
    let db_id = pending_of(&url, "db").await["id"].as_str().unwrap().to_owned();
    let body = press(slack::DENY_ACTION, &db_id, "U1BOB");
    let answer = post(&slack_url, &signed(SLACK_SECRET, chrono::Utc::now().timestamp(), &body), &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let report = outcome_of(&conn, "db", RemediationStatus::Rejected).await;
    assert_eq!(report.result.reason.as_deref(), Some("approval denied by slack:U1BOB"));
    assert_eq!(state_of(&conn, &db_id).await, State::Denied);
    assert!(commands_of(&conn, "db").await.is_empty());

    // The bridge's credentials write every stream, but cannot vouch for an
    // answer: the responder dead-letters what they put there.
    ask(&conn, &needed("cache", Action::Restart, "exit 137")).await;
    let cache_id = pending_of(&url, "cache").await["id"].as_str().unwrap().to_owned();
    let users = create_users(&url, &[Role::Bridge]).await;
    let bridge = hemostat_protocol::connection::connect(users.url(&Role::Bridge)).await.unwrap();
    let from_dashboard = ApprovalAnswer::from_dashboard(&cache_id, Decision::Approve, Some("eve"), None);
    let body = press(slack::APPROVE_ACTION, &cache_id, "UEVE");
    let now = chrono::Utc::now().timestamp();
    let mut from_slack = ApprovalAnswer::from_slack(
        &slack::press(body.as_bytes()).unwrap(),
        approval::SlackRequest {
            timestamp: now.to_string(),
            signature: slack::sign(b"a guessed secret", &now.to_string(), body.as_bytes()),
            body,
        },
    );
    from_slack.by = "slack:UEVE".into();
    for forged in [&from_dashboard, &from_slack] {
        let env = Envelope::new(agent::DASHBOARD, EventKind::ApprovalAnswer, forged).unwrap();
        // Its attestation is the dashboard's to write.
        let attest: Result<(), _> = redis::cmd("SET")
            .arg(hemostat_protocol::attestation::key(&env).unwrap())
            .arg(1)
            .query_async(&mut bridge.clone())
            .await;
        assert!(attest.is_err_and(|e| e.to_string().contains("NoPerm")), "the bridge attested an answer");
        let _: String = bridge
            .clone()
            .xadd(EventKind::ApprovalAnswer.stream(), "*", &[(ENVELOPE_FIELD, env.to_json())])
            .await
            .unwrap();
    }
    let refused = wait_for(Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move {
            let dead: redis::streams::StreamRangeReply = conn.xrange_all(keys::DEAD_LETTER_STREAM).await.ok()?;
            let reasons: Vec<String> = dead
                .ids
                .iter()
                .filter_map(|e| e.get::<String>(dead_letter::REASON))
                .filter(|r| r.contains("approval answer refused"))
                .collect();
            (reasons.len() >= 2).then_some(reasons)
        }
    })
    .await
    .unwrap_or_else(|| panic!("the forged answers were not dead-lettered\n{}", emulator.log_tail(30)));
    println!("attack refused: approval answers by the bridge's credentials: {refused:?}");
    assert!(refused.iter().any(|r| r.contains("not attested")), "{refused:?}");
    assert!(refused.iter().any(|r| r.contains("does not match")), "{refused:?}");
    assert_eq!(state_of(&conn, &cache_id).await, State::Pending);
    assert!(commands_of(&conn, "cache").await.is_empty());

    // The dashboard's own answer: its token, its header, its own origin.
    let approve = format!("http://127.0.0.1:{port}/api/approvals/{cache_id}/approve");
    let auth = ("authorization", format!("Bearer {DASHBOARD_TOKEN}"));
    let json = ("content-type", "application/json".to_owned());
    let header = ("x-hemostat-request", "1".to_owned());
    for (headers, what) in [
        (vec![auth.clone(), json.clone()], "no X-HemoStat-Request"),
        (
            vec![auth.clone(), json.clone(), header.clone(), ("origin", "http://evil.example".to_owned())],
            "another origin",
        ),
    ] {
        let answer = post(&approve, &headers, "{}").await;
        assert_eq!(answer.status, 403, "{what}: {}", answer.body);
        println!("attack refused: dashboard answer: {what}");
    }
    assert_eq!(post(&approve, &[json.clone(), header.clone()], "{}").await.status, 401, "no token");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(state_of(&conn, &cache_id).await, State::Pending);
    let own = ("origin", format!("http://127.0.0.1:{port}"));
    let answer = post(&approve, &[auth, json, header, own], "{}").await;
    assert_eq!(answer.status, 202, "{}\n{}", answer.body, emulator.log_tail(20));
    let command = first_command_of(&conn, "cache").await;
    assert_eq!(command.context.approval.as_deref(), Some(cache_id.as_str()));
    let trail = verdicts(&conn, "cache").await;
    assert_eq!(trail[1], (Verdict::Approved, "approved by dashboard".to_owned()), "{trail:?}");
}

/// The whole stack (a real collector on the test's Docker engine, every
/// component as its own Redis user): a container whose restart waits for a
/// yes crashes; nothing happens until a signed Slack press reaches the
/// dashboard's function URL; then the responder restarts it, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_press_heals_a_container_that_waits_for_a_yes() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let docker = docker().await;
    let env = StackEnv::default()
        .least_privilege()
        .emulator("SLACK_SIGNING_SECRET", SLACK_SECRET)
        .emulator("DASHBOARD_AUTH_TOKEN", DASHBOARD_TOKEN)
        .emulator("HEMOSTAT_LOCAL_PARAMETER_OVERRIDES", "DashboardUrlAuthType=NONE");
    let stack = start_stack_with(&url, &env).await;
    let conn = redis.connection().await;
    let container = ContainerSpec::shell(
        r#"trap 'echo "panic: crashed on demand (SIGUSR1)" >&2; exit 1' USR1; while :; do sleep 0.2; done"#,
    )
    .label("hemostat.approve", "all")
    .restart_policy(RestartPolicyNameEnum::NO)
    .start(&docker)
    .await;
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    container.kill("USR1").await;
    let name = container.name().to_owned();
    let logs = || {
        format!(
            "collector:\n{}\nemulator:\n{}\nbridge:\n{}",
            stack.collector.log_tail(20),
            stack.emulator.log_tail(30),
            stack.bridge.log_tail(10)
        )
    };

    let pending = pending_of(&url, &name).await;
    let id = pending["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        container.state().await.status,
        Some(ContainerStateStatusEnum::EXITED),
        "acted on before the yes\n{}",
        logs()
    );

    let body = press(slack::APPROVE_ACTION, &id, "U2CERLKJA");
    let slack_url = format!("{}/urls/hemostat-dashboard/slack/actions", stack.endpoint);
    let answer = post(&slack_url, &signed(SLACK_SECRET, chrono::Utc::now().timestamp(), &body), &body).await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, logs());
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
    .await
    .unwrap_or_else(|| panic!("not healed after the yes\n{}", logs()));
    assert_eq!((done.result.status, done.context.approval.as_deref()), (RemediationStatus::Success, Some(id.as_str())));
    container.wait_for_status(ContainerStateStatusEnum::RUNNING, Duration::from_secs(10)).await;
    let trail = audit::newest(&mut conn.clone(), &ContainerRef::new(&stack.host, &name), 50).await.unwrap();
    let reasons: Vec<String> = trail.into_iter().rev().filter_map(Result::ok).map(|e| e.reason).collect();
    assert!(reasons.iter().any(|r| r == "approved by slack:U2CERLKJA"), "{reasons:?}");
}
