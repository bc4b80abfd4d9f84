//! The harness's [`RedisCluster`]: six real `redis-server`s in cluster mode,
//! driven through redis-rs' `ClusterClient`, surviving the crash of a master.
//!
//! Needs only `redis-server` and `redis-cli` (no Docker).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hemostat_e2e::{RedisCluster, key_slot};
use redis::AsyncCommands;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

const KEYS: usize = 100;
const PROBE: &str = "failover-probe";

/// Start, write through the cluster, kill the master of one key's slot, and
/// read and write that key again through the same connection once a replica
/// has taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_survives_master_crash() {
    let started = Instant::now();
    let mut cluster = RedisCluster::start().await;
    let start_time = started.elapsed();
    println!("redis cluster started in {start_time:?}: {}", cluster.url());

    // Topology: six nodes, three masters, every slot served by one of them.
    let ports = cluster.ports();
    assert_eq!(ports.len(), 6);
    assert_eq!(cluster.url().split(',').count(), 6);
    let masters = cluster.masters().await;
    assert_eq!(masters.len(), 3, "masters: {masters:?}");
    assert!(masters.iter().all(|m| ports.contains(m)), "masters {masters:?} not among {ports:?}");
    for slot in [0, 5460, 5461, 10922, 10923, 16383] {
        let owner = cluster.master_of_slot(slot).await;
        assert!(masters.contains(&owner), "slot {slot} served by {owner}, not a master {masters:?}");
    }
    let info: String = node_query(ports[0], &["CLUSTER", "INFO"]).await;
    for field in ["cluster_state:ok", "cluster_slots_assigned:16384", "cluster_known_nodes:6", "cluster_size:3"] {
        assert!(info.lines().any(|l| l.trim() == field), "CLUSTER INFO lacks {field}:\n{info}");
    }
    // key_slot agrees with the server.
    for key in ["foo", "hello", PROBE, "{user1000}.following", "key-42"] {
        let server: i64 = node_query(ports[0], &["CLUSTER", "KEYSLOT", key]).await;
        assert_eq!(i64::from(key_slot(key)), server, "key_slot({key:?})");
    }

    // Writes through the cluster land on all three masters.
    let client = ClusterClient::new(cluster.urls()).expect("cluster client");
    let mut conn = client.get_async_connection().await.expect("cluster connection");
    let mut owners = BTreeSet::new();
    for i in 0..KEYS {
        let key = format!("key-{i}");
        let () = conn.set(&key, format!("value-{i}")).await.unwrap_or_else(|e| panic!("SET {key}: {e}"));
        owners.insert(cluster.master_of_slot(key_slot(&key)).await);
    }
    assert_eq!(owners.len(), 3, "{KEYS} keys on masters {owners:?}");
    let () = conn.set(PROBE, "before").await.expect("SET probe");
    // WAIT goes to every master: each write so far has reached its replica,
    // so the failover loses nothing.
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query_async(&mut conn).await.expect("WAIT");
    assert_eq!(acked, 1, "replicas did not acknowledge the writes");

    // Crash the master of the probe's slot.
    let slot = key_slot(PROBE);
    let victim = cluster.master_of_slot(slot).await;
    cluster.kill(victim);
    cluster.kill(victim); // idempotent
    let failover = cluster.wait_for_failover(victim, Duration::from_secs(30)).await;
    println!("failover of master {victim} (slot {slot}) took {failover:?}");
    let successor = cluster.master_of_slot(slot).await;
    assert_ne!(successor, victim);
    let masters = cluster.masters().await;
    assert_eq!(masters.len(), 3, "masters after failover: {masters:?}");
    assert!(!masters.contains(&victim), "dead {victim} still a master: {masters:?}");

    // The same connection finds the new master (after a refresh or two).
    let retried = Instant::now();
    let value = retry(&mut conn, |mut conn| async move { conn.get::<_, Option<String>>(PROBE).await }).await;
    println!("client read {PROBE} from new master {successor} after {:?} of retries", retried.elapsed());
    assert_eq!(value.as_deref(), Some("before"));
    retry(&mut conn, |mut conn| async move { conn.set::<_, _, ()>(PROBE, "after").await }).await;
    let value: Option<String> = conn.get(PROBE).await.expect("GET probe after write");
    assert_eq!(value.as_deref(), Some("after"));
    // Nothing written before the crash was lost.
    for i in 0..KEYS {
        let key = format!("key-{i}");
        let value: Option<String> = conn.get(&key).await.unwrap_or_else(|e| panic!("GET {key}: {e}"));
        assert_eq!(value, Some(format!("value-{i}")), "{key}");
    }
}

/// Runs `op` until it succeeds, for up to 10 s (the client may need to notice
/// the dead node and refresh its slot map first).
async fn retry<T, F, Fut>(conn: &mut ClusterConnection, op: F) -> T
where
    F: Fn(ClusterConnection) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match op(conn.clone()).await {
            Ok(value) => return value,
            Err(e) if Instant::now() < deadline => {
                println!("attempt {attempts} failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("still failing after {attempts} attempts: {e}"),
        }
    }
}

/// One command to one node on a plain connection.
async fn node_query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> T {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut conn = tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection())
        .await
        .expect("connect timeout")
        .expect("connect");
    let mut cmd = redis::Cmd::new();
    for arg in args {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn).await.unwrap_or_else(|e| panic!("node {port}: {}: {e}", args.join(" ")))
}
