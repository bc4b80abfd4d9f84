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

use std::{
    collections::HashMap,
    sync::{Arc, Once},
    time::Duration,
};

use futures::FutureExt;
use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClientBuilder, ClusterConfig},
    cluster_async::ClusterConnection,
    cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr},
};
use tokio::sync::OnceCell;

use crate::{error::ProtocolError, slot::key_slot};

/// How long one ordinary command may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening one socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Target::subscriber_clients`] asks the cluster for its nodes
/// before it settles for the seeds.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long [`Connection::wait_replicated`] waits for a replica.
pub const REPLICA_ACK_TIMEOUT: Duration = Duration::from_millis(100);

/// Whether the URLs name a cluster (`REDIS_CLUSTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Several URLs: a cluster; one URL: ask the server.
    Auto,
    Node,
    Cluster,
}

impl Topology {
    /// Reads `REDIS_CLUSTER` (`auto`, `true`, `false`; unset is `auto`).
    pub fn from_env() -> Result<Self, ProtocolError> {
        Self::parse(&std::env::var("REDIS_CLUSTER").unwrap_or_default())
    }

    pub fn parse(value: &str) -> Result<Self, ProtocolError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Topology::Auto),
            "true" | "1" | "yes" | "cluster" => Ok(Topology::Cluster),
            "false" | "0" | "no" | "node" => Ok(Topology::Node),
            _ => Err(ProtocolError::Config {
                name: "REDIS_CLUSTER".into(),
                value: value.into(),
                reason: "expected auto, true or false".into(),
            }),
        }
    }
}

/// Where Redis is: the seed URLs, single node or cluster, and the private CA
/// for TLS. Built once per process from the environment ([`Target::from_env`]
/// reads `REDIS_CLUSTER` and `REDIS_CA_CERT`).
#[derive(Clone)]
pub struct Target {
    urls: Vec<String>,
    topology: Topology,
    ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("urls", &redact(&self.urls.join(","))).field("topology", &self.topology).finish()
    }
}

