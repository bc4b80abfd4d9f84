//! A storm: N containers on one host crash (exit 1) at the same moment.
//! How long until all run again when HemoStat heals them, beside Docker's
//! own restart policy on the same number of containers in the same run.
//!
//! ```sh
//! cargo build --workspace --bins
//! source /tmp/hemostat-test/env   # after scripts/test-env.sh start
//! target/debug/hemostat-bench-storm [--redis node|cluster] [--containers 200] [--rounds 2]
//!     [--deadline 300] [--bin-dir target/debug] [--emulator-env K=V]... [--collector-env K=V]...
//! ```
//!
//! It starts a private Redis (one node, or six as a cluster) and the whole
//! stack as a user runs it, with the defaults: the emulator with every
//! function of `template.yaml`, the bridge, and a collector on the test
//! engine. Then, `--rounds` times, A then B:
//! - A: N containers without a restart policy, watched by the collector;
//! - B: N containers with `--restart on-failure`, outside the collector's
//!   selector: Docker alone.
//!
//! Runs alternate because the machine is shared and noisy. Each run starts
//! its N containers, waits until every one waits for the trigger, crashes
//! them all at once (`hemostat_e2e::storm`), follows the engine's events
//! until each runs again or `--deadline` passes, removes them. It prints per
//! run: crash spread, exit-to-start p50/p99/max, the time from the trigger
//! until the last one runs again, healed, lost (never started again within
//! the deadline), restarted twice; for A also HemoStat's alerts, commands,
//! outcomes and every refusal with its reason, and where the time went
//! (exit to alert, alert to command, command to start). At the end, the
//! ratio A/B of the all-running times (medians over rounds).
//!
//! `--emulator-env` and `--collector-env` set a variable on the emulator
//! (and so on the functions) or the collector, for a configured run beside
//! the default one; the header prints them.

use std::{path::PathBuf, time::Duration};

use hemostat_e2e::{
    RedisServer, StackEnv,
    bench::{self, percentile},
    bin_dir, current_test_name, docker, log_dir, start_stack_with,
    storm::{Healer, Pipeline, Storm, StormOutcome},
};

const RUN_NAME: &str = "bench_storm";
/// After the last container is back: long enough for a second restart to
/// show (the collector verifies a fix for 3 s by default).
const SETTLE: Duration = Duration::from_secs(5);

struct Options {
    cluster: bool,
    containers: usize,
    rounds: usize,
    deadline: Duration,
    bin_dir: Option<PathBuf>,
    env: StackEnv,
}

const USAGE: &str = "hemostat-bench-storm [--redis node|cluster] [--containers N] [--rounds R] [--deadline SECONDS] \
[--bin-dir DIR] [--emulator-env K=V]... [--collector-env K=V]...";

fn options() -> Options {
    let mut o = Options {
        cluster: false,
        containers: 200,
        rounds: 2,
        deadline: Duration::from_secs(300),
        bin_dir: None,
        env: StackEnv::default(),
    };
    let fail = |msg: String| -> ! { bench::usage_error(USAGE, &msg) };
    for (arg, value) in bench::flags(USAGE) {
        let num =
            |v: &str| -> u64 { v.parse().unwrap_or_else(|_| fail(format!("{arg}: {v:?} is not a whole number"))) };
        let pair = |v: &str| -> (String, String) {
            match v.split_once('=') {
                Some((k, v)) if !k.is_empty() => (k.to_owned(), v.to_owned()),
                _ => fail(format!("{arg}: {v:?} is not KEY=VALUE")),
            }
        };
        match arg.as_str() {
            "--redis" => {
                o.cluster = match value.as_str() {
                    "node" => false,
                    "cluster" => true,
                    v => fail(format!("--redis: {v:?} is not node or cluster")),
                }
            }
            "--containers" => o.containers = num(&value) as usize,
            "--rounds" => o.rounds = num(&value) as usize,
            "--deadline" => o.deadline = Duration::from_secs(num(&value)),
            "--bin-dir" => o.bin_dir = Some(PathBuf::from(value)),
            "--emulator-env" => {
                let (k, v) = pair(&value);
                o.env = o.env.emulator(&k, v);
            }
            "--collector-env" => {
                let (k, v) = pair(&value);
                o.env = o.env.collector(&k, v);
            }
            _ => fail(format!("unknown option {arg}")),
        }
    }
    if o.containers == 0 || o.rounds == 0 {
        fail("need --containers >= 1 and --rounds >= 1".into());
    }
    o
}

fn main() {
    let o = options();
    // SAFETY: single-threaded here; no runtime or thread exists yet.
    unsafe {
        if let Some(dir) = &o.bin_dir {
            let dir = if dir.is_absolute() { dir.clone() } else { std::env::current_dir().expect("cwd").join(dir) };
            std::env::set_var("HEMOSTAT_BIN_DIR", dir);
        }
        // RedisServer::start reads the mode from here.
        std::env::set_var("HEMOSTAT_TEST_REDIS", if o.cluster { "cluster" } else { "node" });
    }
    // Logs and the collector's label selector are named after the thread.
    bench::on_named_thread(RUN_NAME, move || run(o));
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.0} ms"))
}

