//! The redactor measured on corpora of container output
//! (`tests/corpus/redaction/`, whose READMEs say how they were written):
//! how many of the listed secrets survive redaction, as a log line and as
//! text (health-check and exec output), and how many benign lines are
//! altered.
//!
//! - `tuning/`, `tuning-2/` and `tuning-3/`: sets that were each written apart from the
//!   rules as an evaluation set, measured once as written, and since read
//!   and used to improve the rules: their figures say nothing about secrets
//!   the rules were not written for. The bounds below hold the rules to them.
//! - `evaluation/`: the slot for a set written apart from the rules and not
//!   read by whoever changes them. While it is absent the test says "no
//!   evaluation set" and measures the rest. Its bounds are set once, after
//!   its first measurement (the test prints them and fails until they are),
//!   and only keep the redactor from getting worse; the rules are never
//!   changed to fit it (read one of its lines and it becomes a tuning set).
//!
//! The test prints counts per `kind`, totals and throughput, never a line.
//!
//! ```text
//! cargo test -p hemostat-collector --test redaction_corpus -- --nocapture
//! cargo test -p hemostat-collector --release --test redaction_corpus -- --nocapture   # timing
//! ```

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use hemostat_collector::redact::{Redactor, clean};
use serde::Deserialize;

/// What a set must achieve: its size (secret-bearing lines, secret
/// substrings, benign lines, as its README gives them) and the most secrets
/// it may leak and benign lines the rules may alter, as log lines and as
/// text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bounds {
    size: (usize, usize, usize),
    max_leaked: usize,
    max_leaked_as_text: usize,
    max_altered: usize,
    max_altered_as_text: usize,
}

/// The first tuning set, the first evaluation set written: measured once (the
/// rules as committed before) at 13 secrets leaked as log lines, 17 as
/// text, 5 benign lines altered. Tuned since: nothing leaks, by either path,
/// and no benign line is altered; the altered bound leaves room for two, so
/// that a rule that hides a whole format may cost an edge case such as
/// `MYSQL_RANDOM_ROOT_PASSWORD=yes`.
const TUNING: Bounds =
    Bounds { size: (273, 340, 289), max_leaked: 0, max_leaked_as_text: 0, max_altered: 2, max_altered_as_text: 2 };

/// The second tuning set, the second evaluation set written (from vendors'
/// and programs' documented formats, apart from the rules): measured once,
/// on commit 1f00264 (2026-12-06), at 18 of 609 secrets leaked, as log
/// lines and as text alike, and 15 of 389 benign lines altered; retired
/// into tuning when a fresh evaluation set was written. Tuned since:
/// nothing leaks and no benign line is altered; the altered bound leaves
/// the same room for two edge cases as the first set's.
const TUNING_2: Bounds =
    Bounds { size: (455, 609, 389), max_leaked: 0, max_leaked_as_text: 0, max_altered: 2, max_altered_as_text: 2 };

/// The third tuning set, the third evaluation set written (from vendors'
/// documentation and programs' output formats, apart from the rules, and
/// fed as a container's output arrives, see [`TUNING_3_AS_STREAM`]):
/// measured once, on 2026-12-06 after the rules were tuned on both other
/// sets, at 142 of 1,624 secrets leaked as a log stream (189 as text) and
/// 45 of 580 benign lines altered (70 as text); retired into tuning when a
/// fresh evaluation set was written. Tuned since to 60 leaked (61 as text),
/// then by family to 7 (8 as text), and 16 altered; as text, 94 altered: a
/// json-file record's `log` is judged decoded, so a certificate's body line
/// wrapped in one, alone, looks like a key's (in a stream it is kept; not
/// hiding a lone base64 line as text would leak some 170 key body lines
/// judged alone as text). The bounds are what the rules reach now.
const TUNING_3: Bounds =
    Bounds { size: (1369, 1624, 580), max_leaked: 7, max_leaked_as_text: 8, max_altered: 16, max_altered_as_text: 94 };

/// The evaluation set (`tests/corpus/redaction/evaluation/`), the fourth
/// written apart from the rules (by someone who had read neither them nor
/// the other corpora: vendors' documentation and programs' output formats;
/// 1,748 secret-bearing lines with 1,903 secrets, 922 context lines, 582
/// benign lines, fed as a stream). Measured once, on 2026-12-06 after the
/// rules were tuned on the three tuning sets: 52 of 1,903 secrets leaked
/// (2.7 %) as a log stream, 54 as text; 39 of 582 benign lines altered
/// (6.7 %) as log lines, 114 as text. These bounds only keep the redactor
/// from getting worse; they are never tightened by changing the rules to
/// fit its lines (that would make it a tuning set, and a new evaluation
/// set would be needed).
const EVALUATION: Option<Bounds> = Some(Bounds {
    size: (1748, 1903, 582),
    max_leaked: 52,
    max_leaked_as_text: 54,
    max_altered: 39,
    max_altered_as_text: 114,
});

