//! Where Redis is ([`Target`]: the seed URLs, single node or cluster, the
//! CA for TLS), the clients and connections made from it, and the nodes a
//! pub/sub listener subscribes on in turn ([`Subscribers`]).

use std::time::Duration;

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClientBuilder, ClusterConfig},
};

use super::{Connection, Inner, redact};
use crate::error::ProtocolError;

/// How long one ordinary command may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening one socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Target::subscriber_clients`] asks the cluster for its nodes
/// before it settles for the seeds.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

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
                "rediss" => crate::tls::install_crypto_provider(),
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
        Subscribers::new(self.clone(), conn.clone(), nodes)
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
        Ok(Connection::new(self.clone(), response_timeout))
    }

    pub(super) async fn is_cluster(&self) -> Result<bool, ProtocolError> {
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

    pub(super) fn open(&self, cluster: bool, response_timeout: Duration) -> Result<Inner, ProtocolError> {
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
    /// Starts at the first of `nodes` (never empty).
    fn new(target: Target, conn: Connection, nodes: Vec<redis::Client>) -> Self {
        Subscribers { target, conn, nodes, next: 0 }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