impl Target {
    /// `url` (one or comma-separated), `REDIS_CLUSTER` and `REDIS_CA_CERT`
    /// from the environment.
    pub fn from_env(url: &str) -> Result<Self, ProtocolError> {
        let ca = match std::env::var_os("REDIS_CA_CERT").filter(|p| !p.is_empty()) {
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                ProtocolError::RedisUrl(format!(
                    "cannot read REDIS_CA_CERT {}: {e}",
                    std::path::Path::new(&path).display()
                ))
            })?),
            None => None,
        };
        Self::new(url, Topology::from_env()?, ca)
    }

    /// Checks every URL's scheme; TLS (`rediss://`) uses rustls with the
    /// ring provider and trusts the system's CAs, or only `ca_pem`.
    pub fn new(url: &str, topology: Topology, ca_pem: Option<Vec<u8>>) -> Result<Self, ProtocolError> {
        let urls: Vec<String> = url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
        if urls.is_empty() {
            return Err(ProtocolError::RedisUrl("empty".into()));
        }
        for u in &urls {
            match scheme(u) {
                "redis" | "redis+unix" | "unix" => {}
                "rediss" => install_crypto_provider(),
                other => {
                    return Err(ProtocolError::RedisUrl(format!(
                        "scheme {other:?} is not redis:// or rediss:// (URL: {})",
                        redact(u)
                    )));
                }
            }
            // Parse now, so a typo is a start-up error and not a retry loop.
            node_client(u, None)?;
        }
        if topology == Topology::Node && urls.len() > 1 {
            return Err(ProtocolError::RedisUrl(format!(
                "{} URLs given but REDIS_CLUSTER=false: a single node takes one URL",
                urls.len()
            )));
        }
        Ok(Target { urls, topology, ca_pem })
    }

    /// The URLs, credentials redacted, for logs.
    pub fn redacted(&self) -> String {
        self.urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",")
    }

    /// A client for one of the seed nodes (pub/sub, probes).
    pub fn node_client(&self, index: usize) -> Result<redis::Client, ProtocolError> {
        node_client(&self.urls[index % self.urls.len()], self.ca_pem.clone())
    }

    /// Clients for pub/sub, in the order to try them: on a cluster, every
    /// node that serves slots now as `conn` learns it from `CLUSTER SLOTS`
    /// (masters, then replicas), then the seeds not among them; the seeds
    /// alone on a single node or when the cluster does not answer. Any node
    /// of a cluster hears every `PUBLISH`, so a subscriber whose seeds have
    /// died moves to a node the seeds never named. Discovered nodes are
    /// reached with the first seed's scheme, credentials and CA. Never empty.
    pub async fn subscriber_clients(&self, conn: &Connection) -> Vec<redis::Client> {
        let discovered = match tokio::time::timeout(DISCOVERY_TIMEOUT, conn.cluster_nodes()).await {
            Ok(Ok(nodes)) => nodes,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "no cluster nodes discovered; subscribing to the seeds only");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let mut clients = Vec::new();
        for (host, port) in &discovered {
            match self.client_at(host, *port) {
                Ok(client) => clients.push(client),
                Err(e) => tracing::debug!(error = %e, "cannot address a discovered cluster node"),
            }
        }
        for url in &self.urls {
            let known = tcp_address(url).is_some_and(|a| discovered.contains(&a));
            if !known && let Ok(client) = node_client(url, self.ca_pem.clone()) {
                clients.push(client);
            }
        }
        if clients.is_empty() {
            // Checked in `new`: the first seed always makes a client.
            clients.extend(node_client(&self.urls[0], self.ca_pem.clone()));
        }
        clients
    }

    /// The nodes to subscribe on, in turn (see [`Subscribers`]).
    pub async fn subscribers(&self, conn: &Connection) -> Subscribers {
        let nodes = self.subscriber_clients(conn).await;
        Subscribers { target: self.clone(), conn: conn.clone(), nodes, next: 0 }
    }

    /// A client for `host:port` with the first seed's scheme, credentials
    /// and CA.
    fn client_at(&self, host: &str, port: u16) -> Result<redis::Client, ProtocolError> {
        let seed = &self.urls[0];
        let bad = |e: redis::RedisError| ProtocolError::RedisUrl(format!("{} ({e})", redact(seed)));
        let info = redis::IntoConnectionInfo::into_connection_info(seed.as_str()).map_err(bad)?;
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        let addr = match info.addr() {
            redis::ConnectionAddr::TcpTls { insecure, .. } => {
                redis::ConnectionAddr::TcpTls { host: host.to_owned(), port, insecure: *insecure, tls_params: None }
            }
            _ => redis::ConnectionAddr::Tcp(host.to_owned(), port),
        };
        let info = info.set_addr(addr);
        match &self.ca_pem {
            Some(pem) if tls => {
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) };
                redis::Client::build_with_tls(info, certs).map_err(bad)
            }
            _ => redis::Client::open(info).map_err(bad),
        }
    }

    /// Opens a connection now: fails if Redis does not answer.
    pub async fn connect(&self) -> Result<Connection, ProtocolError> {
        let conn = self.lazy_with(RESPONSE_TIMEOUT)?;
        conn.inner().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn.clone()).await?;
        Ok(conn)
    }

    /// A connection that connects on first use and reconnects as needed:
    /// for a component that must start while Redis is down.
    pub fn lazy(&self) -> Result<Connection, ProtocolError> {
        self.lazy_with(RESPONSE_TIMEOUT)
    }

    /// A connection for blocking reads (`XREADGROUP ... BLOCK`): its own
    /// sockets, because a blocked command stalls every other command sharing
    /// a socket, and a response timeout longer than any block the caller uses.
    pub fn lazy_blocking(&self, longest_block: Duration) -> Result<Connection, ProtocolError> {
        self.lazy_with(longest_block + RESPONSE_TIMEOUT)
    }

    fn lazy_with(&self, response_timeout: Duration) -> Result<Connection, ProtocolError> {
        Ok(Connection {
            shared: Arc::new(Shared {
                target: self.clone(),
                response_timeout,
                inner: OnceCell::new(),
                slots: std::sync::Mutex::new(None),
            }),
        })
    }

    async fn is_cluster(&self) -> Result<bool, ProtocolError> {
        match self.topology {
            Topology::Cluster => Ok(true),
            Topology::Node => Ok(false),
            Topology::Auto if self.urls.len() > 1 => Ok(true),
            Topology::Auto => {
                let client = self.node_client(0)?;
                let probe = async {
                    let mut conn = client.get_multiplexed_async_connection().await?;
                    redis::cmd("INFO").arg("cluster").query_async::<String>(&mut conn).await
                };
                let info = tokio::time::timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT, probe).await.map_err(|_| {
                    ProtocolError::RedisUrl(format!("{}: no answer to INFO cluster", self.redacted()))
                })??;
                Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1"))
            }
        }
    }

    fn open(&self, cluster: bool, response_timeout: Duration) -> Result<Inner, ProtocolError> {
        if cluster {
            let mut builder = ClusterClientBuilder::new(self.urls.clone())
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(response_timeout)
                // Through a failover: the cluster needs its node timeout
                // plus an election before the slots answer again.
                .retries(6)
                .min_retry_wait(100)
                .max_retry_wait(2000);
            if let (Some(pem), true) = (&self.ca_pem, self.urls.iter().any(|u| scheme(u) == "rediss")) {
                builder = builder.certs(redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) });
            }
            let client = builder.build().map_err(|e| ProtocolError::RedisUrl(format!("{} ({e})", self.redacted())))?;
            let config =
                ClusterConfig::new().set_connection_timeout(CONNECT_TIMEOUT).set_response_timeout(response_timeout);
            Ok(Inner::Cluster(client.get_pending_async_connection_with_config(config)))
        } else {
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                // Few and short: callers' own backoff spaces attempts out.
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            Ok(Inner::Node(ConnectionManager::new_lazy_with_config(self.node_client(0)?, config)?))
        }
    }
}

