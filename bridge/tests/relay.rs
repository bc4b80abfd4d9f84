//! The relay against a real redis-server: what a seed-protocol publisher
//! puts only on a channel reaches the stream exactly once; what HemoStat
//! publishes is not duplicated.

use std::time::Duration;

use hemostat_bridge::relay::{self, Relayed};
use hemostat_e2e::{Freezer, RedisCluster, RedisServer, redis_server::cluster_mode, wait_until};
use hemostat_protocol::{
    Envelope, EventKind, Publisher, RedisPublisher,
    connection::{self, Target},
    keys,
};
use redis::AsyncCommands;
use tokio::sync::watch;

/// What a custom analyzer written against the seed protocol publishes.
const FOREIGN: &str = r#"{"timestamp": "2025-11-03T10:30:48.456789", "agent": "Custom-Analyzer", "type": "remediation_needed", "data": {"container": "api", "action": "restart", "reason": "custom rule", "confidence": 0.95}}"#;

fn stream() -> String {
    EventKind::RemediationNeeded.stream()
}

#[tokio::test]
async fn foreign_messages_are_appended_once_and_our_own_never() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let channel = EventKind::RemediationNeeded.channel();

    // Two relays (two bridge replicas) hear the same foreign message.
    assert_eq!(relay::relay(&mut conn, &channel, FOREIGN.as_bytes()).await.unwrap(), Relayed::Appended);
    assert_eq!(relay::relay(&mut conn, &channel, FOREIGN.as_bytes()).await.unwrap(), Relayed::AlreadyThere);
    assert_eq!(conn.xlen::<_, usize>(stream()).await.unwrap(), 1);

    // HemoStat's own publish is already in the stream: the relay leaves it.
    let publisher = RedisPublisher::new(connection::connect(&server.url()).await.unwrap());
    let ours = Envelope::parse(FOREIGN.replace("custom rule", "ours").as_bytes()).unwrap();
    publisher.publish(&ours).await.unwrap();
    assert_eq!(relay::relay(&mut conn, &channel, ours.to_json().as_bytes()).await.unwrap(), Relayed::AlreadyThere);
    assert_eq!(conn.xlen::<_, usize>(stream()).await.unwrap(), 2);

    // Garbage, or an event on the wrong channel: dead-lettered with the reason.
    assert_eq!(relay::relay(&mut conn, &channel, b"{not json").await.unwrap(), Relayed::Malformed);
    let alarm = FOREIGN.replace("remediation_needed", "false_alarm");
    assert_eq!(relay::relay(&mut conn, &channel, alarm.as_bytes()).await.unwrap(), Relayed::Malformed);
    let dead: redis::streams::StreamRangeReply = conn.xrange_all(keys::DEAD_LETTER_STREAM).await.unwrap();
    let reasons: Vec<String> = dead.ids.iter().filter_map(|e| e.get("reason")).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[1].contains("false_alarm event on channel hemostat:remediation_needed"), "{reasons:?}");
}

#[tokio::test]
async fn a_running_relay_carries_a_seed_publish_into_the_stream() {
    let server = RedisServer::start().await;
    let mut conn = server.connection().await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let target = Target::from_env(&server.url()).unwrap();
    let task = tokio::spawn(relay::run(target, Duration::from_secs(5), stop_rx));
    let ports = match server.cluster() {
        Some(cluster) => cluster.ports(),
        None => vec![server.port()],
    };
    assert!(subscribed_on(&ports).await.is_some(), "relay never subscribed");

    // Exactly what `redis-cli PUBLISH hemostat:remediation_needed '...'` does.
    let _: i64 = conn.publish(EventKind::RemediationNeeded.channel(), FOREIGN).await.unwrap();
    assert!(arrives(&conn, "Custom-Analyzer").await, "the seed publish never reached the stream");
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("relay stops").unwrap();
}

