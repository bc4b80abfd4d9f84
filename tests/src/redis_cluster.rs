//! A private Redis Cluster per test: six `redis-server`s in cluster mode,
//! three masters with one replica each, that a test may crash node by node
//! to watch the cluster fail over.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::join_all;
use hemostat_protocol::slot::SLOTS;
use tokio::time::Instant;

use crate::paths::log_dir;
use crate::polling::{wait_for, wait_until};
use crate::port::free_port;
use crate::process::{file_tail, kill_and_reap, spawn_logged, terminate};
use crate::redis_server::durability_conf;

/// Nodes in the cluster: three masters, one replica each.
const NODES: usize = 6;
const MASTERS: usize = 3;
/// Per node: from spawn to answering PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// `redis-cli --cluster create` from spawn to exit.
const CREATE_TIMEOUT: Duration = Duration::from_secs(20);
/// From `cluster create` to every node agreeing on a healthy cluster.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
/// One harness probe (connect + command) of one node.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Launch rounds before giving up on port clashes.
const LAUNCH_ROUNDS: usize = 5;

/// Distinguishes the temporary directories of clusters in one process.
static CLUSTER_SEQ: AtomicU32 = AtomicU32::new(0);

/// Six `redis-server`s on 127.0.0.1 forming a Redis Cluster (3 masters,
/// 1 replica each), without persistence (or, from
/// [`start_durable`](Self::start_durable), each node with the local stack's);
/// all killed and their directory removed when dropped.
///
/// Nodes run with `cluster-node-timeout 1000` and
/// `cluster-replica-validity-factor 0`, so a crashed master is replaced by
/// its replica within a few seconds, and with
/// `cluster-allow-reads-when-down no`, so a cluster that is down refuses
/// reads too. `redis-server` is taken from `PATH` or `HEMOSTAT_REDIS_SERVER`,
/// `redis-cli` from `PATH` or `HEMOSTAT_REDIS_CLI`.
pub struct RedisCluster {
    nodes: Vec<Node>,
    /// Holds each node's `nodes-<port>.conf` (and, durable, its AOF folder).
    dir: PathBuf,
    create_log: PathBuf,
    /// Each node runs with [`durability_conf`].
    durable: bool,
}

struct Node {
    port: u16,
    /// Cluster bus port, set explicitly: the default `port + 10000` may not
    /// exist for ports handed out by the kernel.
    bus_port: u16,
    child: Mutex<Option<Child>>,
    log_path: PathBuf,
    killed_at: Option<Instant>,
}

impl Node {
    fn is_live(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The exit status if the process was started and has exited.
    fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    fn kill(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = child.take() {
            kill_and_reap(&mut child);
        }
    }
}

impl RedisCluster {
    /// Starts six nodes on free ports, joins them with `redis-cli --cluster
    /// create --cluster-replicas 1`, and waits until every node reports
    /// `cluster_state:ok` with all slots assigned and all nodes agree on the
    /// same three masters. Panics with the nodes' log tails otherwise.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// [`start`](Self::start), every node durable as the local stack's Redis
    /// ([`durability_conf`]: append-only file, fsync every second), each its
    /// own AOF folder: the whole cluster may [`kill_all`](Self::kill_all)
    /// and [`restart_all`](Self::restart_all) with its data.
    pub async fn start_durable() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(durable: bool) -> Self {
        let mut cluster = Self::new(durable);
        cluster.launch_nodes().await;
        cluster.create().await;
        cluster.wait_converged().await;
        cluster
    }

    fn new(durable: bool) -> Self {
        let test = crate::current_test_name();
        let seq = CLUSTER_SEQ.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("hemostat-redis-cluster-{}-{}-{seq}", std::process::id(), free_port()));
        // The name is unique among this process's clusters; anything already
        // there was left by an earlier process with the same pid, and a stale
        // nodes.conf would make a node rejoin that old cluster.
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let create_log = log_dir().join(format!("{test}-redis-cluster-create.log"));
        Self { nodes: Vec::new(), dir, create_log, durable }
    }

    /// Two ports (node, bus) not used by any other node of this cluster.
    fn fresh_ports(&self) -> (u16, u16) {
        let mut taken: HashSet<u16> = self.nodes.iter().flat_map(|n| [n.port, n.bus_port]).collect();
        let mut pick = || loop {
            let port = free_port();
            if taken.insert(port) {
                return port;
            }
        };
        let port = pick();
        (port, pick())
    }

