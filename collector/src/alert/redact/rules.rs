//! The built-in redaction rules, as data: `rules.toml` (its header says
//! what a rule is), embedded in the binary and compiled once. A rule that
//! does not load is a bug of that file, which a unit test catches, never a
//! weaker redaction at run time.

use std::{collections::HashSet, sync::LazyLock};

use regex::{Captures, Match, Regex};
use serde::Deserialize;

use super::validators::Validator;

/// What a secret is replaced with.
pub const MARK: &str = "[REDACTED]";
/// What a password in a URL is replaced with, as the collector's own
/// logs show Redis URLs.
pub const URL_MARK: &str = "***";

/// The rules file, as built into the binary.
pub(super) const RULES_TOML: &str = include_str!("rules.toml");

/// The built-in rules, in the file's order (runs of plain ones merged, see
/// [`merge_plain`]).
pub(super) static RULES: LazyLock<Vec<Rule>> =
    LazyLock::new(|| merge_plain(load(RULES_TOML).unwrap_or_else(|e| panic!("built-in redaction rules: {e}"))));

/// One compiled rule.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub(super) name: String,
    pub(super) re: Regex,
    /// The groups that may hold the secret, first participating wins;
    /// none (or none participating): the whole match.
    secret: Vec<String>,
    pub(super) mark: &'static str,
    validator: Option<Validator>,
    /// Where the rule applies: inside the matches of this pattern only
    /// (`user_alice="..."` inside a JAAS `LoginModule` entry); None: the
    /// whole line.
    pub(super) within: Option<Regex>,
}

impl Rule {
    /// An operator's pattern: its group `s`, if any, is the secret.
    pub(super) fn operator(index: usize, re: Regex) -> Rule {
        Rule {
            name: format!("operator pattern #{}", index + 1),
            re,
            secret: vec!["s".to_owned()],
            mark: MARK,
            validator: None,
            within: None,
        }
    }

    /// The span to replace in one match of `line`, or None when the
    /// validator rejects it.
    pub(super) fn secret<'t>(&self, caps: &Captures<'t>, line: &str) -> Option<Match<'t>> {
        let span = self.secret.iter().find_map(|g| caps.name(g)).or_else(|| caps.get(0))?;
        self.validator.is_none_or(|v| v.accepts(caps, span, line)).then_some(span)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    part: Vec<PartSpec>,
    rule: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartSpec {
    name: String,
    pattern: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    pattern: String,
    #[serde(default)]
    secret: Groups,
    #[serde(default)]
    mark: MarkSpec,
    #[serde(default)]
    validator: Option<Validator>,
    #[serde(default)]
    within: Option<String>,
}

/// `secret = "s"` or `secret = ["dq", "sq", "bare"]`.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Groups {
    #[default]
    Whole,
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum MarkSpec {
    #[default]
    Redacted,
    Url,
}

/// Each run of consecutive plain rules (the whole match is the secret: no
/// secret group, validator or context; most vendors' token formats) made
/// one rule whose pattern is theirs as alternatives, named by theirs
/// joined with `+`. Every rule is tried on every line, and most match
/// nowhere: one search for many alternatives costs about what one search
/// for one does. What they find is what they would find one by one, as
/// the tokens they match do not overlap. A run whose patterns cannot be
/// joined (a group name used twice) stays as it is.
pub(super) fn merge_plain(rules: Vec<Rule>) -> Vec<Rule> {
    fn flush(run: &mut Vec<Rule>, out: &mut Vec<Rule>) {
        if run.len() < 2 {
            out.append(run);
            return;
        }
        let pattern = run.iter().map(|r| format!("(?:{})", r.re.as_str())).collect::<Vec<_>>().join("|");
        match Regex::new(&pattern) {
            Ok(re) => {
                let name = run.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join("+");
                out.push(Rule { name, re, secret: Vec::new(), mark: run[0].mark, validator: None, within: None });
                run.clear();
            }
            Err(_) => out.append(run),
        }
    }
    let mut out = Vec::with_capacity(rules.len());
    let mut run: Vec<Rule> = Vec::new();
    for rule in rules {
        let plain = rule.secret.is_empty() && rule.validator.is_none() && rule.within.is_none();
        if !plain || run.last().is_some_and(|r| r.mark != rule.mark) {
            flush(&mut run, &mut out);
        }
        if plain {
            run.push(rule);
        } else {
            out.push(rule);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Parses and compiles a rules file; Err names the rule and what is wrong.
pub(super) fn load(text: &str) -> Result<Vec<Rule>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let placeholder = Regex::new(r"<[A-Z][A-Z0-9_]*>").expect("constant pattern compiles");
    let mut parts: Vec<(String, String)> = Vec::new();
    for part in file.part {
        if !placeholder.is_match(&format!("<{}>", part.name)) {
            return Err(format!("part {:?}: a part's name is uppercase words and underscores", part.name));
        }
        if parts.iter().any(|(name, _)| *name == part.name) {
            return Err(format!("part {:?} is defined twice", part.name));
        }
        let pattern = expand(&part.pattern, &parts);
        parts.push((part.name, pattern));
    }
    if file.rule.is_empty() {
        return Err("no rules".into());
    }
    let mut names = HashSet::new();
    file.rule
        .into_iter()
        .map(|spec| {
            let name = spec.name;
            let fail = |why: String| format!("rule {name:?}: {why}");
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                return Err(fail("a rule's name is lowercase words and dashes".into()));
            }
            if !names.insert(name.clone()) {
                return Err(fail("the name is used twice".into()));
            }
            let pattern = expand(&spec.pattern, &parts);
            if let Some(unknown) = placeholder.find(&pattern) {
                return Err(fail(format!("unknown part {}", unknown.as_str())));
            }
            let re = Regex::new(&pattern).map_err(|e| fail(e.to_string()))?;
            let secret = match spec.secret {
                Groups::Whole => Vec::new(),
                Groups::One(g) => vec![g],
                Groups::Many(gs) => gs,
            };
            if let Some(missing) = secret.iter().find(|g| !re.capture_names().flatten().any(|n| n == g.as_str())) {
                return Err(fail(format!("the pattern has no group {missing:?}")));
            }
            let mark = match spec.mark {
                MarkSpec::Redacted => MARK,
                MarkSpec::Url => URL_MARK,
            };
            let within = match spec.within {
                Some(w) => {
                    let w = expand(&w, &parts);
                    if let Some(unknown) = placeholder.find(&w) {
                        return Err(fail(format!("unknown part {} in within", unknown.as_str())));
                    }
                    Some(Regex::new(&w).map_err(|e| fail(format!("within: {e}")))?)
                }
                None => None,
            };
            Ok(Rule { name, re, secret, mark, validator: spec.validator, within })
        })
        .collect()
}

/// `pattern` with each `<NAME>` of `parts` replaced by its pattern.
fn expand(pattern: &str, parts: &[(String, String)]) -> String {
    parts.iter().fold(pattern.to_owned(), |p, (name, part)| p.replace(&format!("<{name}>"), part))
}
