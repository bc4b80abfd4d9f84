//! Chaos: containers crash at a steady rate on an engine of the run's own
//! while every part of HemoStat is killed with SIGKILL at random and
//! started again, and the engine restarts once (`hemostat_e2e::chaos`).
//! Prints crashes, alerts, healed, lost, executed twice, the longest time
//! a crash waited, kills per part, and what happened to each lost crash.
//!
//!   hemostat-bench-chaos --minutes 10 --redis node|cluster --crash-every 2s --kill-every 15s --seed N
//!
//! Runs as root (it starts a dockerd), with the workspace's binaries built
//! (`cargo build --workspace --bins`); exits 1 when a crash was lost or
//! executed twice.

use std::time::Duration;

use hemostat_e2e::chaos::{self, ChaosConfig};

const USAGE: &str = "hemostat-bench-chaos [--minutes M] [--redis node|cluster] [--crash-every 2s] \
[--kill-every 15s] [--seed N] [--settle 90s]";

fn fail(msg: String) -> ! {
    eprintln!("{msg}\nusage: {USAGE}");
    std::process::exit(2)
}

/// `2s`, `500ms`, `1.5m`, or a bare number of seconds.
fn duration(flag: &str, v: &str) -> Duration {
    let (number, unit) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        _ => fail(format!("{flag}: {v:?}: the unit is ms, s or m")),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .map(|n| Duration::from_secs_f64(n * scale))
        .unwrap_or_else(|| fail(format!("{flag}: {v:?} is not a positive duration")))
}

fn options() -> ChaosConfig {
    let mut config = ChaosConfig {
        duration: Duration::from_secs(600),
        crash_every: Duration::from_secs(2),
        kill_every: Duration::from_secs(15),
        settle: Duration::from_secs(90),
        ..ChaosConfig::short(false, 1)
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("usage: {USAGE}");
            std::process::exit(0);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let value = inline.or_else(|| args.next()).unwrap_or_else(|| fail(format!("{flag} needs a value")));
        match flag.as_str() {
            "--minutes" => config.duration = duration(&flag, &format!("{value}m")),
            "--redis" => {
                config.cluster = match value.as_str() {
                    "node" => false,
                    "cluster" => true,
                    v => fail(format!("--redis: {v:?} is not node or cluster")),
                }
            }
            "--crash-every" => config.crash_every = duration(&flag, &value),
            "--kill-every" => config.kill_every = duration(&flag, &value),
            "--settle" => config.settle = duration(&flag, &value),
            "--seed" => {
                config.seed = value.parse().unwrap_or_else(|_| fail(format!("--seed: {value:?} is not a number")))
            }
            _ => fail(format!("unknown option {flag}")),
        }
    }
    config
}

fn main() {
    let config = options();
    // Children die with the thread that spawned them (PR_SET_PDEATHSIG), and
    // the harness names their logs (target/e2e-logs/) after the thread: one
    // named thread spawns them all, from the future it blocks on.
    let name = format!("bench_chaos-{}", if config.cluster { "cluster" } else { "node" });
    let runner = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(chaos::run(&config))
        })
        .expect("thread");
    match runner.join() {
        Ok(report) => {
            println!("{}", report.render());
            if !report.lost.is_empty() || !report.executed_twice.is_empty() {
                std::process::exit(1);
            }
        }
        Err(_) => std::process::exit(1),
    }
}
