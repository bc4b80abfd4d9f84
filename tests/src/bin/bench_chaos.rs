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

use hemostat_e2e::{
    bench,
    chaos::{self, ChaosConfig},
};

const USAGE: &str = "hemostat-bench-chaos [--minutes M] [--redis node|cluster] [--crash-every 2s] \
[--kill-every 15s] [--seed N] [--settle 90s]";

fn fail(msg: String) -> ! {
    bench::usage_error(USAGE, &msg)
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
    for (flag, value) in bench::flags(USAGE) {
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
    let name = format!("bench_chaos-{}", if config.cluster { "cluster" } else { "node" });
    let report = bench::on_named_thread(&name, move || async move { chaos::run(&config).await });
    println!("{}", report.render());
    if !report.lost.is_empty() || !report.executed_twice.is_empty() {
        std::process::exit(1);
    }
}