    fn spawn_node(&self, port: u16, bus_port: u16) -> Node {
        let log_path = log_dir().join(format!("{}-redis-cluster-{port}.log", crate::current_test_name()));
        let bin = std::env::var("HEMOSTAT_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string());
        let mut cmd = Command::new(&bin);
        if self.durable {
            // The configuration file first, the command line's options after.
            cmd.arg(durability_conf())
                // The nodes share a directory: one AOF folder each.
                .args(["--appenddirname", &format!("appendonlydir-{port}")]);
        } else {
            cmd.args(["--save", "", "--appendonly", "no"]);
        }
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--cluster-enabled", "yes", "--cluster-port", &bus_port.to_string()])
            .arg("--cluster-config-file")
            .arg(self.dir.join(format!("nodes-{port}.conf")))
            .args(["--cluster-node-timeout", "1000"])
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--cluster-allow-reads-when-down", "no"])
            // The nodes share a directory, and a replica's initial sync goes
            // through its RDB file: one name per node, or replicas load each
            // other's data.
            .args(["--dbfilename", &format!("dump-{port}.rdb")])
            // Replicas sync as soon as they ask instead of 5 s later.
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no", "--logfile", ""]);
        let child = spawn_logged(&mut cmd, &log_path).unwrap_or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!("{bin} not found: run `scripts/test-env.sh install` (or set HEMOSTAT_REDIS_SERVER)")
            }
            panic!("spawning {bin} failed: {e}")
        });
        Node { port, bus_port, child: Mutex::new(Some(child)), log_path, killed_at: None }
    }

    /// Spawns all nodes and waits until each answers PING. free_port releases
    /// a port before redis binds it; a node that lost such a race exits at
    /// once and is started again on other ports.
    async fn launch_nodes(&mut self) {
        let mut last_errors = Vec::new();
        for _ in 0..LAUNCH_ROUNDS {
            while self.nodes.len() < NODES {
                let (port, bus_port) = self.fresh_ports();
                let node = self.spawn_node(port, bus_port);
                self.nodes.push(node);
            }
            let nodes = &self.nodes;
            let ready = wait_until(READY_TIMEOUT, || {
                let pending: Vec<u16> = nodes.iter().filter(|n| n.exited().is_none()).map(|n| n.port).collect();
                async move { join_all(pending.into_iter().map(ping)).await.into_iter().all(|ok| ok) }
            })
            .await;
            // Drop the nodes that died (ports taken) and start others instead.
            last_errors.clear();
            let mut kept = Vec::with_capacity(NODES);
            for mut node in std::mem::take(&mut self.nodes) {
                match node.exited() {
                    Some(status) => {
                        last_errors.push(format!(
                            "redis-server on port {} (bus {}) exited ({status}):\n{}",
                            node.port,
                            node.bus_port,
                            file_tail(&node.log_path, 20)
                        ));
                        node.kill();
                    }
                    None => kept.push(node),
                }
            }
            self.nodes = kept;
            if !ready {
                panic!("redis cluster nodes did not answer PING within {READY_TIMEOUT:?}:\n{}", self.log_tail(20));
            }
            if self.nodes.len() == NODES {
                return;
            }
        }
        panic!("could not start {NODES} cluster nodes:\n{}", last_errors.join("\n"));
    }

    /// `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`.
    async fn create(&mut self) {
        let bin = std::env::var("HEMOSTAT_REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_string());
        let mut cmd = Command::new(&bin);
        cmd.args(["--cluster", "create"]).args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port))).args([
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        ]);
        let mut child = spawn_logged(&mut cmd, &self.create_log).unwrap_or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!("{bin} not found: run `scripts/test-env.sh install` (or set HEMOSTAT_REDIS_CLI)")
            }
            panic!("spawning {bin} failed: {e}")
        });
        let status = wait_for(CREATE_TIMEOUT, || std::future::ready(child.try_wait().ok().flatten())).await;
        match status {
            Some(status) if status.success() => {}
            Some(status) => panic!("`{bin} --cluster create` failed ({status}):\n{}", self.log_tail(20)),
            None => {
                terminate(&mut child, libc::SIGTERM, Duration::from_secs(1));
                panic!("`{bin} --cluster create` did not finish within {CREATE_TIMEOUT:?}:\n{}", self.log_tail(20))
            }
        }
    }

    /// Waits until every node reports a healthy cluster and all agree on the
    /// masters, their slots and their replicas.
    async fn wait_converged(&self) {
        let ports = self.ports();
        let last = Mutex::new(String::new());
        let last = &last;
        let converged = wait_until(CONVERGE_TIMEOUT, || {
            let ports = ports.clone();
            async move {
                match converged(&ports).await {
                    Ok(()) => true,
                    Err(why) => {
                        *last.lock().unwrap() = why;
                        false
                    }
                }
            }
        })
        .await;
        if !converged {
            panic!(
                "redis cluster did not converge within {CONVERGE_TIMEOUT:?}: {}\n{}",
                last.lock().unwrap(),
                self.log_tail(20)
            );
        }
    }

    /// Ports of all six nodes, dead or alive, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Ports of the nodes still running (not killed, not crashed).
    fn live_ports(&self) -> Vec<u16> {
        self.nodes.iter().filter(|n| n.is_live()).map(|n| n.port).collect()
    }

    /// One `redis://127.0.0.1:{port}` per node, for `ClusterClient::new`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}", n.port)).collect()
    }

    /// The seed list as `REDIS_URL` takes it for a cluster:
    /// `redis://127.0.0.1:p1,redis://127.0.0.1:p2,...`, all six nodes.
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// The cluster as the first live node that answers sees it.
    async fn view(&self) -> Vec<NodeEntry> {
        let mut errors = Vec::new();
        for port in self.live_ports() {
            match query(port, &["CLUSTER", "NODES"]).await.and_then(|text| parse_nodes(&text)) {
                Ok(view) => return view,
                Err(e) => errors.push(e),
            }
        }
        panic!("no live cluster node answered CLUSTER NODES: {errors:?}\n{}", self.log_tail(20));
    }

    /// Ports of the nodes that currently serve slots as masters, sorted, as
    /// the first live node that answers sees them. A crashed master stays
    /// listed until the cluster has failed it over.
    pub async fn masters(&self) -> Vec<u16> {
        let mut masters: Vec<u16> =
            self.view().await.iter().filter(|e| e.is_master() && !e.slots.is_empty()).map(|e| e.port).collect();
        masters.sort_unstable();
        masters
    }

    /// Port of the master serving `slot` (see [`key_slot`]), as the first
    /// live node that answers sees it. Panics if no master serves it.
    pub async fn master_of_slot(&self, slot: u16) -> u16 {
        let view = self.view().await;
        match view.iter().find(|e| e.is_master() && e.serves(slot)) {
            Some(entry) => entry.port,
            None => panic!("no master serves slot {slot}: {view:?}"),
        }
    }

    /// SIGKILLs the node on `port`, like a crash or OOM kill. Idempotent.
    /// Panics if `port` is not a node of this cluster.
    pub fn kill(&mut self, port: u16) {
        let node = self.node_mut(port);
        if node.is_live() {
            node.killed_at = Some(Instant::now());
        }
        node.kill();
    }

    /// After [`kill`](Self::kill) of one node (and, for a master, once
    /// [`wait_for_failover`](Self::wait_for_failover) saw its replica take
    /// over): the node started again on its ports with its `nodes.conf`
    /// (and, durable, its data), as a supervisor would; it rejoins as a
    /// replica of whoever serves its slots now. Waits until every node
    /// agrees again on three masters with one replica each.
    pub async fn start_again(&mut self, port: u16) {
        let i = self
            .nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("port {port} is not a node of this cluster (nodes: {:?})", self.ports()));
        assert!(!self.nodes[i].is_live(), "start_again({port}): the node still runs; kill it first");
        let fresh = self.spawn_node(port, self.nodes[i].bus_port);
        self.nodes[i] = fresh;
        let nodes = &self.nodes;
        let ready = wait_until(READY_TIMEOUT, || {
            let dead = nodes[i].exited().is_some();
            async move { dead || ping(port).await }
        })
        .await;
        if !ready || self.nodes[i].exited().is_some() {
            panic!("redis cluster node {port} did not come back:\n{}", self.log_tail(20));
        }
        self.wait_converged().await;
    }

    /// SIGKILLs every node, like a power loss of the whole cluster.
    /// Idempotent.
    pub fn kill_all(&mut self) {
        let now = Instant::now();
        for node in &mut self.nodes {
            if node.is_live() {
                node.killed_at = Some(now);
            }
            node.kill();
        }
    }

    /// After [`kill_all`](Self::kill_all): every node started again on its
    /// ports with its `nodes.conf` (and, durable, its data), then waited for
    /// until all agree again on a healthy cluster of three masters with one
    /// replica each. The masters start first, so that no replica, seeing
    /// its master still down, takes over from it. Panics with the nodes'
    /// log tails otherwise.
    pub async fn restart_all(&mut self) {
        assert!(self.live_ports().is_empty(), "restart_all(): nodes still run; kill_all() first");
        let masters = self.masters_in_config();
        let (first, then): (Vec<usize>, Vec<usize>) =
            (0..self.nodes.len()).partition(|&i| masters.contains(&self.nodes[i].port));
        for round in [first, then] {
            for &i in &round {
                let (port, bus_port) = (self.nodes[i].port, self.nodes[i].bus_port);
                let fresh = self.spawn_node(port, bus_port);
                self.nodes[i] = fresh;
            }
            let ports: Vec<u16> = round.iter().map(|&i| self.nodes[i].port).collect();
            let nodes = &self.nodes;
            let ready = wait_until(READY_TIMEOUT, || {
                let ports = ports.clone();
                let dead = nodes.iter().any(|n| ports.contains(&n.port) && n.exited().is_some());
                async move { dead || join_all(ports.into_iter().map(ping)).await.into_iter().all(|ok| ok) }
            })
            .await;
            if !ready || self.nodes.iter().any(|n| ports.contains(&n.port) && n.exited().is_some()) {
                panic!("redis cluster nodes {ports:?} did not come back:\n{}", self.log_tail(20));
            }
        }
        self.wait_converged().await;
    }

    /// The ports of the nodes whose own `nodes-<port>.conf` says they are a
    /// master (`myself,master`), as a restarted node will believe.
    fn masters_in_config(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| {
                let conf = std::fs::read_to_string(self.dir.join(format!("nodes-{}.conf", n.port))).unwrap_or_default();
                conf.lines()
                    .any(|l| l.split_whitespace().nth(2).is_some_and(|f| f.contains("myself") && f.contains("master")))
            })
            .map(|n| n.port)
            .collect()
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        let ports = self.ports();
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("port {port} is not a node of this cluster (nodes: {ports:?})"))
    }

    /// Waits until the cluster has recovered from the death of the master on
    /// `dead_port`: every live node reports `cluster_state:ok` and sees all
    /// slots (so also the dead master's) served by live masters. Returns the
    /// time since [`kill`](Self::kill) of that node (since this call if it was
    /// not killed through the harness). Panics with log tails on timeout.
    pub async fn wait_for_failover(&self, dead_port: u16, timeout: Duration) -> Duration {
        let Some(node) = self.nodes.iter().find(|n| n.port == dead_port) else {
            panic!("port {dead_port} is not a node of this cluster (nodes: {:?})", self.ports());
        };
        assert!(!node.is_live(), "wait_for_failover({dead_port}): that node is still running; kill it first");
        let since = node.killed_at.unwrap_or_else(Instant::now);
        let live = self.live_ports();
        let last = Mutex::new(String::new());
        let last = &last;
        let recovered = wait_until(timeout, || {
            let live = live.clone();
            async move {
                match failed_over(&live, dead_port).await {
                    Ok(()) => true,
                    Err(why) => {
                        *last.lock().unwrap() = why;
                        false
                    }
                }
            }
        })
        .await;
        if !recovered {
            panic!(
                "redis cluster did not fail over from {dead_port} within {timeout:?}: {}\n{}",
                last.lock().unwrap(),
                self.log_tail(20)
            );
        }
        since.elapsed()
    }

    /// Last `lines` lines of every node's log (and of `cluster create`).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let state = if node.is_live() { "running" } else { "dead" };
            out.push_str(&format!(
                "--- redis cluster node {} ({state}) {} ---\n{}\n",
                node.port,
                node.log_path.display(),
                file_tail(&node.log_path, lines)
            ));
        }
        if self.create_log.exists() {
            out.push_str(&format!(
                "--- redis-cli --cluster create {} ---\n{}\n",
                self.create_log.display(),
                file_tail(&self.create_log, lines)
            ));
        }
        out.push_str("---");
        out
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Masters as one node sees them: id -> (port, slot ranges).
type Masters = BTreeMap<String, (u16, Vec<(u16, u16)>)>;

