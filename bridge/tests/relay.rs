//! The relay against a real redis-server: what a seed-protocol publisher
//! puts only on a channel reaches the stream exactly once; what HemoStat
//! publishes is not duplicated.

use std::time::Duration;

use hemostat_bridge::relay::{self, Relayed};
use hemostat_e2e::{RedisServer, wait_until};
use hemostat_protocol::{Envelope, EventKind, Publisher, RedisPublisher, connection, keys};
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
    let target = hemostat_protocol::connection::Target::from_env(&server.url()).unwrap();
    let task = tokio::spawn(relay::run(target, stop_rx));
    // Subscribed once a PUBLISH reaches a listener. Sent to the node the
    // relay subscribes to first: on a cluster, PUBLISH counts only the
    // receiving node's subscribers (the message itself reaches every node).
    let first_node = server.client();
    let subscribed = wait_until(Duration::from_secs(10), || {
        let client = first_node.clone();
        async move {
            let Ok(mut node) = client.get_multiplexed_async_connection().await else { return false };
            node.publish::<_, _, i64>("hemostat:remediation_needed", "probe").await.unwrap_or(0) > 0
        }
    })
    .await;
    assert!(subscribed, "relay never subscribed");

    // Exactly what `redis-cli PUBLISH hemostat:remediation_needed '...'` does.
    let _: i64 = conn.publish(EventKind::RemediationNeeded.channel(), FOREIGN).await.unwrap();
    let arrived = wait_until(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        async move {
            let entries: redis::streams::StreamRangeReply = conn.xrange_all(stream()).await.unwrap();
            entries.ids.iter().any(|e| e.get::<String>("envelope").is_some_and(|b| b.contains("Custom-Analyzer")))
        }
    })
    .await;
    assert!(arrived, "the seed publish never reached the stream");
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("relay stops").unwrap();
}
