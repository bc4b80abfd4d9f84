//! The bridge's delivery guarantees against a real redis-server, with a
//! scripted function behind the `Invoker` trait.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use clap::Parser;
use hemostat_bridge::{Binding, BridgeError, Config, Consumer, Invocation, Invoker};
use hemostat_e2e::RedisServer;
use hemostat_protocol::{
    Envelope, EventKind, Publisher, RedisPublisher,
    batch::{self, BatchEvent, BatchResponse, ItemFailure, RejectedItem},
    connection, keys,
    publisher::{ENVELOPE_FIELD, REPLAY_FOR_FIELD},
    routes::{ROUTES, Route},
};
use redis::AsyncCommands;
use tokio::sync::watch;

/// What the fake function does with a record, keyed by container name.
#[derive(Clone, Copy)]
enum Behaviour {
    Succeed,
    FailItem,
    Reject,
}

#[derive(Clone, Default)]
struct FakeFunction {
    behaviour: Arc<Mutex<HashMap<String, Behaviour>>>,
    whole_invocation_fails: Arc<Mutex<bool>>,
    /// container -> deliveries seen
    seen: Arc<Mutex<HashMap<String, u32>>>,
}

impl Invoker for FakeFunction {
    async fn invoke(&self, _function: &str, payload: Bytes) -> Result<Invocation, BridgeError> {
        let event: BatchEvent = serde_json::from_slice(&payload).unwrap();
        let mut response = BatchResponse::default();
        for record in &event.records {
            let env = batch::envelope(record).unwrap();
            let name = env.data["container"].as_str().unwrap().to_owned();
            *self.seen.lock().unwrap().entry(name.clone()).or_default() += 1;
            match self.behaviour.lock().unwrap().get(&name).copied().unwrap_or(Behaviour::Succeed) {
                Behaviour::Succeed => {}
                Behaviour::FailItem => response
                    .batch_item_failures
                    .push(ItemFailure { item_identifier: batch::message_id(record).to_owned() }),
                Behaviour::Reject => response.rejected_items.push(RejectedItem {
                    item_identifier: batch::message_id(record).to_owned(),
                    reason: "bad data".into(),
                }),
            }
        }
        if *self.whole_invocation_fails.lock().unwrap() {
            return Ok(Invocation::FunctionError("Unhandled: boom".into()));
        }
        Ok(Invocation::Ok(Bytes::from(serde_json::to_vec(&response).unwrap())))
    }
}

fn alert(container: &str) -> Envelope {
    let data = serde_json::json!({"container": container, "host": "h1", "issues": [], "metrics": {"name": container}});
    Envelope::new("test", EventKind::HealthAlert, &data).unwrap()
}

fn route() -> Route {
    *ROUTES.iter().find(|r| r.kind == EventKind::HealthAlert).unwrap()
}

async fn start(server: &RedisServer, function: FakeFunction, adjust: impl FnOnce(&mut Config)) -> watch::Sender<bool> {
    let url = server.url();
    let mut config = Config::parse_from([
        "hemostat-bridge",
        "--redis-url",
        &url,
        "--retry-base-ms",
        "50",
        "--max-attempts",
        "3",
        "--block-ms",
        "100",
    ]);
    adjust(&mut config);
    let reader = connection::connect_blocking(&config.redis_url, config.block()).await.unwrap();
    let writer = connection::connect(&config.redis_url).await.unwrap();
    let consumer =
        Consumer::new(Binding::from_route(&route(), &config.function_prefix), config, reader, writer, function);
    consumer.ensure_group().await.unwrap();
    let (tx, rx) = watch::channel(false);
    tokio::spawn(consumer.run(rx));
    tx
}

async fn pending(conn: &mut hemostat_protocol::connection::Connection) -> u64 {
    let summary: redis::streams::StreamPendingReply =
        redis::cmd("XPENDING").arg(route().stream()).arg(route().group()).query_async(conn).await.unwrap();
    summary.count() as u64
}

