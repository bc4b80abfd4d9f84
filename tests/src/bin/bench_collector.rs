//! `hemostat-bench-collector`: what sampling every container every second
//! costs, HemoStat's collector against `docker stats`.
//!
//! Starts N idle busybox containers, then measures over the same window
//! length, one phase after the other: nothing watching (baseline), the
//! collector at 1 s resolution, and the `docker stats` CLI streaming to
//! /dev/null. CPU shares come from utime+stime in /proc/<pid>/stat over the
//! window (100 % = one core); the engine is dockerd + its containerd, and
//! apart, the containerd shims of that engine (one per container: they cost
//! the same whoever watches, and dwarf the rest at 200 containers). Containers are removed at the end and
//! on Ctrl-C.
//!
//! ```text
//! hemostat-bench-collector [--containers 50] [--seconds 30] [--bin-dir target/release]
//!                          [--compare PATH]
//! ```
//! `--compare PATH` measures a second collector binary (another commit's
//! build) in the same run, on the same containers, right after the first.
//! Needs DOCKER_HOST and HEMOSTAT_TEST_IMAGE (scripts/test-env.sh start).
//!
//! `--probes N [--probe-interval 10]` measures label probes instead
//! (`hemostat.probe`): N busybox `httpd` listeners on the loopback of one
//! container (one network namespace, N ports: a thousand containers would
//! measure their shims, not the probe), each probed with an HTTP GET every
//! interval by the collector's own probe code, in this process, for
//! `--seconds`. Printed: probes per second, this process's CPU (% of one
//! core, and per probe), its RSS before and at its peak, probe latency.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    query_parameters::{KillContainerOptions, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder},
};
use futures::StreamExt;
use hemostat_e2e::{ContainerSpec, Process, RedisServer, TestContainer, bin_dir, docker};

const LABEL: &str = "hemostat-bench";
/// Let a newly started watcher settle (startup sync, first inspects)
/// before measuring its steady state.
const WARMUP: Duration = Duration::from_secs(5);

struct Args {
    containers: usize,
    seconds: u64,
    bin_dir: Option<PathBuf>,
    /// Another collector binary, measured in the same run.
    compare: Option<PathBuf>,
    /// Label probes to measure instead of sampling (0: sampling).
    probes: usize,
    probe_interval: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args { containers: 50, seconds: 30, bin_dir: None, compare: None, probes: 0, probe_interval: 10 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--containers" => a.containers = value()?.parse().map_err(|e| format!("--containers: {e}"))?,
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--bin-dir" => a.bin_dir = Some(PathBuf::from(value()?)),
            "--compare" => {
                let path = PathBuf::from(value()?);
                if !path.is_file() {
                    return Err(format!("--compare: {} is not a file", path.display()));
                }
                a.compare = Some(path);
            }
            "--probes" => a.probes = value()?.parse().map_err(|e| format!("--probes: {e}"))?,
            "--probe-interval" => {
                a.probe_interval = value()?.parse().map_err(|e| format!("--probe-interval: {e}"))?;
                if a.probe_interval == 0 {
                    return Err("--probe-interval: at least 1 (seconds)".into());
                }
            }
            "-h" | "--help" => {
                return Err("usage: hemostat-bench-collector [--containers N] [--seconds S] [--bin-dir DIR] \
                            [--compare PATH] [--probes N [--probe-interval S]]"
                    .into());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may contain spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// The engine's processes, split because their costs answer different
/// questions: the daemons (dockerd + containerd) are what a stats watcher
/// makes work; the shims (one per container) cost the same whoever watches.
struct Engine {
    daemons: Vec<u32>,
    shims: Vec<u32>,
}

/// dockerd serving DOCKER_HOST, its containerd, and that containerd's shims.
fn engine_pids() -> Engine {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let socket = host.trim_start_matches("unix://").to_owned();
    let all = pids();
    let dockerd = all.iter().copied().find(|p| {
        let c = cmdline(*p);
        let is_dockerd = c.starts_with("dockerd") || c.contains("/dockerd ");
        is_dockerd && (c.contains(&socket) || (socket == "/var/run/docker.sock" && !c.contains(" -H ")))
    });
    let Some(dockerd) = dockerd else {
        eprintln!("warning: no dockerd found for {host}; engine CPU not measured");
        return Engine { daemons: Vec::new(), shims: Vec::new() };
    };
    let mut found = vec![dockerd];
    let containerd: Vec<u32> =
        all.iter().copied().filter(|p| ppid(*p) == Some(dockerd) && cmdline(*p).starts_with("containerd")).collect();
    // The shims name their containerd's socket, under its state directory.
    let dirs: Vec<String> = containerd
        .iter()
        .filter_map(|p| {
            let c = cmdline(*p);
            let config = c.split_whitespace().skip_while(|a| *a != "--config").nth(1)?.to_owned();
            Some(config.rsplit_once('/')?.0.to_owned())
        })
        .collect();
    found.extend(&containerd);
    let shims = all
        .iter()
        .copied()
        .filter(|p| {
            let c = cmdline(*p);
            c.contains("containerd-shim") && dirs.iter().any(|d| c.contains(d.as_str()))
        })
        .collect();
    Engine { daemons: found, shims }
}

/// CPU shares (% of one core) over one window.
struct Sample {
    watcher: f64,
    rss: f64,
    daemons: f64,
    shims: f64,
}

/// CPU % of one core of each group summed, over `window`, plus peak RSS of
/// `watched` sampled every second.
async fn measure(engine: &Engine, watched: Option<u32>, window: Duration) -> Sample {
    let sum = |ps: &[u32]| ps.iter().filter_map(|p| cpu_ticks(*p)).sum::<u64>();
    let w: Vec<u32> = watched.into_iter().collect();
    let (d0, s0, w0, t0) = (sum(&engine.daemons), sum(&engine.shims), sum(&w), Instant::now());
    let mut rss = 0.0f64;
    while t0.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1).min(window)).await;
        if let Some(p) = watched {
            rss = rss.max(rss_mb(p));
        }
    }
    let (d1, s1, w1, wall) = (sum(&engine.daemons), sum(&engine.shims), sum(&w), t0.elapsed().as_secs_f64());
    let pct = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / clock_ticks() / wall * 100.0;
    Sample { watcher: pct(w0, w1), rss, daemons: pct(d0, d1), shims: pct(s0, s1) }
}

