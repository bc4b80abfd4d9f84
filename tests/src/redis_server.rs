//! A private Redis per test, so tests neither share state nor disturb each
//! other when one of them crashes or restarts Redis.
//!
//! [`RedisServer::start`] gives a single `redis-server`, or, when
//! `HEMOSTAT_TEST_REDIS=cluster`, a whole [`RedisCluster`]: the same tests
//! run on both (`scripts/test.sh` runs the suite once each way). Tests that
//! stop, kill or restart Redis, which means something else on a cluster,
//! take [`RedisServer::start_node`], always a single node.
//!
//! [`RedisServer::start_durable`] runs either with the durability of the
//! local stack (`infra/redis/durability.conf`, which `scripts/stack.sh` and
//! compose.yaml's Redis run too): it keeps its data across
//! [`crash`](RedisServer::crash) and [`recover`](RedisServer::recover), on a
//! single node and on a cluster alike.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hemostat_protocol::connection::Connection;

use crate::paths::{log_dir, workspace_root};
use crate::polling::wait_until;
use crate::port::free_port;
use crate::process::{file_tail, kill_and_reap, spawn_logged, terminate};
use crate::redis_cluster::RedisCluster;

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Distinguishes the data folders of durable servers in one process.
static DATA_SEQ: AtomicU32 = AtomicU32::new(0);

/// The local stack's Redis durability settings (append-only file, fsync
/// every second): the file `scripts/stack.sh` gives `redis-server` and
/// compose.yaml's Redis image holds, so a test runs exactly what they run.
pub fn durability_conf() -> PathBuf {
    workspace_root().join("infra/redis/durability.conf")
}

/// Whether this test run's Redis is a cluster (`HEMOSTAT_TEST_REDIS=cluster`).
///
/// Asking makes the test binary one whose outcome may depend on the mode:
/// with `HEMOSTAT_TEST_MODE_LOG` set (the test command sets it), its
/// package and target are written there once, and the test command's later
/// passes (a cluster after a node) run only the binaries that asked.
/// Tests whose subject is not Redis take a single node
/// ([`RedisServer::start_node`]) and so run once.
pub fn cluster_mode() -> bool {
    static RECORDED: std::sync::Once = std::sync::Once::new();
    RECORDED.call_once(record_mode_sensitive);
    std::env::var("HEMOSTAT_TEST_REDIS").is_ok_and(|v| v.eq_ignore_ascii_case("cluster"))
}

/// Appends `<package> <target>` (`--lib` for a crate's unit tests) to
/// `HEMOSTAT_TEST_MODE_LOG`, if set.
fn record_mode_sensitive() {
    use std::io::Write;
    let Some(log) = std::env::var_os("HEMOSTAT_TEST_MODE_LOG") else { return };
    let (Ok(package), Ok(exe)) = (std::env::var("CARGO_PKG_NAME"), std::env::current_exe()) else { return };
    // Cargo names a test binary `<target>-<hash>`.
    let stem = exe.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let target = stem.rsplit_once('-').map_or(stem, |(t, _)| t);
    let target = if target == package.replace('-', "_") { "--lib".to_owned() } else { format!("--test {target}") };
    // One short line in append mode: whole even when test binaries write at once.
    let line = format!("{package} {target}\n");
    let written =
        std::fs::OpenOptions::new().create(true).append(true).open(&log).and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!("HEMOSTAT_TEST_MODE_LOG {}: {e}", std::path::Path::new(&log).display());
    }
}

/// A `redis-server` on 127.0.0.1 without persistence (or, from
/// [`start_durable`](Self::start_durable), with the local stack's), or a
/// Redis Cluster of six; killed when dropped.
///
/// `redis-server` is taken from `PATH`, or from `HEMOSTAT_REDIS_SERVER`.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    log_path: PathBuf,
    cluster: Option<RedisCluster>,
    /// A durable single node's data folder (removed when dropped).
    data: Option<PathBuf>,
}

impl RedisServer {
    /// The test run's Redis: a single node, or a cluster under
    /// `HEMOSTAT_TEST_REDIS=cluster`.
    pub async fn start() -> Self {
        if cluster_mode() {
            let cluster = RedisCluster::start().await;
            let port = cluster.ports()[0];
            let log_path = log_dir().join(format!("{}-redis-cluster.log", crate::current_test_name()));
            return Self { port, child: None, log_path, cluster: Some(cluster), data: None };
        }
        Self::start_node().await
    }

