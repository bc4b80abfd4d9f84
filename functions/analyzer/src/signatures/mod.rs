//! The failure signatures: what real programs print when they fail, kept as
//! data in `functions/analyzer/signatures/*.yaml` (one file per family of
//! runtimes and servers), embedded in the binary, parsed and compiled once
//! at first use.
//!
//! A signature:
//!
//! ```yaml
//! - id: postgres.bind-in-use          # unique
//!   runtime: postgres                 # see RUNTIMES
//!   literal: could not bind ipv4 address   # or `regex:` (one of the two)
//!   cause: port_in_use                # a hemostat_protocol Cause, not unknown
//!   restart_helps: false
//!   priority: 55                      # optional: see below
//!   recommendation: Another process holds the port ...
//!   samples:                          # at least one real line, and where it comes from
//!     - line: 'LOG:  could not bind IPv4 address "0.0.0.0": Address already in use'
//!       source: postgres/postgres src/backend/libpq/pqcomm.c ListenServerPort()
//! ```
//!
//! A `literal` matches case-insensitively (ASCII) anywhere in a line; a
//! `regex` is Rust's `regex` syntax, case-insensitive too. Matching is linear
//! in the line's length whatever the catalogue's size: every literal is in
//! one Aho-Corasick automaton, every regex in one `RegexSet` (no
//! backtracking), and a line is scanned once by each.
//!
//! Precedence, when a failure's lines match several signatures: the highest
//! rank wins. A signature's rank is its `priority`, or else its cause's
//! default ([`default_priority`]: the runtime's own out-of-memory error, a
//! segfault, a full disk, a port in use, permission denied, a missing file
//! or configuration, an unreachable dependency, then a panic or exception,
//! then an application error: a specific cause outranks a stack trace,
//! which outranks a bare error). Between equal ranks, a runtime's own
//! signature beats a `generic` one, then the first in the catalogue.
//!
//! A catalogue that does not parse or validate (a duplicate id, an unknown
//! cause or runtime, an empty source, a pattern that does not compile, a
//! sample its own pattern does not match) is an error, returned by
//! [`catalogue`]; the analyzer checks it at start and refuses to run.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use hemostat_protocol::diagnosis::Cause;
use regex::{RegexSet, RegexSetBuilder};
use serde::Deserialize;

use crate::error::AnalyzerError;

#[cfg(test)]
mod tests;

/// The embedded catalogue, one file per family.
const FILES: &[(&str, &str)] = &[
    ("generic.yaml", include_str!("../../signatures/generic.yaml")),
    ("jvm.yaml", include_str!("../../signatures/jvm.yaml")),
    ("node.yaml", include_str!("../../signatures/node.yaml")),
    ("python.yaml", include_str!("../../signatures/python.yaml")),
    ("go-rust.yaml", include_str!("../../signatures/go-rust.yaml")),
    ("dotnet-ruby-php.yaml", include_str!("../../signatures/dotnet-ruby-php.yaml")),
    ("web.yaml", include_str!("../../signatures/web.yaml")),
    ("databases.yaml", include_str!("../../signatures/databases.yaml")),
    ("system.yaml", include_str!("../../signatures/system.yaml")),
    ("proxies.yaml", include_str!("../../signatures/proxies.yaml")),
    ("brokers.yaml", include_str!("../../signatures/brokers.yaml")),
    ("apps.yaml", include_str!("../../signatures/apps.yaml")),
];

/// The runtimes and servers a signature may name; `generic` is for words
/// many programs print (the C library's error strings, a bare `panic:`).
pub const RUNTIMES: &[&str] = &[
    "generic",
    "jvm",
    "spring",
    "node",
    "python",
    "go",
    "rust",
    "dotnet",
    "ruby",
    "php",
    "nginx",
    "apache",
    "postgres",
    "mysql",
    "redis",
    "mongodb",
    "kafka",
    "elasticsearch",
    "loader",
    "tls",
    "kernel",
    "docker",
    "shell",
    "traefik",
    "caddy",
    "haproxy",
    "envoy",
    "rabbitmq",
    "nats",
    "grafana",
    "keycloak",
    "gitea",
    "nextcloud",
    "home-assistant",
    "vaultwarden",
];