/// Where a pub/sub listener subscribes: one node of
/// [`Target::subscriber_clients`] at a time, the next one (of the list as
/// the cluster names it then) after a failure.
pub struct Subscribers {
    target: Target,
    conn: Connection,
    /// Never empty.
    nodes: Vec<redis::Client>,
    next: usize,
}

impl Subscribers {
    /// The node to subscribe on now.
    pub fn current(&self) -> &redis::Client {
        &self.nodes[self.next % self.nodes.len()]
    }

    /// Moves on from a node that failed, asking the cluster again which
    /// nodes serve it now.
    pub async fn advance(&mut self) {
        self.next += 1;
        self.nodes = self.target.subscriber_clients(&self.conn).await;
    }
}

/// `(host, port)` of a TCP URL, to compare a seed with a discovered node.
fn tcp_address(url: &str) -> Option<(String, u16)> {
    match redis::IntoConnectionInfo::into_connection_info(url).ok()?.addr() {
        redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. } => {
            Some((host.clone(), *port))
        }
        _ => None,
    }
}

/// A client for one node; the URL is checked, never echoed with its password.
fn node_client(url: &str, ca_pem: Option<Vec<u8>>) -> Result<redis::Client, ProtocolError> {
    let bad = |e: redis::RedisError| ProtocolError::RedisUrl(format!("{} ({e})", redact(url)));
    match ca_pem {
        Some(root_cert) if scheme(url) == "rediss" => {
            let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) };
            redis::Client::build_with_tls(url, certs).map_err(bad)
        }
        _ => redis::Client::open(url).map_err(bad),
    }
}

fn scheme(url: &str) -> &str {
    url.split_once("://").map(|(s, _)| s).unwrap_or("")
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only means another provider is already installed: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

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
    inner: OnceCell<Inner>,
    /// Which master serves which slots, to send one pipeline per master.
    slots: std::sync::Mutex<Option<Arc<SlotMap>>>,
}