    /// The test run's Redis as [`start`](Self::start) gives it, but durable
    /// as the local stack's ([`durability_conf`]), each node's data in a
    /// folder of its own: what it acknowledged more than a second before a
    /// [`crash`](Self::crash) is there again after [`recover`](Self::recover).
    pub async fn start_durable() -> Self {
        if cluster_mode() {
            let cluster = RedisCluster::start_durable().await;
            let port = cluster.ports()[0];
            let log_path = log_dir().join(format!("{}-redis-cluster.log", crate::current_test_name()));
            return Self { port, child: None, log_path, cluster: Some(cluster), data: None };
        }
        Self::start_durable_node().await
    }

    /// A single durable node whatever the mode (as
    /// [`start_durable`](Self::start_durable) gives it outside cluster mode).
    pub async fn start_durable_node() -> Self {
        let seq = DATA_SEQ.fetch_add(1, Ordering::Relaxed);
        let data = std::env::temp_dir().join(format!("hemostat-redis-data-{}-{seq}", std::process::id()));
        // Left by an earlier process with the same pid: not this test's data.
        if data.exists() {
            let _ = std::fs::remove_dir_all(&data);
        }
        std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut server = Self::new(free_port());
            server.data = Some(data.clone());
            match server.launch().await {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
            server.data = None;
        }
        let _ = std::fs::remove_dir_all(&data);
        panic!("could not start a durable redis-server: {last_error}");
    }

    /// A single node whatever the mode, for tests that stop, kill or
    /// restart it, or whose subject is not Redis (a Docker endpoint, the
    /// collector's actions, diagnosis, the browser): the test command's
    /// cluster pass does not run them again (see [`cluster_mode`]). Starts
    /// on a free port and waits until it answers PING.
    pub async fn start_node() -> Self {
        // free_port releases the port before redis binds it; on a lost race
        // redis exits at once and we try another port.
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut server = Self::new(free_port());
            match server.launch().await {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    fn new(port: u16) -> Self {
        let log_path = log_dir().join(format!("{}-redis-{port}.log", crate::current_test_name()));
        Self { port, child: None, log_path, cluster: None, data: None }
    }

    async fn launch(&mut self) -> Result<(), String> {
        let bin = std::env::var("HEMOSTAT_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string());
        let mut cmd = Command::new(&bin);
        match &self.data {
            // The configuration file comes first, the command line's
            // options after it (as scripts/stack.sh runs it).
            Some(data) => cmd
                .arg(durability_conf())
                .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
                .arg("--dir")
                .arg(data),
            None => cmd
                .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                // With persistence off nothing should be written, but keep
                // the working dir out of the source tree regardless.
                .arg("--dir")
                .arg(std::env::temp_dir()),
        };
        cmd.args(["--daemonize", "no", "--logfile", ""]);
        let child = spawn_logged(&mut cmd, &self.log_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("{bin} not found: run `scripts/test-env.sh install` (or set HEMOSTAT_REDIS_SERVER)")
            } else {
                format!("spawning {bin} failed: {e}")
            }
        })?;
        self.child = Some(child);

        let url = self.url();
        let mut exited = None;
        let ready = wait_until(READY_TIMEOUT, || {
            if let Some(child) = self.child.as_mut() {
                exited = child.try_wait().ok().flatten();
            }
            let url = url.clone();
            let dead = exited.is_some();
            async move { dead || ping(&url).await }
        })
        .await;
        match (ready, exited) {
            (true, None) => Ok(()),
            (_, Some(status)) => {
                self.child = None;
                Err(format!("redis-server on port {} exited ({status}):\n{}", self.port, file_tail(&self.log_path, 20)))
            }
            (false, None) => {
                self.stop();
                Err(format!(
                    "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}:\n{}",
                    self.port,
                    file_tail(&self.log_path, 20)
                ))
            }
        }
    }

    /// The cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&RedisCluster> {
        self.cluster.as_ref()
    }

    fn single_only(&self, what: &str) {
        assert!(self.cluster.is_none(), "{what} needs a single node: take RedisServer::start_node()");
    }

    /// The (first) node's port.
    pub fn port(&self) -> u16 {
        self.single_only("port()");
        self.port
    }

