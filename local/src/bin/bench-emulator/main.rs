//! Measures the emulator's overhead per invocation, side by side with `cargo lambda watch`.
//!
//! Runs the no-op function (`noop-function`, whose handler does nothing) behind
//! the emulator (in this process, release build) and behind `cargo lambda watch`
//! (a child process), then sends the same sequential Invoke API requests to both
//! over one keep-alive connection each, alternating in blocks so both see the
//! same machine load. Since the handler is a no-op, the round trip is the overhead.
//!
//! Two floors are measured the same way in the same run (see [`floor`]): a bare
//! Runtime API serving the same function binary (what any emulator costs at
//! least, given the function's own runtime loop), and a hyper echo server (one
//! loopback HTTP round trip). `--baseline-emulator` adds another `hemostat-local`
//! binary (say, a previous build) as one more target, to compare builds under
//! identical load. Also reports each function's init duration (spawn to first
//! `/next`), including the real functions (analyzer, responder) when built.
//!
//! Usually run through `scripts/bench-emulator.sh`, which builds everything in release.

mod floor;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    process::{ExitCode, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use clap::Parser;
use hemostat_local::{Config, Emulator, Token};

use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Emulator overhead benchmark.
#[derive(Debug, Parser)]
#[command(about)]
struct Cli {
    /// Measured invocations per target.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Unmeasured invocations per target first (connection, caches, branch predictors).
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Directory with noop-function (and analyzer/responder, if built) [default: this executable's].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The cargo-lambda binary; the comparison is skipped when absent.
    #[arg(long, env = "CARGO_LAMBDA")]
    cargo_lambda: Option<PathBuf>,
    /// Workspace root, where `cargo lambda watch` builds and runs noop-function.
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
    /// How long `cargo lambda watch` may take to build and answer its first invocation.
    #[arg(long, default_value_t = 600)]
    watch_startup_secs: u64,
    /// Redis for the real functions' init (they connect at startup) [default: a
    /// private redis-server on a free port when one is installed, else redis://127.0.0.1:6379].
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Worker threads of the emulator's runtime; 0 runs it on one thread
    /// (tokio's current-thread scheduler) [default: as the hemostat-local binary].
    #[arg(long)]
    emulator_threads: Option<usize>,
    /// Another hemostat-local binary (e.g. a previous build) to measure as one more target.
    #[arg(long)]
    baseline_emulator: Option<PathBuf>,
}

/// A throwaway redis-server so the real functions can finish their init.
struct Redis {
    /// Held only so that dropping `Redis` kills the server (`kill_on_drop`).
    _child: tokio::process::Child,
    url: String,
}

impl Redis {
    async fn start() -> Option<Redis> {
        let port = free_port().await.ok()?;
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_ok() {
                return Some(Redis { _child: child, url: format!("redis://{addr}") });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

const OURS: &str = "hemostat-local";
const WATCH: &str = "cargo lambda watch";
const BASELINE: &str = "baseline hemostat-local";
const BARE: &str = "floor: bare Runtime API";
const ECHO: &str = "floor: hyper echo";

/// Thread name of the in-process emulator, for `thread_cpu`; a multi-threaded
/// runtime adds workers named [`hemostat_local::RUNTIME_THREAD_NAME`].
const EMULATOR_THREAD: &str = "emulator";

/// CPU time so far of this process's threads with one of these names (Linux's
/// per-thread schedstat; `None` elsewhere). Latency depends on the whole machine;
/// CPU time per invocation is the server's own cost.
fn thread_cpu(names: &[&str]) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !names.contains(&comm.trim_end()) {
            continue;
        }
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        let ns: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
        total += Duration::from_nanos(ns);
    }
    Some(total)
}

/// The emulators' token here (`HEMOSTAT_LAMBDA_TOKEN`); every target is sent
/// it, as a bearer token (those without one ignore the header).
const BENCH_TOKEN: &str = "bench-emulator-token";

/// Another `hemostat-local` binary serving the same template, as a child process.
struct Baseline {
    /// Held so that dropping `Baseline` kills the emulator (and so its instances).
    _child: tokio::process::Child,
    addr: SocketAddr,
}

impl Baseline {
    async fn start(
        binary: &std::path::Path,
        template: &std::path::Path,
        bin_dir: &std::path::Path,
    ) -> Result<Baseline, String> {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(binary)
            .arg("--template")
            .arg(template)
            .arg("--bin-dir")
            .arg(bin_dir)
            .args(["--listen", "127.0.0.1:0", "--functions", "noop-function", "--max-concurrency", "1"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("HEMOSTAT_LAMBDA_TOKEN", BENCH_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    if let Some(addr) = line.strip_prefix("hemostat-local listening on http://") {
                        break addr.parse().map_err(|e| format!("{line}: {e}"))?;
                    }
                }
                _ => return Err(format!("{} exited before listening", binary.display())),
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Baseline { _child: child, addr })
    }
}

/// One target's invocation endpoint and connection.
struct Target {
    label: &'static str,
    path: String,
    sender: SendRequest<Full<Bytes>>,
    host: String,
    samples: Vec<Duration>,
}

impl Target {
    async fn connect(label: &'static str, addr: SocketAddr, function: &str) -> Result<Target, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("{label}: connect {addr}: {e}"))?;
        // Small requests and replies: Nagle would add 40 ms stalls to some of them.
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{label}: handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(Target {
            label,
            path: format!("/2015-03-31/functions/{function}/invocations"),
            sender,
            host: addr.to_string(),
            samples: Vec::new(),
        })
    }