async fn dead_letters(conn: &mut hemostat_protocol::connection::Connection) -> Vec<HashMap<String, String>> {
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(keys::DEAD_LETTER_STREAM).await.unwrap();
    reply.ids.iter().map(|e| e.map.keys().map(|k| (k.clone(), e.get::<String>(k).unwrap())).collect()).collect()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn acks_successes_retries_failures_and_dead_letters_the_hopeless() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let publisher = RedisPublisher::new(connection::connect(&server.url()).await.unwrap());

    // Published before the bridge starts: must still be delivered.
    publisher.publish(&alert("early")).await.unwrap();

    let function = FakeFunction::default();
    function.behaviour.lock().unwrap().insert("flaky".into(), Behaviour::FailItem);
    function.behaviour.lock().unwrap().insert("bad".into(), Behaviour::Reject);
    let _stop = start(&server, function.clone(), |_| {}).await;

    for name in ["ok-1", "flaky", "bad", "ok-2"] {
        publisher.publish(&alert(name)).await.unwrap();
    }
    // A record that is not an envelope, and one with no envelope field.
    let _: String = conn.xadd(route().stream(), "*", &[("envelope", "{not json")]).await.unwrap();
    let _: String = conn.xadd(route().stream(), "*", &[("something", "else")]).await.unwrap();

    eventually("every record acked or dead-lettered", async || pending(&mut conn).await == 0).await;
    let seen = function.seen.lock().unwrap().clone();
    assert_eq!(seen["early"], 1);
    assert_eq!(seen["ok-1"], 1, "a neighbour's failure must not redeliver a success");
    assert_eq!(seen["ok-2"], 1);
    assert_eq!(seen["flaky"], 3, "retried up to max-attempts");
    assert_eq!(seen["bad"], 1, "a rejected record is not retried");

    let dead = dead_letters(&mut conn).await;
    assert_eq!(dead.len(), 4, "{dead:?}");
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("not JSON")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("no UTF-8")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("rejected by hemostat-analyzer: bad data")), "{reasons:?}");
    let flaky =
        dead.iter().find(|d| d.get("envelope").is_some_and(|e| e.contains("flaky"))).expect("flaky dead-lettered");
    assert_eq!(flaky["attempts"], "3");
    assert!(flaky["reason"].contains("batchItemFailures"), "{flaky:?}");
}

#[tokio::test]
async fn a_failing_function_keeps_records_pending_until_it_recovers() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let publisher = RedisPublisher::new(connection::connect(&server.url()).await.unwrap());
    let function = FakeFunction::default();
    *function.whole_invocation_fails.lock().unwrap() = true;
    let _stop = start(&server, function.clone(), |c| c.max_attempts = 100).await;

    publisher.publish(&alert("patient")).await.unwrap();
    eventually("a few failed deliveries", async || {
        function.seen.lock().unwrap().get("patient").copied().unwrap_or(0) >= 2
    })
    .await;
    assert_eq!(pending(&mut conn).await, 1);
    *function.whole_invocation_fails.lock().unwrap() = false;
    eventually("acked after recovery", async || pending(&mut conn).await == 0).await;
    assert!(dead_letters(&mut conn).await.is_empty());
}

#[tokio::test]
async fn stale_records_are_dead_lettered_not_delivered() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    // An id from 2020: an alert that old must not restart anything today.
    let body = alert("ancient").to_json();
    let _: String = conn.xadd(route().stream(), "1600000000000-0", &[("envelope", body.as_str())]).await.unwrap();
    let function = FakeFunction::default();
    let _stop = start(&server, function.clone(), |_| {}).await;
    eventually("stale record dead-lettered", async || dead_letters(&mut conn).await.len() == 1).await;
    assert!(dead_letters(&mut conn).await[0]["reason"].starts_with("stale"));
    assert!(function.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_replayed_dead_letter_reaches_only_the_group_that_gave_up_on_it() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let function = FakeFunction::default();
    let _stop = start(&server, function.clone(), |_| {}).await;
    let group = route().group();
    for (name, replay_for) in [("ours", Some(group.as_str())), ("theirs", Some("hemostat-exporter")), ("all", None)] {
        let body = alert(name).to_json();
        let mut fields = vec![(ENVELOPE_FIELD, body.as_str())];
        fields.extend(replay_for.map(|g| (REPLAY_FOR_FIELD, g)));
        let _: String = conn.xadd(route().stream(), "*", &fields).await.unwrap();
    }
    eventually("all three acked", async || {
        let seen = function.seen.lock().unwrap().len();
        seen == 2 && pending(&mut conn).await == 0
    })
    .await;
    // Give a wrongly delivered "theirs" time to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = function.seen.lock().unwrap().clone();
    assert_eq!((seen.get("ours"), seen.get("all"), seen.get("theirs")), (Some(&1), Some(&1), None), "{seen:?}");
    assert!(dead_letters(&mut conn).await.is_empty(), "passed over, not dead-lettered");
    let info: redis::streams::StreamInfoGroupsReply = conn.xinfo_groups(route().stream()).await.unwrap();
    let ours = info.groups.iter().find(|g| g.name == group).unwrap();
    assert_eq!(ours.pending, 0, "the other group's replay is acked too");
}

