//! Connecting to Redis: one node or a Redis Cluster, behind one type.
//!
//! Every component talks to Redis through [`Connection`]. Whether
//! `REDIS_URL` names a single node or a cluster is decided here, once:
//! a cluster connection follows `MOVED`/`ASK`, refreshes its slot map when
//! a replica takes over, and splits a plain pipeline whose commands live
//! in different slots into one pipeline per slot, so callers write the
//! same code for both. What it cannot hide: a transaction (`MULTI`) or a
//! script must keep its keys in one slot, which the key schema
//! ([`crate::keys`]) arranges with hash tags.
//!
//! `REDIS_URL` is one URL, or several comma-separated (the seed nodes of a
//! cluster). `REDIS_CLUSTER` says which it is: `auto` (default: several
//! URLs are a cluster; one URL is asked `INFO cluster` on first use),
//! `true` or `false`. TLS (`rediss://`) and AUTH work the same on both.
//!
//! Module map:
//! - `target`: where Redis is ([`Target`]), the clients and connections
//!   made from it, and the node a pub/sub listener is on, then the next
//!   one after a failure ([`Subscribers`]).
//! - [`Connection`] (here): the connection every component holds.
//! - `cluster`: how a cluster connection routes a pipeline (by the first
//!   key's slot, one pipeline per master, `MOVED` followed).
//! - `slot_map`: which master serves which slots, from `CLUSTER SLOTS`.

mod cluster;
mod slot_map;
mod target;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::FutureExt;
use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager},
    cluster_async::ClusterConnection,
    cluster_routing::SingleNodeRoutingInfo,
};
use tokio::sync::OnceCell;

pub use target::{Subscribers, Target, Topology};

use crate::{error::ProtocolError, slot::key_slot};
use cluster::{cluster_pipeline, route_to};
use slot_map::{SlotCache, nodes_of_cluster_slots};

/// How long [`Connection::wait_replicated`] waits for a replica.
pub const REPLICA_ACK_TIMEOUT: Duration = Duration::from_millis(100);

/// How much longer than one attempt's response timeout a request may
/// take, retries included: enough to ride out a failover's election on a
/// cluster with a short node timeout; past it, the caller's backoff takes
/// over with fresh sockets.
const RIDE_THROUGH: Duration = Duration::from_secs(10);

/// A self-reconnecting connection to a single node or a cluster; cheap to
/// clone (clones share the sockets).
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

struct Shared {
    target: Target,
    response_timeout: Duration,
    /// Decided on first use: `REDIS_CLUSTER=auto` asks the server.
    cluster: OnceCell<bool>,
    /// The sockets, with a generation number. Replaced after a response
    /// timeout: the client reconnects on a closed socket, but a half-open
    /// one (a peer gone without a word, a dropped NAT or firewall entry)
    /// only ever times out, and would stay dead for good.
    inner: std::sync::Mutex<Option<(u64, Inner)>>,
    /// Which master serves which slots, to send one pipeline per master.
    slots: SlotCache,
}

/// The sockets, once the topology is known.
#[derive(Clone)]
pub(super) enum Inner {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// A connection to `target` that connects on first use (see [`Target::lazy`]).
    pub(super) fn new(target: Target, response_timeout: Duration) -> Connection {
        Connection {
            shared: Arc::new(Shared {
                target,
                response_timeout,
                cluster: OnceCell::new(),
                inner: std::sync::Mutex::new(None),
                slots: SlotCache::default(),
            }),
        }
    }

    /// `true` when this talks to a Redis Cluster (after the first use).
    pub async fn is_cluster(&self) -> Result<bool, ProtocolError> {
        Ok(matches!(self.inner().await?, Inner::Cluster(_)))
    }

