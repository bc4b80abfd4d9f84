//! The one implementation of redaction: a text read line by line, where
//! one line cannot always be judged alone. A private key's body lines
//! follow its `BEGIN` line, a certificate's do too (and are no secret), and
//! some programs announce a secret on one line and print it alone on the
//! next (Jenkins' initial admin password, Elasticsearch's first-start
//! password), and a Kubernetes manifest names a variable on one line and
//! gives its value on the next; a PuTTY key file (`.ppk`) says how many of
//! the lines after `Private-Lines: 14` are its private key. A log's lines
//! come one call at a time; a text of many lines (health-check or `exec`
//! output) in one call, split here.

use std::sync::LazyLock;

use regex::Regex;

use super::{
    MARK, Redactor, clean,
    validators::{assigned_value, looks_like_token},
};

/// See [`Redactor::lines`].
pub struct LineRedactor<'a> {
    redactor: &'a Redactor,
    /// Inside a private key block: every line is the key's.
    in_key: bool,
    /// Inside a certificate or public key block: its base64 lines are kept.
    in_public: bool,
    /// The last line that was not blank announced a secret.
    announced: bool,
    /// The last line that was not blank was `- name: DB_PASSWORD`: the
    /// name of a secret whose `value:` may follow.
    named: Option<String>,
    /// Inside a PuTTY key file's public or private key: how many of its
    /// lines are left.
    putty: Option<Putty>,
}

/// The lines of a PuTTY key that follow `Public-Lines: N` (kept while they
/// are base64) or `Private-Lines: N` (each redacted, counted once).
#[derive(Clone, Copy)]
struct Putty {
    private: bool,
    left: usize,
    counted: bool,
}

impl<'a> LineRedactor<'a> {
    pub(super) fn new(redactor: &'a Redactor) -> Self {
        LineRedactor { redactor, in_key: false, in_public: false, announced: false, named: None, putty: None }
    }

