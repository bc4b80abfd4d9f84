//! Measures the emulator's overhead per invocation, side by side with `cargo lambda watch`.
//!
//! Runs the no-op function (`noop-function`, whose handler does nothing) behind
//! the emulator (in this process, release build) and behind `cargo lambda watch`
//! (a child process), then sends the same sequential Invoke API requests to both
//! over one keep-alive connection each, alternating in blocks so both see the
//! same machine load. Since the handler is a no-op, the round trip is the overhead.
//! Also reports each function's init duration (spawn to first `/next`), including
//! the real functions (analyzer, responder) when their binaries are built.
//!
//! Usually run through `scripts/bench-emulator.sh`, which builds everything in release.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    process::{ExitCode, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use clap::Parser;
use hemostat_local::{Config, Emulator};

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
    /// (tokio's current-thread scheduler) [default: one per core, like hemostat-local].
    #[arg(long)]
    emulator_threads: Option<usize>,
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
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{label}: connect {addr}: {e}"))?;
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
            .body(Full::new(Bytes::from_static(b"{}")))
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        self.sender
            .ready()
            .await
            .map_err(|e| format!("{}: connection: {e}", self.label))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("{}: request: {e}", self.label))?;
        let status = response.status();
        let error = response.headers().contains_key("x-amz-function-error");
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{}: body: {e}", self.label))?
            .to_bytes();
        let elapsed = start.elapsed();
        if status != 200 || error || body.as_ref() != b"{}" {
            return Err(format!(
                "{}: unexpected reply {status}: {}",
                self.label,
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(elapsed)
    }
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
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", cargo_lambda.display()))?;
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
    functions: Vec<std::sync::Arc<hemostat_local::function::Function>>,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl EmulatorThread {
    fn start(config: Config, threads: Option<usize>) -> Result<EmulatorThread, String> {
        let mut builder = match threads {
            Some(0) => tokio::runtime::Builder::new_current_thread(),
            Some(n) => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(n);
                b
            }
            None => tokio::runtime::Builder::new_multi_thread(),
        };
        let runtime = builder.enable_all().build().map_err(|e| e.to_string())?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
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
        });
        let (addr, functions) = ready_rx
            .recv()
            .map_err(|_| "the emulator thread died".to_owned())??;
        Ok(EmulatorThread { addr, functions, stop, thread })
    }

    fn stop(self) -> Result<(), String> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| "the emulator thread panicked".to_owned())?
    }
}

async fn free_port() -> Result<u16, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
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
    let missing: Vec<&str> = ["hemostat-analyzer", "hemostat-responder"]
        .into_iter()
        .filter(|f| !functions.contains(f))
        .collect();
    if !missing.is_empty() {
        println!("  (not built in {}: {})", bin_dir.display(), missing.join(", "));
    }

    let mut targets = vec![Target::connect("hemostat-local", addr, "noop-function").await?];
    if let Some(watch) = &watch {
        targets.push(Target::connect("cargo lambda watch", watch.addr, "noop-function").await?);
    }
    for target in &mut targets {
        for _ in 0..cli.warmup {
            target.invoke().await?;
        }
    }
    // Alternate in blocks so both targets share whatever else the machine is doing.
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

    println!(
        "\nsequential Invoke API round trips of the no-op function ({} measured after {} warm-up, release builds, one keep-alive connection):",
        cli.requests, cli.warmup
    );
    println!(
        "  {:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "target", "p50 ms", "p90 ms", "p99 ms", "mean ms", "max ms"
    );
    let summaries: Vec<Summary> = targets.iter().map(|t| summarize(&t.samples)).collect();
    for (target, s) in targets.iter().zip(&summaries) {
        println!(
            "  {:<20} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            target.label,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.mean),
            ms(s.max)
        );
    }
    let ours = &summaries[0];
    let mut ok = ours.p50 <= Duration::from_millis(1);
    println!(
        "\n  goal p50 <= 1 ms: {} ({:.3} ms)",
        if ok { "met" } else { "NOT met" },
        ms(ours.p50)
    );
    if let Some(theirs) = summaries.get(1) {
        let ratio = ours.p50.as_secs_f64() / theirs.p50.as_secs_f64().max(f64::MIN_POSITIVE);
        let half = ratio <= 0.5;
        ok &= half;
        println!(
            "  ratio p50 hemostat-local / cargo lambda watch: {ratio:.3} (p90 {:.3}, p99 {:.3}); goal <= 0.5: {}",
            ours.p90.as_secs_f64() / theirs.p90.as_secs_f64().max(f64::MIN_POSITIVE),
            ours.p99.as_secs_f64() / theirs.p99.as_secs_f64().max(f64::MIN_POSITIVE),
            if half { "met" } else { "NOT met" }
        );
    }

    drop(targets);
    if let Some(watch) = watch.take() {
        watch.stop();
    }
    server.stop()?;
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    if ok {
        Ok(())
    } else {
        Err("performance goal not met".into())
    }
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