/// Every node reports `cluster_state:ok` with all slots assigned, all views
/// agree on three masters (ids, ports, slots) with one replica each, and every
/// replica has completed its initial sync (a replica failing over before that
/// would take over with no data).
async fn converged(ports: &[u16]) -> Result<(), String> {
    let probes = join_all(ports.iter().map(|&port| probe(port))).await;
    let mut agreed: Option<(u16, Masters)> = None;
    for (&port, probe) in ports.iter().zip(probes) {
        let Probe { info, view, replication } = probe?;
        check_info(port, &info)?;
        let role = info_field(&replication, "role");
        let link = info_field(&replication, "master_link_status");
        if role != "master" && link != "up" {
            return Err(format!("node {port}: role:{role} master_link_status:{link}"));
        }
        if view.len() != NODES {
            return Err(format!("node {port} knows {} nodes, not {NODES}", view.len()));
        }
        if let Some(bad) = view.iter().find(|e| e.is_unhealthy()) {
            return Err(format!("node {port} sees {} as {}", bad.port, bad.flags.join(",")));
        }
        let masters: Masters = view
            .iter()
            .filter(|e| e.is_master() && !e.slots.is_empty())
            .map(|e| (e.id.clone(), (e.port, e.slots.clone())))
            .collect();
        if masters.len() != MASTERS {
            return Err(format!("node {port} sees {} masters with slots, not {MASTERS}", masters.len()));
        }
        for master in masters.keys() {
            let replicas = view.iter().filter(|e| e.master_id.as_deref() == Some(master.as_str())).count();
            if replicas != 1 {
                return Err(format!("node {port} sees {replicas} replicas of master {master}"));
            }
        }
        match &agreed {
            None => agreed = Some((port, masters)),
            Some((first, seen)) if *seen != masters => {
                return Err(format!("nodes {first} and {port} disagree on masters: {seen:?} vs {masters:?}"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Every live node reports `cluster_state:ok` and sees all slots served by
/// live masters, none by `dead_port`.
async fn failed_over(live: &[u16], dead_port: u16) -> Result<(), String> {
    let probes = join_all(live.iter().map(|&port| probe(port))).await;
    for (&port, probe) in live.iter().zip(probes) {
        let Probe { info, view, .. } = probe?;
        check_info(port, &info)?;
        if let Some(dead) = view.iter().find(|e| e.port == dead_port && !e.slots.is_empty()) {
            return Err(format!("node {port} still sees {dead_port} serving slots ({})", dead.flags.join(",")));
        }
        let covered: u32 = view
            .iter()
            .filter(|e| e.is_master() && live.contains(&e.port))
            .flat_map(|e| &e.slots)
            .map(|&(from, to)| u32::from(to) - u32::from(from) + 1)
            .sum();
        if covered != u32::from(SLOTS) {
            return Err(format!("node {port} sees {covered} of {SLOTS} slots served by live masters"));
        }
    }
    Ok(())
}

/// `cluster_state:ok` and `cluster_slots_assigned:16384` in `CLUSTER INFO`.
fn check_info(port: u16, info: &str) -> Result<(), String> {
    let state = info_field(info, "cluster_state");
    let assigned = info_field(info, "cluster_slots_assigned");
    if state != "ok" || assigned != SLOTS.to_string() {
        return Err(format!("node {port}: cluster_state:{state} cluster_slots_assigned:{assigned}"));
    }
    Ok(())
}

/// Value of `name` in an `INFO`-style `name:value` reply, `?` if absent.
fn info_field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines().find_map(|l| l.trim().strip_prefix(name).and_then(|r| r.strip_prefix(':'))).unwrap_or("?")
}

/// What the harness asks one node.
struct Probe {
    /// `CLUSTER INFO`.
    info: String,
    /// `CLUSTER NODES`, parsed.
    view: Vec<NodeEntry>,
    /// `INFO replication`.
    replication: String,
}

async fn probe(port: u16) -> Result<Probe, String> {
    let attempt = async {
        let mut conn = connect(port).await?;
        let info = run(port, &mut conn, &["CLUSTER", "INFO"]).await?;
        let nodes = run(port, &mut conn, &["CLUSTER", "NODES"]).await?;
        let replication = run(port, &mut conn, &["INFO", "replication"]).await?;
        Ok(Probe { info, view: parse_nodes(&nodes)?, replication })
    };
    tokio::time::timeout(PROBE_TIMEOUT * 2, attempt)
        .await
        .map_err(|_| format!("node {port}: no answer within {:?}", PROBE_TIMEOUT * 2))?
}

/// One command to one node, on a fresh connection.
pub(crate) async fn query(port: u16, args: &[&str]) -> Result<String, String> {
    let attempt = async {
        let mut conn = connect(port).await?;
        run(port, &mut conn, args).await
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .map_err(|_| format!("node {port}: no answer within {PROBE_TIMEOUT:?}"))?
}

async fn connect(port: u16) -> Result<redis::aio::MultiplexedConnection, String> {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .map_err(|e| format!("node {port}: {e}"))?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("node {port}: connect: {e}"))
}

async fn run(port: u16, conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> Result<String, String> {
    let mut cmd = redis::Cmd::new();
    for arg in args {
        cmd.arg(*arg);
    }
    cmd.query_async::<String>(conn).await.map_err(|e| format!("node {port}: {}: {e}", args.join(" ")))
}

async fn ping(port: u16) -> bool {
    matches!(query(port, &["PING"]).await, Ok(reply) if reply == "PONG")
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct NodeEntry {
    id: String,
    port: u16,
    flags: Vec<String>,
    /// The master's id, for replicas.
    master_id: Option<String>,
    /// Served slot ranges, inclusive.
    slots: Vec<(u16, u16)>,
}

impl NodeEntry {
    fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }

    /// Failed, suspected, not yet met, or without an address.
    fn is_unhealthy(&self) -> bool {
        self.flags.iter().any(|f| matches!(f.as_str(), "fail" | "fail?" | "handshake" | "noaddr"))
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(from, to)| (from..=to).contains(&slot))
    }
}

/// Parses `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master>
/// <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...`.
fn parse_nodes(text: &str) -> Result<Vec<NodeEntry>, String> {
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || format!("unexpected CLUSTER NODES line {line:?}");
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return Err(bad());
        }
        let addr = fields[1].split(',').next().unwrap_or_default();
        let addr = addr.split('@').next().unwrap_or_default();
        let port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let mut slots = Vec::new();
        // `[slot->-id]` / `[slot-<-id]` are migrations in progress, not owned.
        for range in fields[8..].iter().filter(|s| !s.starts_with('[')) {
            let (from, to) = range.split_once('-').unwrap_or((range, range));
            slots.push((from.parse().map_err(|_| bad())?, to.parse().map_err(|_| bad())?));
        }
        entries.push(NodeEntry {
            id: fields[0].to_string(),
            port,
            flags: fields[2].split(',').map(str::to_string).collect(),
            master_id: (fields[3] != "-").then(|| fields[3].to_string()),
            slots,
        });
    }
    Ok(entries)
}

/// Hash slot of `key`, as Redis Cluster computes it
/// ([`hemostat_protocol::slot::key_slot`]).
pub fn key_slot(key: &str) -> u16 {
    hemostat_protocol::slot::key_slot(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_nodes() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [5461->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
6ec23923021cf3ffec47632106199cb7f496ce01 :0@0 master,fail,noaddr - 0 0 5 disconnected
";
        let view = parse_nodes(text).unwrap();
        assert_eq!(view.len(), 4);
        assert_eq!(view[0].port, 30004);
        assert_eq!(view[0].master_id.as_deref(), Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"));
        assert!(!view[0].is_master());
        assert_eq!(view[1].slots, vec![(5461, 10922)]);
        assert!(view[2].is_master() && view[2].serves(0) && view[2].serves(5460) && !view[2].serves(5461));
        assert!(view[3].is_unhealthy());
        assert_eq!(view[3].port, 0);
    }
}
