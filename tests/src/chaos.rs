//! The chaos run: containers crash at a steady rate on an engine of the
//! run's own while every part of HemoStat is killed with SIGKILL at random
//! and started again, as a supervisor would, after a short random delay:
//! the collector (on the same state folder), the bridge, the emulator, a
//! function instance under it, `redis-server` (durable, as the local stack
//! runs it; on a cluster, every node at once) and, on a cluster, one master
//! (its replica takes over; the old master rejoins as a replica). The
//! engine itself (`--live-restore`, as production engines run) is
//! restarted once, halfway.
//!
//! Each crash is a container of its own that exits 1 once, a few seconds
//! after it starts, and runs on when started again; it has no restart
//! policy, so only HemoStat starts it again, and its first crash is its
//! only one (no cooldown, breaker or history of an earlier crash changes
//! what HemoStat decides). What happened is read from Docker's events
//! (`die` with exit code 1, `start`), followed across the engine's restart,
//! with `docker inspect` for what the events missed:
//!
//! - **healed**: started again after its crash;
//! - **lost**: not started again within [`ChaosConfig::settle`] after the
//!   last fault ended;
//! - **executed twice**: started more than once after its one crash;
//! - **refused by the engine**: not started again, and the engine refuses
//!   the run's own `docker start` of it too with `task ... already exists`
//!   (a restart sent as a `--live-restore` engine stops leaves a containerd
//!   task the restarted engine will not replace; nobody can start that
//!   container again until the engine's host is cleaned up). Told apart
//!   from a loss so a loss stays HemoStat's: one the run's own start heals
//!   was HemoStat's to heal.
//!
//! [`run`] returns a [`ChaosReport`]; `hemostat-bench-chaos` prints it
//! for ten minutes, `tests/tests/chaos.rs` asserts it for a short pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::RestartPolicyNameEnum;
use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;
use hemostat_protocol::{
    EventKind,
    connection::Connection,
    event::{FalseAlarm, HealthAlert, RemediationComplete},
};

use crate::{
    container::{ContainerSpec, TEST_LABEL, TestContainer},
    current_test_name,
    dockerd::PrivateDockerd,
    events::stream_events,
    keys::test_keys,
    paths::workspace_root,
    port::free_port,
    process::Process,
    redis_cluster::RedisCluster,
    redis_server::RedisServer,
    stack::{lambda_token, test_host},
};

/// How long before its crash a crashing container is started.
const LEAD: Duration = Duration::from_secs(4);
/// A healed container is removed this long after its restart (long enough
/// to see a second restart of it), so a long run keeps few containers.
const KEEP_HEALED: Duration = Duration::from_secs(60);
/// After every crash is healed, how long the run still watches for a
/// second restart.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(5);
/// How long a restarted part may take to be ready on a loaded machine.
const READY: Duration = Duration::from_secs(60);

/// What a run does.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// How long containers crash and parts are killed (parts longer, until
    /// every kind was killed once).
    pub duration: Duration,
    /// On a six-node Redis Cluster rather than one node.
    pub cluster: bool,
    /// One container crashes this often.
    pub crash_every: Duration,
    /// One part is killed every this long on average (between half and
    /// one and a half of it).
    pub kill_every: Duration,
    /// Seeds the choice of parts, their order and the delays.
    pub seed: u64,
    /// A crash not healed this long after the last fault is lost.
    pub settle: Duration,
    /// Restart the engine once, halfway.
    pub restart_dockerd: bool,
}

impl ChaosConfig {
    /// The test command's pass: 75 s, a crash every 1.5 s, a kill every
    /// 6 s (so every kind of part at least once).
    pub fn short(cluster: bool, seed: u64) -> Self {
        Self {
            duration: Duration::from_secs(75),
            cluster,
            crash_every: Duration::from_millis(1500),
            kill_every: Duration::from_secs(6),
            seed,
            settle: Duration::from_secs(90),
            restart_dockerd: true,
        }
    }
}

