//! Redaction of container output before it leaves the host.
//!
//! Log lines and health-check output travel with alerts to Redis, to an
//! LLM, to Slack and the dashboard; a container that prints its database
//! URL or an API key at start-up must not publish it there. Every text the
//! evidence carries goes through [`Redactor::redact`] first: terminal
//! escapes and control characters are removed (so that `pass\x1b[0mword=`
//! cannot hide an assignment), then each secret is replaced by
//! [`MARK`] (a URL's password by `***`), and counted.
//!
//! The built-in rules cover the shapes secrets take in logs: `Authorization`
//! and `Cookie` header values, bearer tokens, well-known key formats (AWS,
//! OpenAI / Anthropic, Stripe, GitHub, GitLab, Slack, Google), JWTs, PEM
//! private key blocks, `scheme://user:PASS@host`, and `password=` /
//! `secret: ` / `"token": "..."` style assignments. Operators add their own
//! patterns. The rules prefer redacting too much to too little, but stop
//! short of words that merely mention a secret ("password reset succeeded",
//! "tokenizer loaded"): those lines are what a diagnosis is made of.
//!
//! All patterns use the `regex` crate: linear time in the input, so a
//! hostile log line cannot stall an alert.

mod rules;

use std::sync::LazyLock;

use regex::{Captures, Regex};

use crate::error::CollectorError;
use rules::{ANSI, BASE64_LINE, KEY_BEGIN, KEY_END, RULES, always};
pub use rules::{MARK, URL_MARK};

/// The built-in rules plus the operator's patterns, compiled once.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    extra: Vec<Regex>,
}

impl Redactor {
    /// Compiles the operator's patterns (Rust `regex` syntax; a named group
    /// `s` limits the replacement to that group). A pattern that does not
    /// compile is a configuration error, not a silently weaker redaction.
    pub fn new(patterns: &[String]) -> Result<Redactor, CollectorError> {
        let extra = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // The pattern is not echoed: it may spell out the secret it hides.
                Regex::new(p).map_err(|e| {
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
    /// replaced; and how many were.
    pub fn redact(&self, text: &str) -> (String, u32) {
        let mut text = clean(text);
        let mut count = 0;
        for rule in RULES.iter() {
            replace(&rule.re, rule.mark, rule.accept, &mut text, &mut count);
        }
        for re in &self.extra {
            replace(re, MARK, always, &mut text, &mut count);
        }
        (text, count)
    }

    /// A redactor for one log read line by line: it remembers an open
    /// private key block, so the key's body lines are redacted too.
    pub fn lines(&self) -> LineRedactor<'_> {
        LineRedactor { redactor: self, in_key: false }
    }
}

/// See [`Redactor::lines`].
pub struct LineRedactor<'a> {
    redactor: &'a Redactor,
    in_key: bool,
}

impl LineRedactor<'_> {
    /// One line, redacted (a block counts once, at its first line; a lone
    /// line of base64, as a key's body, counts as one).
    pub fn redact(&mut self, line: &str) -> (String, u32) {
        if self.in_key {
            let Some(end) = KEY_END.find(line) else {
                return (MARK.to_owned(), 0);
            };
            self.in_key = false;
            let (rest, count) = self.redact(&line[end.end()..]);
            return (format!("{MARK}{rest}"), count);
        }
        let trimmed = line.trim();
        if BASE64_LINE.is_match(trimmed) && trimmed.bytes().any(|b| b.is_ascii_digit()) {
            return (MARK.to_owned(), 1);
        }
        let last_begin = KEY_BEGIN.find_iter(line).last().map(|m| m.start());
        let last_end = KEY_END.find_iter(line).last().map(|m| m.start());
        if let Some(begin) = last_begin {
            self.in_key = last_end.is_none_or(|end| end < begin);
        }
        self.redactor.redact(line)
    }
}