    /// One invocation; returns its round trip.
    async fn invoke(&mut self) -> Result<Duration, String> {
        let request = http::Request::post(&self.path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header("authorization", bearer_header())
            .body(Full::new(Bytes::from_static(b"{}")))
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        self.sender.ready().await.map_err(|e| format!("{}: connection: {e}", self.label))?;
        let response = self.sender.send_request(request).await.map_err(|e| format!("{}: request: {e}", self.label))?;
        let status = response.status();
        let error = response.headers().contains_key("x-amz-function-error");
        let body = response.into_body().collect().await.map_err(|e| format!("{}: body: {e}", self.label))?.to_bytes();
        let elapsed = start.elapsed();
        if status != 200 || error || body.as_ref() != b"{}" {
            return Err(format!("{}: unexpected reply {status}: {}", self.label, String::from_utf8_lossy(&body)));
        }
        Ok(elapsed)
    }
}

fn bearer_header() -> String {
    format!("Bearer {BENCH_TOKEN}")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Summary {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    mean: Duration,
    max: Duration,
}

fn summarize(samples: &[Duration]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let total: Duration = sorted.iter().sum();
    Summary {
        p50: percentile(&sorted, 50.0),
        p90: percentile(&sorted, 90.0),
        p99: percentile(&sorted, 99.0),
        mean: total / sorted.len().max(1) as u32,
        max: sorted.last().copied().unwrap_or_default(),
    }
}

/// The benchmark's template: the no-op function, plus the real functions whose binaries exist.
fn template(bin_dir: &std::path::Path, redis_url: &str) -> (String, Vec<&'static str>) {
    let mut yaml = String::from(
        "Resources:\n  NoopFunction:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: noop-function\n    Properties:\n      FunctionName: noop-function\n      Timeout: 10\n",
    );
    let mut functions = vec!["noop-function"];
    for (id, name, binary) in [
        ("AnalyzerFunction", "hemostat-analyzer", "analyzer"),
        ("ResponderFunction", "hemostat-responder", "responder"),
    ] {
        if bin_dir.join(binary).is_file() {
            yaml.push_str(&format!(
                "  {id}:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: {binary}\n    Properties:\n      FunctionName: {name}\n      Timeout: 10\n      Environment:\n        Variables:\n          REDIS_URL: \"{redis_url}\"\n"
            ));
            functions.push(name);
        }
    }
    (yaml, functions)
}

/// `cargo lambda watch` serving noop-function, in its own process group so
/// the `cargo run` child it starts goes down with it.
struct Watch {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl Watch {
    async fn start(cli: &Cli, cargo_lambda: &PathBuf) -> Result<Watch, String> {
        let port = free_port().await?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = tokio::process::Command::new(cargo_lambda);
        command
            .args(["lambda", "watch", "--ignore-changes", "--release", "--quiet"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
            .args(["-p", "hemostat-local", "--bin", "noop-function"])
            .current_dir(&cli.workspace)
            // The function's own logging would otherwise be measured too.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", cargo_lambda.display()))?;
        // Keep its stderr for the report if it dies, without blocking it on a full pipe.
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("  [cargo lambda watch] {line}");
                }
            });
        }
        Ok(Watch { child, addr })
    }

    /// Waits until an invocation succeeds: watch compiles the function on the first one.
    async fn ready(&mut self, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last_error = String::new();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("cargo lambda watch exited ({status}); last error: {last_error}"));
            }
            match Target::connect("cargo lambda watch", self.addr, "noop-function").await {
                Ok(mut target) => match tokio::time::timeout(limit, target.invoke()).await {
                    Ok(Ok(_)) => return Ok(start.elapsed()),
                    Ok(Err(e)) => last_error = e,
                    Err(_) => last_error = "first invocation timed out".into(),
                },
                Err(e) => last_error = e,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("not ready after {limit:?}: {last_error}"))
    }

    fn stop(mut self) {
        #[cfg(target_os = "linux")]
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on the process group we created; no memory involved.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGTERM);
            }
        }
        let _ = self.child.start_kill();
    }
}

