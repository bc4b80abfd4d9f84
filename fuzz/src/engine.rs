//! The fuzzing loop: seeded mutation on stable Rust, no instrumentation.
//!
//! Each run starts with the target's seeds (valid inputs, so mutants get
//! past the first parse), runs every one unmutated, then mutates inputs of
//! the corpus (bit flips, bytes, the target's dictionary of words, splices
//! of two inputs, numbers replaced by extreme ones) until the time is up. A
//! target returns a small number naming the path an input took (which
//! error, which branch): an input that takes a new one joins the corpus, a
//! coarse stand-in for the coverage feedback of instrumented fuzzers.
//!
//! A panic, an invariant's `assert!` included, is a finding: caught with
//! `catch_unwind`, its message kept by a panic hook, its input written to
//! the findings folder (one per panic location), and fuzzing goes on.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// One parser of untrusted input and the invariants its results keep.
pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    /// Words of the input's grammar, which the mutator inserts.
    pub dictionary: &'static [&'static str],
    /// Runs one input; panics on a broken invariant. Returns the path the
    /// input took (see [`path`]).
    pub run: fn(&[u8]) -> u64,
}

/// A path number from a few words (an error's kind, a branch's name).
pub fn path(words: &[&str]) -> u64 {
    words
        .iter()
        .flat_map(|w| w.bytes().chain([0]))
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The start of an error message: its kind without its data, for [`path`].
pub fn kind(message: &str) -> &str {
    message.split(|c: char| matches!(c, ':' | '(' | '"' | '\'' | '{') || c.is_ascii_digit()).next().unwrap_or_default()
}

/// splitmix64: small, fast, and the same sequence for the same seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// Inputs longer than this are cut: every parser here bounds its input far below.
pub const MAX_INPUT: usize = 64 * 1024;

const INTERESTING_BYTES: &[u8] =
    b"\x00\x01\x7f\x80\xff\"\\{}[]:,=;/%.-+ \t\r\n'<>&?#@*0123456789eE\xc3\xa9\xe2\x80\xae\xf0\x9f";

const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1e308",
    "-1e308",
    "1e-400",
    "NaN",
    "inf",
    "0.5",
    "255",
    "65536",
    "2147483648",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999999999999999",
    "0000000000000000000000001",
];

/// One mutant of `input`: one to four edits, some drawing on `corpus` or
/// `dictionary`.
pub fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>], dictionary: &[&str]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        edit(rng, &mut out, corpus, dictionary);
    }
    out.truncate(MAX_INPUT);
    out
}

fn edit(rng: &mut Rng, out: &mut Vec<u8>, corpus: &[Vec<u8>], dictionary: &[&str]) {
    let at = |rng: &mut Rng, out: &Vec<u8>| rng.below(out.len() + 1);
    match rng.below(13) {
        0 if !out.is_empty() => {
            let i = rng.below(out.len());
            out[i] ^= 1 << rng.below(8);
        }
        1 if !out.is_empty() => {
            let i = rng.below(out.len());
            out[i] = rng.next_u64() as u8;
        }
        2 if !out.is_empty() => {
            let i = rng.below(out.len());
            out[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
        }
        3 if !out.is_empty() => {
            let start = rng.below(out.len());
            let end = (start + 1 + rng.below(16)).min(out.len());
            out.drain(start..end);
        }
        4 => {
            let i = at(rng, out);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            out.splice(i..i, bytes);
        }
        5 | 6 if !dictionary.is_empty() => {
            let word = dictionary[rng.below(dictionary.len())].as_bytes();
            let i = at(rng, out);
            if rng.chance(50) || i == out.len() {
                out.splice(i..i, word.iter().copied());
            } else {
                let end = (i + word.len()).min(out.len());
                out.splice(i..end, word.iter().copied());
            }
        }
        7 if !out.is_empty() => {
            let start = rng.below(out.len());
            let end = (start + 1 + rng.below(64)).min(out.len());
            let chunk = out[start..end].to_vec();
            let i = at(rng, out);
            for _ in 0..=rng.below(3) {
                out.splice(i..i, chunk.iter().copied());
            }
        }
        8 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            let cut = at(rng, out);
            let from = rng.below(other.len() + 1);
            out.truncate(cut);
            out.extend_from_slice(&other[from..]);
        }
        9 => {
            // A run of digits replaced by an extreme number.
            let digits: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_ascii_digit()).collect();
            let number = INTERESTING_NUMBERS[rng.below(INTERESTING_NUMBERS.len())].as_bytes();
            if digits.is_empty() {
                let i = at(rng, out);
                out.splice(i..i, number.iter().copied());
            } else {
                let start = digits[rng.below(digits.len())];
                let end = (start..out.len()).find(|&i| !out[i].is_ascii_digit()).unwrap_or(out.len());
                out.splice(start..end, number.iter().copied());
            }
        }
        10 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            if !other.is_empty() {
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(64)).min(other.len());
                let i = at(rng, out);
                out.splice(i..i, other[start..end].iter().copied());
            }
        }
        11 if !out.is_empty() => {
            let keep = rng.below(out.len());
            out.truncate(keep);
        }
        _ => {
            let i = at(rng, out);
            let n = 1 + rng.below(64);
            let byte = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            out.splice(i..i, std::iter::repeat_n(byte, n));
        }
    }
}