#[tokio::test]
async fn records_of_a_dead_replica_are_taken_over() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let publisher = RedisPublisher::new(connection::connect(&server.url()).await.unwrap());
    publisher.publish(&alert("orphan")).await.unwrap();
    // A replica that read the record and died before acking it.
    let _: () = conn.xgroup_create_mkstream(route().stream(), route().group(), "0").await.unwrap();
    let _: redis::streams::StreamReadReply = conn
        .xread_options(
            &[route().stream()],
            &[">"],
            &redis::streams::StreamReadOptions::default().group(route().group(), "dead-replica"),
        )
        .await
        .unwrap();
    assert_eq!(pending(&mut conn).await, 1);

    let function = FakeFunction::default();
    let _stop = start(&server, function.clone(), |c| c.reclaim_idle_ms = 300).await;
    eventually("orphan delivered and acked", async || pending(&mut conn).await == 0).await;
    assert_eq!(function.seen.lock().unwrap()["orphan"], 1);
}

/// Replicas that died while holding a record are not the function failing:
/// a record whose every delivery went to a consumer that then died is still
/// delivered, however often that happened up to the ceiling (max attempts +
/// 10 takeovers), and dead-lettered beyond it.
#[tokio::test]
async fn deliveries_to_dying_replicas_do_not_count_as_failed_attempts() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let publisher = RedisPublisher::new(connection::connect(&server.url()).await.unwrap());
    publisher.publish(&alert("survivor")).await.unwrap();
    publisher.publish(&alert("cursed")).await.unwrap();
    let (stream, group) = (route().stream(), route().group());
    let _: () = conn.xgroup_create_mkstream(&stream, &group, "0").await.unwrap();
    let read: redis::streams::StreamReadReply = conn
        .xread_options(&[&stream], &[">"], &redis::streams::StreamReadOptions::default().group(&group, "dead-0"))
        .await
        .unwrap();
    let ids: Vec<String> = read.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    // Three bridges took each record over and died in turn (what the real
    // bridge records on takeover); the cursed one went through twelve.
    let takeovers = keys::bridge_takeovers(&stream, &group);
    for (id, times) in [(&ids[0], 3u64), (&ids[1], 12)] {
        for n in 1..=times {
            let _: redis::streams::StreamClaimReply =
                conn.xclaim(&stream, &group, format!("dead-{n}"), 0, &[id]).await.unwrap();
            let _: u64 = conn.hincr(&takeovers, id, 1).await.unwrap();
        }
    }

    let function = FakeFunction::default();
    let _stop = start(&server, function.clone(), |c| c.reclaim_idle_ms = 300).await;
    eventually("both records settled", async || pending(&mut conn).await == 0).await;
    assert_eq!(
        function.seen.lock().unwrap().get("survivor"),
        Some(&1),
        "4 deliveries, all to dead replicas: delivered again"
    );
    assert_eq!(function.seen.lock().unwrap().get("cursed"), None);
    let dead = dead_letters(&mut conn).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["id"], ids[1]);
    assert!(dead[0]["reason"].contains("consumers that died"), "{dead:?}");
}