#[derive(Clone)]
enum Inner {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// `true` when this talks to a Redis Cluster (after the first use).
    pub async fn is_cluster(&self) -> Result<bool, ProtocolError> {
        Ok(matches!(self.inner().await?, Inner::Cluster(_)))
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
        let Some(map) = slot_map(&self.shared, &mut conn).await else { return Ok(()) };
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
        let shared = &self.shared;
        let inner = shared
            .inner
            .get_or_try_init(|| async {
                let cluster = shared.target.is_cluster().await?;
                shared.target.open(cluster, shared.response_timeout)
            })
            .await?;
        Ok(inner.clone())
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
            match self.inner().await.map_err(as_redis_error)? {
                Inner::Node(mut c) => c.req_packed_command(cmd).await,
                Inner::Cluster(mut c) => c.req_packed_command(cmd).await,
            }
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
            match self.inner().await.map_err(as_redis_error)? {
                Inner::Node(mut c) => c.req_packed_commands(pipeline, offset, count).await,
                Inner::Cluster(c) => cluster_pipeline(&self.shared, c, pipeline, offset, count).await,
            }
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// A cluster sends a pipeline to one node, so a plain pipeline over keys on
/// several masters is split into one pipeline per master (by a slot map of
/// our own, refreshed when it proves stale), sent concurrently, and the
/// replies put back in order; a command that meets `MOVED` anyway (a slot
/// moved since) is sent again alone, which the client redirects. A
/// transaction goes to its first key's master as it is: its keys must share
/// a slot (the server says `CROSSSLOT` otherwise); after a failover it is
/// retried once the client has learned the slot's new master.
async fn cluster_pipeline(
    shared: &Shared,
    mut conn: ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> redis::RedisResult<Vec<Value>> {
    // Each command's routing key and its slot, computed once.
    let keys: Vec<Option<(&[u8], u16)>> = pipeline.cmd_iter().map(|c| first_key(c).map(|k| (k, key_slot(k)))).collect();
    let Some((first, first_slot)) = keys.iter().flatten().next().copied() else {
        return conn.req_packed_commands(pipeline, offset, count).await;
    };
    if pipeline.is_transaction() || keys.iter().flatten().all(|&(_, slot)| slot == first_slot) {
        let mut route = route_to(first);
        let mut attempt = 0;
        loop {
            match conn.route_pipeline(pipeline.clone(), offset, count, route.clone()).await {
                Err(e) if attempt < 4 && redirected(&e) => {
                    attempt += 1;
                    // The client does not follow a MOVED that aborted a
                    // transaction: follow it here, to the node it names.
                    route = match moved_to(&e.to_string()) {
                        Some((host, port)) => SingleNodeRoutingInfo::ByAddress { host, port },
                        None => {
                            learn_owner(&mut conn, first).await;
                            route_to(first)
                        }
                    };
                }
                other => return other,
            }
        }
    }
    let map = slot_map(shared, &mut conn).await;
    // Keyless commands (PUBLISH) ride with the first key's pipeline.
    let node_of = |slot: u16| match &map {
        Some(map) => map.node_of(slot),
        None => usize::from(slot),
    };
    let mut groups: HashMap<usize, (&[u8], Vec<usize>)> = HashMap::new();
    for (i, routed) in keys.iter().enumerate() {
        let (key, slot) = routed.unwrap_or((first, first_slot));
        groups.entry(node_of(slot)).or_insert_with(|| (key, Vec::new())).1.push(i);
    }
    let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let parts = groups.into_values().map(|(key, indices)| {
        let mut conn = conn.clone();
        let mut part = redis::pipe();
        for &i in &indices {
            part.add_command(commands[i].clone());
        }
        async move {
            let replies = conn.route_pipeline(part, 0, indices.len(), route_to(key)).await?;
            Ok::<_, redis::RedisError>(indices.into_iter().zip(replies).collect::<Vec<_>>())
        }
    });
    let mut replies = vec![Value::Nil; commands.len()];
    let mut stale = false;
    for part in futures::future::try_join_all(parts).await? {
        for (i, reply) in part {
            if let Value::ServerError(e) = &reply
                && matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN")
            {
                stale = true;
                replies[i] = conn.req_packed_command(commands[i]).await?;
            } else {
                replies[i] = reply;
            }
        }
    }
    if stale {
        *shared.slots.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
    Ok(replies)
}

fn route_to(key: &[u8]) -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master))
}

/// A redirection or a cluster in the middle of a failover.
fn redirected(e: &redis::RedisError) -> bool {
    if e.is_cluster_error() {
        return true;
    }
    // A transaction aborted by MOVED reports it inside its message.
    let text = e.to_string();
    ["Moved", "MOVED", "Ask:", "TryAgain", "ClusterDown"].iter().any(|w| text.contains(w))
}

/// The node a `MOVED` (or `ASK`) in an error's text points to.
fn moved_to(text: &str) -> Option<(String, u16)> {
    let at = text.rfind("Moved: ").map(|i| i + 7).or_else(|| text.rfind("MOVED ").map(|i| i + 6))?;
    let mut words = text[at..].split_whitespace();
    let _slot = words.next()?;
    let addr = words.next()?.trim_end_matches(|c: char| !c.is_ascii_digit());
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// Makes the client learn who serves `key` now: a plain command follows
/// `MOVED` and refreshes the client's slot map.
async fn learn_owner(conn: &mut ClusterConnection, key: &[u8]) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: redis::RedisResult<Value> = conn.req_packed_command(redis::cmd("EXISTS").arg(key)).await;
}

/// Slot ranges and the master serving each, from `CLUSTER SLOTS`.
struct SlotMap {
    /// (first slot, last slot, node index), sorted.
    ranges: Vec<(u16, u16, usize)>,
    /// Per node index: how many replicas it has.
    replicas: Vec<usize>,
    fetched: std::time::Instant,
}

impl SlotMap {
    /// How long a map is trusted before it is asked for again.
    const TTL: Duration = Duration::from_secs(30);