/// A cause's rank when its signature gives no `priority`.
pub fn default_priority(cause: Cause) -> i32 {
    match cause {
        Cause::OutOfMemoryInApp => 70,
        Cause::OomKilled => 68,
        Cause::Segfault => 65,
        Cause::DiskFull => 60,
        Cause::PortInUse => 50,
        Cause::PermissionDenied => 40,
        Cause::MissingFileOrConfig => 30,
        Cause::DependencyUnreachable => 20,
        Cause::PanicOrException => 10,
        Cause::AppError => 5,
        _ => 0,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    id: String,
    runtime: String,
    #[serde(default)]
    literal: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    cause: String,
    restart_helps: bool,
    recommendation: String,
    #[serde(default)]
    priority: Option<i32>,
    samples: Vec<Sample>,
}

/// A real line the signature stands for, and where it was taken from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub line: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Literal(String),
    Regex(String),
}

/// One signature, validated.
#[derive(Debug, Clone)]
pub struct Signature {
    pub id: String,
    pub runtime: String,
    pub pattern: Pattern,
    pub cause: Cause,
    pub restart_helps: bool,
    pub recommendation: String,
    /// The explicit priority, or the cause's default.
    pub priority: i32,
    pub samples: Vec<Sample>,
}

impl Signature {
    /// Orders signatures by precedence: greater is stronger. `index` is the
    /// signature's place in the catalogue (earlier wins a tie).
    fn rank(&self, index: usize) -> (i32, bool, std::cmp::Reverse<usize>) {
        (self.priority, self.runtime != "generic", std::cmp::Reverse(index))
    }
}

/// The compiled catalogue.
#[derive(Debug)]
pub struct Catalogue {
    signatures: Vec<Signature>,
    literals: AhoCorasick,
    /// The signature of each literal pattern, by pattern id.
    literal_of: Vec<usize>,
    regexes: RegexSet,
    regex_of: Vec<usize>,
}

fn invalid(file: &str, id: &str, reason: impl std::fmt::Display) -> AnalyzerError {
    AnalyzerError::Catalogue(format!("{file}: {id}: {reason}"))
}

impl Catalogue {
    /// Parses, validates and compiles `files` (name, YAML text).
    pub fn parse(files: &[(&str, &str)]) -> Result<Catalogue, AnalyzerError> {
        let mut signatures: Vec<Signature> = Vec::new();
        for (file, text) in files {
            let raw: Vec<RawSignature> =
                serde_yaml_ng::from_str(text).map_err(|e| AnalyzerError::Catalogue(format!("{file}: {e}")))?;
            for r in raw {
                signatures.push(validate(file, r, &signatures)?);
            }
        }
        let mut literals = Vec::new();
        let mut literal_of = Vec::new();
        let mut regexes = Vec::new();
        let mut regex_of = Vec::new();
        for (i, s) in signatures.iter().enumerate() {
            match &s.pattern {
                Pattern::Literal(l) => {
                    literals.push(l.as_str());
                    literal_of.push(i);
                }
                Pattern::Regex(r) => {
                    regexes.push(r.as_str());
                    regex_of.push(i);
                }
            }
        }
        let literals = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&literals)
            .map_err(|e| AnalyzerError::Catalogue(format!("literals: {e}")))?;
        let regexes = RegexSetBuilder::new(&regexes)
            .case_insensitive(true)
            .build()
            .map_err(|e| AnalyzerError::Catalogue(format!("regexes: {e}")))?;
        let catalogue = Catalogue { signatures, literals, literal_of, regexes, regex_of };
        for s in &catalogue.signatures {
            for sample in &s.samples {
                if !catalogue.matching(&sample.line).any(|i| catalogue.signatures[i].id == s.id) {
                    return Err(AnalyzerError::Catalogue(format!(
                        "{}: its pattern does not match its sample {:?}",
                        s.id, sample.line
                    )));
                }
            }
        }
        Ok(catalogue)
    }

    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    pub fn get(&self, index: usize) -> &Signature {
        &self.signatures[index]
    }

    /// The signatures `line` matches (indices, each at most once).
    pub fn matching(&self, line: &str) -> impl Iterator<Item = usize> + '_ {
        let mut found: Vec<usize> =
            self.literals.find_overlapping_iter(line).map(|m| self.literal_of[m.pattern().as_usize()]).collect();
        if !self.regex_of.is_empty() {
            found.extend(self.regexes.matches(line).into_iter().map(|i| self.regex_of[i]));
        }
        found.sort_unstable();
        found.dedup();
        found.into_iter()
    }

    /// The strongest of `candidates` by the catalogue's precedence.
    pub fn strongest(&self, candidates: impl IntoIterator<Item = usize>) -> Option<usize> {
        candidates.into_iter().max_by_key(|i| self.signatures[*i].rank(*i))
    }
}

