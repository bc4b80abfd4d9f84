//! Fleet load: what H Docker hosts with C containers in all cost HemoStat's
//! Redis, bridge and functions, on a private single node or Redis Cluster.
//!
//! ```sh
//! cargo build --workspace --bins
//! target/debug/hemostat-bench-fleet [--redis node|cluster] [--hosts 10] [--containers 1000]
//!     [--seconds 30] [--warmup 5] [--alert-rate 2] [--bin-dir target/debug]
//! ```
//!
//! The generator is this process: in a debug build it saturates first (on
//! a cluster from ~1,000 containers per host); a release build of this
//! binary alone (`cargo build --release -p hemostat-e2e --bin
//! hemostat-bench-fleet`) with `--bin-dir target/debug` loads a debug stack
//! harder. Its own figures (samples/s achieved, skipped ticks, timeouts,
//! CPU) say when it did not keep up.
//!
//! It starts its own Redis (`--redis node`: one `redis-server`; `cluster`:
//! six nodes, three masters), the Lambda emulator with every function of the
//! real `template.yaml`, and the bridge; no collector. Instead, H simulated
//! hosts each write, through a [`Connection`] of their own, exactly what a
//! collector writes (`collector/src/sample/store.rs`, `collector/src/watch/registry.rs`):
//! - once: their members of `hemostat:containers` and each member's facts
//!   (identity, image, policy), in one pipeline;
//! - every second, one pipeline per host: per running container its stats key
//!   (`SET EX`, the seed fields plus the collector's extras) and its chart
//!   sample (`LPUSH`, `LTRIM` to `SERIES_MAX`, `EXPIRE`); per exited
//!   container its stats key every 100 s; hosts' ticks are spread over the
//!   second, late ticks skipped, each pipeline bounded by 1 s, as the
//!   collector does;
//! - every 10 s its heartbeat (`SET EX` 30 s + `ZADD hemostat:collectors`);
//! - `--alert-rate` health alerts per second across the fleet, each for a
//!   container not alerted before (the gate's cooldown would refuse a
//!   repeat), crash alerts (`non_zero_exit`, exit 1) as the collector's
//!   detector builds them, published with [`RedisPublisher`]; the container
//!   is then reported `exited` in its stats. Each container has an image of
//!   its own, so the fleet brake (per image, across hosts) never trips.
//!
//! Nobody executes the commands the responder sends to the simulated hosts:
//! they stay in `hemostat:commands:<host>`.
//!
//! After `--warmup` seconds it measures, over `--seconds`:
//! - Redis: commands/s (`INFO` `total_commands_processed` deltas, each node
//!   asked directly), in total and per node, the busiest commands
//!   (`INFO commandstats`), and each `redis-server`'s CPU (utime+stime deltas
//!   of `/proc/<pid>/stat`, the pid from `INFO server`), in % of one core;
//!   on a cluster also the keys per master (`DBSIZE`) and the max/min ratio of
//!   commands/s across masters. The benchmark's own probes (the lag and
//!   command pollers below) are included, and printed separately.
//! - bridge lag: per route (stream, consumer group) and overall, the time
//!   from a record's stream id (Redis' clock) to its acknowledgement, as seen
//!   from outside: per stream a blocking `XREAD` finds new records as they
//!   come; while one is not yet acked by all its groups, every 5 ms
//!   `XINFO GROUPS` (and `XPENDING` for a group with pending records) says
//!   which are: delivered (id <= `last-delivered-id`) and no longer pending.
//!   Upper bounds, pessimistic by at most one check (5 ms plus a round trip).
//!   Records whose id falls in the window count.
//! - alert to command: (command entry id ms) - (health_alert entry id ms),
//!   matched by container (`host/name` of the command JSON), for the alerts
//!   published in the window; commands are polled every 500 ms (the ids are
//!   stamped by Redis, so the poll does not bias the figure).
//! - the dashboard's first page: `GET .../urls/hemostat-dashboard/api/containers`
//!   through the emulator, sequentially, ~24 times spread over the window;
//!   and the exporter's scrape, `GET .../urls/hemostat-exporter/metrics`
//!   (time and size), at the same cadence.
//! - before the load: one host's stats pipeline alone (build time, and the
//!   send-to-last-reply time through [`Connection`], which on a cluster
//!   splits it into one pipeline per hash slot);
//! - the generator itself: samples written per second against the target
//!   (a generator that cannot keep up is visible here), its pipelines'
//!   round trips, skipped ticks, failures; CPU of the emulator (with the
//!   function processes it runs), the bridge, and this process.
//!
//! The probes (lag, commands, HTTP) run on a thread and runtime of their
//! own, so a saturated generator does not delay their clocks.
//!
//! At the end it counts WARN/ERROR lines (and any MOVED/ASK/CROSSSLOT) in
//! the emulator's and bridge's logs (`target/e2e-logs/bench_fleet-*.log`)
//! and stops every process it started.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use hemostat_e2e::{
    RedisCluster, RedisServer,
    bench::{self, id_key, id_ms, now_ms, percentile},
    bin_dir, key_slot, lambda_bearer, log_dir, start_bridge, start_emulator, workspace_root,
};
use hemostat_protocol::{
    Command, ContainerRef, Envelope, Publisher, RedisPublisher,
    command::COMMAND_FIELD,
    connection::{self, Connection},
    envelope::seed_timestamp,
    event::Metrics,
    facts::Observed,
    keys,
    routes::ROUTES,
    series::SeriesSample,
};
use redis::{
    AsyncCommands, Value,
    streams::{StreamRangeReply, StreamReadReply},
};
use serde_json::json;

/// Log files are named after this (`target/e2e-logs/bench_fleet-*.log`).
const RUN_NAME: &str = "bench_fleet";
/// The collector's stats interval (default) and heartbeat interval.
const TICK: Duration = Duration::from_secs(1);
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// The collector rewrites a stopped container's key this often.
const EXITED_REFRESH: Duration = Duration::from_secs(100);
/// How often acks are looked for while a record waits for one.
const ACK_POLL: Duration = Duration::from_millis(5);
/// A blocking read for new records of an idle stream waits this long.
const IDLE_BLOCK: Duration = Duration::from_millis(1000);
const COMMAND_POLL: Duration = Duration::from_millis(500);
/// After the window: how long commands and acks of the window's records
/// may still arrive.
const GRACE: Duration = Duration::from_secs(5);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_SAMPLES: u32 = 24;
const MEMORY_LIMIT: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Node,
    Cluster,
}

#[derive(Debug, Clone)]
struct Options {
    mode: Mode,
    hosts: usize,
    containers: usize,
    seconds: u64,
    warmup: u64,
    alert_rate: f64,
    bin_dir: Option<PathBuf>,
}

const USAGE: &str = "hemostat-bench-fleet [--redis node|cluster] [--hosts H] [--containers C] [--seconds S] \
[--warmup W] [--alert-rate R] [--bin-dir DIR]";