    fn replicas_of(&self, slot: u16) -> usize {
        self.replicas.get(self.node_of(slot)).copied().unwrap_or(0)
    }

    fn node_of(&self, slot: u16) -> usize {
        let at = self.ranges.partition_point(|r| r.1 < slot);
        match self.ranges.get(at) {
            Some(&(start, _, node)) if start <= slot => node,
            // Not covered (a cluster mid-reshard): its own group.
            _ => usize::MAX - usize::from(slot),
        }
    }

    fn parse(reply: &Value) -> Option<SlotMap> {
        let Value::Array(entries) = reply else { return None };
        let mut nodes: Vec<(String, u16)> = Vec::new();
        let mut replicas = Vec::new();
        let mut ranges = Vec::new();
        for entry in entries {
            let Value::Array(fields) = entry else { return None };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(master)) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return None;
            };
            let node = slot_node(master)?;
            let index = nodes.iter().position(|n| *n == node).unwrap_or_else(|| {
                nodes.push(node);
                replicas.push(0);
                nodes.len() - 1
            });
            replicas[index] = replicas[index].max(fields.len().saturating_sub(3));
            ranges.push((u16::try_from(*start).ok()?, u16::try_from(*end).ok()?, index));
        }
        ranges.sort_unstable();
        Some(SlotMap { ranges, replicas, fetched: std::time::Instant::now() })
    }
}

/// One node of a `CLUSTER SLOTS` range: `[host, port, id, ...]`.
fn slot_node(node: &Value) -> Option<(String, u16)> {
    let Value::Array(fields) = node else { return None };
    let host = match fields.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let Value::Int(port) = fields.get(1)? else { return None };
    Some((host, u16::try_from(*port).ok()?))
}

/// The nodes a `CLUSTER SLOTS` reply names, each once: every range's
/// master, then the replicas. A node whose endpoint the cluster does not
/// know (`?` or empty) is left out.
fn nodes_of_cluster_slots(reply: &Value) -> Vec<(String, u16)> {
    let Value::Array(entries) = reply else { return Vec::new() };
    let endpoint = |node: &Value| slot_node(node).filter(|(host, _)| !host.is_empty() && host != "?");
    let mut masters = Vec::new();
    let mut replicas = Vec::new();
    for entry in entries {
        let Value::Array(fields) = entry else { continue };
        for (i, node) in fields.iter().enumerate().skip(2) {
            let Some(address) = endpoint(node) else { continue };
            let list = if i == 2 { &mut masters } else { &mut replicas };
            if !list.contains(&address) {
                list.push(address);
            }
        }
    }
    replicas.retain(|r| !masters.contains(r));
    masters.extend(replicas);
    masters
}

/// The cached slot map, fetched again when older than [`SlotMap::TTL`] or
/// found stale; `None` when the cluster does not answer `CLUSTER SLOTS`
/// (then pipelines are split per slot: slower, still correct).
async fn slot_map(shared: &Shared, conn: &mut ClusterConnection) -> Option<Arc<SlotMap>> {
    if let Some(map) = shared.slots.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
        && map.fetched.elapsed() < SlotMap::TTL
    {
        return Some(map.clone());
    }
    let routing = redis::cluster_routing::RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
    let reply = conn.route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), routing).await.ok()?;
    let map = Arc::new(SlotMap::parse(&reply)?);
    *shared.slots.lock().unwrap_or_else(|p| p.into_inner()) = Some(map.clone());
    Some(map)
}