    /// How long the server holding `key` (on a cluster, its slot's master)
    /// has been up: keys that expired while it was down are gone the moment
    /// it is back, before their owners could refresh them.
    pub async fn uptime(&self, key: &str) -> Result<Duration, ProtocolError> {
        let info = redis::cmd("INFO").arg("server").clone();
        let reply = match self.inner().await? {
            Inner::Node(mut conn) => info.query_async::<Value>(&mut conn).await?,
            Inner::Cluster(mut conn) => {
                let routing = redis::cluster_routing::RoutingInfo::SingleNode(route_to(key.as_bytes()));
                conn.route_command(info, routing).await?
            }
        };
        let text: String = redis::from_redis_value(reply).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("uptime_in_seconds:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .ok_or_else(|| {
                ProtocolError::Redis(redis::RedisError::from(std::io::Error::other(
                    "no uptime_in_seconds in INFO server",
                )))
            })
    }

    /// Waits (briefly) until a replica has every write this connection made
    /// to `key`'s master, on a cluster whose master for `key` has replicas;
    /// a no-op otherwise. Replication is asynchronous: a write acknowledged
    /// by a master that dies a moment later can be missing on the replica
    /// that takes over. After this returns, it is not; when it fails (the
    /// master died meanwhile), the caller retries the write, which then
    /// lands on the new master (a duplicate at worst, never a loss).
    /// A replica slower than [`REPLICA_ACK_TIMEOUT`] is waited for no longer.
    pub async fn wait_replicated(&self, key: &str) -> Result<(), ProtocolError> {
        let Inner::Cluster(mut conn) = self.inner().await? else { return Ok(()) };
        let slot = key_slot(key.as_bytes());
        let Some(map) = self.shared.slots.get(&mut conn).await else { return Ok(()) };
        if map.replicas_of(slot) == 0 {
            return Ok(());
        }
        let wait = redis::cmd("WAIT").arg(1).arg(REPLICA_ACK_TIMEOUT.as_millis() as u64).clone();
        let routing = redis::cluster_routing::RoutingInfo::SingleNode(route_to(key.as_bytes()));
        let acked = conn.route_command(wait, routing).await?;
        if matches!(acked, Value::Int(0)) {
            tracing::debug!(key, "no replica acknowledged within {REPLICA_ACK_TIMEOUT:?}");
        }
        Ok(())
    }

    /// Every node serving slots now, masters first, from `CLUSTER SLOTS`
    /// asked of any master; empty on a single node.
    pub async fn cluster_nodes(&self) -> Result<Vec<(String, u16)>, ProtocolError> {
        let Inner::Cluster(mut conn) = self.inner().await? else { return Ok(Vec::new()) };
        let routing = redis::cluster_routing::RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
        let reply = conn.route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), routing).await?;
        Ok(nodes_of_cluster_slots(&reply))
    }

    async fn inner(&self) -> Result<Inner, ProtocolError> {
        Ok(self.current().await?.1)
    }

    /// The sockets and their generation, opened (lazily) if there are none.
    async fn current(&self) -> Result<(u64, Inner), ProtocolError> {
        let shared = &self.shared;
        let cluster = *shared.cluster.get_or_try_init(|| shared.target.is_cluster()).await?;
        let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = &*inner {
            return Ok(current.clone());
        }
        static GENERATIONS: AtomicU64 = AtomicU64::new(0);
        let opened =
            (GENERATIONS.fetch_add(1, Ordering::Relaxed), shared.target.open(cluster, shared.response_timeout)?);
        *inner = Some(opened.clone());
        Ok(opened)
    }

    /// A request's whole time, the client's own retries included: each
    /// attempt has the response timeout, but a cluster client retrying
    /// attempts that time out (a node restarting, slots not served yet)
    /// could hold a blocking read for most of a minute, and its caller
    /// with it. Past the deadline it is a timeout, which drops the sockets
    /// ([`Connection::after`]): the caller's own retry starts afresh.
    async fn within_deadline<T>(&self, request: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
        let deadline = self.shared.response_timeout + RIDE_THROUGH;
        match tokio::time::timeout(deadline, request).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s, retries included", deadline.as_secs()),
            ))),
        }
    }

    /// After `result` of a request on generation `generation`: a response
    /// timeout drops those sockets, so the next request opens new ones; so
    /// does a cluster client left with no connection to any node (after the
    /// whole cluster was down, one was seen to stay so for good while its
    /// siblings recovered: a fresh client starts from the seeds).
    fn after<T>(&self, generation: u64, result: &redis::RedisResult<T>) {
        let Err(e) = result else { return };
        let lost = e.kind() == redis::ErrorKind::ClusterConnectionNotFound;
        if !e.is_timeout() && !lost {
            return;
        }
        let mut inner = self.shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.as_ref().is_some_and(|(g, _)| *g == generation) {
            match lost {
                // Every request says so while the cluster is down: not a warning each.
                true => {
                    tracing::debug!(redis = %self.shared.target.redacted(), "no connection to any cluster node; reconnecting from the seeds")
                }
                false => {
                    tracing::warn!(redis = %self.shared.target.redacted(), "Redis did not answer in time; reconnecting")
                }
            }
            *inner = None;
        }
    }
}