fn options() -> Options {
    let mut o = Options {
        mode: Mode::Node,
        hosts: 10,
        containers: 1000,
        seconds: 30,
        warmup: 5,
        alert_rate: 2.0,
        bin_dir: None,
    };
    let fail = |msg: String| -> ! { bench::usage_error(USAGE, &msg) };
    for (flag, value) in bench::flags(USAGE) {
        let num = |v: &str| -> f64 {
            v.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .unwrap_or_else(|| fail(format!("{flag}: {v:?} is not a number")))
        };
        match flag.as_str() {
            "--redis" => {
                o.mode = match value.as_str() {
                    "node" => Mode::Node,
                    "cluster" => Mode::Cluster,
                    v => fail(format!("--redis: {v:?} is not node or cluster")),
                }
            }
            "--hosts" => o.hosts = num(&value) as usize,
            "--containers" => o.containers = num(&value) as usize,
            "--seconds" => o.seconds = num(&value) as u64,
            "--warmup" => o.warmup = num(&value) as u64,
            "--alert-rate" => o.alert_rate = num(&value),
            "--bin-dir" => o.bin_dir = Some(PathBuf::from(value)),
            _ => fail(format!("unknown option {flag}")),
        }
    }
    if o.hosts == 0 || o.containers < o.hosts || o.seconds == 0 {
        fail("need --hosts >= 1, --containers >= --hosts, --seconds >= 1".into());
    }
    o
}

fn main() {
    let o = options();
    if let Some(dir) = &o.bin_dir {
        let dir = if dir.is_absolute() { dir.clone() } else { std::env::current_dir().expect("cwd").join(dir) };
        // SAFETY: single-threaded here; no runtime or thread exists yet.
        unsafe { std::env::set_var("HEMOSTAT_BIN_DIR", dir) };
    }
    bench::on_named_thread(RUN_NAME, move || run(o));
}

// ---------------------------------------------------------------- helpers

/// Nearest-rank percentile of sorted values; NaN (printed as such) when none.
fn pct(sorted: &[f64], p: f64) -> f64 {
    percentile(sorted, p).unwrap_or(f64::NAN)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn summary_ms(v: &[f64]) -> String {
    let s = sorted(v.to_vec());
    if s.is_empty() {
        return "no samples".into();
    }
    format!(
        "n {:>5}  p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
        s.len(),
        pct(&s, 0.5),
        pct(&s, 0.99),
        s[s.len() - 1]
    )
}

/// xorshift64*: cheap deterministic noise for the simulated readings.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn bytes(n: f64) -> String {
    if n >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", n / (1024.0 * 1024.0))
    } else if n >= 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{n:.0} B")
    }
}

// ---------------------------------------------------------------- redis

enum Redis {
    Node(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    fn url(&self) -> String {
        match self {
            Redis::Node(r) => r.url(),
            Redis::Cluster(c) => c.url(),
        }
    }

    fn ports(&self) -> Vec<u16> {
        match self {
            Redis::Node(r) => vec![r.port()],
            Redis::Cluster(c) => c.ports(),
        }
    }
}

/// What one redis-server says about itself at one moment.
#[derive(Debug, Clone, Default)]
struct NodeSnap {
    port: u16,
    role: String,
    pid: u32,
    commands: u64,
    /// Command name -> calls.
    calls: HashMap<String, u64>,
    cpu_ticks: u64,
    keys: u64,
    at: Option<Instant>,
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.trim().strip_prefix(name).and_then(|r| r.strip_prefix(':')))
}

async fn node_conn(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("node {port}: {e}"))
}

async fn node_snapshot(port: u16) -> NodeSnap {
    let mut conn = node_conn(port).await;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .arg("stats")
        .arg("replication")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("node {port}: INFO: {e}"));
    let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap_or(0);
    let at = Instant::now();
    let pid: u32 = info_field(&info, "process_id").and_then(|v| v.parse().ok()).unwrap_or(0);
    let calls = info
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect();
    NodeSnap {
        port,
        role: info_field(&info, "role").unwrap_or("?").to_owned(),
        pid,
        commands: info_field(&info, "total_commands_processed").and_then(|v| v.parse().ok()).unwrap_or(0),
        calls,
        cpu_ticks: proc_stat(pid).map(|s| s.ticks).unwrap_or(0),
        keys,
        at: Some(at),
    }
}

// ---------------------------------------------------------------- /proc

struct ProcStat {
    comm: String,
    ppid: u32,
    /// utime + stime, in clock ticks.
    ticks: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    if pid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    // After the comm: state (3), ppid (4), ..., utime (14), stime (15).
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ProcStat { comm, ppid, ticks: utime + stime })
}

fn clock_ticks() -> f64 {
    // SAFETY: plain libc query without side effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU ticks of `root` and of each of its direct children, by pid.
fn process_tree(root: u32) -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    if let Some(s) = proc_stat(root) {
        out.insert(root, (s.comm, s.ticks));
    }
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(s) = proc_stat(pid).filter(|s| s.ppid == root) {
                out.insert(pid, (s.comm, s.ticks));
            }
        }
    }
    out
}

// ---------------------------------------------------------------- fleet

struct SimHost {
    name: String,
    containers: Vec<SimContainer>,
    /// Set once a container was alerted on: it is reported exited.
    exited: Arc<Vec<AtomicBool>>,
}

struct SimContainer {
    name: String,
    id: String,
    image: String,
    stats_key: String,
    series_key: String,
    cpu_base: f64,
    mem_base: f64,
    net_rx: u64,
    net_tx: u64,
    blk_read: u64,
    blk_write: u64,
    pids: u64,
    exited_write_at: Option<Instant>,
}

fn fleet(o: &Options) -> Vec<SimHost> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..o.hosts)
        .map(|h| {
            let host = format!("fleet-{h:03}");
            let n = o.containers / o.hosts + usize::from(h < o.containers % o.hosts);
            let containers = (0..n)
                .map(|j| {
                    let name = format!("svc-{j:05}");
                    let c = ContainerRef::new(&host, &name);
                    SimContainer {
                        id: format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
                        image: format!("fleet/{host}-{name}:1"),
                        stats_key: keys::stats(&c),
                        series_key: keys::series(&c),
                        name,
                        cpu_base: 1.0 + rng.next() * 50.0,
                        mem_base: 5.0 + rng.next() * 60.0,
                        net_rx: (rng.next() * 1e9) as u64,
                        net_tx: (rng.next() * 1e9) as u64,
                        blk_read: (rng.next() * 1e8) as u64,
                        blk_write: (rng.next() * 1e8) as u64,
                        pids: 1 + (rng.next() * 40.0) as u64,
                        exited_write_at: None,
                    }
                })
                .collect::<Vec<_>>();
            let exited = Arc::new((0..containers.len()).map(|_| AtomicBool::new(false)).collect());
            SimHost { name: host, containers, exited }
        })
        .collect()
}

