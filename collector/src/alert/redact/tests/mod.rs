//! The redactor's tests: the rules file loads, and for each shape of
//! secret, examples hidden and near misses left alone. Every token here is
//! made up (see [`fake`]).
//!
//! This file holds the helpers and the tests of the engine (the rules file,
//! operator patterns, merged runs, hostile input); each family of shapes
//! has its file, examples hidden and near misses left alone.

mod assignments;
mod commands;
mod http;
mod keys;
mod prose;
mod urls;
mod vendors;

use std::sync::LazyLock;

use super::{
    lines::{ANNOUNCE, KEY_BEGIN, KEY_END, PUBLIC_BEGIN},
    rules::{RULES, RULES_TOML, load},
    *,
};

fn redact(text: &str) -> (String, u32) {
    Redactor::default().redact(text)
}

/// `text` redacted, asserting none of `secrets` survives and `count`
/// replacements were made.
fn hides(text: &str, secrets: &[&str], count: u32) -> String {
    let (out, n) = redact(text);
    for s in secrets {
        assert!(!out.contains(s), "{s:?} survived in {out:?} (from {text:?})");
    }
    assert_eq!(n, count, "count for {text:?} -> {out:?}");
    out
}

fn untouched(text: &str) {
    assert_eq!(redact(text), (text.to_owned(), 0), "must not be redacted");
}

#[test]
fn builtin_patterns_compile() {
    assert!(RULES.len() > 50);
    LazyLock::force(&KEY_BEGIN);
    LazyLock::force(&KEY_END);
    LazyLock::force(&PUBLIC_BEGIN);
    LazyLock::force(&ANNOUNCE);
    LazyLock::force(&ANSI);
}

#[test]
fn operator_patterns() {
    let r = Redactor::new(&["acct-[0-9]{6}".into(), r"card=(?P<s>\d{4})".into()]).unwrap();
    assert_eq!(r.redact("user acct-123456 card=4242"), ("user [REDACTED] card=[REDACTED]".into(), 2));
    let err = Redactor::new(&["ok".into(), "(unclosed-hunter2".into()]).unwrap_err().to_string();
    assert!(err.contains("#2"), "{err}");
    assert!(!err.contains("hunter2"), "the pattern is not echoed: {err}");
}

#[test]
fn escapes_and_control_characters_are_removed_first() {
    assert_eq!(hides("\x1b[31mERROR\x1b[0m pass\x1b[1mword=hunter2\r", &["hunter2"], 1), "ERROR password=[REDACTED]");
    assert_eq!(clean("a\x07b\x00c\td\ne\u{9b}f\x1b]0;title\x07g"), "abc\td\nefg");
}

#[test]
fn hostile_input_does_not_break_it() {
    // Long lines, invalid UTF-8 (already lossily decoded), binary.
    let long = format!("{}password=hunter2{}", "a".repeat(100_000), "b".repeat(100_000));
    let (out, n) = redact(&long);
    assert_eq!(n, 1);
    assert!(!out.contains("hunter2"));
    let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let (out, _) = redact(&String::from_utf8_lossy(&binary));
    assert!(!out.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
    assert_eq!(redact(""), (String::new(), 0));
    let many = "token=x ".repeat(10_000);
    assert_eq!(redact(&many).1, 10_000);
}

#[test]
fn the_rules_file_loads_every_rule_compiles_and_names_are_unique() {
    let rules = load(RULES_TOML).expect("rules.toml loads");
    let mut names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), rules.len(), "duplicate rule names");
}

#[test]
fn a_broken_rules_file_is_refused_with_the_rule_named() {
    let rule = |name: &str, body: &str| format!("[[rule]]\nname = \"{name}\"\n{body}\n");
    let ok = rule("one", "pattern = 'a(?P<s>b)'\nsecret = \"s\"");
    assert!(load(&ok).is_ok());
    for (file, why) in [
        (String::new(), "missing field"),
        ("[[rule]]\nname = 'x'\npattern = '(unclosed'\n".to_owned(), "\"x\""),
        (format!("{ok}{ok}"), "used twice"),
        (rule("x", "pattern = 'a<NOPE>'"), "unknown part <NOPE>"),
        (rule("x", "pattern = 'a'\nvalidator = 'looks_nice'"), "unknown variant"),
        (rule("x", "pattern = 'a'\nmark = 'stars'"), "unknown variant"),
        (rule("x", "pattern = 'a'\ncolour = 'red'"), "unknown field"),
        (rule("x", "pattern = 'a(?P<t>b)'\nsecret = 's'"), "no group \"s\""),
        (rule("Not Ok", "pattern = 'a'"), "lowercase"),
        ("[[part]]\nname = 'P'\npattern = 'a'\n[[part]]\nname = 'P'\npattern = 'b'\n".to_owned() + &ok, "twice"),
        ("rule = 3".to_owned(), "invalid type"),
        ("[[rule\n".to_owned(), ""),
    ] {
        let err = load(&file).err().unwrap_or_else(|| panic!("{file:?} loaded"));
        assert!(err.contains(why), "{file:?}: {err}");
    }
    // Parts expand in later parts and in rules.
    let rules = load("[[part]]\nname = 'A'\npattern = 'x'\n[[part]]\nname = 'B'\npattern = '<A>y'\n[[rule]]\nname = 'r'\npattern = '<B>z'\n").unwrap();
    assert_eq!(rules[0].re.as_str(), "xyz");
}