/// Whether the sets written as streams (the third tuning set, and the
/// evaluation set, written the same way) are fed to one log redactor per
/// file, in file order, as a container's output arrives (multi-line blocks
/// such as a private key printed line by line are consecutive), rather
/// than line by line apart; their block lines that carry nothing
/// themselves (`"secrets": []`, a PEM header) are fed but not scored.
const TUNING_3_AS_STREAM: bool = true;

/// One corpus and what it must achieve.
struct Set {
    name: &'static str,
    /// May be absent: then the test says so and goes on.
    optional: bool,
    /// Fed as one stream per file (see [`TUNING_3_AS_STREAM`]).
    stream: bool,
    /// None: not measured before, so no bounds yet.
    bounds: Option<Bounds>,
}

const SETS: [Set; 4] = [
    Set { name: "tuning", optional: false, stream: false, bounds: Some(TUNING) },
    Set { name: "tuning-2", optional: false, stream: false, bounds: Some(TUNING_2) },
    Set { name: "tuning-3", optional: false, stream: TUNING_3_AS_STREAM, bounds: Some(TUNING_3) },
    Set { name: "evaluation", optional: true, stream: TUNING_3_AS_STREAM, bounds: EVALUATION },
];

#[derive(Deserialize)]
struct SecretLine {
    line: String,
    secrets: Vec<String>,
    kind: String,
}

#[derive(Deserialize)]
struct BenignLine {
    line: String,
    kind: String,
}

fn folder(set: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/redaction").join(set)
}

/// The JSON lines of one file; an error names the file and line number
/// only, never the line.
fn parse<T: for<'de> Deserialize<'de>>(dir: &Path, file: &str) -> Vec<T> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("{} line {}: not a corpus line (column {})", path.display(), i + 1, e.column())
            })
        })
        .collect()
}

/// One log line as the collector redacts a container's logs.
fn as_line(r: &Redactor, line: &str) -> String {
    r.lines().redact(line).0
}

/// The same line as health-check or exec output.
fn as_text(r: &Redactor, line: &str) -> String {
    r.redact(line).0
}

#[derive(Default, Clone, Copy)]
struct Tally {
    lines: usize,
    items: usize,
    /// Leaked (secrets) or altered (benign), as a log line.
    bad: usize,
    /// The same, as text.
    bad_as_text: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, t: Tally) {
        self.lines += t.lines;
        self.items += t.items;
        self.bad += t.bad;
        self.bad_as_text += t.bad_as_text;
    }
}

#[derive(Default)]
struct Measurement {
    secrets: BTreeMap<String, Tally>,
    benign: BTreeMap<String, Tally>,
    /// Benign lines changed only by the removal of terminal escapes.
    cleaned_only: usize,
    /// Lines redacted in the timing loop, and how long it took.
    timed_lines: usize,
    elapsed: Duration,
}

fn total(map: &BTreeMap<String, Tally>) -> Tally {
    map.values().fold(Tally::default(), |mut t, k| {
        t += *k;
        t
    })
}

fn measure(dir: &Path, stream: bool) -> Measurement {
    let secrets: Vec<SecretLine> = parse(dir, "secrets.jsonl");
    let benign: Vec<BenignLine> = parse(dir, "benign.jsonl");
    let r = Redactor::default();
    let mut m = Measurement::default();
    let mut log = r.lines();
    for s in &secrets {
        let line = if stream { log.redact(&s.line).0 } else { as_line(&r, &s.line) };
        let text = as_text(&r, &s.line);
        if s.secrets.is_empty() {
            // A block's line that carries nothing itself: fed, not scored.
            continue;
        }
        let leaked = |out: &str| s.secrets.iter().filter(|secret| out.contains(secret.as_str())).count();
        *m.secrets.entry(s.kind.clone()).or_default() +=
            Tally { lines: 1, items: s.secrets.len(), bad: leaked(&line), bad_as_text: leaked(&text) };
    }
    let mut log = r.lines();
    for b in &benign {
        let plain = clean(&b.line);
        let altered = if stream { log.redact(&b.line).0 } else { as_line(&r, &b.line) } != plain;
        let altered_as_text = as_text(&r, &b.line) != plain;
        *m.benign.entry(b.kind.clone()).or_default() +=
            Tally { lines: 1, items: 1, bad: usize::from(altered), bad_as_text: usize::from(altered_as_text) };
        m.cleaned_only += usize::from(!altered && plain != b.line);
    }
    // Throughput: every line of both files, redacted as a log line, for at
    // least half a second.
    let lines: Vec<&str> =
        secrets.iter().map(|s| s.line.as_str()).chain(benign.iter().map(|b| b.line.as_str())).collect();
    let started = Instant::now();
    while m.timed_lines == 0 || started.elapsed() < Duration::from_millis(500) {
        for line in &lines {
            std::hint::black_box(as_line(&r, line));
        }
        m.timed_lines += lines.len();
        if lines.is_empty() {
            break;
        }
    }
    m.elapsed = started.elapsed();
    m
}

