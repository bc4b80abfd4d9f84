//! `hemostat completions <shell>` and `hemostat man`: a completion script
//! that offers every verb `--help` lists (and their own verbs), a man page
//! that renders with its NAME section, neither needing Redis nor showing a
//! secret from the environment, and an unknown shell refused as bad input.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

/// Nothing listens there: a verb that reached for Redis would fail.
const NO_REDIS: &str = "redis://:pw-5ecret@127.0.0.1:1";

fn hemostat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hemostat"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("REDIS_URL", NO_REDIS)
        .env("HEMOSTAT_COMMAND_SIGNING_KEY", "key-5ecret")
        .output()
        .expect("run hemostat")
}

fn stdout(args: &[&str]) -> String {
    let out = hemostat(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hemostat {args:?} exited with {}: {stderr}", out.status);
    assert!(stderr.is_empty(), "hemostat {args:?} wrote to stderr: {stderr}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(!text.contains("5ecret"), "hemostat {args:?} shows a secret");
    text
}

/// The verbs a clap help lists under `Commands:` (without `help`).
fn verbs(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_offers_every_verb_and_their_verbs() {
    let script = stdout(&["completions", "bash"]);
    assert!(script.contains("complete -F"), "not a bash completion script:\n{script}");
    let top = verbs(&stdout(&["--help"]));
    assert!(top.len() >= 10, "hemostat --help lists too few verbs: {top:?}");
    assert!(top.iter().any(|v| v == "completions") && top.iter().any(|v| v == "man"), "{top:?}");
    let mut missing = Vec::new();
    for verb in &top {
        let subs = verbs(&stdout(&[verb, "--help"]));
        for word in std::iter::once(verb).chain(&subs) {
            // bash's script lists the words it offers, space-separated, in its `opts`.
            if !script.split(|c: char| c.is_whitespace() || c == '"').any(|w| w == word) {
                missing.push(format!("{verb}: {word}"));
            }
        }
    }
    assert!(missing.is_empty(), "the bash completion does not offer: {missing:?}");
}

#[test]
fn zsh_and_fish_completions_name_the_command_and_its_verbs() {
    let zsh = stdout(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef hemostat"), "{}", &zsh[..zsh.len().min(200)]);
    let fish = stdout(&["completions", "fish"]);
    assert!(fish.contains("complete -c hemostat"), "{}", &fish[..fish.len().min(200)]);
    for verb in ["status", "explain", "dead-letters", "completions", "man"] {
        assert!(zsh.contains(verb), "zsh: {verb}");
        assert!(fish.contains(verb), "fish: {verb}");
    }
}

#[test]
fn an_unknown_shell_is_bad_input() {
    let out = hemostat(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_man_page_renders_its_name_section() {
    let page = stdout(&["man"]);
    assert!(page.contains(".TH hemostat 1"), "no title line:\n{}", &page[..page.len().min(300)]);
    assert!(page.contains(".SH NAME\nhemostat \\- HemoStat"), "no NAME section:\n{}", &page[..page.len().min(300)]);
    // Rendered as `man` shows it (groff-base, which the test command installs).
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("groff (Debian: groff-base) renders the man page: scripts/test-env.sh install installs it");
    groff.stdin.take().expect("stdin").write_all(page.as_bytes()).expect("write to groff");
    let out = groff.wait_with_output().expect("groff");
    assert!(out.status.success(), "groff failed: {out:?}");
    // -P-c: bold and underline as overstrikes, not terminal escapes; stripped here.
    let plain = strip_overstrike(&String::from_utf8_lossy(&out.stdout));
    // Justified: words may be two spaces apart.
    let name = plain.lines().skip_while(|l| l.trim() != "NAME").nth(1).unwrap_or_default();
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(name.starts_with("hemostat - HemoStat's operator command"), "NAME renders as {name:?}:\n{plain}");
    for section in ["SYNOPSIS", "OPTIONS", "SUBCOMMANDS"] {
        assert!(plain.lines().any(|l| l.trim() == section), "no {section} in the rendered page:\n{plain}");
    }
}

/// `x\bx` (bold) and `_\bx` (underline), as nroff writes them, become `x`.
fn strip_overstrike(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{8}' {
            out.pop();
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}