/// The emulator on a runtime of its own, in its own thread, as in the
/// `hemostat-local` binary: the benchmark's client must not share its scheduler.
struct EmulatorThread {
    addr: SocketAddr,
    functions: Vec<std::sync::Arc<hemostat_local::Function>>,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl EmulatorThread {
    fn start(config: Config, threads: Option<usize>) -> Result<EmulatorThread, String> {
        let runtime = hemostat_local::runtime(threads).map_err(|e| e.to_string())?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Named so that its CPU time can be told apart (see `thread_cpu`).
        let thread = std::thread::Builder::new()
            .name(EMULATOR_THREAD.into())
            .spawn(move || {
                runtime.block_on(async move {
                    let emulator = match Emulator::start(config).await {
                        Ok(emulator) => emulator,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return Ok(());
                        }
                    };
                    let _ = ready_tx.send(Ok((emulator.local_addr(), emulator.functions())));
                    emulator
                        .serve(async move {
                            let _ = stopped.await;
                        })
                        .await
                        .map_err(|e| e.to_string())
                })
            })
            .map_err(|e| e.to_string())?;
        let (addr, functions) = ready_rx.recv().map_err(|_| "the emulator thread died".to_owned())??;
        Ok(EmulatorThread { addr, functions, stop, thread })
    }

    fn stop(self) -> Result<(), String> {
        let _ = self.stop.send(());
        self.thread.join().map_err(|_| "the emulator thread panicked".to_owned())?
    }
}

async fn free_port() -> Result<u16, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