/// The key a command is routed by, for the commands HemoStat sends: the
/// first key after the command name, after `numkeys` for scripts, after
/// `STREAMS` for stream reads; `None` for commands without one.
fn first_key(cmd: &Cmd) -> Option<&[u8]> {
    // Sent for every command of every cluster pipeline: no allocation.
    let mut args = cmd.args_iter().filter_map(|a| match a {
        redis::Arg::Simple(b) => Some(b),
        _ => None,
    });
    let name = args.next()?;
    let is = |names: &[&[u8]]| names.iter().any(|n| name.eq_ignore_ascii_case(n));
    if is(&[b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL"]) {
        let _script = args.next()?;
        let numkeys: usize = std::str::from_utf8(args.next()?).ok()?.parse().ok()?;
        if numkeys == 0 { None } else { args.next() }
    } else if is(&[b"XREAD", b"XREADGROUP"]) {
        args.skip_while(|a| !a.eq_ignore_ascii_case(b"STREAMS")).nth(1)
    } else if is(&[
        b"PUBLISH",
        b"PING",
        b"INFO",
        b"SCRIPT",
        b"MULTI",
        b"EXEC",
        b"TIME",
        b"FLUSHALL",
        b"FLUSHDB",
        b"DBSIZE",
        b"CLUSTER",
        b"CLIENT",
        b"CONFIG",
        b"SUBSCRIBE",
        b"PSUBSCRIBE",
    ]) {
        None
    } else {
        args.next()
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
        return url.split(',').map(|u| redact(u.trim())).collect::<Vec<_>>().join(",");
    }
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
    }

    #[test]
    fn accepts_redis_and_rediss_refuses_others_without_leaking() {
        assert!(Target::new("redis://:pw@127.0.0.1:6379", Topology::Auto, None).is_ok());
        assert!(Target::new("rediss://user:pw@example.invalid:6380", Topology::Auto, None).is_ok());
        let err = Target::new("http://user:topsecret@h", Topology::Auto, None).unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
        let err = Target::new("redis://:pw@a:1,http://:topsecret@b:2", Topology::Auto, None).unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
        assert!(Target::new(" , ", Topology::Auto, None).is_err());
        assert!(Target::new("redis://a:1,redis://b:2", Topology::Node, None).is_err());
    }

    #[test]
    fn topology_values() {
        assert_eq!(Topology::parse("").unwrap(), Topology::Auto);
        assert_eq!(Topology::parse("TRUE").unwrap(), Topology::Cluster);
        assert_eq!(Topology::parse("false").unwrap(), Topology::Node);
        assert!(Topology::parse("maybe").is_err());
    }

    #[test]
    fn follows_the_node_a_moved_names() {
        let text = "Transaction aborted: [(Index 0, error: Moved: 7124 127.0.0.1:44927), (Index 1, error: Moved: 7124 127.0.0.1:44927)]";
        assert_eq!(moved_to(text), Some(("127.0.0.1".into(), 44927)));
        assert_eq!(moved_to("MOVED 3999 127.0.0.1:6381"), Some(("127.0.0.1".into(), 6381)));
        assert_eq!(moved_to("Connection refused"), None);
    }

    #[test]
    fn slot_map_from_cluster_slots() {
        let node = |port| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node(7001), node(7004)]),
            Value::Array(vec![Value::Int(0), Value::Int(5460), node(7000)]),
            Value::Array(vec![Value::Int(10923), Value::Int(16383), node(7002)]),
        ]);
        assert_eq!(
            nodes_of_cluster_slots(&reply),
            [7001, 7000, 7002, 7004].map(|p| ("127.0.0.1".to_owned(), p)).to_vec(),
            "masters first, then replicas, each once"
        );
        let map = SlotMap::parse(&reply).unwrap();
        assert_eq!(map.node_of(0), map.node_of(5460));
        assert_ne!(map.node_of(5460), map.node_of(5461));
        assert_eq!(map.node_of(16383), map.node_of(10923));
        assert_eq!((map.replicas_of(6000), map.replicas_of(0)), (1, 0));
        assert!(SlotMap::parse(&Value::Int(1)).is_none());
    }

    #[test]
    fn routes_by_the_first_key() {
        let key = |c: &Cmd| first_key(c).map(|k| String::from_utf8_lossy(k).into_owned());
        assert_eq!(key(redis::cmd("SET").arg("a").arg(1)), Some("a".into()));
        assert_eq!(key(redis::cmd("EVALSHA").arg("abc").arg(2).arg("k1").arg("k2")), Some("k1".into()));
        assert_eq!(key(redis::cmd("EVAL").arg("return 1").arg(0)), None);
        assert_eq!(
            key(redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("c")
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg("s")
                .arg(">")),
            Some("s".into())
        );
        assert_eq!(key(redis::cmd("PUBLISH").arg("ch").arg("m")), None);
    }
}
