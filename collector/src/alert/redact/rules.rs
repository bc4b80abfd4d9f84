//! The built-in redaction rules: the shapes secrets take in logs, each a
//! pattern (linear-time `regex`) with the mark that replaces it and, where
//! the pattern alone cannot judge, a last look at the match.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a secret is replaced with.
pub const MARK: &str = "[REDACTED]";
/// What a password in a URL is replaced with, as the collector's own
/// logs show Redis URLs.
pub const URL_MARK: &str = "***";

/// Assignment keys: the last word of a key (`DB_PASSWORD`, `x-api-key`,
/// `client_secret`), never a prefix of a longer word (`tokenizer`).
const KEYS: &str =
    "password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|account[_-]?key|credentials?";
/// An optional prefix of the key (`db_`, `x-`, `my`) and the key.
const KEY: &str = r"\b(?:[a-z0-9]*[_.-])*[a-z0-9]*(?:<KEYS>)";

/// One built-in rule. A match's named group `s`, when present, is the
/// secret (the rest of the match is kept as context, e.g. the key of an
/// assignment); otherwise the whole match is.
pub(super) struct Rule {
    pub(super) re: Regex,
    pub(super) mark: &'static str,
    /// A last look at a match the pattern alone cannot judge.
    pub(super) accept: fn(&Captures<'_>) -> bool,
}

fn rule(pattern: &str, mark: &'static str, accept: fn(&Captures<'_>) -> bool) -> Rule {
    // Placeholders for the parts several patterns share.
    let pattern = pattern
        .replace("<KEY>", KEY)
        .replace("<KEYS>", KEYS)
        .replace("<AUTH>", r"\b(?:proxy-)?authorization")
        .replace("<SCHEMES>", "bearer|basic|digest|token|negotiate|ntlm|aws4-hmac-sha256");
    // The patterns are constants of this file: a unit test compiles them
    // all, so this cannot fail at run time.
    let re = Regex::new(&pattern).expect("built-in redaction pattern compiles");
    Rule { re, mark, accept }
}

pub(super) fn always(_: &Captures<'_>) -> bool {
    true
}

/// The secret of `caps`: group `s`, or the whole match.
fn secret<'t>(caps: &Captures<'t>) -> &'t str {
    caps.name("s").or_else(|| caps.get(0)).map_or("", |m| m.as_str())
}

/// Looks like a credential rather than a word: long enough, and with a
/// digit, a symbol, or inner capitals. "Bearer authentication" is a phrase;
/// "Bearer abc123..." is a token.
fn looks_like_token(s: &str) -> bool {
    let inner_upper = s.chars().skip(1).any(|c| c.is_ascii_uppercase()) && s.chars().any(|c| c.is_ascii_lowercase());
    s.len() >= 24 || (s.len() >= 8 && (s.chars().any(|c| !c.is_ascii_alphabetic()) || inner_upper))
}

/// An `Authorization` value with an explicit scheme is a credential,
/// whatever it looks like; without one ("authorization: denied") it must
/// look like a token.
fn authorization(caps: &Captures<'_>) -> bool {
    caps.name("scheme").is_some() || looks_like_token(secret(caps))
}

fn token(caps: &Captures<'_>) -> bool {
    looks_like_token(secret(caps))
}