fn as_redis_error(e: ProtocolError) -> redis::RedisError {
    match e {
        ProtocolError::Redis(e) => e,
        other => redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::NotConnected, other.to_string())),
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            let (generation, inner) = self.current().await.map_err(as_redis_error)?;
            let result = self
                .within_deadline(async {
                    match inner {
                        Inner::Node(mut c) => c.req_packed_command(cmd).await,
                        Inner::Cluster(mut c) => c.req_packed_command(cmd).await,
                    }
                })
                .await;
            self.after(generation, &result);
            result
        }
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            let (generation, inner) = self.current().await.map_err(as_redis_error)?;
            let result = self
                .within_deadline(async {
                    match inner {
                        Inner::Node(mut c) => c.req_packed_commands(pipeline, offset, count).await,
                        Inner::Cluster(c) => cluster_pipeline(&self.shared.slots, c, pipeline, offset, count).await,
                    }
                })
                .await;
            self.after(generation, &result);
            result
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// A self-reconnecting connection to `url` (one URL or a cluster's seeds),
/// with `REDIS_CLUSTER` and `REDIS_CA_CERT` from the environment; fails if
/// Redis does not answer now.
pub async fn connect(url: &str) -> Result<Connection, ProtocolError> {
    Target::from_env(url)?.connect().await
}

/// [`connect`] for blocking reads ([`Target::lazy_blocking`]).
pub async fn connect_blocking(url: &str, longest_block: Duration) -> Result<Connection, ProtocolError> {
    let conn = Target::from_env(url)?.lazy_blocking(longest_block)?;
    let _: String = redis::cmd("PING").query_async(&mut conn.clone()).await?;
    Ok(conn)
}

/// The URL (or URLs) with passwords (and usernames) replaced, safe for logs.
pub fn redact(url: &str) -> String {
    if url.contains(',') {
        // A new URL starts only where a scheme does: a comma in a password
        // (which makes the setting unusable, but is logged when it fails)
        // must not leave the part before it outside the redaction.
        let mut urls: Vec<String> = Vec::new();
        for piece in url.split(',') {
            match urls.last_mut() {
                Some(last) if !piece.contains("://") => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => urls.push(piece.to_owned()),
            }
        }
        if urls.len() > 1 {
            return urls.iter().map(|u| redact(u.trim())).collect::<Vec<_>>().join(",");
        }
    }
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparseable URL>".into();
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => format!("{scheme}://{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(redact("redis://:s3cret@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redact("rediss://user:p%40ss@h:1"), "rediss://***@h:1");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert!(!redact("nonsense:s3cret").contains("s3cret"));
        assert_eq!(redact("redis://:a@h1:1, redis://:b@h2:2"), "redis://***@h1:1,redis://***@h2:2");
        // A comma in a password: no part of it shown.
        assert_eq!(redact("redis://user:se,cret@h:1"), "redis://***@h:1");
        assert_eq!(redact("redis://:a,b@h1:1,redis://:c,d@h2:2"), "redis://***@h1:1,redis://***@h2:2");
    }
}