/// Replaces each accepted match of `re` in `text` (its group `s`, or all of
/// it) by `mark`, counting.
fn replace(re: &Regex, mark: &str, accept: fn(&Captures<'_>) -> bool, text: &mut String, count: &mut u32) {
    if !re.is_match(text) {
        return;
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut replaced = 0;
    for caps in re.captures_iter(text) {
        let Some(span) = caps.name("s").or_else(|| caps.get(0)) else { continue };
        if span.is_empty() || already_masked(span.as_str()) || !accept(&caps) {
            continue;
        }
        out.push_str(&text[last..span.start()]);
        out.push_str(mark);
        last = span.end();
        replaced += 1;
    }
    if replaced > 0 {
        out.push_str(&text[last..]);
        *text = out;
        *count += replaced;
    }
}

/// Already hidden, by this redactor or the application (`password=****`).
fn already_masked(s: &str) -> bool {
    s == MARK || s.starts_with(MARK) || s.chars().all(|c| c == '*')
}

/// Plain text: terminal escapes removed, `\r` and other control characters
/// removed (tabs and newlines kept), so what the analyzer, Slack and a
/// browser show is what the rules saw.
pub fn clean(text: &str) -> String {
    let text = ANSI.replace_all(text, "");
    text.chars().filter(|&c| c == '\n' || c == '\t' || !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(RULES.len() > 10);
        LazyLock::force(&KEY_BEGIN);
        LazyLock::force(&KEY_END);
        LazyLock::force(&ANSI);
    }

    #[test]
    fn authorization_headers_and_bearer_tokens() {
        assert_eq!(
            hides("GET / Authorization: Bearer abc123.def456-ghi", &["abc123"], 1),
            "GET / Authorization: Bearer [REDACTED]"
        );
        hides("authorization=Basic dXNlcjpwYXNzd29yZA==", &["dXNlcjpw"], 1);
        assert_eq!(
            hides(r#"{"headers": {"Authorization": "Bearer eyJhbGciOi.eyJzdWIiOiIx.sig"}, "x": 1}"#, &["eyJ"], 1),
            r#"{"headers": {"Authorization": "Bearer [REDACTED]"}, "x": 1}"#
        );
        hides("Proxy-Authorization: Digest username=\"bob\", nonce=\"abc\"", &["bob", "nonce"], 1);
        hides("calling api with bearer 9f8e7d6c5b4a3f2e1d0c", &["9f8e7d6c5b4a3f2e1d0c"], 1);
        hides("Cookie: session=4f3a9b2c; theme=dark", &["4f3a9b2c"], 1);
        hides("set-cookie: sid=s%3Aabcdef123456; Path=/; HttpOnly", &["abcdef123456"], 1);
    }

    #[test]
    fn key_formats() {
        hides("using key AKIAIOSFODNN7EXAMPLE for s3", &["AKIAIOSFODNN7EXAMPLE"], 1);
        hides("temp creds ASIAXXXXXXXXXXXXXXXX", &["ASIAXXXXXXXXXXXXXXXX"], 1);
        hides(
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            &["wJalrXUtnFEMI", "bPxRfiCYEXAMPLEKEY"],
            1,
        );
        hides(r#"{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#, &["wJalrXUtnFEMI"], 1);
        hides("openai key sk-proj-AbCdEf0123456789AbCdEf0123", &["AbCdEf0123456789"], 1);
        hides("ANTHROPIC sk-ant-api03-AbCdEf0123456789_xyz-AbCdEf", &["api03-AbCdEf", "xyz"], 1);
        hides("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", &["4eC39HqLyjWDarjtT1zdp7dc"], 1);
        hides("push with ghp_abcdefghijklmnopqrstuvwxyz0123456789AB", &["ghp_abc"], 1);
        hides("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", &["11ABCDEFG"], 1);
        hides("glpat-abcdefghij0123456789", &["abcdefghij0123456789"], 1);
        hides("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKl", &["xoxb-1234", "AbCdEfGhIjKl"], 1);
        hides("xoxp-1234567890-abc", &["xoxp-1234567890"], 1);
        hides("posting to https://hooks.slack.com/services/T000/B000/XXXXXXXX", &["T000/B000/XXXXXXXX"], 1);
        hides("maps AIzaSyA-1234567890abcdefghijklmnopqrstu", &["AIzaSyA"], 1);
        hides(
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U ok",
            &["eyJhbGci", "dozjgN"],
            1,
        );
    }

    #[test]
    fn private_key_blocks() {
        let pem =
            "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabcdef\n-----END RSA PRIVATE KEY-----\ndone";
        assert_eq!(hides(pem, &["MIIEp", "abcdef"], 1), "key:\n[REDACTED]\ndone");
        // Cut off before its end: redacted to the end of the text.
        hides("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", &["b3BlbnNz"], 1);
        hides("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----", &["lQOYBF"], 1);
        // A public key or certificate is not a secret.
        untouched("-----BEGIN PUBLIC KEY-----");
        untouched("-----BEGIN CERTIFICATE-----");
    }

    #[test]
    fn private_key_blocks_across_log_lines() {
        let r = Redactor::default();
        let mut lines = r.lines();
        let out: Vec<(String, u32)> = [
            "loading key",
            "-----BEGIN EC PRIVATE KEY-----",
            "MHcCAQEEIBkg",
            "AwEHoUQDQgAE",
            "-----END EC PRIVATE KEY----- loaded password=x1",
            "next",
        ]
        .iter()
        .map(|l| lines.redact(l))
        .collect();
        let text: Vec<&str> = out.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            text,
            ["loading key", "[REDACTED]", "[REDACTED]", "[REDACTED]", "[REDACTED] loaded password=[REDACTED]", "next"]
        );
        assert_eq!(out.iter().map(|(_, n)| n).sum::<u32>(), 2);
    }

    #[test]
    fn key_bodies_whose_start_the_tail_cut_off() {
        let r = Redactor::default();
        let mut lines = r.lines();
        let body = "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB";
        assert_eq!(lines.redact(body), (MARK.to_owned(), 1));
        assert_eq!(lines.redact("-----END RSA PRIVATE KEY-----").1, 0);
        // Ordinary lines of letters, or short ones, stay.
        assert_eq!(lines.redact("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz").1, 0);
        assert_eq!(lines.redact("deadbeef").1, 0);
    }

    #[test]
    fn passwords_in_urls() {
        assert_eq!(
            hides("connecting to postgres://app:s3cr3t@db:5432/shop", &["s3cr3t"], 1),
            "connecting to postgres://app:***@db:5432/shop"
        );
        assert_eq!(hides("redis://:hunter2@cache:6379/0", &["hunter2"], 1), "redis://:***@cache:6379/0");
        // A password holding '@' is hidden up to the host.
        assert_eq!(hides("amqp://u:p@ss@mq/", &["p@ss", "ss@"], 1), "amqp://u:***@mq/");
        hides("DATABASE_URL=mysql://root:pw1@h/db and https://x:y@z", &["pw1", "x:y"], 2);
        untouched("listening on http://0.0.0.0:8080/health");
        untouched("GET http://api:8080/users/a@b.c");
        untouched("ssh://git@github.com:22/org/repo");
    }

    #[test]
    fn assignments() {
        assert_eq!(
            hides("login failed: password=hunter2 user=bob", &["hunter2"], 1),
            "login failed: password=[REDACTED] user=bob"
        );
        hides("DB_PASSWORD=hunter2", &["hunter2"], 1);
        hides("Password: hunter2", &["hunter2"], 1);
        hides("passwd=abc secret=def token=ghi api_key=jkl apikey=mno", &["abc", "def", "ghi", "jkl", "mno"], 5);
        hides("X-API-Key: 0123abcd", &["0123abcd"], 1);
        hides("client_secret=zzz9&grant_type=client_credentials", &["zzz9"], 1);
        hides("GET /cb?access_token=abc.def&state=1", &["abc.def"], 1);
        hides("Server=db;User Id=sa;Password=P4ss;Database=x", &["P4ss"], 1);
        hides("PASSPHRASE='correct horse battery'", &["correct", "horse"], 1);
        assert_eq!(
            hides(r#"{"user": "bob", "password": "correct horse battery", "n": 1}"#, &["correct", "horse"], 1),
            r#"{"user": "bob", "password": "[REDACTED]", "n": 1}"#
        );
        hides(r#"{"Token":"a\"b c"}"#, &["a\\\"b", "b c"], 1);
        hides("config: {secret: s3, private_key: pk}", &["s3", "pk"], 2);
        hides("mysqld --user=root --password hunter2 --port 3306", &["hunter2"], 1);
        hides("auth with --password=hunter2", &["hunter2"], 1);
        // Already hidden by the application: neither changed nor counted.
        untouched("password=****");
        untouched(r#"password: """#);
    }

    #[test]
    fn near_misses_are_left_alone() {
        for line in [
            "password reset succeeded for user 42",
            "tokenizer loaded (vocab 50257)",
            "max_tokens: 256",
            "token_count=17",
            "passwords do not match",
            "secretary: Jane",
            "secrets mounted: 3",
            "missing Authorization header",
            "authorization failed: invalid credentials",
            "authorization: denied",
            "Bearer authentication required",
            "task-0123456789abcdefghij0123 finished",
            "sk-learn is installed",
            "eyJ is how base64 JSON starts",
            "api.example.com v1.2.3 ok",
            "listening on 0.0.0.0:443",
            "user=bob email=bob@example.com",
            "AKIA is a prefix",
            "the token bucket refilled",
        ] {
            untouched(line);
        }
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
        assert_eq!(
            hides("\x1b[31mERROR\x1b[0m pass\x1b[1mword=hunter2\r", &["hunter2"], 1),
            "ERROR password=[REDACTED]"
        );
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
}