/// What the generator did, for rates (deltas between two snapshots).
#[derive(Default)]
struct GenCounters {
    ticks: AtomicU64,
    /// Stats keys due in the ticks that ran (what the collector would write).
    planned: AtomicU64,
    samples: AtomicU64,
    commands: AtomicU64,
    pipelines_failed: AtomicU64,
    pipelines_timed_out: AtomicU64,
    alerts: AtomicU64,
    alert_failures: AtomicU64,
    /// Commands sent by the benchmark's own pollers.
    probe_commands: AtomicU64,
    /// (local time ms, round trip ms) of each stats pipeline.
    rtts: Mutex<Vec<(f64, f64)>>,
    first_error: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct GenSnap {
    ticks: u64,
    planned: u64,
    samples: u64,
    commands: u64,
    failed: u64,
    timed_out: u64,
    alerts: u64,
    alert_failures: u64,
    probe_commands: u64,
}

impl GenCounters {
    fn snap(&self) -> GenSnap {
        GenSnap {
            ticks: self.ticks.load(Ordering::Relaxed),
            planned: self.planned.load(Ordering::Relaxed),
            samples: self.samples.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            failed: self.pipelines_failed.load(Ordering::Relaxed),
            timed_out: self.pipelines_timed_out.load(Ordering::Relaxed),
            alerts: self.alerts.load(Ordering::Relaxed),
            alert_failures: self.alert_failures.load(Ordering::Relaxed),
            probe_commands: self.probe_commands.load(Ordering::Relaxed),
        }
    }

    fn error(&self, e: String) {
        let mut first = self.first_error.lock().unwrap();
        if first.is_none() {
            *first = Some(e);
        }
    }
}

/// The collector's stats JSON (`collector/src/usage.rs`, `View::metrics`).
fn stats_json(host: &str, c: &SimContainer, running: bool, usage: Option<(f64, f64)>, timestamp: String) -> String {
    let (cpu, mem) = usage.unwrap_or((0.0, 0.0));
    let zero_unless = |v: u64| Some(if running { v } else { 0 });
    let m = Metrics {
        name: c.name.clone(),
        status: Some(if running { "running" } else { "exited" }.into()),
        memory_pct: round2(mem),
        cpu_pct: round2(cpu),
        timestamp: Some(timestamp),
        host: Some(host.to_owned()),
        id: Some(c.id.clone()),
        image: Some(c.image.clone()),
        health: None,
        memory_usage: zero_unless((mem / 100.0 * MEMORY_LIMIT as f64) as u64),
        memory_limit: zero_unless(MEMORY_LIMIT),
        net_rx_bytes: zero_unless(c.net_rx),
        net_tx_bytes: zero_unless(c.net_tx),
        blk_read_bytes: zero_unless(c.blk_read),
        blk_write_bytes: zero_unless(c.blk_write),
        pids: zero_unless(c.pids),
        extra: Default::default(),
    };
    serde_json::to_string(&m).expect("serialisable")
}

/// One host's tick as the collector's sampler writes it: per running
/// container its stats key and chart sample, per exited one its stats key
/// when due. Returns the pipeline, its commands and its stats keys.
fn stats_pipeline(host: &mut SimHost, rng: &mut Rng) -> (redis::Pipeline, u64, u64) {
    let ttl = keys::STATS_TTL.as_secs();
    let series_ttl = keys::SERIES_TTL.as_secs() as i64;
    let timestamp = seed_timestamp();
    let t_ms = Utc::now().timestamp_millis();
    let now = Instant::now();
    let mut pipe = redis::pipe();
    let (mut commands, mut samples) = (0u64, 0u64);
    for (j, c) in host.containers.iter_mut().enumerate() {
        let running = !host.exited[j].load(Ordering::Relaxed);
        if !running {
            if c.exited_write_at.is_some_and(|at| at > now) {
                continue;
            }
            c.exited_write_at = Some(now + EXITED_REFRESH);
        }
        let usage = running.then(|| {
            let cpu = (c.cpu_base + (rng.next() - 0.5) * 10.0).max(0.0);
            let mem = (c.mem_base + (rng.next() - 0.5) * 2.0).clamp(0.0, 100.0);
            c.net_rx += (rng.next() * 20_000.0) as u64;
            c.net_tx += (rng.next() * 20_000.0) as u64;
            c.blk_write += (rng.next() * 4096.0) as u64;
            (cpu, mem)
        });
        pipe.set_ex(&c.stats_key, stats_json(&host.name, c, running, usage, timestamp.clone()), ttl).ignore();
        commands += 1;
        samples += 1;
        if let Some((cpu, mem)) = usage {
            let sample = SeriesSample { t: t_ms, cpu: round2(cpu), mem: round2(mem) };
            pipe.lpush(&c.series_key, serde_json::to_string(&sample).unwrap_or_default())
                .ignore()
                .ltrim(&c.series_key, 0, keys::SERIES_MAX as isize - 1)
                .ignore()
                .expire(&c.series_key, series_ttl)
                .ignore();
            commands += 3;
        }
    }
    (pipe, commands, samples)
}

/// One host's stats pipeline alone, before the load starts, `rounds` times
/// without a time limit (30 s at most each): (build ms, send ms) medians.
async fn calibrate(host: &mut SimHost, conn: &mut Connection, rounds: usize) -> Option<(f64, f64, u64)> {
    let mut rng = Rng(0x5851_F42D_4C95_7F2D);
    let (mut build, mut send, mut commands) = (Vec::new(), Vec::new(), 0);
    for _ in 0..rounds {
        let started = Instant::now();
        let (pipe, n, _) = stats_pipeline(host, &mut rng);
        build.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(30), pipe.query_async::<()>(conn)).await.ok()?.ok()?;
        send.push(started.elapsed().as_secs_f64() * 1000.0);
        commands = n;
    }
    Some((pct(&sorted(build), 0.5), pct(&sorted(send), 0.5), commands))
}