/// A part of HemoStat (or of what it runs on) the run kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    Collector,
    Bridge,
    Emulator,
    Function,
    Redis,
    ClusterMaster,
    Dockerd,
}

impl Fault {
    /// What a run kills at random, for a node or a cluster.
    pub fn kinds(cluster: bool) -> Vec<Fault> {
        let mut kinds = vec![Fault::Collector, Fault::Bridge, Fault::Emulator, Fault::Function, Fault::Redis];
        if cluster {
            kinds.push(Fault::ClusterMaster);
        }
        kinds
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Collector => "collector",
            Fault::Bridge => "bridge",
            Fault::Emulator => "emulator",
            Fault::Function => "function instance",
            Fault::Redis => "redis-server",
            Fault::ClusterMaster => "cluster master",
            Fault::Dockerd => "dockerd (restart)",
        })
    }
}

/// A crash that was not healed, with what HemoStat made of it.
#[derive(Debug, Clone)]
pub struct LostCrash {
    pub container: String,
    /// Seconds after the run's start.
    pub crashed_at: f64,
    /// Its `health_alert`s (a non-zero exit).
    pub alerts: usize,
    /// Its `remediation_complete`s and `false_alarm`s, as status and reason.
    pub outcomes: Vec<String>,
    /// Docker's state of it at the end.
    pub state: String,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    pub config_line: String,
    pub seconds: f64,
    /// Containers that crashed (exit 1).
    pub crashes: usize,
    /// Containers planned whose start the engine refused (it was
    /// restarting) or took over 10 s to start (a loaded machine).
    pub not_started: usize,
    /// `health_alert`s of the crashed containers (a non-zero exit).
    pub alerts: usize,
    /// Crashes with at least one alert.
    pub alerted: usize,
    pub healed: usize,
    pub lost: Vec<LostCrash>,
    /// Unhealed crashes the engine refuses to start for anyone (see the
    /// module docs).
    pub engine_refused: Vec<LostCrash>,
    /// Containers started more than once after their one crash, with the
    /// number of starts.
    pub executed_twice: Vec<(String, usize)>,
    /// Longest and median time from a crash to its restart, and whose.
    pub longest_wait: Duration,
    pub longest_wait_container: String,
    pub median_wait: Duration,
    /// Kills per part.
    pub kills: BTreeMap<Fault, usize>,
    /// Parts not running at the end (they died on their own).
    pub dead_parts: Vec<String>,
}

impl ChaosReport {
    /// One line per figure, then the lost crashes and double restarts.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let kills: Vec<String> = self.kills.iter().map(|(f, n)| format!("{f} {n}")).collect();
        out.push_str(&format!("chaos: {} ({:.0} s)\n", self.config_line, self.seconds));
        out.push_str(&format!("kills (SIGKILL, then started again): {}\n", kills.join(", ")));
        out.push_str(&format!("crashes: {}\n", self.crashes));
        out.push_str(&format!("alerts: {} (for {} of the crashes)\n", self.alerts, self.alerted));
        out.push_str(&format!("healed: {}\n", self.healed));
        out.push_str(&format!("lost: {} (goal 0)\n", self.lost.len()));
        out.push_str(&format!(
            "refused by the engine (task already exists, for the run's own start too): {}\n",
            self.engine_refused.len()
        ));
        out.push_str(&format!("executed twice: {} (goal 0)\n", self.executed_twice.len()));
        out.push_str(&format!(
            "longest time a crash waited: {:.1} s ({}); median {:.1} s\n",
            self.longest_wait.as_secs_f64(),
            self.longest_wait_container,
            self.median_wait.as_secs_f64()
        ));
        if self.not_started > 0 {
            out.push_str(&format!("containers the engine refused to start (restarting): {}\n", self.not_started));
        }
        for (tag, crashes) in [("LOST", &self.lost), ("REFUSED", &self.engine_refused)] {
            for c in crashes {
                out.push_str(&format!(
                    "{tag} {} crashed at {:.1} s: {} alert(s), outcomes [{}], now {}\n",
                    c.container,
                    c.crashed_at,
                    c.alerts,
                    c.outcomes.join("; "),
                    c.state
                ));
            }
        }
        for (name, starts) in &self.executed_twice {
            out.push_str(&format!("TWICE {name}: started {starts} times after its crash\n"));
        }
        for part in &self.dead_parts {
            out.push_str(&format!("DEAD at the end: {part}\n"));
        }
        out
    }
}