/// The built-in rules, in order: multi-line and contextual shapes first, so
/// that `Authorization: Bearer eyJ...` counts as one secret, not two.
pub(super) static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        // PEM private keys (RSA, EC, OPENSSH, ENCRYPTED, PGP ... BLOCK), to
        // their end or, when cut off, to the end of the text.
        rule(
            r"(?s)-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            MARK,
            always,
        ),
        // scheme://user:PASS@host (the password may hold '@': up to the last one).
        rule(r#"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/?#@"'<>]*:(?P<s>[^\s/?#"'<>]+)@"#, URL_MARK, always),
        // Authorization / Proxy-Authorization headers: a quoted value (JSON,
        // a dict) to its quote, else to the end of the line (Digest values
        // hold quotes and commas).
        rule(r#"(?i)<AUTH>["']?\s*[:=]\s*["'](?:(?P<scheme><SCHEMES>)\s+)?(?P<s>[^"'\r\n]+)"#, MARK, authorization),
        rule(r#"(?i)<AUTH>["']?\s*[:=]\s*(?:(?P<scheme><SCHEMES>)\s+)?(?P<s>[^\s"'][^\r\n]*)"#, MARK, authorization),
        // Cookie / Set-Cookie header values: session ids.
        rule(r#"(?i)\b(?:set-)?cookie["']?\s*:\s*["']?(?P<s>[^\s"'][^"'\r\n]*)"#, MARK, always),
        // AWS secret keys: aws_secret_access_key=..., "SecretAccessKey": "...".
        rule(r#"(?i)\b(?:aws_?)?secret_?access_?key["']?\s*[:=]\s*["']?(?P<s>[A-Za-z0-9/+=]{16,})"#, MARK, always),
        // Assignments with a quoted value (spaces allowed): "password": "a b".
        rule(r#"(?i)<KEY>["']?\s*[:=]\s*"(?P<s>(?:[^"\\\r\n]|\\.)+)""#, MARK, always),
        rule(r#"(?i)<KEY>["']?\s*[:=]\s*'(?P<s>(?:[^'\\\r\n]|\\.)+)'"#, MARK, always),
        // Assignments with a bare value: password=x, SECRET: x, ?token=x&.
        rule(r#"(?i)<KEY>["']?\s*[:=]\s*(?P<s>[^\s"'&,;}]+)"#, MARK, always),
        // Command-line flags: --password hunter2.
        rule(
            r#"(?i)(?:^|\s)--(?:password|passwd|token|secret|api-key|apikey|auth-token)\s+(?P<s>[^\s"'-][^\s"']*)"#,
            MARK,
            always,
        ),
        // AWS access key ids (long-term AKIA, temporary ASIA, ...).
        rule(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}\b", MARK, always),
        // OpenAI (sk-..., sk-proj-...) and Anthropic (sk-ant-...) keys.
        rule(r"\bsk-[A-Za-z0-9_-]{20,}", MARK, always),
        // Stripe secret and restricted keys.
        rule(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}", MARK, always),
        // GitHub tokens: classic (ghp_, OAuth gho_, ...) and fine-grained.
        rule(r"\bgh[pousr]_[A-Za-z0-9]{36,}", MARK, always),
        rule(r"\bgithub_pat_[A-Za-z0-9_]{22,}", MARK, always),
        // GitLab personal access tokens.
        rule(r"\bglpat-[A-Za-z0-9_-]{20,}", MARK, always),
        // Slack tokens and incoming-webhook URLs.
        rule(r"\bxox[abprse]-[A-Za-z0-9-]{10,}", MARK, always),
        rule(r"hooks\.slack\.com/services/(?P<s>[A-Za-z0-9/_-]+)", MARK, always),
        // Google API keys.
        rule(r"\bAIza[0-9A-Za-z_-]{35}", MARK, always),
        // JWTs: base64url JSON header (always `eyJ`), payload, signature
        // (empty for `alg: none`).
        rule(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", MARK, always),
        // A bearer token outside an Authorization header.
        rule(r"(?i)\bbearer\s+(?P<s>[A-Za-z0-9._~+/=-]{8,})", MARK, token),
    ]
});

/// The start and end of a PEM private key block, for logs read line by line.
pub(super) static KEY_BEGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----").expect("constant pattern compiles")
});
pub(super) static KEY_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----").expect("constant pattern compiles"));
/// A line that is nothing but base64 (PEM wraps key bodies at 64
/// characters): the body of a key block whose first line the log's tail
/// cut off.
pub(super) static BASE64_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9+/]{40,}={0,2}$").expect("constant pattern compiles"));
/// Terminal escapes: CSI (colours, cursor), OSC (titles, hyperlinks), and
/// two-byte escapes.
pub(super) static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
        .expect("constant pattern compiles")
});