/// One simulated collector: registry once, then stats every second and a
/// heartbeat every 10 s, until `stop`.
async fn run_host(
    mut host: SimHost,
    mut conn: Connection,
    offset: Duration,
    stop: Arc<AtomicBool>,
    counters: Arc<GenCounters>,
) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (offset.as_nanos() as u64 + 1));
    // As the collector's registry: the members, and each one's facts (the
    // gate acts only on a container its collector reports).
    let mut pipe = redis::pipe();
    for c in &host.containers {
        let container = ContainerRef::new(&host.name, &c.name);
        pipe.sadd(keys::CONTAINERS, container.key()).ignore();
        let observed = Observed::from_labels(&c.id, Some(&c.image), &Default::default());
        if let Err(e) = hemostat_protocol::facts::observe(&mut pipe, &container, &observed) {
            counters.error(format!("{}: facts of {}: {e}", host.name, c.name));
        }
    }
    if let Err(e) = pipe.query_async::<()>(&mut conn).await {
        counters.error(format!("{}: registry (SADD {}, facts): {e}", host.name, keys::CONTAINERS));
    }
    tokio::time::sleep(offset).await;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_beat = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        counters.ticks.fetch_add(1, Ordering::Relaxed);
        let (pipe, commands, samples) = stats_pipeline(&mut host, &mut rng);
        counters.planned.fetch_add(samples, Ordering::Relaxed);
        if samples > 0 {
            let started = Instant::now();
            match tokio::time::timeout(TICK, pipe.query_async::<()>(&mut conn)).await {
                Ok(Ok(())) => {
                    counters.samples.fetch_add(samples, Ordering::Relaxed);
                    counters.commands.fetch_add(commands, Ordering::Relaxed);
                    counters.rtts.lock().unwrap().push((now_ms(), started.elapsed().as_secs_f64() * 1000.0));
                }
                Ok(Err(e)) => {
                    counters.pipelines_failed.fetch_add(1, Ordering::Relaxed);
                    counters.error(format!("{}: stats pipeline: {e}", host.name));
                }
                Err(_) => {
                    counters.pipelines_timed_out.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if Instant::now() >= next_beat {
            next_beat += HEARTBEAT_INTERVAL;
            let value = json!({
                "host": host.name,
                "pid": std::process::id(),
                "version": env!("CARGO_PKG_VERSION"),
                "interval_seconds": HEARTBEAT_INTERVAL.as_secs_f64(),
                "timestamp": seed_timestamp(),
            });
            let beat: redis::RedisResult<()> = redis::pipe()
                .set_ex(keys::heartbeat(&host.name), value.to_string(), (HEARTBEAT_INTERVAL * 3).as_secs())
                .ignore()
                .zadd(keys::COLLECTORS, &host.name, Utc::now().timestamp_millis())
                .ignore()
                .query_async(&mut conn)
                .await;
            match beat {
                Ok(()) => {
                    counters.commands.fetch_add(2, Ordering::Relaxed);
                }
                Err(e) => counters.error(format!("{}: heartbeat: {e}", host.name)),
            }
        }
    }
}

/// A crash alert as the collector's detector builds it.
fn crash_alert(host: &str, c: &AlertTarget) -> Envelope {
    hemostat_e2e::bench::crash_alert(host, &c.name, Some(&c.id), &c.image)
}

/// One alert published: its container and its stream id.
struct Published {
    container: String,
    id: String,
}

/// A container to alert on, its exited flag, its host's publisher.
struct AlertTarget {
    host: String,
    name: String,
    id: String,
    image: String,
    exited: Arc<Vec<AtomicBool>>,
    index: usize,
    publisher: RedisPublisher,
}

/// `rate` alerts per second, each for the next container not alerted
/// before (hosts in turn), until `stop` or no container is left.
async fn run_alerts(
    targets: Vec<AlertTarget>,
    rate: f64,
    stop: Arc<AtomicBool>,
    counters: Arc<GenCounters>,
    published: Arc<Mutex<Vec<Published>>>,
    exhausted: Arc<AtomicBool>,
) {
    if rate <= 0.0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut targets = targets.into_iter();
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(t) = targets.next() else {
            exhausted.store(true, Ordering::Relaxed);
            break;
        };
        t.exited[t.index].store(true, Ordering::Relaxed);
        let env = crash_alert(&t.host, &t);
        match t.publisher.publish(&env).await {
            Ok(id) => {
                counters.alerts.fetch_add(1, Ordering::Relaxed);
                published.lock().unwrap().push(Published { container: ContainerRef::new(&t.host, &t.name).key(), id });
            }
            Err(e) => {
                counters.alert_failures.fetch_add(1, Ordering::Relaxed);
                counters.error(format!("publish health_alert: {e}"));
            }
        }
    }
}

/// Every 100 ms: new entries of every host's command stream; the first
/// command per container, as (container -> entry id ms).
async fn run_commands(
    mut conn: Connection,
    hosts: Vec<String>,
    stop: Arc<AtomicBool>,
    counters: Arc<GenCounters>,
    seen: Arc<Mutex<HashMap<String, f64>>>,
    total: Arc<AtomicU64>,
) {
    let streams: Vec<String> = hosts.iter().map(|h| keys::commands(h)).collect();
    let mut cursors: Vec<String> = vec!["-".into(); streams.len()];
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(COMMAND_POLL).await;
        let mut pipe = redis::pipe();
        for (stream, cursor) in streams.iter().zip(&cursors) {
            pipe.cmd("XRANGE").arg(stream).arg(cursor).arg("+").arg("COUNT").arg(1000);
        }
        counters.probe_commands.fetch_add(streams.len() as u64, Ordering::Relaxed);
        let Ok(Ok(replies)) =
            tokio::time::timeout(Duration::from_secs(2), pipe.query_async::<Vec<StreamRangeReply>>(&mut conn)).await
        else {
            continue;
        };
        for (reply, cursor) in replies.into_iter().zip(cursors.iter_mut()) {
            for entry in reply.ids {
                *cursor = format!("({}", entry.id);
                total.fetch_add(1, Ordering::Relaxed);
                let Some(json) = entry.get::<String>(COMMAND_FIELD) else {
                    continue;
                };
                let Ok(cmd) = serde_json::from_str::<Command>(&json) else {
                    continue;
                };
                let key = ContainerRef::new(&cmd.host, &cmd.container).key();
                seen.lock().unwrap().entry(key).or_insert(id_ms(&entry.id));
            }
        }
    }
}

/// Per route (stream, group): lags (ms) of acked records whose id time is
/// in [from, to] ms; plus records of the window never seen acked.
#[derive(Default)]
struct LagState {
    /// (stream, group) -> ids delivered or not, not yet seen acked.
    outstanding: BTreeMap<(String, String), VecDeque<String>>,
    /// (stream, group) -> (id ms, lag ms).
    acked: BTreeMap<(String, String), Vec<(f64, f64)>>,
}