    /// The next line, or lines, of the text, made plain (see [`clean`]) and
    /// redacted; and how many secrets were replaced (a key block counts
    /// once, at its first line).
    pub fn redact(&mut self, text: &str) -> (String, u32) {
        let text = clean(text);
        if !text.contains('\n') {
            return self.line(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut count = 0;
        for (i, line) in text.split('\n').enumerate() {
            let in_key = self.in_key;
            let (line, n) = self.line(line.to_owned());
            count += n;
            if in_key {
                // The line that opened the key ends in its mark: in a text,
                // the key's lines join it, so that a key reads as one mark
                // (a log shows one per line, as its lines are separate).
                out.push_str(line.strip_prefix(MARK).unwrap_or(&line));
                continue;
            }
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&line);
        }
        (out, count)
    }

    /// One plain line. A Docker json-file record (`{"log":"...\\n",
    /// "stream":...}`, as a node's log files and some log shippers give a
    /// container's output) is judged by what the container printed: its
    /// `log` string decoded, so that `password: \\"x\\"` is `password:
    /// "x"` and a key's body line is a line of base64 again. When that
    /// changes nothing, the record is judged as it is, as before.
    fn line(&mut self, line: String) -> (String, u32) {
        if let Some(record) = JsonFileRecord::parse(&line) {
            let inner = record.log.trim_end_matches('\n').to_owned();
            let (out, count) = self.plain_line(inner.clone());
            if out != inner {
                return (record.with_log(&out), count);
            }
            let mut text = line;
            let mut count = 0;
            apply(self.redactor, &mut text, &mut count);
            return (text, count);
        }
        self.plain_line(line)
    }

    /// One plain line, not a json-file record.
    fn plain_line(&mut self, line: String) -> (String, u32) {
        if self.in_key {
            let Some(end) = KEY_END.find(&line) else {
                return (MARK.to_owned(), 0);
            };
            self.in_key = false;
            let (rest, count) = self.plain_line(line[end.end()..].to_owned());
            return (format!("{MARK}{rest}"), count);
        }
        let trimmed = line.trim();
        if let Some(putty) = self.putty.take()
            && putty.left > 0
        {
            let left = Putty { left: putty.left - 1, counted: true, ..putty };
            if putty.private {
                self.putty = Some(left);
                return (MARK.to_owned(), u32::from(!putty.counted));
            }
            if PUBLIC_BODY.is_match(trimmed) {
                self.putty = Some(left);
                return (line, 0);
            }
        }
        if self.in_public {
            if PUBLIC_BODY.is_match(trimmed) {
                return (line, 0);
            }
            self.in_public = false;
        }
        if trimmed.is_empty() {
            return (line, 0);
        }
        if std::mem::take(&mut self.announced) && !trimmed.contains(char::is_whitespace) && looks_like_token(trimmed) {
            return (line.replacen(trimmed, MARK, 1), 1);
        }
        if let Some(key) = self.named.take()
            && let Some(caps) = VALUE_LINE.captures(&line)
            && let Some(value) = caps.name("dq").or_else(|| caps.name("sq")).or_else(|| caps.name("bare"))
            && assigned_value(&key, value.as_str())
            && !value.as_str().starts_with(MARK)
        {
            return (format!("{}{MARK}{}", &line[..value.start()], &line[value.end()..]), 1);
        }
        let mut text = line.clone();
        let mut count = 0;
        apply(self.redactor, &mut text, &mut count);
        let last_end = KEY_END.find_iter(&line).last().map(|m| m.start());
        if let Some(begin) = KEY_BEGIN.find_iter(&line).last().map(|m| m.start()) {
            self.in_key = last_end.is_none_or(|end| end < begin);
        }
        let last_end = PUBLIC_END.find_iter(&line).last().map(|m| m.start());
        if let Some(begin) = PUBLIC_BEGIN.find_iter(&line).last().map(|m| m.start()) {
            self.in_public = last_end.is_none_or(|end| end < begin);
        }
        self.announced = ANNOUNCE.is_match(&text);
        // (Most lines are not a PuTTY key's: a substring is found faster
        // than a pattern.)
        self.putty = text.contains("-Lines:").then(|| PUTTY_LINES.captures(&text)).flatten().and_then(|c| {
            let private = &c["part"] == "Private";
            // A bogus count keeps no more than a key's worth of lines, and
            // hides no more than a large key's.
            let left = c["n"].parse::<usize>().ok()?.min(if private { 256 } else { 64 });
            Some(Putty { private, left, counted: false })
        });
        self.named = NAME_LINE
            .captures(&text)
            .and_then(|c| c.name("key"))
            .filter(|k| SECRET_NAME.is_match(k.as_str()))
            .map(|k| k.as_str().to_owned());
        (text, count)
    }
}

/// The rules on one line. JSON written by Go's `encoding/json` (slog, zap,
/// logrus) spells `&`, `<` and `>` as `\u0026`, `\u003c`, `\u003e`, so a
/// form body's `a=1\u0026code=x` or Ruby's `:password =\u003e "x"` would
/// hide its separators from the rules: such a line is judged with them
/// decoded, and encoded again, exactly (it had none of the three
/// characters plain, and a mark has none).
fn apply(redactor: &Redactor, text: &mut String, count: &mut u32) {
    if text.contains("\\u00") && !text.contains(['&', '<', '>']) {
        let decoded = text.replace("\\u0026", "&").replace("\\u003c", "<").replace("\\u003e", ">");
        if decoded.len() != text.len() {
            let mut out = decoded;
            let mut n = 0;
            redactor.apply(&mut out, &mut n);
            if n > 0 {
                *text = out.replace('&', "\\u0026").replace('<', "\\u003c").replace('>', "\\u003e");
                *count += n;
                return;
            }
        }
    }
    redactor.apply(text, count);
}

/// A Docker json-file log record: its `log` string decoded, and the line
/// around it.
struct JsonFileRecord<'l> {
    /// Up to and including the opening quote of the `log` string.
    head: &'l str,
    log: String,
    /// From the closing quote of the `log` string on.
    tail: &'l str,
}

impl<'l> JsonFileRecord<'l> {
    fn parse(line: &'l str) -> Option<Self> {
        // (Most lines are not records: a prefix is checked before a pattern.)
        if !line.contains("{\"log\":\"") {
            return None;
        }
        let caps = JSON_FILE.captures(line)?;
        let body = caps.name("body")?;
        let log: String = serde_json::from_str(&line[body.start() - 1..body.end() + 1]).ok()?;
        Some(JsonFileRecord { head: &line[..body.start()], log, tail: &line[body.end()..] })
    }