async fn start_containers(docker: &Docker, n: usize, run: &str) -> Vec<TestContainer> {
    futures::stream::iter(0..n)
        .map(|_| ContainerSpec::shell("sleep 100000").label(LABEL, run).start(docker))
        .buffer_unordered(8)
        .collect()
        .await
}

/// Removes every container of this run, whatever state it is in.
async fn cleanup(docker: &Docker, run: &str) {
    let filter = std::collections::HashMap::from([("label", vec![format!("{LABEL}={run}")])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filter).build();
    let ids: Vec<String> = docker
        .list_containers(Some(options))
        .await
        .map(|l| l.into_iter().filter_map(|c| c.id).collect())
        .unwrap_or_default();
    let n = ids.len();
    // Killed first, then removed, a few at a time: a thousand concurrent
    // forced removals of running containers wedged dockerd 20.10 here.
    futures::stream::iter(&ids)
        .map(|id| async move {
            let _ = docker.kill_container(id, None::<KillContainerOptions>).await;
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    futures::stream::iter(&ids)
        .map(|id| async move {
            let o = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            let _ = docker.remove_container(id, Some(o)).await;
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    eprintln!("removed {n} bench containers");
}

struct Row {
    what: String,
    /// False for the baseline, where nothing watches.
    watched: bool,
    sample: Sample,
    /// Why the watcher's figures are missing: it exited during the window.
    failed: Option<String>,
}

/// The collector at `bin` watching the run's containers over `window`.
async fn collector_window(engine: &Engine, bin: &Path, run: &str, containers: usize, window: Duration) -> Sample {
    eprintln!("{}: {}s at 1 s resolution", bin.display(), window.as_secs());
    let redis = RedisServer::start().await;
    let collector = Process::builder(bin.to_string_lossy())
        .name("hemostat-collector")
        .test("bench")
        .env("REDIS_URL", redis.url())
        .env("HEMOSTAT_HOST", format!("bench-{run}"))
        // A folder per window: each binary measured starts afresh.
        .env(
            "HEMOSTAT_COLLECTOR_STATE_DIR",
            hemostat_e2e::state_dir(&format!("bench-{run}-{}", uuid::Uuid::new_v4().simple())),
        )
        .env("HEMOSTAT_LABEL_SELECTOR", format!("{LABEL}={run}"))
        .env("HEMOSTAT_STATS_INTERVAL", "1s")
        // Commands are never sent here, but a collector does not start without a key to check them.
        .env("HEMOSTAT_COMMAND_PUBLIC_KEYS", &hemostat_e2e::test_keys().public)
        .env("RUST_LOG", "warn")
        .spawn();
    collector.wait_for_line("collector ready", Duration::from_secs(60)).await;
    tokio::time::sleep(WARMUP).await;
    let sample = measure(engine, Some(collector.pid()), window).await;
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("hemostat:stats:bench-{run}/*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    eprintln!("collector wrote {} stats keys for {containers} containers", keys.len());
    drop(collector);
    drop(redis);
    tokio::time::sleep(Duration::from_secs(2)).await;
    sample
}

async fn bench(args: &Args, docker: &Docker, run: &str) -> Vec<Row> {
    let window = Duration::from_secs(args.seconds);
    eprintln!("starting {} containers ...", args.containers);
    let started = Instant::now();
    let containers = start_containers(docker, args.containers, run).await;
    eprintln!("started in {:.1}s; settling", started.elapsed().as_secs_f64());
    tokio::time::sleep(WARMUP).await;
    let engine = engine_pids();
    let mut rows = Vec::new();

    eprintln!("baseline: {}s with nothing watching", args.seconds);
    let sample = measure(&engine, None, window).await;
    rows.push(Row { what: "idle baseline".into(), watched: false, sample, failed: None });

    let collectors = std::iter::once(("HemoStat collector".to_owned(), bin_dir().join("hemostat-collector")))
        .chain(args.compare.iter().map(|p| ("--compare binary".to_owned(), p.clone())))
        // Absolute: Process looks a relative path up in the bin dir again.
        .map(|(what, bin)| (what, std::path::absolute(&bin).unwrap_or(bin)));
    for (what, bin) in collectors {
        let sample = collector_window(&engine, &bin, run, containers.len(), window).await;
        rows.push(Row { what, watched: true, sample, failed: None });
    }

    eprintln!("docker stats: {}s streaming to /dev/null", args.seconds);
    let names: Vec<&str> = containers.iter().map(|c| c.name()).collect();
    let errors = std::env::temp_dir().join(format!("hemostat-bench-docker-stats-{}.err", std::process::id()));
    let stderr = std::fs::File::create(&errors).unwrap_or_else(|e| panic!("{}: {e}", errors.display()));
    let mut cli: Child = Command::new("docker")
        .arg("stats")
        .args(&names)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run docker stats: {e}"));
    tokio::time::sleep(WARMUP).await;
    let sample = measure(&engine, Some(cli.id()), window).await;
    // A CLI that died early measures as a free watcher: say so instead.
    let failed = match cli.try_wait() {
        Ok(Some(status)) => {
            let text = std::fs::read_to_string(&errors).unwrap_or_default();
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            Some(format!("docker stats exited during the run ({status}): {last}"))
        }
        _ => None,
    };
    let _ = cli.kill();
    let _ = cli.wait();
    let _ = std::fs::remove_file(&errors);
    if let Some(why) = &failed {
        eprintln!("warning: {why}");
    }
    rows.push(Row { what: "docker stats".into(), watched: true, sample, failed });
    for c in containers {
        // Removed by cleanup(); dropping them only double-checks.
        std::mem::forget(c);
    }
    rows
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(dir) = &args.bin_dir {
        // SAFETY: set before any other thread reads the environment.
        unsafe { std::env::set_var("HEMOSTAT_BIN_DIR", dir) };
    }
    let docker = docker().await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    if args.probes > 0 {
        let outcome = tokio::select! {
            r = probes::bench(&args, &docker, &run) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        };
        cleanup(&docker, &run).await;
        return match outcome {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let rows = tokio::select! {
        rows = bench(&args, &docker, &run) => Some(rows),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted; cleaning up");
            None
        }
    };
    let Some(rows) = rows else {
        cleanup(&docker, &run).await;
        return std::process::ExitCode::from(130);
    };
    // The figures first: removing a thousand containers takes minutes.
    print_table(&args, &rows);
    cleanup(&docker, &run).await;
    std::process::ExitCode::SUCCESS
}

fn print_table(args: &Args, rows: &[Row]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\n{} idle containers, {} s windows, 1 s resolution, {} cores (CPU %: 100 = one core)",
        args.containers, args.seconds, cores
    );
    println!(
        "| {:<18} | {:>13} | {:>14} | {:>22} | {:>10} | {:>29} |",
        "",
        "watcher CPU %",
        "watcher RSS MB",
        "dockerd+containerd CPU %",
        "shims CPU %",
        "watcher+dockerd+containerd %"
    );
    println!("|{:-<20}|{:->15}|{:->16}|{:->26}|{:->12}|{:->31}|", "", "", "", "", "", "");
    for r in rows {
        let s = &r.sample;
        let (cpu, rss) = match (r.watched, &r.failed) {
            (false, _) => ("-".into(), "-".into()),
            (true, Some(_)) => ("n/a".into(), "n/a".into()),
            (true, None) => (format!("{:.2}", s.watcher), format!("{:.1}", s.rss)),
        };
        println!(
            "| {:<18} | {:>13} | {:>14} | {:>24} | {:>10} | {:>29} |",
            r.what,
            cpu,
            rss,
            format!("{:.2}", s.daemons),
            format!("{:.2}", s.shims),
            format!("{:.2}", s.daemons + if r.watched { s.watcher } else { 0.0 }),
        );
    }
    for why in rows.iter().filter_map(|r| r.failed.as_deref()) {
        println!("n/a: {why}");
    }
    if let Some(path) = &args.compare {
        println!("--compare binary: {}", path.display());
    }
}

/// `--probes`: the cost of label probes.
mod probes {
    use std::time::{Duration, Instant};

    use bollard::Docker;
    use hemostat_collector::{ProbeChecker, Probed};
    use hemostat_e2e::ContainerSpec;
    use hemostat_protocol::probe::Probe;

    use super::{Args, LABEL, clock_ticks, cpu_ticks, rss_mb};

    /// The first listener's port; N consecutive ones follow.
    const FIRST_PORT: usize = 20000;

    pub async fn bench(args: &Args, docker: &Docker, run: &str) -> Result<(), String> {
        let n = args.probes;
        if FIRST_PORT + n > 65535 {
            return Err(format!("--probes: at most {}", 65535 - FIRST_PORT));
        }
        // Each httpd puts itself in the background once it listens.
        let script = format!(
            "mkdir /www; echo ok > /www/healthz; i={FIRST_PORT}; \
             while [ $i -lt {} ]; do httpd -p 127.0.0.1:$i -h /www || exit 1; i=$((i+1)); done; \
             echo listening; exec sleep 100000",
            FIRST_PORT + n
        );
        let c = ContainerSpec::shell(&script).label(LABEL, run).start(docker).await;
        c.wait_for_log("listening", Duration::from_secs(300)).await;
        let pid = c.inspect().await.state.and_then(|s| s.pid).ok_or("the listeners' container has no pid")?;
        let checker = ProbeChecker::new("/proc".into()).map_err(|e| e.to_string())?;
        let interval = Duration::from_secs(args.probe_interval);
        let window = Duration::from_secs(args.seconds);
        let me = std::process::id();
        let rss_before = rss_mb(me);
        let (t0, cpu0) = (Instant::now(), cpu_ticks(me).unwrap_or_default());
        let deadline = tokio::time::Instant::now() + window;
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let checker = checker.clone();
                let labels = std::collections::HashMap::from([(
                    "hemostat.probe".to_owned(),
                    format!("http://:{}/healthz", FIRST_PORT + i),
                )]);
                let probe = Probe::from_labels(&labels).expect("a probe label").expect("a valid probe");
                // Spread over the interval, as containers started at
                // different times are.
                let first = tokio::time::Instant::now() + interval.mul_f64(i as f64 / n as f64);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval_at(first, interval);
                    let (mut took, mut failed) = (Vec::new(), Vec::new());
                    loop {
                        tokio::select! {
                            _ = tick.tick() => {}
                            _ = tokio::time::sleep_until(deadline) => return (took, failed),
                        }
                        let started = Instant::now();
                        let probed = checker.check(pid, &probe).await;
                        took.push(started.elapsed());
                        if !matches!(probed, Probed::Healthy(_)) {
                            failed.push(probed);
                        }
                    }
                })
            })
            .collect();
        let mut rss_peak = rss_before;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss_peak = rss_peak.max(rss_mb(me));
        }
        // At the deadline: the probes under way then are a few milliseconds.
        let (mut took, mut failed) = (Vec::new(), Vec::new());
        for task in tasks {
            let (t, f) = task.await.map_err(|e| e.to_string())?;
            took.extend(t);
            failed.extend(f);
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_ticks(me).unwrap_or_default().saturating_sub(cpu0) as f64 / clock_ticks();
        let build = if cfg!(debug_assertions) { "debug build" } else { "release build" };
        took.sort();
        let pct =
            |q: f64| took.get(((took.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!(
            "label probes: {n} HTTP GETs (busybox httpd on {n} loopback ports of one container's network namespace), \
             one every {} s each, {:.0} s, {cores} cores, {build}",
            interval.as_secs(),
            wall
        );
        println!("| probes/s | CPU, % of one core | CPU per probe | RSS before -> peak | latency p50 / p99 | failed |");
        println!("|---|---|---|---|---|---|");
        println!(
            "| {:.1} | {:.2} | {:.0} us | {:.1} -> {:.1} MiB | {:.2} / {:.2} ms | {} of {} |",
            took.len() as f64 / wall,
            cpu / wall * 100.0,
            if took.is_empty() { 0.0 } else { cpu / took.len() as f64 * 1e6 },
            rss_before,
            rss_peak,
            pct(0.5),
            pct(0.99),
            failed.len(),
            took.len()
        );
        if let Some(first) = failed.first() {
            println!("first failure: {first:?}");
        }
        Ok(())
    }
}