/// The bridge's acks on one stream, seen from outside. New records are
/// found by a blocking `XREAD` (no polling while the stream is idle); while
/// some record is not yet acked by every group, every `ACK_POLL` one
/// `XINFO GROUPS` (and `XPENDING` for groups with pending records) tells
/// which were: delivered (id <= last-delivered-id) and no longer pending.
async fn run_lag(
    mut conn: Connection,
    stream: String,
    groups: Vec<String>,
    stop: Arc<AtomicBool>,
    counters: Arc<GenCounters>,
    state: Arc<Mutex<LagState>>,
) {
    // Only records added from now on.
    let mut cursor = format!("{}-0", now_ms() as u64);
    let mut outstanding: HashMap<String, VecDeque<String>> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let busy = outstanding.values().any(|q| !q.is_empty());
        let block = if busy { ACK_POLL } else { IDLE_BLOCK };
        let read: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&stream)
            .arg(&cursor)
            .query_async(&mut conn)
            .await;
        counters.probe_commands.fetch_add(1, Ordering::Relaxed);
        match read {
            Ok(Some(reply)) => {
                for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                    for g in &groups {
                        outstanding.entry(g.clone()).or_default().push_back(entry.id.clone());
                    }
                    cursor = entry.id;
                }
            }
            Ok(None) => {}
            Err(_) => {
                tokio::time::sleep(ACK_POLL).await;
                continue;
            }
        }
        if !outstanding.values().any(|q| !q.is_empty()) {
            continue;
        }
        let info: redis::RedisResult<Vec<HashMap<String, Value>>> =
            redis::cmd("XINFO").arg("GROUPS").arg(&stream).query_async(&mut conn).await;
        counters.probe_commands.fetch_add(1, Ordering::Relaxed);
        let Ok(info) = info else { continue };
        let mut at = now_ms();
        let field = |g: &HashMap<String, Value>, k: &str| {
            g.get(k).and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
        };
        for g in &info {
            let Some(name) = field(g, "name") else {
                continue;
            };
            let Some(q) = outstanding.get_mut(&name).filter(|q| !q.is_empty()) else {
                continue;
            };
            let last = id_key(&field(g, "last-delivered-id").unwrap_or_default());
            let pending_count: u64 = field(g, "pending").and_then(|p| p.parse().ok()).unwrap_or(0);
            let mut pending = HashSet::new();
            if pending_count > 0 && q.iter().any(|id| id_key(id) <= last) {
                let reply: redis::RedisResult<Vec<(String, String, u64, u64)>> = redis::cmd("XPENDING")
                    .arg(&stream)
                    .arg(&name)
                    .arg("-")
                    .arg("+")
                    .arg(10_000)
                    .query_async(&mut conn)
                    .await;
                counters.probe_commands.fetch_add(1, Ordering::Relaxed);
                let Ok(reply) = reply else { continue };
                at = now_ms();
                pending = reply.into_iter().map(|p| p.0).collect();
            }
            let mut done = Vec::new();
            q.retain(|id| {
                if id_key(id) <= last && !pending.contains(id) {
                    done.push((id_ms(id), at - id_ms(id)));
                    false
                } else {
                    true
                }
            });
            let mut st = state.lock().unwrap();
            st.acked.entry((stream.clone(), name.clone())).or_default().extend(done);
        }
        let mut st = state.lock().unwrap();
        for (g, q) in &outstanding {
            st.outstanding.insert((stream.clone(), g.clone()), q.clone());
        }
    }
}

// ---------------------------------------------------------------- http

struct HttpSample {
    status: u16,
    ms: f64,
    body: Vec<u8>,
}

/// A plain HTTP/1.1 GET on a fresh connection (`Connection: close`), body
/// read whole (chunked decoded); the time covers connect to last byte.
async fn http_get(addr: &str, path: &str) -> Result<HttpSample, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        // Both URLs are AuthType AWS_IAM in the template: the emulator's token.
        let auth = lambda_bearer();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        s.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(|e| format!("read: {e}"))?;
        Ok::<_, String>(raw)
    };
    let raw = tokio::time::timeout(HTTP_TIMEOUT, attempt)
        .await
        .map_err(|_| format!("GET {path}: no answer within {HTTP_TIMEOUT:?}"))??;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no header end")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(HttpSample { status, ms, body })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_line = String::from_utf8_lossy(&data[..eol]).to_string();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// GETs `path` every `every` until `until`, one at a time.
async fn sample_http(addr: String, path: String, every: Duration, until: Instant) -> (Vec<HttpSample>, Vec<String>) {
    let (mut samples, mut errors) = (Vec::new(), Vec::new());
    let mut next = Instant::now();
    while Instant::now() < until {
        match http_get(&addr, &path).await {
            Ok(s) => samples.push(s),
            Err(e) => errors.push(e),
        }
        next += every;
        if next > Instant::now() {
            tokio::time::sleep_until(next.into()).await;
        }
    }
    (samples, errors)
}

// ---------------------------------------------------------------- logs

/// Markers of a cluster client or server refusing a command's slot.
const SLOT_MARKERS: [&str; 7] = ["MOVED", "ASK ", "CROSSSLOT", "CrossSlot", "crossed slots", "TRYAGAIN", "CLUSTERDOWN"];

/// A log line in short: the function prefix (`[hemostat-analyzer]`), the
/// level and message and the error fields of a JSON line (functions log
/// JSON inside the emulator), or the text line itself.
fn short_line(line: &str) -> (String, String) {
    let prefix = if line.starts_with('[') {
        line.split(']').next().map(|p| format!("{p}] ")).unwrap_or_default()
    } else {
        String::new()
    };
    if let Some(v) = line.find('{').and_then(|at| serde_json::from_str::<serde_json::Value>(&line[at..]).ok()) {
        let f = &v["fields"];
        let message = f["message"].as_str().unwrap_or("").to_owned();
        let detail: Vec<String> = ["reason", "error", "stream", "key"]
            .iter()
            .filter_map(|k| {
                f.get(*k).map(|x| format!("{k}={}", x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())))
            })
            .collect();
        let level = v["level"].as_str().unwrap_or("?");
        return (format!("{prefix}{level} {message}"), format!("{prefix}{level} {message} {}", detail.join(" ")));
    }
    // Text: `<time> LEVEL message key=value ...`; the key is the message.
    let rest: String = line.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
    let key = rest.split('=').next().unwrap_or("").to_owned();
    (format!("{prefix}{key}"), rest.chars().take(300).collect())
}

/// Counts of WARN, ERROR and cluster slot-error lines, and one example per
/// distinct message (at most 8).
fn scan_log(text: &str) -> (usize, usize, usize, Vec<(usize, String)>) {
    let (mut warn, mut error, mut redirect) = (0, 0, 0);
    let mut examples: Vec<(String, usize, String)> = Vec::new();
    for raw in text.lines() {
        let line = hemostat_e2e::strip_ansi(raw);
        let is_warn = line.contains(" WARN ") || line.contains("\"level\":\"WARN\"");
        let is_error = line.contains(" ERROR ") || line.contains("\"level\":\"ERROR\"") || line.contains("panicked");
        let is_redirect = SLOT_MARKERS.iter().any(|m| line.contains(m));
        warn += usize::from(is_warn);
        error += usize::from(is_error);
        redirect += usize::from(is_redirect);
        if is_warn || is_error || is_redirect {
            let (key, short) = short_line(&line);
            if let Some(e) = examples.iter_mut().find(|(k, _, _)| *k == key) {
                e.1 += 1;
            } else if examples.len() < 8 {
                examples.push((key, 1, short.chars().take(400).collect()));
            }
        }
    }
    (warn, error, redirect, examples.into_iter().map(|(_, n, s)| (n, s)).collect())
}