async fn run(cli: Cli) -> Result<(), String> {
    let bin_dir = match &cli.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .map(PathBuf::from)
            .ok_or("the executable has no directory")?,
    };
    let dir = std::env::temp_dir().join(format!("hemostat-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

    // Start watch first: it compiles (or at least checks) noop-function, which
    // must not overlap with the emulator's measurements.
    let mut watch = match &cli.cargo_lambda {
        Some(path) if path.is_file() => {
            println!("starting cargo lambda watch ({})", path.display());
            let mut watch = Watch::start(&cli, path).await?;
            match watch.ready(Duration::from_secs(cli.watch_startup_secs)).await {
                Ok(took) => {
                    println!("cargo lambda watch ready after {:.1} s (build + first invocation)", took.as_secs_f64());
                    Some(watch)
                }
                Err(e) => {
                    println!("cargo lambda watch could not serve: {e}");
                    watch.stop();
                    None
                }
            }
        }
        Some(path) => {
            println!("no cargo-lambda at {}: comparison skipped (run scripts/python-tools.sh)", path.display());
            None
        }
        None => {
            println!("no --cargo-lambda given: comparison skipped");
            None
        }
    };

    let redis = match &cli.redis_url {
        Some(_) => None,
        None => Redis::start().await,
    };
    let redis_url = cli
        .redis_url
        .clone()
        .or_else(|| redis.as_ref().map(|r| r.url.clone()))
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    // Only variables the template declares reach a function, so the URL goes in there.
    let (yaml, functions) = template(&bin_dir, &redis_url);
    let template_path = dir.join("template.yaml");
    std::fs::write(&template_path, yaml).map_err(|e| e.to_string())?;

    let mut config = Config::new(&template_path, &bin_dir);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.max_concurrency = 1;
    config.token = Token::new(BENCH_TOKEN);
    config.host_env = HashMap::from([
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
        ("REDIS_URL".to_owned(), redis_url),
    ]);
    let server = EmulatorThread::start(config, cli.emulator_threads)?;
    let addr = server.addr;
    let watched = server.functions.clone();

    // Cold starts: every function started one instance at startup; wait for each first /next.
    println!("\ncold starts (process spawn -> first /next, i.e. Lambda's Init Duration):");
    let deadline = Instant::now() + Duration::from_secs(10);
    for function in &watched {
        let cold = loop {
            if let Some(first) = function.cold_starts().first() {
                break Some(*first);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        match cold {
            Some(d) => println!("  {:<22} {:>8.2} ms", function.name(), ms(d)),
            None => println!("  {:<22}  no first /next within 10 s (init failed? see log above)", function.name()),
        }
    }
    let missing: Vec<&str> =
        ["hemostat-analyzer", "hemostat-responder"].into_iter().filter(|f| !functions.contains(f)).collect();
    if !missing.is_empty() {
        println!("  (not built in {}: {})", bin_dir.display(), missing.join(", "));
    }

    // The floors and the baseline start now, after the cold starts were taken,
    // so their functions' inits do not overlap with those measurements.
    let bare = floor::BareRuntimeApi::start(&bin_dir.join("noop-function"), "noop-function")?;
    let echo = floor::Echo::start()?;
    let baseline = match &cli.baseline_emulator {
        Some(binary) => Some(Baseline::start(binary, &template_path, &bin_dir).await?),
        None => None,
    };

    let mut targets = vec![Target::connect(OURS, addr, "noop-function").await?];
    if let Some(watch) = &watch {
        targets.push(Target::connect(WATCH, watch.addr, "noop-function").await?);
    }
    if let Some(baseline) = &baseline {
        targets.push(Target::connect(BASELINE, baseline.addr, "noop-function").await?);
    }
    targets.push(Target::connect(BARE, bare.addr, "noop-function").await?);
    targets.push(Target::connect(ECHO, echo.addr, "noop-function").await?);
    let cpu_threads: [(&str, &[&str]); 3] = [
        (OURS, &[EMULATOR_THREAD, hemostat_local::RUNTIME_THREAD_NAME]),
        (BARE, &[floor::BARE_THREAD]),
        (ECHO, &[floor::ECHO_THREAD]),
    ];
    let cpu_before: Vec<Option<Duration>> = cpu_threads.iter().map(|(_, names)| thread_cpu(names)).collect();
    for target in &mut targets {
        // The bare Runtime API's function may still be initialising: its first
        // invocation waits in the queue, as it would behind any emulator.
        for _ in 0..cli.warmup {
            target.invoke().await?;
        }
    }
    // Alternate in blocks so all targets share whatever else the machine is doing.
    const BLOCK: usize = 100;
    let mut done = 0;
    while done < cli.requests {
        let n = BLOCK.min(cli.requests - done);
        for target in &mut targets {
            for _ in 0..n {
                let d = target.invoke().await?;
                target.samples.push(d);
            }
        }
        done += n;
    }
    let invocations = (cli.warmup + cli.requests) as u32;
    let cpu_per_invocation: HashMap<&str, Duration> = cpu_threads
        .iter()
        .zip(cpu_before)
        .filter_map(|((label, names), before)| Some((*label, thread_cpu(names)?.checked_sub(before?)? / invocations)))
        .collect();

    println!(
        "\nsequential Invoke API round trips of the no-op function ({} measured after {} warm-up, release builds, one keep-alive connection each, targets alternating in blocks of {BLOCK}):",
        cli.requests, cli.warmup
    );
    println!(
        "  {:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "target", "p50 ms", "p90 ms", "p99 ms", "mean ms", "max ms", "server CPU"
    );
    let summaries: HashMap<&str, Summary> = targets.iter().map(|t| (t.label, summarize(&t.samples))).collect();
    for target in &targets {
        let s = &summaries[target.label];
        // Only for the servers in this process; the others' CPU is not ours to read.
        let cpu = cpu_per_invocation
            .get(target.label)
            .map_or_else(String::new, |d| format!("{:.1} us/inv", d.as_secs_f64() * 1e6));
        println!(
            "  {:<24} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>12}",
            target.label,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.mean),
            ms(s.max),
            cpu
        );
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE);
    let ours = &summaries[OURS];
    let bare = &summaries[BARE];
    let mut ok = ours.p50 <= Duration::from_millis(1);
    println!("\n  goal p50 <= 1 ms: {} ({:.3} ms)", if ok { "met" } else { "NOT met" }, ms(ours.p50));
    if let Some(theirs) = summaries.get(WATCH) {
        let r = ratio(ours.p50, theirs.p50);
        let half = r <= 0.5;
        ok &= half;
        println!(
            "  ratio p50 hemostat-local / cargo lambda watch: {r:.3} (p90 {:.3}, p99 {:.3}); goal <= 0.5: {}",
            ratio(ours.p90, theirs.p90),
            ratio(ours.p99, theirs.p99),
            if half { "met" } else { "NOT met" }
        );
        println!(
            "  ratio p50 bare Runtime API / cargo lambda watch: {:.3} (the lowest any emulator reaches with this function, client and machine)",
            ratio(bare.p50, theirs.p50)
        );
    }
    println!(
        "  hemostat-local above the bare Runtime API: p50 {:+.1} us, p99 {:+.1} us",
        (ms(ours.p50) - ms(bare.p50)) * 1000.0,
        (ms(ours.p99) - ms(bare.p99)) * 1000.0
    );
    if let Some(theirs) = summaries.get(BASELINE) {
        println!(
            "  ratio p50 hemostat-local / baseline: {:.3} (p99 {:.3})",
            ratio(ours.p50, theirs.p50),
            ratio(ours.p99, theirs.p99)
        );
    }

    drop(targets);
    if let Some(watch) = watch.take() {
        watch.stop();
    }
    drop(baseline);
    server.stop()?;
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    if ok { Ok(()) } else { Err("performance goal not met".into()) }
}

// The client needs one thread; the emulator has its own runtime (EmulatorThread).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Warnings only: per-invocation INFO lines would be part of what is measured.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}