fn spread(sorted: &[f64]) -> String {
    if sorted.is_empty() {
        return "no samples".into();
    }
    format!(
        "p50 {} p99 {} max {}",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.99)),
        ms(sorted.last().copied())
    )
}

fn print_outcome(label: &str, o: &StormOutcome) {
    println!(
        "{label}: {} containers, {} crashed within {:.0} ms of each other; all running again {} after the crash",
        o.containers,
        o.crashed,
        o.crash_spread_ms,
        ms(o.all_running_ms)
    );
    println!("  exit to start, per container: {}", spread(&o.heal_ms));
    println!(
        "  healed {}, lost {}{}, restarted twice {}, running at the end {} ({} read by inspect: events dropped)",
        o.healed,
        o.lost.len(),
        if o.lost.is_empty() { String::new() } else { format!(" (e.g. {})", o.lost[0]) },
        o.restarted_twice,
        o.running_at_end,
        o.from_inspect
    );
}

fn print_pipeline(p: &Pipeline) {
    println!(
        "  HemoStat: {} alerts ({} containers alerted twice), {} false alarms, {} commands, outcomes {:?}",
        p.alerts, p.alerted_twice, p.false_alarms, p.commands, p.outcomes
    );
    if p.refusals.is_empty() {
        println!("  refused or failed: none");
    }
    for (why, n) in &p.refusals {
        println!("  refused or failed x{n}: {why}");
    }
    println!("  exit to alert:     {}", spread(&p.to_alert_ms));
    println!("  alert to command:  {}", spread(&p.to_command_ms));
    println!("  command to start:  {}", spread(&p.to_start_ms));
}

async fn run(o: Options) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "hemostat-bench-storm: {} containers, redis {}, {} rounds (A: HemoStat, B: Docker's restart policy), \
         deadline {} s, binaries {}, {cores} cores, settings: {}",
        o.containers,
        if o.cluster { "cluster (3 masters + 3 replicas)" } else { "node" },
        o.rounds,
        o.deadline.as_secs(),
        bin_dir().display(),
        if o.env.emulator.is_empty() && o.env.collector.is_empty() {
            "defaults".to_owned()
        } else {
            format!("emulator {:?}, collector {:?}", o.env.emulator, o.env.collector)
        }
    );
    let redis = RedisServer::start().await;
    let docker = docker().await;
    let stack = start_stack_with(&redis.url(), &o.env).await;
    let mut conn = redis.connection().await;
    println!("stack up: collector host {}, logs in {}/{RUN_NAME}-*.log", stack.host, log_dir().display());

    let hemostat_label = current_test_name();
    let docker_label = format!("{hemostat_label}-docker");
    let (mut a_all, mut b_all) = (Vec::new(), Vec::new());
    let (mut lost, mut twice, mut refused) = (0, 0, 0);
    for round in 1..=o.rounds {
        for healer in [Healer::HemoStat, Healer::RestartPolicy] {
            let (name, label) = match healer {
                Healer::HemoStat => ("A HemoStat", &hemostat_label),
                Healer::RestartPolicy => ("B restart policy", &docker_label),
            };
            let storm = Storm::start(&docker, o.containers, healer, label).await;
            let outcome = storm.crash(&docker, o.deadline, SETTLE).await;
            print_outcome(&format!("round {round}, {name}"), &outcome);
            lost += outcome.lost.len();
            twice += outcome.restarted_twice;
            if healer == Healer::HemoStat {
                let names = storm.names();
                // Outcomes come after verification: wait for every one.
                let _ = hemostat_e2e::wait_until(Duration::from_secs(60), || {
                    let (mut conn, names, host) = (conn.clone(), names.clone(), stack.host.clone());
                    async move {
                        let p = Pipeline::read(&mut conn, &host, &names, &StormOutcome::default()).await;
                        p.outcomes.values().sum::<usize>() >= names.len()
                    }
                })
                .await;
                let pipeline = Pipeline::read(&mut conn, &stack.host, &names, &outcome).await;
                refused += pipeline.refusals.values().sum::<usize>();
                print_pipeline(&pipeline);
                a_all.push(outcome.all_running_ms);
            } else {
                b_all.push(outcome.all_running_ms);
            }
            storm.remove().await;
        }
    }
    let median = |v: &[Option<f64>]| -> Option<f64> {
        let mut v: Vec<f64> = v.iter().copied().collect::<Option<_>>()?;
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    let (a, b) = (median(&a_all), median(&b_all));
    println!(
        "all running again, median over {} rounds: A HemoStat {}, B restart policy {}; A/B {} (goal <= 1.2); \
         lost {lost}, restarted twice {twice}, refused or failed {refused}",
        o.rounds,
        ms(a),
        ms(b),
        a.zip(b).map_or_else(|| "n/a (a run lost containers)".into(), |(a, b)| format!("{:.2}", a / b))
    );
    drop(stack);
    drop(redis);
}