    /// The record with `log` (redacted) in place of its string, encoded
    /// again, its line break kept.
    fn with_log(&self, log: &str) -> String {
        let newline = if self.log.ends_with('\n') { "\n" } else { "" };
        let encoded = serde_json::to_string(&format!("{log}{newline}")).unwrap_or_else(|_| format!("\"{MARK}\""));
        format!("{}{}{}", self.head, &encoded[1..encoded.len() - 1], self.tail)
    }
}

fn constant(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constant pattern compiles")
}

/// A Docker json-file record, after a log prefix or none: its `log`
/// string (the body between its quotes) and the fields that follow.
static JSON_FILE: LazyLock<Regex> =
    LazyLock::new(|| constant(r#"^[^{]{0,80}\{"log":"(?P<body>(?:[^"\\]|\\.)*)","(?:stream|time|attrs)":"#));

/// The start and end of a PEM private key block (and of ssh.com's
/// `---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----`).
pub(super) static KEY_BEGIN: LazyLock<Regex> =
    LazyLock::new(|| constant(r"-{4,5} ?BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)? ?-{4,5}"));
pub(super) static KEY_END: LazyLock<Regex> =
    LazyLock::new(|| constant(r"-{4,5} ?END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)? ?-{4,5}"));
/// A PuTTY key file's count of the base64 lines that follow: its public
/// key's, then its private key's.
static PUTTY_LINES: LazyLock<Regex> =
    LazyLock::new(|| constant(r"\b(?P<part>Public|Private)-Lines:[ \t]*(?P<n>\d{1,6})[ \t]*$"));
/// The start of a block that holds no secret, its body, and its end.
pub(super) static PUBLIC_BEGIN: LazyLock<Regex> = LazyLock::new(|| {
    constant(
        r"-----BEGIN (?:CERTIFICATE|TRUSTED CERTIFICATE|(?:NEW )?CERTIFICATE REQUEST|X509 CRL|PUBLIC KEY|RSA PUBLIC KEY|PGP PUBLIC KEY BLOCK|PGP SIGNATURE)-----",
    )
});
static PUBLIC_BODY: LazyLock<Regex> = LazyLock::new(|| constant(r"^[A-Za-z0-9+/=]+$"));
static PUBLIC_END: LazyLock<Regex> = LazyLock::new(|| constant(r"-----END [A-Z0-9 ]+-----"));
/// A line that ends by announcing a secret: "Please use the following
/// password to proceed to installation:", "Password for the elastic user
/// (reset with ...):". The next line that is not blank is redacted if it
/// is one word that looks like a token.
pub(super) static ANNOUNCE: LazyLock<Regex> = LazyLock::new(|| {
    constant(
        r"(?i)\b(?:password|passphrase|token|secret|(?:api|access|secret|private|unseal|recovery) key)\b[^\r\n]*:[ \t]*$",
    )
});

/// `- name: DB_PASSWORD` (a Kubernetes container's `env`, an Ansible or
/// CI variable list), whose value is on the next line ...
static NAME_LINE: LazyLock<Regex> =
    LazyLock::new(|| constant(r#"^[ \t]*(?:-[ \t]+)?name:[ \t]*["']?(?P<key>[A-Za-z0-9_.-]+)["']?[ \t]*$"#));
/// ... when the name is a secret's (as the rules' keys: ends in a secret's
/// word, maybe with a suffix such as `_VALUE`) ...
static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    constant(
        r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|credentials?|api[_-]?key|[_.-]key|[_.-]auth|cookie)(?:[_.-](?:value|string|data|b64|base64|hash|salt))?$",
    )
});
/// ... as `value: x` (not `valueFrom:`, a reference).
static VALUE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    constant(r#"^[ \t]*value:[ \t]*(?:"(?P<dq>[^"]+)"|'(?P<sq>[^']+)'|(?P<bare>[^\s"'][^\r\n]*?))[ \t]*$"#)
});
