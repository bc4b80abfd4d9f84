//! A log read line by line, where one line cannot always be judged alone:
//! a private key's body lines follow its `BEGIN` line.

use std::sync::LazyLock;

use regex::Regex;

use super::{MARK, Redactor};

/// See [`Redactor::lines`].
pub struct LineRedactor<'a> {
    redactor: &'a Redactor,
    in_key: bool,
}

impl<'a> LineRedactor<'a> {
    pub(super) fn new(redactor: &'a Redactor) -> Self {
        LineRedactor { redactor, in_key: false }
    }

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

fn constant(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constant pattern compiles")
}

/// The start and end of a PEM private key block.
pub(super) static KEY_BEGIN: LazyLock<Regex> =
    LazyLock::new(|| constant(r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"));
pub(super) static KEY_END: LazyLock<Regex> =
    LazyLock::new(|| constant(r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"));
/// A line that is nothing but base64 (PEM wraps key bodies at 64
/// characters): the body of a key block whose first line the log's tail
/// cut off.
static BASE64_LINE: LazyLock<Regex> = LazyLock::new(|| constant(r"^[A-Za-z0-9+/]{40,}={0,2}$"));