    /// `redis://127.0.0.1:{port}`, or a cluster's seed list
    /// (`redis://127.0.0.1:p1,redis://127.0.0.1:p2,...`): what `REDIS_URL` takes.
    pub fn url(&self) -> String {
        match &self.cluster {
            Some(cluster) => cluster.url(),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// A client of one node (of the first, on a cluster), e.g. for pub/sub,
    /// which any node of a cluster serves for every channel.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).expect("redis URL is well-formed")
    }

    /// A fresh connection of the kind every HemoStat component uses (single
    /// node or cluster); panics if Redis does not answer.
    pub async fn connection(&self) -> Connection {
        hemostat_protocol::connection::connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("connecting to {} failed: {e}", self.url()))
    }

    pub fn is_running(&mut self) -> bool {
        self.single_only("is_running()");
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Graceful shutdown (SIGTERM, SIGKILL after 5 s). Data is lost unless
    /// durable. Idempotent.
    pub fn stop(&mut self) {
        self.single_only("stop()");
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, libc::SIGTERM, Duration::from_secs(5));
        }
    }

    /// Abrupt death, like a crash or OOM kill. Idempotent.
    pub fn kill(&mut self) {
        self.single_only("kill()");
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// Stops the server if running and starts a new one on the same port
    /// (clients can reconnect to the same URL); the new server is empty,
    /// unless durable.
    pub async fn restart(&mut self) {
        self.single_only("restart()");
        self.stop();
        self.relaunch().await;
    }

    /// Waits until every node has handed what it acknowledged to its
    /// append-only file (`aof_buffer_length:0`): `appendfsync everysec`
    /// postpones that write by up to two seconds while an earlier fsync is
    /// slow (a loaded disk), and a SIGKILL loses a postponed write, not a
    /// written one. Panics after 10 s with the last `INFO persistence`.
    pub async fn wait_aof_written(&self) {
        let ports = match &self.cluster {
            Some(cluster) => cluster.ports(),
            None => vec![self.port],
        };
        for port in ports {
            let last = std::cell::RefCell::new(String::new());
            let last = &last;
            let written = wait_until(Duration::from_secs(10), || async move {
                let info = crate::redis_cluster::query(port, &["INFO", "persistence"]).await.unwrap_or_else(|e| e);
                let empty = info.lines().any(|l| l.trim() == "aof_buffer_length:0");
                *last.borrow_mut() = info;
                empty
            })
            .await;
            assert!(written, "node {port} never wrote its AOF buffer:\n{}", last.borrow());
        }
    }

    /// A crash of the whole Redis: SIGKILL of the node, or of every node of
    /// the cluster, at once. Idempotent.
    pub fn crash(&mut self) {
        match &mut self.cluster {
            Some(cluster) => cluster.kill_all(),
            None => self.kill(),
        }
    }

    /// After a [`crash`](Self::crash): every node started again on its
    /// port with its data (a durable server's), and waited for (a cluster
    /// until its nodes agree again on a healthy cluster).
    pub async fn recover(&mut self) {
        match &mut self.cluster {
            Some(cluster) => cluster.restart_all().await,
            None => {
                assert!(!self.is_running(), "recover(): the node still runs; crash() it first");
                self.relaunch().await;
            }
        }
    }

    /// A durable single node's data folder.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data.as_deref()
    }

    async fn relaunch(&mut self) {
        // The port was ours a moment ago, but something else may grab it in
        // between; a retry or two covers a transient clash.
        let mut last_error = String::new();
        for _ in 0..3 {
            match self.launch().await {
                Ok(()) => return,
                Err(e) => last_error = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("restarting redis-server on port {} failed: {last_error}", self.port);
    }

    /// Last `lines` lines of the server's log (of every node's, on a cluster).
    pub fn log_tail(&self, lines: usize) -> String {
        match &self.cluster {
            Some(cluster) => cluster.log_tail(lines),
            None => file_tail(&self.log_path, lines),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
        if let Some(data) = self.data.take() {
            let _ = std::fs::remove_dir_all(data);
        }
    }
}

async fn ping(url: &str) -> bool {
    let attempt = async {
        let mut conn = redis::Client::open(url).ok()?.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut conn).await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(reply)) if reply == "PONG"
    )
}