/// A cluster user often gives one seed. When that node dies, the relay must
/// go on from a node the cluster told it of, or a custom analyzer's
/// `remediation_needed` never reaches the gate again.
#[tokio::test]
async fn the_relay_outlives_its_only_seed_on_a_cluster() {
    if !cluster_mode() {
        eprintln!("cluster only (HEMOSTAT_TEST_REDIS=cluster): a single node has no other node to move to");
        return;
    }
    let mut cluster = RedisCluster::start().await;
    // The relay subscribes first to the first node the cluster names;
    // that node is made its only seed, and then killed.
    let probe = Target::from_env(&cluster.url()).unwrap();
    let first = probe.subscriber_clients(&probe.connect().await.unwrap()).await.remove(0);
    let seed_port = match first.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(_, port) => *port,
        other => panic!("not a TCP node: {other}"),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let target = Target::from_env(&format!("redis://127.0.0.1:{seed_port}")).unwrap();
    let task = tokio::spawn(relay::run(target, Duration::from_secs(5), stop_rx));
    let on = subscribed_on(&cluster.ports()).await.expect("relay never subscribed");
    assert_eq!(on, seed_port, "the relay subscribed first to a node other than its seed");

    cluster.kill(seed_port);
    cluster.wait_for_failover(seed_port, Duration::from_secs(30)).await;
    let live: Vec<u16> = cluster.ports().into_iter().filter(|&p| p != seed_port).collect();
    let moved = subscribed_on(&live).await.expect("the relay never subscribed again after its seed died");
    assert_ne!(moved, seed_port);

    let survivors: Vec<String> = live.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect();
    let conn = hemostat_protocol::connection::connect(&survivors.join(",")).await.unwrap();
    let after = FOREIGN.replace("custom rule", "after the seed died");
    let mut node = redis::Client::open(format!("redis://127.0.0.1:{}", live[0]))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = node.publish(EventKind::RemediationNeeded.channel(), &after).await.unwrap();
    assert!(arrives(&conn, "after the seed died").await, "a seed publish after the failover never reached the stream");
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("relay stops").unwrap();
}

/// A subscription whose connection goes half-open (the proxy between the
/// relay and Redis goes silent, sockets open) hears nothing and gets no
/// error: the relay notices its own keepalive missing, subscribes again,
/// and seed publishes reach the stream again; its writer, silent too, is
/// replaced after a response timeout.
#[tokio::test]
async fn a_half_open_subscription_is_noticed_and_replaced() {
    if cluster_mode() {
        eprintln!("single node only: the proxy stands in front of one node, and a cluster names its nodes' own ports");
        return;
    }
    let server = RedisServer::start().await;
    let conn = server.connection().await;
    let proxy = Freezer::start(server.port()).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let target = Target::from_env(&format!("redis://127.0.0.1:{}", proxy.port())).unwrap();
    let task = tokio::spawn(relay::run(target, Duration::from_millis(300), stop_rx));
    assert!(subscribed_on(&[server.port()]).await.is_some(), "relay never subscribed");
    let mut direct = conn.clone();
    let _: i64 = direct.publish(EventKind::RemediationNeeded.channel(), FOREIGN).await.unwrap();
    assert!(arrives(&conn, "Custom-Analyzer").await, "the seed publish never reached the stream");

    proxy.freeze();
    let started = std::time::Instant::now();
    // Publishes into a deaf subscription are lost (pub/sub keeps nothing):
    // publish until one arrives.
    let mut n = 0;
    let recovered = wait_until(Duration::from_secs(30), || {
        n += 1;
        let (mut direct, conn, text) = (direct.clone(), conn.clone(), format!("after the freeze {n}"));
        async move {
            let message = FOREIGN.replace("custom rule", &text);
            let _: i64 = direct.publish(EventKind::RemediationNeeded.channel(), &message).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let entries: redis::streams::StreamRangeReply = conn.clone().xrange_all(stream()).await.unwrap();
            entries.ids.iter().any(|e| e.get::<String>("envelope").is_some_and(|b| b.contains("after the freeze")))
        }
    })
    .await;
    assert!(recovered, "the relay never heard again after its connections went silent");
    println!("relay recovered from a half-open connection in {:.1}s", started.elapsed().as_secs_f64());
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("relay stops").unwrap();
}

/// The port of the node the relay is subscribed on, once it is: a PUBLISH
/// counts only the receiving node's subscribers (on a cluster the message
/// itself reaches every node). Waits up to 20 s.
async fn subscribed_on(ports: &[u16]) -> Option<u16> {
    let found = std::sync::Mutex::new(None);
    let found_ref = &found;
    wait_until(Duration::from_secs(20), || async move {
        for &port in ports {
            let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else { continue };
            let Ok(mut node) = client.get_multiplexed_async_connection().await else { continue };
            if node.publish::<_, _, i64>("hemostat:remediation_needed", "probe").await.unwrap_or(0) > 0 {
                *found_ref.lock().unwrap() = Some(port);
                return true;
            }
        }
        false
    })
    .await;
    found.into_inner().unwrap()
}

/// Whether an envelope containing `text` reaches the stream within 5 s.
async fn arrives(conn: &hemostat_protocol::connection::Connection, text: &str) -> bool {
    wait_until(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        async move {
            let entries: redis::streams::StreamRangeReply = conn.xrange_all(stream()).await.unwrap_or_default();
            entries.ids.iter().any(|e| e.get::<String>("envelope").is_some_and(|b| b.contains(text)))
        }
    })
    .await
}