#[test]
fn runs_of_plain_rules_are_merged_and_find_what_they_found_one_by_one() {
    let rule = |name: &str, body: &str| format!("[[rule]]\nname = \"{name}\"\n{body}\n");
    let file = [
        rule("a", "pattern = 'aa_[0-9]+'"),
        rule("b", "pattern = '(?i)bb_[0-9]+'"),
        rule("c", "pattern = 'x=(?P<s>[0-9]+)'\nsecret = 's'"),
        rule("d", "pattern = 'dd_[0-9]+'\nmark = 'url'"),
        rule("e", "pattern = 'ee_[0-9]+'\nmark = 'url'"),
        rule("f", "pattern = 'ff_[0-9]+'\nvalidator = 'token'"),
    ]
    .concat();
    let merged = super::rules::merge_plain(load(&file).unwrap());
    let names: Vec<&str> = merged.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a+b", "c", "d+e", "f"]);
    // The built-in rules, merged, hide exactly what they hide one by one.
    let one_by_one = load(RULES_TOML).unwrap();
    assert!(RULES.len() < one_by_one.len());
    let apply = |rules: &[super::rules::Rule], line: &str| {
        let mut text = clean(line);
        let mut n = 0;
        for rule in rules {
            super::replace(rule, &mut text, &mut n);
        }
        (text, n)
    };
    for line in [
        format!("ghp_{} and xoxb-{} then AKIAZX8QM2LP5RT7WN4K", fake(36), fake(30)),
        format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx{}.{} sk-proj-{}", fake(20), fake(43), fake(40)),
        format!("-----BEGIN PRIVATE KEY----- {} -----END PRIVATE KEY----- glpat-{}", fake(64), fake(20)),
        format!("SG.{}.{} npm_{} hf_{}", fake(22), fake(43), fake(36), fake(34)),
        "nothing to see here: GET /health 200".to_owned(),
    ] {
        assert_eq!(apply(&RULES, &line), apply(&one_by_one, &line), "{line}");
    }
}

/// A made-up token of `n` characters: letters of both cases and digits,
/// never a real credential.
fn fake(n: usize) -> String {
    "Zx8Qm2Lp5Rt7Wn4Kd9Hs3Vb6Gc1Jf0TyA".chars().cycle().take(n).collect()
}

fn hex(n: usize) -> String {
    "3f9a0c7e51b2d864".chars().cycle().take(n).collect()
}

/// `secret`, inside `text`, is hidden (at least one replacement).
fn hidden(text: &str, secret: &str) -> String {
    assert!(text.contains(secret), "bad example: {secret:?} is not in {text:?}");
    let (out, n) = redact(text);
    assert!(!out.contains(secret), "{secret:?} survived in {out:?}");
    assert!(n >= 1, "nothing counted for {text:?}");
    out
}

fn lines_untouched(lines: &[&str]) {
    let r = Redactor::default();
    for line in lines {
        assert_eq!(r.lines().redact(line), ((*line).to_owned(), 0), "must not be redacted");
    }
}

#[test]
fn every_text_the_collector_sends_is_redacted_alike() {
    // Exec and health output are texts of many lines, redacted line by line
    // as a log is: a key printed whole is one secret (one mark in a text,
    // one per line in a log), an env dump's lines are each redacted.
    let text = format!(
        "HOSTNAME=web\nDB_PASSWORD=hunter2 x\nPWD=/app\n-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\nok",
        fake(64)
    );
    let (out, n) = redact(&text);
    assert_eq!(out, "HOSTNAME=web\nDB_PASSWORD=[REDACTED]\nPWD=/app\n[REDACTED]\nok");
    assert_eq!(n, 2);
    // The same lines one by one through a log's redactor.
    let r = Redactor::default();
    let mut lines = r.lines();
    let one_by_one: Vec<String> = text.split('\n').map(|l| lines.redact(l).0).collect();
    assert_eq!(
        one_by_one.join("\n"),
        "HOSTNAME=web\nDB_PASSWORD=[REDACTED]\nPWD=/app\n[REDACTED]\n[REDACTED]\n[REDACTED]\nok"
    );
    // What only the line rules knew: a key body whose BEGIN line was cut
    // off, a password announced on the line before.
    let body = format!("{}\n{}", fake(64), fake(40));
    let (out, _) = redact(&format!("tail of the key:\n{body}\n-----END PRIVATE KEY-----"));
    assert!(!out.contains(&fake(40)), "{out}");
    let (out, n) =
        redact("Please use the following password to proceed to installation:\n\n3f9a0c7e51b2d8643f9a0c7e51b2d864\n");
    assert_eq!((out.as_str(), n), ("Please use the following password to proceed to installation:\n\n[REDACTED]\n", 1));
    // Line ends are kept, \r\n made \n (the \r is a control character).
    assert_eq!(redact("a\r\nb\n\n"), ("a\nb\n\n".to_owned(), 0));
}

#[test]
fn a_rule_may_apply_only_within_a_context() {
    let rules =
        load("[[rule]]\nname = 'r'\nwithin = 'begin[^;]*'\npattern = 'x=(?P<s>[a-z0-9]+)'\nsecret = 's'\n").unwrap();
    let r = &rules[0];
    let mut text = "x=a1 begin x=b2 x=c3; x=d4 begin x=e5".to_owned();
    let mut n = 0;
    super::replace(r, &mut text, &mut n);
    assert_eq!((text.as_str(), n), ("x=a1 begin x=[REDACTED] x=[REDACTED]; x=d4 begin x=[REDACTED]", 3));
    let err = load("[[rule]]\nname = 'r'\nwithin = '(unclosed'\npattern = 'x'\n").unwrap_err();
    assert!(err.contains("within"), "{err}");
    let err = load("[[rule]]\nname = 'r'\nwithin = '<NOPE>'\npattern = 'x'\n").unwrap_err();
    assert!(err.contains("unknown part <NOPE>"), "{err}");
}

fn lower(n: usize) -> String {
    fake(n).to_ascii_lowercase()
}

fn upper(n: usize) -> String {
    fake(n).to_ascii_uppercase()
}