/// Runs the chaos as `config` says on an engine and a Redis of its own,
/// and reports. Spawns processes from the calling future (see the crate
/// docs on lifetimes); needs a multi-threaded runtime.
pub async fn run(config: &ChaosConfig) -> ChaosReport {
    let mut dockerd = PrivateDockerd::start_live_restore().await;
    let mut redis = match config.cluster {
        true => Redis::Cluster(RedisCluster::start_durable().await),
        false => Redis::Node(RedisServer::start_durable_node().await),
    };
    let listen = format!("127.0.0.1:{}", free_port());
    let parts = Parts {
        url: redis.url(),
        endpoint: format!("http://{listen}"),
        listen,
        host: test_host(),
        docker_host: dockerd.host(),
    };
    let mut emulator = parts.emulator().await;
    let mut bridge = parts.bridge().await;
    let mut collector = parts.collector().await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let t0 = Instant::now();
    let t0_ns = now_ns();
    // The tasks run on other threads, whose names are not the test's.
    let label = current_test_name();
    let watcher = tokio::spawn(watch_events(dockerd.docker().await, ledger.clone(), label.clone()));
    let crasher = tokio::spawn(crash_containers(dockerd.docker().await, config.clone(), ledger.clone(), t0, label));

    let mut rng = Rng(config.seed);
    let mut kills: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut rotation: Vec<Fault> = Vec::new();
    let mut dockerd_pending = config.restart_dockerd;
    loop {
        tokio::time::sleep(rng.between(config.kill_every / 2, config.kill_every * 3 / 2)).await;
        // Past the duration only until every kind was killed once.
        let all_killed = Fault::kinds(config.cluster).iter().all(|k| kills.contains_key(k)) && !dockerd_pending;
        if t0.elapsed() >= config.duration && all_killed {
            break;
        }
        let fault = if dockerd_pending && t0.elapsed() >= config.duration / 2 {
            dockerd_pending = false;
            Fault::Dockerd
        } else {
            if rotation.is_empty() {
                rotation = Fault::kinds(config.cluster);
                rng.shuffle(&mut rotation);
            }
            rotation.pop().expect("a kind to kill")
        };
        let down = rng.between(Duration::from_millis(500), Duration::from_secs(3));
        let at = t0.elapsed().as_secs_f64();
        let killed = match fault {
            Fault::Collector => {
                collector.kill();
                tokio::time::sleep(down).await;
                collector = parts.collector().await;
                true
            }
            Fault::Bridge => {
                bridge.kill();
                tokio::time::sleep(down).await;
                bridge = parts.bridge().await;
                true
            }
            Fault::Emulator => {
                emulator.kill();
                tokio::time::sleep(down).await;
                emulator = parts.emulator().await;
                true
            }
            Fault::Function => {
                // An instance the emulator runs: it starts another itself.
                let children = children_of(emulator.pid());
                if children.is_empty() {
                    false
                } else {
                    let pid = children[rng.below(children.len() as u64) as usize];
                    // SAFETY: plain syscall on a child of our own child, just listed.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    true
                }
            }
            Fault::Redis => {
                redis.crash();
                tokio::time::sleep(down).await;
                redis.recover().await;
                true
            }
            Fault::ClusterMaster => {
                let Redis::Cluster(cluster) = &mut redis else { unreachable!("masters only on a cluster") };
                let masters = cluster.masters().await;
                let port = masters[rng.below(masters.len() as u64) as usize];
                cluster.kill(port);
                let failover = cluster.wait_for_failover(port, Duration::from_secs(30)).await;
                println!("  master :{port} failed over in {} ms", failover.as_millis());
                tokio::time::sleep(down).await;
                cluster.start_again(port).await;
                true
            }
            Fault::Dockerd => {
                dockerd.stop();
                tokio::time::sleep(down).await;
                dockerd.start_again().await;
                true
            }
        };
        if killed {
            *kills.entry(fault).or_default() += 1;
            println!("{at:>6.1} s  killed {fault}, back after {:.1} s", down.as_secs_f64());
        } else {
            // No instance ran: the kind comes again in the next round.
            println!("{at:>6.1} s  no {fault} to kill");
        }
    }
    let faults_over = Instant::now();
    let (mut planned, not_started) = crasher.await.expect("the crash task");

    let conn = &mut hemostat_protocol::connection::connect(&parts.url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {} after the run failed: {e}", parts.url));
    // Every crash gets `settle` after the last fault to be healed.
    let deadline = faults_over + config.settle;
    // A crash whose restart the engine refused for good (reported as
    // `task ... already exists`) is not waited for.
    while Instant::now() < deadline {
        let pending: Vec<String> =
            ledger.lock().expect("ledger").unhealed(&planned).into_iter().map(str::to_owned).collect();
        if pending.is_empty() || refused_for_good(conn, &parts.host, &pending).await {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(DUPLICATE_WINDOW).await;
    watcher.abort();

    let docker = dockerd.docker().await;
    let alerts: Vec<HealthAlert> = stream_events::<HealthAlert>(conn, EventKind::HealthAlert)
        .await
        .into_iter()
        .map(|(_, a)| a)
        // Any exit code: a crash around the engine's restart can be
        // reported as 255 (the engine lost the process's own code).
        .filter(|a| a.host == parts.host && a.exit_code.is_some_and(|c| c != 0))
        .collect();
    let outcomes = stream_events::<RemediationComplete>(conn, EventKind::RemediationComplete).await;
    let false_alarms = stream_events::<FalseAlarm>(conn, EventKind::FalseAlarm).await;

    let mut report = ChaosReport {
        config_line: format!(
            "Redis {}, crash every {:.1} s, kill every {:.0} s, seed {}",
            if config.cluster { "cluster" } else { "node" },
            config.crash_every.as_secs_f64(),
            config.kill_every.as_secs_f64(),
            config.seed
        ),
        seconds: t0.elapsed().as_secs_f64(),
        not_started,
        kills,
        ..Default::default()
    };
    let mut waits = Vec::new();
    let ledger = ledger.lock().expect("ledger").clone();
    for p in &mut planned {
        let state = match p.container.as_ref() {
            Some(c) => docker.inspect_container(c.id(), None).await.ok().and_then(|i| i.state),
            None => None,
        };
        let Some(crash_ns) = ledger.crash_of(&p.id).or_else(|| {
            // No `die` seen: an exit 1 the engine still shows, or a restart
            // that can only follow a crash, count as one at its plan.
            let exited = state.as_ref().is_some_and(|s| s.running != Some(true) && s.exit_code == Some(1));
            (exited || ledger.starts(&p.id) > 1).then_some(p.crash_ns)
        }) else {
            continue;
        };
        report.crashes += 1;
        let mine = alerts.iter().filter(|a| a.container == p.name).count();
        report.alerts += mine;
        report.alerted += usize::from(mine > 0);
        let restarts = ledger.starts_after(&p.id, crash_ns);
        match restarts.first() {
            Some(first) => {
                report.healed += 1;
                let wait = Duration::from_nanos(first.saturating_sub(crash_ns).max(0) as u64);
                if wait >= report.longest_wait {
                    report.longest_wait = wait;
                    report.longest_wait_container = p.name.clone();
                }
                waits.push(wait);
            }
            None => {
                let mut said: Vec<String> = outcomes
                    .iter()
                    .filter(|(_, o)| o.container == p.name && o.host == parts.host)
                    .map(|(_, o)| {
                        let (reason, error) = (o.result.reason.as_deref(), o.result.error.as_deref());
                        format!(
                            "{:?} {:?}: {} {}",
                            o.action,
                            o.result.status,
                            reason.unwrap_or(""),
                            error.unwrap_or("")
                        )
                    })
                    .collect();
                said.extend(
                    false_alarms
                        .iter()
                        .filter(|(_, f)| f.container == p.name)
                        .map(|(_, f)| format!("false alarm: {}", f.reason)),
                );
                let state = state.map_or("unknown".to_owned(), |s| format!("{:?} exit {:?}", s.status, s.exit_code));
                let unhealed = LostCrash {
                    container: p.name.clone(),
                    crashed_at: (crash_ns - t0_ns) as f64 / 1e9,
                    alerts: mine,
                    outcomes: said,
                    state,
                };
                // Could anyone have started it? Only the engine's own
                // refusal excuses HemoStat.
                let own_start = match p.container.as_ref() {
                    Some(c) => docker.start_container(c.id(), None).await.map_err(|e| e.to_string()),
                    None => Err("no container".to_owned()),
                };
                match own_start {
                    Err(e) if e.contains("already exists") => report.engine_refused.push(unhealed),
                    _ => report.lost.push(unhealed),
                }
            }
        }
        if restarts.len() > 1 {
            report.executed_twice.push((p.name.clone(), restarts.len()));
        }
    }
    waits.sort();
    report.median_wait = waits.get(waits.len() / 2).copied().unwrap_or_default();
    for (name, part) in [("collector", &collector), ("bridge", &bridge), ("emulator", &emulator)] {
        if !part.is_running() {
            report.dead_parts.push(format!("{name}:\n{}", part.log_tail(30)));
        }
    }
    drop(planned);
    drop((collector, bridge, emulator));
    drop(dockerd);
    drop(redis);
    report
}

/// Whether every one of `names` has a restart outcome that failed with the
/// engine's `task ... already exists` (see the module docs).
async fn refused_for_good(conn: &mut Connection, host: &str, names: &[String]) -> bool {
    let outcomes = stream_events::<RemediationComplete>(conn, EventKind::RemediationComplete).await;
    names.iter().all(|name| {
        outcomes.iter().any(|(_, o)| {
            o.host == host
                && &o.container == name
                && o.result.error.as_deref().is_some_and(|e| e.contains("already exists"))
        })
    })
}

/// The run's Redis.
enum Redis {
    Node(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    fn url(&self) -> String {
        match self {
            Redis::Node(server) => server.url(),
            Redis::Cluster(cluster) => cluster.url(),
        }
    }

    /// SIGKILL of the node, or of every node at once.
    fn crash(&mut self) {
        match self {
            Redis::Node(server) => server.crash(),
            Redis::Cluster(cluster) => cluster.kill_all(),
        }
    }

    async fn recover(&mut self) {
        match self {
            Redis::Node(server) => server.recover().await,
            Redis::Cluster(cluster) => cluster.restart_all().await,
        }
    }
}

/// How the run starts (and starts again) each part.
struct Parts {
    url: String,
    listen: String,
    endpoint: String,
    host: String,
    docker_host: String,
}

impl Parts {
    /// Every function of the real template.yaml, on the same port each time.
    async fn emulator(&self) -> Process {
        let template = workspace_root().join("template.yaml");
        let emulator = Process::builder("hemostat-local")
            .env("HEMOSTAT_LAMBDA_TOKEN", lambda_token())
            .args(["--template", template.to_str().expect("utf-8 path")])
            .args(["--listen", &self.listen])
            .env("REDIS_URL", &self.url)
            .env("HEMOSTAT_COMMAND_SIGNING_KEY", &test_keys().private)
            .env("RUST_LOG", "info")
            .spawn();
        emulator.wait_for_line("listening on", READY).await;
        emulator
    }

    async fn bridge(&self) -> Process {
        let bridge = Process::builder("hemostat-bridge")
            .env("HEMOSTAT_LAMBDA_TOKEN", lambda_token())
            .env("REDIS_URL", &self.url)
            .env("HEMOSTAT_LAMBDA_ENDPOINT", &self.endpoint)
            .env("RUST_LOG", "info")
            .spawn();
        bridge.wait_for_line("bridge ready", READY).await;
        bridge
    }

    /// On the same host name and state folder each time, as systemd
    /// restarts it.
    async fn collector(&self) -> Process {
        crate::stack::start_collector(&self.url, &self.host, |b| {
            b.env("DOCKER_HOST", &self.docker_host)
                .env("HEMOSTAT_STATS_INTERVAL", "0")
                .env("HEMOSTAT_VERIFY_SECONDS", "1")
                .env("RUST_LOG", "info")
        })
        .await
    }
}

/// A crashing container the run started.
struct Planned {
    name: String,
    id: String,
    /// When it is meant to crash (ns since the epoch), for a crash whose
    /// `die` event the run did not see.
    crash_ns: i64,
    /// Taken when removed after its restart.
    container: Option<TestContainer>,
}

/// Starts one crashing container every `crash_every` (each exits 1 once,
/// [`LEAD`] after its start), and removes the healed ones after
/// [`KEEP_HEALED`]. Returns them, and how many the engine refused.
async fn crash_containers(
    docker: Docker,
    config: ChaosConfig,
    ledger: Arc<Mutex<Ledger>>,
    t0: Instant,
    label: String,
) -> (Vec<Planned>, usize) {
    let mut planned: Vec<Planned> = Vec::new();
    let mut refused = 0;
    for i in 0.. {
        let crash_at = LEAD + config.crash_every * i;
        if crash_at > config.duration {
            break;
        }
        tokio::time::sleep_until((t0 + crash_at - LEAD).into()).await;
        let delay = (t0 + crash_at).saturating_duration_since(Instant::now());
        let script = format!(
            "[ -e /tmp/crashed ] || {{ sleep {:.1}; touch /tmp/crashed; exit 1; }}; while :; do sleep 0.2; done",
            delay.as_secs_f64()
        );
        let spec = ContainerSpec::shell(&script)
            .label(TEST_LABEL, &label)
            .restart_policy(RestartPolicyNameEnum::NO)
            .stop_timeout(1);
        let crash_ns = now_ns() + delay.as_nanos() as i64;
        match tokio::time::timeout(Duration::from_secs(10), spec.try_start(&docker)).await {
            Ok(Ok(c)) => {
                planned.push(Planned { name: c.name().to_owned(), id: c.id().to_owned(), crash_ns, container: Some(c) })
            }
            Ok(Err(e)) => {
                eprintln!("{:>6.1} s  the engine refused a container: {e}", t0.elapsed().as_secs_f64());
                refused += 1;
            }
            Err(_) => {
                eprintln!("{:>6.1} s  the engine took over 10 s to start a container", t0.elapsed().as_secs_f64());
                refused += 1;
            }
        }
        // Healed long enough ago: gone, so a long run keeps few containers.
        let old = now_ns() - KEEP_HEALED.as_nanos() as i64;
        let done: Vec<TestContainer> = {
            let ledger = ledger.lock().expect("ledger");
            planned
                .iter_mut()
                .filter(|p| {
                    ledger
                        .crash_of(&p.id)
                        .is_some_and(|crash| ledger.starts_after(&p.id, crash).first().is_some_and(|s| *s < old))
                })
                .filter_map(|p| p.container.take())
                .collect()
        };
        for c in done {
            let _ = tokio::time::timeout(Duration::from_secs(10), c.try_remove()).await;
        }
    }
    (planned, refused)
}

/// Docker's events of the run's containers, as they came.
#[derive(Debug, Clone, Default)]
struct Ledger {
    /// Per container id: (action, time in ns, exit code).
    events: HashMap<String, Vec<(String, i64, Option<i64>)>>,
    seen: HashSet<(String, String, i64)>,
    last_ns: i64,
}

impl Ledger {
    fn add(&mut self, id: String, action: String, at_ns: i64, exit_code: Option<i64>) {
        if self.seen.insert((id.clone(), action.clone(), at_ns)) {
            self.last_ns = self.last_ns.max(at_ns);
            self.events.entry(id).or_default().push((action, at_ns, exit_code));
        }
    }

    /// When `id` crashed: its first `die` with exit code 1.
    fn crash_of(&self, id: &str) -> Option<i64> {
        self.events.get(id)?.iter().filter(|(a, _, code)| a == "die" && *code == Some(1)).map(|(_, t, _)| *t).min()
    }

    fn starts(&self, id: &str) -> usize {
        self.events.get(id).map_or(0, |e| e.iter().filter(|(a, _, _)| a == "start").count())
    }

    /// Its `start`s after `after_ns`, in order.
    fn starts_after(&self, id: &str, after_ns: i64) -> Vec<i64> {
        let mut starts: Vec<i64> = self
            .events
            .get(id)
            .map(|e| e.iter().filter(|(a, t, _)| a == "start" && *t > after_ns).map(|(_, t, _)| *t).collect())
            .unwrap_or_default();
        starts.sort_unstable();
        starts
    }

    /// Crashed containers not started again yet, by name.
    fn unhealed<'p>(&self, planned: &'p [Planned]) -> Vec<&'p str> {
        planned
            .iter()
            .filter(|p| match self.crash_of(&p.id) {
                Some(crash) => self.starts_after(&p.id, crash).is_empty(),
                // Not crashed yet as far as the events say: still waiting
                // unless it should have long ago.
                None => p.crash_ns > now_ns() - Duration::from_secs(10).as_nanos() as i64,
            })
            .map(|p| p.name.as_str())
            .collect()
    }
}

/// Follows the engine's `start` and `die` events of this run's containers
/// into `ledger`, across the engine's restart (from the last one seen on).
async fn watch_events(docker: Docker, ledger: Arc<Mutex<Ledger>>, label: String) {
    let label = format!("{TEST_LABEL}={label}");
    let filters =
        HashMap::from([("type", vec!["container"]), ("event", vec!["start", "die"]), ("label", vec![label.as_str()])]);
    loop {
        let since = {
            let last = ledger.lock().expect("ledger").last_ns;
            let last = if last == 0 { now_ns() - 1_000_000_000 } else { last };
            format!("{}.{:09}", last / 1_000_000_000, last % 1_000_000_000)
        };
        let options = EventsOptionsBuilder::new().since(&since).filters(&filters).build();
        let mut stream = docker.events(Some(options));
        while let Some(Ok(msg)) = stream.next().await {
            let (Some(action), Some(actor), Some(at)) = (msg.action, msg.actor, msg.time_nano) else { continue };
            let Some(id) = actor.id else { continue };
            let code = actor.attributes.as_ref().and_then(|a| a.get("exitCode")).and_then(|c| c.parse().ok());
            ledger.lock().expect("ledger").add(id, action, at, code);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Pids whose parent is `pid` (the emulator's function instances).
fn children_of(pid: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|child| {
            // Fields after the command's closing parenthesis: state, ppid, ...
            std::fs::read_to_string(format!("/proc/{child}/stat")).ok().is_some_and(|stat| {
                stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

/// SplitMix64: a run is repeatable from its seed without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_millis() as u64;
        low + Duration::from_millis(self.below(span + 1))
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}