/// A panic of one input.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Where it panicked, and what it said.
    pub message: String,
    /// The input, where it was written.
    pub saved: Option<PathBuf>,
}

/// One target's run.
#[derive(Debug)]
pub struct Report {
    pub name: &'static str,
    pub executions: u64,
    pub elapsed: Duration,
    /// Inputs kept (seeds and mutants that took a new path).
    pub corpus: usize,
    /// Distinct paths seen.
    pub paths: usize,
    /// The slowest single execution.
    pub slowest: Duration,
    /// Distinct panics, by location.
    pub findings: Vec<Finding>,
    /// Executions that panicked, counting repeats of one finding.
    pub panics: u64,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

thread_local! {
    /// The last panic of this thread (the hook runs on the panicking thread).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the panic hook by one that records the message instead of
/// printing it (fuzzing panics by the thousand). Call once.
pub fn capture_panics() {
    panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{location}: {payload}")));
    }));
}

/// Runs `input` once: the path, or the panic's message.
pub fn execute(target: &Target, input: &[u8]) -> Result<u64, String> {
    LAST_PANIC.with(|last| last.borrow_mut().take());
    panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)))
        .map_err(|_| LAST_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_else(|| "panic".to_owned()))
}

/// Fuzzes `target` for `budget`, starting from `seeds`; the first input of
/// each distinct panic is written to `findings_dir`.
pub fn fuzz(target: &Target, seeds: Vec<Vec<u8>>, budget: Duration, seed: u64, findings_dir: &Path) -> Report {
    const MAX_CORPUS: usize = 2000;
    let mut rng = Rng::new(seed ^ path(&[target.name]));
    let mut corpus: Vec<Vec<u8>> = if seeds.is_empty() { vec![Vec::new()] } else { seeds };
    let mut paths = HashSet::new();
    let mut findings: HashMap<String, Finding> = HashMap::new();
    let (mut executions, mut panics, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let start = Instant::now();
    let mut pending: Vec<Vec<u8>> = corpus.clone();
    pending.reverse();
    while start.elapsed() < budget || !pending.is_empty() {
        // The seeds first, as they are; then mutants, and now and then noise.
        let input = match pending.pop() {
            Some(seed) => seed,
            None if rng.chance(2) => (0..rng.below(256)).map(|_| rng.next_u64() as u8).collect(),
            None => {
                let base = &corpus[rng.below(corpus.len())];
                mutate(&mut rng, base, &corpus, target.dictionary)
            }
        };
        let began = Instant::now();
        let result = execute(target, &input);
        slowest = slowest.max(began.elapsed());
        executions += 1;
        match result {
            Ok(p) => {
                if paths.insert(p) && corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                }
            }
            Err(message) => {
                panics += 1;
                let key = message.split(": ").next().unwrap_or_default().to_owned();
                findings
                    .entry(key)
                    .or_insert_with(|| Finding { saved: save(findings_dir, target.name, &input, &message), message });
            }
        }
    }
    let mut findings: Vec<Finding> = findings.into_values().collect();
    findings.sort_by(|a, b| a.message.cmp(&b.message));
    Report {
        name: target.name,
        executions,
        elapsed: start.elapsed(),
        corpus: corpus.len(),
        paths: paths.len(),
        slowest,
        findings,
        panics,
    }
}

fn save(dir: &Path, name: &str, input: &[u8], message: &str) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let file = dir.join(format!("{name}-{:016x}.input", path(&[&String::from_utf8_lossy(input)])));
    std::fs::write(&file, input).ok()?;
    std::fs::write(file.with_extension("txt"), format!("{message}\n")).ok()?;
    Some(file)
}

/// The seed inputs of `name`: every file in `dir/name/`, by name.
pub fn seeds(dir: &Path, name: &str) -> std::io::Result<Vec<Vec<u8>>> {
    let folder = dir.join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.sort();
    files.iter().filter(|f| f.is_file()).map(std::fs::read).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics_on_xyz(input: &[u8]) -> u64 {
        assert!(!input.windows(3).any(|w| w == b"xyz"), "found xyz");
        input.len() as u64 % 4
    }

    const TARGET: Target = Target { name: "test", about: "", dictionary: &["xyz"], run: panics_on_xyz };

    #[test]
    fn mutation_is_deterministic_per_seed() {
        let corpus = vec![b"hello world".to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50).map(|_| mutate(&mut rng, &corpus[0], &corpus, &["tok"])).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().any(|m| m != &corpus[0]));
    }

    #[test]
    fn panics_are_caught_counted_and_saved_once_per_location() {
        capture_panics();
        let dir = std::env::temp_dir().join(format!("hemostat-fuzz-test-{}", std::process::id()));
        let report = fuzz(&TARGET, vec![b"abc".to_vec()], Duration::from_millis(300), 1, &dir);
        let _ = panic::take_hook();
        assert!(report.executions > 100, "{report:?}");
        assert!(report.panics >= 1, "the dictionary word must be found: {report:?}");
        assert_eq!(report.findings.len(), 1, "one location: {report:?}");
        let finding = &report.findings[0];
        assert!(finding.message.contains("found xyz"), "{}", finding.message);
        let saved = std::fs::read(finding.saved.as_ref().unwrap()).unwrap();
        assert!(saved.windows(3).any(|w| w == b"xyz"));
        assert!(report.paths >= 2 && report.corpus >= 2, "{report:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
