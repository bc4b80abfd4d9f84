//! The failure-signature catalogue, measured: how long parsing and
//! compiling it takes (the analyzer's cold start pays it once), and what
//! matching a line costs: per line on the written incidents' own lines,
//! and per byte on lines from 1 KiB to 1 MiB, which must stay flat (one
//! Aho-Corasick pass and one `RegexSet` pass, whatever the catalogue's size).
//!
//!   cargo run --release -p hemostat-e2e --bin hemostat-bench-signatures
//!
//! No containers, no Redis: the catalogue alone.

use std::time::{Duration, Instant};

use hemostat_e2e::incident_files::{self, Set};

fn main() {
    let started = Instant::now();
    let count = match hemostat_analyzer::load_signatures() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("the catalogue does not load: {e}");
            std::process::exit(1);
        }
    };
    println!("catalogue: {count} signatures, parsed and compiled in {:.1} ms", ms(started.elapsed()));

    // Every line the tuning set's incidents print: real failure output.
    let mut lines: Vec<String> = Vec::new();
    match incident_files::load(Set::Tuning) {
        Ok(files) => {
            for f in files {
                lines.extend(f.log.lines().map(|l| l.strip_prefix('!').unwrap_or(l).to_owned()));
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    let rounds = 200;
    let started = Instant::now();
    let mut matched = 0usize;
    for _ in 0..rounds {
        for l in &lines {
            matched += hemostat_analyzer::matching_signatures(l).map(|m| m.len()).unwrap_or(0);
        }
    }
    let elapsed = started.elapsed();
    let n = lines.len() * rounds;
    println!(
        "incident lines: {} lines x {rounds} rounds, {:.2} µs per line, {:.0} lines/s ({} matches)",
        lines.len(),
        elapsed.as_secs_f64() * 1e6 / n as f64,
        n as f64 / elapsed.as_secs_f64(),
        matched
    );

    // Long lines with a match at their end: the cost per byte must not grow.
    println!("| line length | time per line | ns per byte |");
    println!("|---|---|---|");
    for kib in [1usize, 16, 256, 1024] {
        let line = format!("{}no space left on device", "x".repeat(kib * 1024));
        let reps = (4096 / kib).max(4);
        let started = Instant::now();
        for _ in 0..reps {
            let found = hemostat_analyzer::matching_signatures(&line).unwrap_or_default();
            assert!(found.contains(&"generic.enospc"), "{found:?}");
        }
        let per = started.elapsed() / reps as u32;
        println!("| {kib} KiB | {:.3} ms | {:.2} |", ms(per), per.as_nanos() as f64 / line.len() as f64);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