// ---------------------------------------------------------------- run

/// A current-thread runtime on a thread of its own, for the probes: its
/// handle, the signal that ends it, the thread.
fn probe_runtime() -> (tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("{RUN_NAME}-probes"))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let _ = handle_tx.send(rt.handle().clone());
            rt.block_on(async {
                let _ = stop_rx.await;
            });
        })
        .expect("thread");
    let handle = handle_rx.recv().expect("probe runtime");
    (handle, stop_tx, thread)
}

async fn run(o: Options) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mode = if o.mode == Mode::Cluster { "cluster (3 masters + 3 replicas)" } else { "node" };
    println!(
        "hemostat-bench-fleet: redis {mode}, {} hosts, {} containers, {} alerts/s, warm-up {} s, window {} s, binaries {}, {cores} cores",
        o.hosts,
        o.containers,
        o.alert_rate,
        o.warmup,
        o.seconds,
        bin_dir().display()
    );
    let setup = Instant::now();
    let redis = match o.mode {
        Mode::Node => Redis::Node(RedisServer::start_node().await),
        Mode::Cluster => Redis::Cluster(RedisCluster::start().await),
    };
    let url = redis.url();
    let template = workspace_root().join("template.yaml");
    let (emulator, endpoint) = start_emulator(|b| {
        b.test(RUN_NAME)
            .name("emulator")
            .args(["--template", template.to_str().expect("utf-8 path")])
            .args(["--bin-dir".to_string(), bin_dir().display().to_string()])
            .env("REDIS_URL", &url)
            .env("HEMOSTAT_COMMAND_SIGNING_KEY", &hemostat_e2e::test_keys().private)
            // Info for the readiness line; per-request logs are at debug.
            .env("RUST_LOG", "info")
    })
    .await;
    let bridge = start_bridge(|b| {
        b.test(RUN_NAME)
            .name("bridge")
            .env("REDIS_URL", &url)
            .env("HEMOSTAT_LAMBDA_ENDPOINT", &endpoint)
            .env("RUST_LOG", "info")
    })
    .await;
    println!(
        "stack up in {:.1} s: redis {}, emulator {endpoint}, bridge; logs in {}/{RUN_NAME}-*.log",
        setup.elapsed().as_secs_f64(),
        redis.ports().iter().map(u16::to_string).collect::<Vec<_>>().join(","),
        log_dir().display()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let stop_alerts = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(GenCounters::default());
    let published: Arc<Mutex<Vec<Published>>> = Arc::default();
    let commands_seen: Arc<Mutex<HashMap<String, f64>>> = Arc::default();
    let commands_total = Arc::new(AtomicU64::new(0));
    let lag: Arc<Mutex<LagState>> = Arc::default();
    let exhausted = Arc::new(AtomicBool::new(false));

    // The measuring side first, so it sees every record, on a thread and
    // runtime of its own: a saturated generator must not delay the probes'
    // clocks (their connections belong to that runtime, made in its tasks).
    let (probes, probes_stop, probes_thread) = probe_runtime();
    let probe = connection::connect(&url).await.expect("redis");
    let mut lag_tasks = Vec::new();
    let mut streams: Vec<String> = ROUTES.iter().map(|r| r.stream()).collect();
    streams.sort();
    streams.dedup();
    for stream in streams {
        let mut groups: Vec<String> = ROUTES.iter().filter(|r| r.stream() == stream).map(|r| r.group()).collect();
        groups.sort();
        groups.dedup();
        let (url, stop, counters, lag) = (url.clone(), stop.clone(), counters.clone(), lag.clone());
        lag_tasks.push(probes.spawn(async move {
            let conn = connection::connect_blocking(&url, IDLE_BLOCK).await.expect("redis");
            run_lag(conn, stream, groups, stop, counters, lag).await
        }));
    }
    let hosts = fleet(&o);
    let host_names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let commands_task = {
        let (url, stop, counters) = (url.clone(), stop.clone(), counters.clone());
        let (seen, total, names) = (commands_seen.clone(), commands_total.clone(), host_names.clone());
        probes.spawn(async move {
            let conn = connection::connect(&url).await.expect("redis");
            run_commands(conn, names, stop, counters, seen, total).await
        })
    };

    // Alert order: hosts in turn, each container once. Each target carries
    // a copy of what the alert needs, and its host's connection.
    let mut conns = Vec::new();
    for _ in &hosts {
        conns.push(connection::connect(&url).await.expect("redis"));
    }
    let max_len = hosts.iter().map(|h| h.containers.len()).max().unwrap_or(0);
    let mut targets = Vec::new();
    for j in 0..max_len {
        for (h, host) in hosts.iter().enumerate() {
            if let Some(c) = host.containers.get(j) {
                targets.push(AlertTarget {
                    host: host.name.clone(),
                    name: c.name.clone(),
                    id: c.id.clone(),
                    image: c.image.clone(),
                    exited: host.exited.clone(),
                    index: j,
                    publisher: RedisPublisher::new(conns[h].clone()),
                });
            }
        }
    }
    let expected_alerts = (o.alert_rate * (o.warmup + o.seconds) as f64).ceil() as usize;
    if expected_alerts > targets.len() {
        println!(
            "note: {expected_alerts} alerts wanted but only {} containers: alerts stop when every container had one",
            targets.len()
        );
    }

    if o.mode == Mode::Cluster {
        // The Connection splits a plain pipeline into one per hash slot.
        let slots: Vec<usize> = hosts
            .iter()
            .map(|h| {
                h.containers
                    .iter()
                    .flat_map(|c| [key_slot(&c.stats_key), key_slot(&c.series_key)])
                    .collect::<HashSet<u16>>()
                    .len()
            })
            .collect();
        let per_host = hosts.iter().map(|h| h.containers.len()).sum::<usize>() / hosts.len();
        println!(
            "per-host stats pipeline: ~{} commands over {:.0} hash slots on average (sent as one pipeline per master)",
            per_host * 4,
            slots.iter().sum::<usize>() as f64 / slots.len() as f64
        );
    }
    let mut hosts = hosts;
    match calibrate(&mut hosts[0], &mut conns[0], 3).await {
        Some((build, send, n)) => println!(
            "one host's stats pipeline alone ({n} commands, median of 3, before the load): \
             build {build:.1} ms, send + replies {send:.1} ms"
        ),
        None => println!("one host's stats pipeline alone: failed or took over 30 s"),
    }
    let n_hosts = hosts.len() as u32;
    let mut host_tasks = Vec::new();
    for (h, (host, conn)) in hosts.into_iter().zip(conns).enumerate() {
        let offset = TICK * h as u32 / n_hosts;
        host_tasks.push(tokio::spawn(run_host(host, conn, offset, stop.clone(), counters.clone())));
    }
    let alert_task = tokio::spawn(run_alerts(
        targets,
        o.alert_rate,
        stop_alerts.clone(),
        counters.clone(),
        published.clone(),
        exhausted.clone(),
    ));

    // Warm-up, then the window.
    tokio::time::sleep(Duration::from_secs(o.warmup)).await;
    let ports = redis.ports();
    let snaps0 = futures::future::join_all(ports.iter().map(|&p| node_snapshot(p))).await;
    let gen0 = counters.snap();
    let tree0 = process_tree(emulator.pid());
    let bridge0 = proc_stat(bridge.pid()).map(|s| s.ticks).unwrap_or(0);
    let self0 = proc_stat(std::process::id()).map(|s| s.ticks).unwrap_or(0);
    let window_start = Instant::now();
    let window_start_ms = now_ms();
    let window = Duration::from_secs(o.seconds);
    let window_end = window_start + window;

    let addr = endpoint.trim_start_matches("http://").to_owned();
    let every = window / HTTP_SAMPLES;
    let dashboard =
        probes.spawn(sample_http(addr.clone(), "/urls/hemostat-dashboard/api/containers".into(), every, window_end));
    // Offset by half a period so the two do not always coincide.
    let exporter = {
        let addr = addr.clone();
        probes.spawn(async move {
            tokio::time::sleep(every / 2).await;
            sample_http(addr, "/urls/hemostat-exporter/metrics".into(), every, window_end).await
        })
    };

    tokio::time::sleep_until(window_end.into()).await;
    let snaps1 = futures::future::join_all(ports.iter().map(|&p| node_snapshot(p))).await;
    let gen1 = counters.snap();
    let tree1 = process_tree(emulator.pid());
    let bridge1 = proc_stat(bridge.pid()).map(|s| s.ticks).unwrap_or(0);
    let self1 = proc_stat(std::process::id()).map(|s| s.ticks).unwrap_or(0);
    let elapsed = window_start.elapsed().as_secs_f64();
    let window_end_ms = now_ms();
    stop_alerts.store(true, Ordering::Relaxed);
    let masters: Vec<u16> = match &redis {
        Redis::Cluster(c) => c.masters().await,
        Redis::Node(r) => vec![r.port()],
    };

    // Grace: the generator keeps its load while the window's last alerts
    // get their commands and the window's records their acks.
    let (dash, dash_errors) = dashboard.await.unwrap_or_default();
    let (scrapes, scrape_errors) = exporter.await.unwrap_or_default();
    let grace_end = Instant::now() + GRACE;
    let in_window = |id: &str| (window_start_ms..=window_end_ms).contains(&id_ms(id));
    while Instant::now() < grace_end {
        let waiting_commands = {
            let seen = commands_seen.lock().unwrap();
            published.lock().unwrap().iter().filter(|p| in_window(&p.id) && !seen.contains_key(&p.container)).count()
        };
        let waiting_acks = lag
            .lock()
            .unwrap()
            .outstanding
            .values()
            .flatten()
            .filter(|id| (window_start_ms..=window_end_ms).contains(&id_ms(id)))
            .count();
        if waiting_commands == 0 && waiting_acks == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = alert_task.await;
    for t in host_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    for t in lag_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), commands_task).await;
    let _ = probes_stop.send(());
    let _ = probes_thread.join();

    // ------------------------------------------------------------ report
    let tick = clock_ticks();
    let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / elapsed;
    println!();
    println!("window {elapsed:.1} s after {} s warm-up", o.warmup);

    // Generator.
    let samples = rate(gen0.samples, gen1.samples);
    let rtts: Vec<f64> = counters
        .rtts
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| (window_start_ms..=window_end_ms).contains(at))
        .map(|(_, ms)| *ms)
        .collect();
    let ticks = gen1.ticks - gen0.ticks;
    let expected_ticks = (o.hosts as f64 * elapsed).round() as u64;
    // What was due in the ticks that ran, scaled up for the ticks skipped:
    // one key per running container per second (an exited one's every 100 s).
    let planned = rate(gen0.planned, gen1.planned);
    let target_samples = if ticks > 0 { planned * (expected_ticks as f64 / ticks as f64).max(1.0) } else { planned };
    println!(
        "generator: {samples:.0} stats samples/s of {target_samples:.0} wanted ({:.1} %), {:.0} commands/s sent, {:.2} alerts/s published",
        samples / target_samples * 100.0,
        rate(gen0.commands, gen1.commands),
        rate(gen0.alerts, gen1.alerts),
    );
    println!(
        "  host ticks {ticks} of {expected_ticks} due, pipelines failed {} timed out (>1 s) {}, alert publishes failed {}",
        gen1.failed - gen0.failed,
        gen1.timed_out - gen0.timed_out,
        gen1.alert_failures - gen0.alert_failures
    );
    println!("  per-host stats pipeline round trip: {}", summary_ms(&rtts));
    if let Some(e) = counters.first_error.lock().unwrap().as_ref() {
        println!("  first generator error: {e}");
    }
    if exhausted.load(Ordering::Relaxed) {
        println!("  alerts stopped early: every container had one");
    }

    // Redis.
    let by_port0: HashMap<u16, &NodeSnap> = snaps0.iter().map(|s| (s.port, s)).collect();
    let mut master_rates = Vec::new();
    let mut total_masters = 0.0;
    let mut total_nodes = 0.0;
    let mut calls: HashMap<String, u64> = HashMap::new();
    println!("redis (commands/s from INFO total_commands_processed, CPU in % of one core from /proc/<pid>/stat):");
    for s1 in &snaps1 {
        let Some(s0) = by_port0.get(&s1.port) else {
            continue;
        };
        let secs = match (s0.at, s1.at) {
            (Some(a), Some(b)) => (b - a).as_secs_f64().max(1e-3),
            _ => elapsed,
        };
        let cps = (s1.commands.saturating_sub(s0.commands)) as f64 / secs;
        let cpu = (s1.cpu_ticks.saturating_sub(s0.cpu_ticks)) as f64 / tick / secs * 100.0;
        let is_master = masters.contains(&s1.port);
        total_nodes += cps;
        if is_master {
            total_masters += cps;
            master_rates.push(cps);
            for (name, n) in &s1.calls {
                *calls.entry(name.clone()).or_default() += n.saturating_sub(s0.calls.get(name).copied().unwrap_or(0));
            }
        }
        println!(
            "  node 127.0.0.1:{:<5} {:<7} pid {:>7}  {:>9.0} commands/s  cpu {:>5.1} %  keys {:>7}",
            s1.port, s1.role, s1.pid, cps, cpu, s1.keys
        );
    }
    let probes = rate(gen0.probe_commands, gen1.probe_commands);
    if o.mode == Mode::Cluster {
        println!(
            "  total {total_masters:.0} commands/s on the masters ({total_nodes:.0}/s counting what replicas apply); \
             of which the benchmark's probes ~{probes:.0}/s"
        );
    } else {
        println!("  total {total_masters:.0} commands/s; of which the benchmark's probes ~{probes:.0}/s");
    }
    let mut top: Vec<(String, u64)> = calls.into_iter().collect();
    top.sort_by_key(|b| std::cmp::Reverse(b.1));
    println!(
        "  busiest commands (masters, /s): {}",
        top.iter().take(10).map(|(n, c)| format!("{n} {:.0}", *c as f64 / elapsed)).collect::<Vec<_>>().join(", ")
    );
    if o.mode == Mode::Cluster {
        let keys: Vec<String> =
            snaps1.iter().filter(|s| masters.contains(&s.port)).map(|s| format!("{}: {}", s.port, s.keys)).collect();
        let (max, min) = master_rates.iter().fold((0.0f64, f64::INFINITY), |(mx, mn), &r| (mx.max(r), mn.min(r)));
        println!(
            "  key spread: keys per master {}; commands/s max/min across masters {:.2} ({max:.0} / {min:.0})",
            keys.join(", "),
            if min > 0.0 { max / min } else { f64::INFINITY }
        );
    }

    // Bridge lag.
    {
        let st = lag.lock().unwrap();
        println!(
            "bridge lag (stream id time -> ack seen from outside, checked every {} ms while a record waits; records of the window):",
            ACK_POLL.as_millis()
        );
        let mut all = Vec::new();
        for ((stream, group), acked) in &st.acked {
            let v: Vec<f64> =
                acked.iter().filter(|(t, _)| (window_start_ms..=window_end_ms).contains(t)).map(|(_, l)| *l).collect();
            if v.is_empty() {
                continue;
            }
            let short = stream.trim_start_matches("hemostat:stream:");
            println!("  {:<38} {}", format!("{short} -> {}", group.trim_start_matches("bridge:")), summary_ms(&v));
            all.extend(v);
        }
        let never: usize = st
            .outstanding
            .values()
            .flatten()
            .filter(|id| (window_start_ms..=window_end_ms).contains(&id_ms(id)))
            .count();
        println!(
            "  {:<38} {}   (not acked within {} s of the window: {never})",
            "all routes",
            summary_ms(&all),
            GRACE.as_secs()
        );
    }
    let dead: u64 = probe.clone().xlen(keys::DEAD_LETTER_STREAM).await.unwrap_or(0);
    println!("  dead-lettered records since start ({}): {dead}", keys::DEAD_LETTER_STREAM);

    // Alert to command.
    {
        let seen = commands_seen.lock().unwrap();
        let published = published.lock().unwrap();
        let window_alerts: Vec<&Published> = published.iter().filter(|p| in_window(&p.id)).collect();
        let lat: Vec<f64> =
            window_alerts.iter().filter_map(|p| seen.get(&p.container).map(|&cmd| cmd - id_ms(&p.id))).collect();
        println!(
            "alert -> command (command id ms - health_alert id ms): {}   ({} of {} alerts of the window got a command; {} commands in all)",
            summary_ms(&lat),
            lat.len(),
            window_alerts.len(),
            commands_total.load(Ordering::Relaxed)
        );
    }

    // Dashboard and exporter.
    {
        let ok: Vec<&HttpSample> = dash.iter().filter(|s| s.status == 200).collect();
        let lat: Vec<f64> = ok.iter().map(|s| s.ms).collect();
        let listed = ok.last().and_then(|s| serde_json::from_slice::<serde_json::Value>(&s.body).ok()).map(|v| {
            format!(
                "{} listed of {} total, truncated {}",
                v["containers"].as_array().map_or(0, Vec::len),
                v["total"],
                v["truncated"]
            )
        });
        let size = ok.iter().map(|s| s.body.len()).max().unwrap_or(0);
        println!(
            "dashboard GET api/containers: {}  size {}  ({}; {} non-200, {} errors{})",
            summary_ms(&lat),
            bytes(size as f64),
            listed.unwrap_or_else(|| "no answer".into()),
            dash.len() - ok.len(),
            dash_errors.len(),
            dash_errors.first().map(|e| format!(": {e}")).unwrap_or_default()
        );
        if let Some(bad) = dash.iter().find(|s| s.status != 200) {
            println!(
                "  first non-200: {} {}",
                bad.status,
                String::from_utf8_lossy(&bad.body).chars().take(200).collect::<String>()
            );
        }
        let ok: Vec<&HttpSample> = scrapes.iter().filter(|s| s.status == 200).collect();
        let lat: Vec<f64> = ok.iter().map(|s| s.ms).collect();
        let sizes = sorted(ok.iter().map(|s| s.body.len() as f64).collect());
        let series = ok.last().map(|s| {
            String::from_utf8_lossy(&s.body).lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).count()
        });
        println!(
            "exporter GET /metrics: {}  size p50 {}  ({} series; {} non-200, {} errors{})",
            summary_ms(&lat),
            bytes(pct(&sizes, 0.5)),
            series.unwrap_or(0),
            scrapes.len() - ok.len(),
            scrape_errors.len(),
            scrape_errors.first().map(|e| format!(": {e}")).unwrap_or_default()
        );
        if let Some(bad) = scrapes.iter().find(|s| s.status != 200) {
            println!(
                "  first non-200: {} {}",
                bad.status,
                String::from_utf8_lossy(&bad.body).chars().take(200).collect::<String>()
            );
        }
    }

    // CPU of HemoStat's processes and of this one.
    {
        let share = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / tick / elapsed * 100.0;
        let mut by_comm: BTreeMap<String, f64> = BTreeMap::new();
        let mut emulator_total = 0.0;
        for (pid, (comm, t1)) in &tree1 {
            let t0 = tree0.get(pid).map(|(_, t)| *t).unwrap_or(0);
            let s = share(t0, *t1);
            emulator_total += s;
            *by_comm.entry(comm.clone()).or_default() += s;
        }
        println!(
            "cpu (% of one core): emulator + functions {emulator_total:.1} ({}), bridge {:.1}, this generator {:.1}",
            by_comm.iter().map(|(c, s)| format!("{c} {s:.1}")).collect::<Vec<_>>().join(", "),
            share(bridge0, bridge1),
            share(self0, self1)
        );
    }

    // Stop everything, then read what the logs said.
    let _ = bridge.stop(Duration::from_secs(5));
    let _ = emulator.stop(Duration::from_secs(5));
    for (name, p) in [("emulator", &emulator), ("bridge", &bridge)] {
        let (warn, error, redirect, examples) = scan_log(&p.log());
        println!(
            "log {name} ({}): {warn} WARN, {error} ERROR, {redirect} MOVED/ASK/CROSSSLOT/TRYAGAIN/CLUSTERDOWN",
            p.log_path().display()
        );
        for (n, e) in examples {
            println!("    {n:>5} x {e}");
        }
    }
    drop(bridge);
    drop(emulator);
    drop(redis);
}
