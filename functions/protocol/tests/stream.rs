//! The consumer group reader against a real redis-server (a Redis Cluster
//! under `HEMOSTAT_TEST_REDIS=cluster`): delivery, own pending entries after a
//! crash, takeover by claim, trimmed entries and a vanished group.

use std::time::Duration;

use hemostat_e2e::RedisServer;
use hemostat_protocol::stream::{self, Group};

async fn add(conn: &mut hemostat_protocol::connection::Connection, stream: &str, value: &str) -> String {
    redis::cmd("XADD").arg(stream).arg("*").arg("data").arg(value).query_async(conn).await.unwrap()
}

#[tokio::test]
async fn delivers_acks_and_hands_over_pending_entries() {
    let redis = RedisServer::start().await;
    let mut conn = redis.connection().await;
    let a = Group::new("hemostat:test:stream", "g", "a");
    let b = Group::new("hemostat:test:stream", "g", "b");
    a.ensure(&mut conn).await.unwrap();
    a.ensure(&mut conn).await.expect("an existing group is fine");

    let nothing = a.read_new(&mut conn, 10, Some(Duration::from_millis(20))).await.unwrap();
    assert!(nothing.is_empty());

    let ids = [add(&mut conn, &a.stream, "one").await, add(&mut conn, &a.stream, "two").await];
    let read = a.read_new(&mut conn, 10, None).await.unwrap();
    assert_eq!(read.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(read[1].field("data"), Some("two"));
    assert!(a.read_new(&mut conn, 10, None).await.unwrap().is_empty(), "delivered once");

    // After a crash, "a" finds what it was given and never acked.
    let own = a.read_own_pending(&mut conn, "0", 10).await.unwrap();
    assert_eq!(own.len(), 2);
    assert!(b.read_own_pending(&mut conn, "0", 10).await.unwrap().is_empty());
    assert_eq!(a.ack(&mut conn, &[&ids[0]]).await.unwrap(), 1);
    assert_eq!(a.ack(&mut conn, &[&ids[0]]).await.unwrap(), 0, "acking twice is harmless");

    // Reading its own history counted as a second delivery.
    let pending = a.pending(&mut conn, Duration::ZERO, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].id.as_str(), pending[0].consumer.as_str(), pending[0].deliveries),
        (ids[1].as_str(), "a", 2)
    );

    // "b" takes it over; "a", asking for a long idle time, gets nothing back.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let taken = b.claim(&mut conn, Duration::from_millis(10), &[&ids[1]]).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].field("data"), Some("two"));
    assert!(a.claim(&mut conn, Duration::from_secs(60), &[&ids[1]]).await.unwrap().is_empty());
    let pending = b.pending(&mut conn, Duration::ZERO, 10).await.unwrap();
    assert_eq!((pending[0].consumer.as_str(), pending[0].deliveries), ("b", 3));

    // "c" sweeps up everything idle.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let c = Group::new(&a.stream, "g", "c");
    assert_eq!(c.claim_idle(&mut conn, Duration::from_millis(10), 100).await.unwrap(), 1);
    assert_eq!(c.read_own_pending(&mut conn, "0", 10).await.unwrap()[0].id, ids[1]);
}

#[tokio::test]
async fn trimmed_entries_come_back_without_fields_and_a_lost_group_is_recognised() {
    let redis = RedisServer::start().await;
    let mut conn = redis.connection().await;
    let g = Group::new("hemostat:test:trim", "g", "a");
    g.ensure(&mut conn).await.unwrap();
    let id = add(&mut conn, &g.stream, "x").await;
    assert_eq!(g.read_new(&mut conn, 10, None).await.unwrap().len(), 1);
    let _: u64 = redis::cmd("XDEL").arg(&g.stream).arg(&id).query_async(&mut conn).await.unwrap();
    let own = g.read_own_pending(&mut conn, "0", 10).await.unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!((own[0].id.as_str(), own[0].fields.as_ref()), (id.as_str(), None));

    let _: u64 = redis::cmd("DEL").arg(&g.stream).query_async(&mut conn).await.unwrap();
    let e = g.read_new(&mut conn, 10, None).await.unwrap_err();
    assert!(stream::is_missing_group(&e), "{e}");
    g.ensure(&mut conn).await.unwrap();
    assert!(g.read_new(&mut conn, 10, None).await.unwrap().is_empty());
}
