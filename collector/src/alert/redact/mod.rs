//! Redaction of container output before it leaves the host.
//!
//! Log lines, health-check output, `exec` output and Docker's error strings
//! travel with alerts and remediation reports to Redis, to an LLM, to Slack
//! and the dashboard; a container that prints its database URL or an API
//! key must not publish it there. Every such text goes through
//! [`Redactor::redact`] first: terminal escapes and control characters are
//! removed (so that `pass\x1b[0mword=` cannot hide an assignment), then
//! each secret is replaced by [`MARK`] (a URL's password by `***`), and
//! counted.
//!
//! The built-in rules are data, `rules.toml` in this folder (its header
//! says how to write one): the shapes secrets take in output (`Authorization`
//! and `Cookie` headers, vendors' token formats, private keys, passwords in
//! URLs, command lines and connection strings, `password=` / `"token": ...`
//! style assignments in env, JSON, YAML, XML and object dumps). Operators add
//! their own patterns. The rules prefer redacting too much to too little,
//! but stop short of words that merely mention a secret ("password
//! authentication failed", "tokenizer loaded"): those lines are what a
//! diagnosis is made of.
//!
//! All patterns use the `regex` crate: linear time in the input, so a
//! hostile log line cannot stall an alert.
//!
//! - `rules`: loading the rules file, and a rule.
//! - `validators`: the checks a rule may make of a match beyond its pattern.
//! - `lines`: [`LineRedactor`], the one implementation: a text is redacted
//!   line by line, remembering what a line says about the next (an open
//!   private key block, an announced password).

mod lines;
mod rules;
#[cfg(test)]
mod tests;
mod validators;

use std::sync::{Arc, LazyLock};

use regex::Regex;

use crate::error::CollectorError;
pub use lines::LineRedactor;
pub use rules::{MARK, URL_MARK};
use rules::{RULES, Rule};

/// The built-in rules plus the operator's patterns, compiled once; cheap to
/// clone, so one redactor serves everything the collector sends.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    extra: Arc<[Rule]>,
}

impl Redactor {
    /// Compiles the operator's patterns (Rust `regex` syntax; a named group
    /// `s` limits the replacement to that group; each is matched within
    /// one line, as the built-in rules are). A pattern that does not
    /// compile is a configuration error, not a silently weaker redaction.
    pub fn new(patterns: &[String]) -> Result<Redactor, CollectorError> {
        let extra = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // The pattern is not echoed: it may spell out the secret it hides.
                Regex::new(p).map(|re| Rule::operator(i, re)).map_err(|e| {
                    let why = match e {
                        regex::Error::CompiledTooBig(_) => "it compiles too big",
                        _ => "it is not a valid regular expression",
                    };
                    CollectorError::Config(format!("evidence redaction pattern #{}: {why}", i + 1))
                })
            })
            .collect::<Result<_, _>>()?;
        LazyLock::force(&RULES);
        Ok(Redactor { extra })
    }

    /// `text` as it may leave the host: plain (see [`clean`]), secrets
    /// replaced; and how many were. A text of many lines (health-check or
    /// `exec` output, an error string) is redacted line by line exactly as
    /// a log is, so a private key printed over several lines, or a secret
    /// announced on one line and printed alone on the next, is hidden too.
    pub fn redact(&self, text: &str) -> (String, u32) {
        self.lines().redact(text)
    }

    /// A redactor for one log read line by line: it remembers an open
    /// private key block, so the key's body lines are redacted too.
    pub fn lines(&self) -> LineRedactor<'_> {
        LineRedactor::new(self)
    }

    /// Every rule, the built-in ones in their file's order then the
    /// operator's, on one plain line.
    fn apply(&self, line: &mut String, count: &mut u32) {
        for rule in RULES.iter().chain(self.extra.iter()) {
            replace(rule, line, count);
        }
    }
}

/// Replaces each accepted match of `rule` in `text` (its secret group, or
/// all of it) by its mark, counting; a rule with a `within` pattern only
/// inside that pattern's matches.
fn replace(rule: &Rule, text: &mut String, count: &mut u32) {
    // Most rules match nowhere in a line: that is found out without
    // allocating anything, since every rule is tried on every line.
    let whole = [(0, text.len())];
    let within: Vec<(usize, usize)>;
    let scopes: &[(usize, usize)] = match &rule.within {
        None if !rule.re.is_match(text) => return,
        None => &whole,
        Some(pattern) => {
            within = pattern.find_iter(text).map(|m| (m.start(), m.end())).collect();
            if !within.iter().any(|&(start, end)| rule.re.is_match(&text[start..end])) {
                return;
            }
            &within
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut replaced = 0;
    for &(start, end) in scopes {
        let scope = &text[start..end];
        for caps in rule.re.captures_iter(scope) {
            let Some(span) = rule.secret(&caps, scope) else { continue };
            if span.is_empty() || already_masked(span.as_str()) {
                continue;
            }
            out.push_str(&text[last..start + span.start()]);
            out.push_str(rule.mark);
            last = start + span.end();
            replaced += 1;
        }
    }
    if replaced > 0 {
        // Which rule, never what it hid: for an operator wondering why a
        // line lost a word.
        tracing::trace!(rule = %rule.name, replaced, "redacted");
        out.push_str(&text[last..]);
        *text = out;
        *count += replaced;
    }
}

/// Already hidden, by this redactor or the application (`password=****`);
/// `***@host` is a URL whose password was.
fn already_masked(s: &str) -> bool {
    s.starts_with(MARK) || s.starts_with(URL_MARK) || s.chars().all(|c| c == '*')
}

/// Plain text: terminal escapes removed, `\r` and other control characters
/// removed (tabs and newlines kept), so what the analyzer, Slack and a
/// browser show is what the rules saw.
pub fn clean(text: &str) -> String {
    let text = ANSI.replace_all(text, "");
    text.chars().filter(|&c| c == '\n' || c == '\t' || !c.is_control()).collect()
}

/// Terminal escapes: CSI (colours, cursor), OSC (titles, hyperlinks), and
/// two-byte escapes.
static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
        .expect("constant pattern compiles")
});