/// The report: kinds and counts only.
fn report(set: &str, m: &Measurement) -> String {
    let mut out = format!("== {set} set ==\n");
    let s = total(&m.secrets);
    let b = total(&m.benign);
    out.push_str(&format!(
        "secrets leaked: {} of {} ({} lines) as log lines; {} of {} as text (health, exec output)\n",
        s.bad, s.items, s.lines, s.bad_as_text, s.items
    ));
    out.push_str(&format!(
        "benign lines altered: {} of {} as log lines; {} as text (and {} changed only by removing terminal escapes)\n",
        b.bad, b.lines, b.bad_as_text, m.cleaned_only
    ));
    out.push_str(&format!("\n{set}/secrets.jsonl by kind: leaked as lines, as text / secrets (lines)\n"));
    for (kind, t) in &m.secrets {
        out.push_str(&format!(
            "  {kind:<26} {:>3} {:>3} / {:<3} ({}){}\n",
            t.bad,
            t.bad_as_text,
            t.items,
            t.lines,
            flag(t.bad + t.bad_as_text)
        ));
    }
    out.push_str(&format!("\n{set}/benign.jsonl by kind: altered as lines, as text / lines\n"));
    for (kind, t) in &m.benign {
        out.push_str(&format!(
            "  {kind:<26} {:>3} {:>3} / {:<3}{}\n",
            t.bad,
            t.bad_as_text,
            t.lines,
            flag(t.bad + t.bad_as_text)
        ));
    }
    let secs = m.elapsed.as_secs_f64();
    out.push_str(&format!(
        "\nthroughput: {} lines in {:.1} ms: {:.0} lines/s, {:.1} µs a line ({} build)\n",
        m.timed_lines,
        secs * 1e3,
        m.timed_lines as f64 / secs.max(f64::MIN_POSITIVE),
        secs * 1e6 / m.timed_lines.max(1) as f64,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    ));
    out
}

fn flag(bad: usize) -> &'static str {
    if bad > 0 { "  <" } else { "" }
}

/// What `set` fails to achieve, if anything.
fn failures(set: &Set, m: &Measurement) -> Vec<String> {
    let s = total(&m.secrets);
    let b = total(&m.benign);
    let measured = Bounds {
        size: (s.lines, s.items, b.lines),
        max_leaked: s.bad,
        max_leaked_as_text: s.bad_as_text,
        max_altered: b.bad,
        max_altered_as_text: b.bad_as_text,
    };
    let Some(bounds) = set.bounds else {
        return vec![format!(
            "{}: measured for the first time, and has no bounds yet: set them in {} to\n    Some({measured:?})",
            set.name,
            file!()
        )];
    };
    let mut failed = Vec::new();
    if measured.size != bounds.size {
        failed.push(format!("{}: the corpus changed: {:?}, expected {:?}", set.name, measured.size, bounds.size));
    }
    for (what, got, max) in [
        ("secrets leaked as log lines", s.bad, bounds.max_leaked),
        ("secrets leaked as text", s.bad_as_text, bounds.max_leaked_as_text),
        ("benign lines altered as log lines", b.bad, bounds.max_altered),
        ("benign lines altered as text", b.bad_as_text, bounds.max_altered_as_text),
    ] {
        if got > max {
            failed.push(format!("{}: {got} {what} (at most {max})", set.name));
        }
    }
    failed
}

#[test]
fn the_redactor_on_the_tuning_and_evaluation_sets() {
    let mut failed = Vec::new();
    for set in &SETS {
        let dir = folder(set.name);
        if !dir.is_dir() {
            assert!(set.optional, "{} is missing", dir.display());
            println!("== {} set ==\nno {} set: {} does not exist\n", set.name, set.name, dir.display());
            continue;
        }
        let m = measure(&dir, set.stream);
        println!("{}", report(set.name, &m));
        failed.extend(failures(set, &m));
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