fn validate(file: &str, r: RawSignature, earlier: &[Signature]) -> Result<Signature, AnalyzerError> {
    let id = r.id.trim();
    if id.is_empty() {
        return Err(invalid(file, "?", "empty id"));
    }
    if earlier.iter().any(|s| s.id == id) {
        return Err(invalid(file, id, "duplicate id"));
    }
    if !RUNTIMES.contains(&r.runtime.as_str()) {
        return Err(invalid(file, id, format!("unknown runtime {:?} (one of {})", r.runtime, RUNTIMES.join(", "))));
    }
    let cause = Cause::parse(&r.cause);
    if cause == Cause::Unknown {
        return Err(invalid(file, id, format!("unknown cause {:?} (a signature must name a known cause)", r.cause)));
    }
    let pattern = match (r.literal, r.regex) {
        (Some(l), None) if !l.trim().is_empty() => {
            let lower = l.to_ascii_lowercase();
            if let Some(s) =
                earlier.iter().find(|s| matches!(&s.pattern, Pattern::Literal(o) if o.to_ascii_lowercase() == lower))
            {
                return Err(invalid(file, id, format!("same literal as {}", s.id)));
            }
            Pattern::Literal(l)
        }
        (None, Some(re)) if !re.trim().is_empty() => {
            regex::RegexBuilder::new(&re).case_insensitive(true).build().map_err(|e| invalid(file, id, e))?;
            Pattern::Regex(re)
        }
        _ => return Err(invalid(file, id, "exactly one non-empty `literal` or `regex`")),
    };
    if r.recommendation.trim().is_empty() {
        return Err(invalid(file, id, "empty recommendation"));
    }
    if r.samples.is_empty() {
        return Err(invalid(file, id, "no sample line"));
    }
    if let Some(s) = r.samples.iter().find(|s| s.line.trim().is_empty() || s.source.trim().is_empty()) {
        return Err(invalid(file, id, format!("a sample without a line or a source: {s:?}")));
    }
    Ok(Signature {
        id: id.to_owned(),
        runtime: r.runtime,
        pattern,
        cause,
        restart_helps: r.restart_helps,
        recommendation: r.recommendation.trim().to_owned(),
        priority: r.priority.unwrap_or_else(|| default_priority(cause)),
        samples: r.samples,
    })
}

/// The embedded catalogue, parsed and compiled at first use; an invalid one
/// is the same error every time.
pub fn catalogue() -> Result<&'static Catalogue, AnalyzerError> {
    static CATALOGUE: OnceLock<Result<Catalogue, String>> = OnceLock::new();
    CATALOGUE
        .get_or_init(|| {
            Catalogue::parse(FILES).map_err(|e| match e {
                AnalyzerError::Catalogue(reason) => reason,
                other => other.to_string(),
            })
        })
        .as_ref()
        .map_err(|e| AnalyzerError::Catalogue(e.clone()))
}
