//! `hemostat-fuzz`: runs each target for a time budget and prints, per
//! target, executions, executions per second and findings; exits 1 on any.
//!
//!   cargo run --release -p hemostat-fuzz -- --seconds 60 [--target NAME]...
//!   cargo run --release -p hemostat-fuzz -- --target envelope --replay FILE

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use hemostat_fuzz::{engine, targets};

#[derive(Parser)]
#[command(
    about = "Fuzzes HemoStat's parsers of untrusted input (seeded mutation, panics and broken invariants caught)"
)]
struct Args {
    /// Seconds per target.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Only these targets (repeatable); all by default.
    #[arg(long = "target")]
    targets: Vec<String>,
    /// The random seed (the same seed and build mutate the same way).
    #[arg(long, default_value_t = 0x4845_4d4f)]
    seed: u64,
    /// Seed inputs, one folder per target.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds"))]
    seeds: PathBuf,
    /// Where the input of each finding is written.
    #[arg(long, default_value = "target/fuzz-findings")]
    findings: PathBuf,
    /// Runs one input (a finding's file) through the target once and prints what it does.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Lists the targets.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for t in targets::ALL {
            println!("{:<18} {}", t.name, t.about);
        }
        return ExitCode::SUCCESS;
    }
    let chosen: Vec<&engine::Target> = if args.targets.is_empty() {
        targets::ALL.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for name in &args.targets {
            match targets::find(name) {
                Some(t) => chosen.push(t),
                None => {
                    eprintln!("unknown target {name:?}; --list shows them");
                    return ExitCode::from(2);
                }
            }
        }
        chosen
    };
    engine::capture_panics();
    if let Some(file) = &args.replay {
        let input = match std::fs::read(file) {
            Ok(input) => input,
            Err(e) => {
                eprintln!("cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        let mut failed = false;
        for t in chosen {
            match engine::execute(t, &input) {
                Ok(path) => println!("{}: ok (path {path:016x})", t.name),
                Err(message) => {
                    failed = true;
                    println!("{}: PANIC {message}", t.name);
                }
            }
        }
        return if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }
    let budget = Duration::from_secs_f64(args.seconds.max(0.0));
    println!(
        "{:<18} {:>11} {:>10} {:>7} {:>6} {:>11} {:>8}",
        "target", "executions", "exec/s", "corpus", "paths", "slowest ms", "findings"
    );
    let mut total = 0;
    for t in chosen {
        let seeds = match engine::seeds(&args.seeds, t.name) {
            Ok(seeds) => seeds,
            Err(e) => {
                eprintln!("{}: cannot read seeds in {}: {e}", t.name, args.seeds.display());
                return ExitCode::from(2);
            }
        };
        let report = engine::fuzz(t, seeds, budget, args.seed, &args.findings);
        println!(
            "{:<18} {:>11} {:>10.0} {:>7} {:>6} {:>11.2} {:>8}",
            report.name,
            report.executions,
            report.per_second(),
            report.corpus,
            report.paths,
            report.slowest.as_secs_f64() * 1000.0,
            report.findings.len()
        );
        for f in &report.findings {
            let saved = f.saved.as_ref().map_or_else(|| "(not saved)".to_owned(), |p| p.display().to_string());
            println!("  FINDING {}\n    input: {saved}", f.message);
        }
        total += report.findings.len();
    }
    if total > 0 {
        println!("{total} finding(s); replay one with --target NAME --replay FILE");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
