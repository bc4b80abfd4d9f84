//! A failure's fingerprint: the line that states it, with what differs
//! from one run of the same failure to the next masked, so two exits can
//! be told to be the same failure.
//!
//! The line is the newest the diagnosis cites, else the newest error-like
//! log line. Masked: every run of digits (timestamps, pids, ports,
//! addresses, counts, line numbers) and every word that mixes digits into
//! an id (hex ids like `0x6b2c1a` or a container id, temporary names like
//! `pymp-k2j3h4l5`) becomes `#`; case and runs of white space are folded.
//! What names the failure (the words, the punctuation, the paths' fixed
//! parts) stays.

use hemostat_protocol::{diagnosis::Diagnosis, event::HealthAlert};

use crate::diagnosis;

/// A fingerprint is cut to this many characters: enough to tell failures
/// apart, small enough to keep in every history entry.
pub const MAX_CHARS: usize = 200;

/// The line that states the failure: the newest line `diagnosis` cites,
/// else the newest error-like log line. None when the alert carries
/// neither.
pub fn failure_line<'a>(alert: &'a HealthAlert, diagnosis: Option<&'a Diagnosis>) -> Option<&'a str> {
    let cited = diagnosis.and_then(|d| d.evidence.iter().rev().find(|l| !l.trim().is_empty()));
    cited.map(String::as_str).or_else(|| {
        let logs = &alert.evidence.as_ref()?.logs.lines;
        logs.iter().rev().map(|l| l.line.as_str()).find(|l| diagnosis::error_like(l))
    })
}

/// The fingerprint of the alert's failure line (see [`failure_line`]).
pub fn of(alert: &HealthAlert, diagnosis: Option<&Diagnosis>) -> Option<String> {
    failure_line(alert, diagnosis).map(normalise).filter(|f| !f.is_empty())
}

/// `line` with what varies between runs masked (see the module doc).
pub fn normalise(line: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for c in line.trim().chars() {
        if c.is_alphanumeric() {
            word.push(c);
            continue;
        }
        push_word(&mut out, &mut word);
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    push_word(&mut out, &mut word);
    match out.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => out[..end].to_owned(),
        None => out,
    }
}

/// Appends `word` masked, and empties it. A word with digits is an id when
/// it is long (8 characters and more) or hex (4 and more): it becomes one
/// `#`; in any other word, each run of digits does (`x509` is `x#`).
fn push_word(out: &mut String, word: &mut String) {
    if word.is_empty() {
        return;
    }
    let digits = word.chars().any(|c| c.is_ascii_digit());
    let len = word.chars().count();
    let hex = word.chars().all(|c| c.is_ascii_hexdigit());
    if digits && (len >= 8 || (hex && len >= 4)) {
        out.push('#');
    } else {
        for c in word.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_digit() {
                if !out.ends_with('#') {
                    out.push('#');
                }
            } else {
                out.push(c);
            }
        }
    }
    word.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_varies_between_runs_is_masked() {
        let pairs = [
            (
                "2024-05-02 10:11:12.345 UTC [1] FATAL:  could not open file \"/etc/app/app.conf\": No such file",
                "2024-05-03 09:00:01.002 UTC [27] FATAL:  could not open file \"/etc/app/app.conf\": No such file",
            ),
            (
                "panic: runtime error: index out of range [5] with length 3 goroutine 42 pc=0x6b2c1a",
                "panic: runtime error: index out of range [7] with length 3 goroutine 17 pc=0x4a0b19",
            ),
            ("open /proc/1234/status: permission denied", "open /proc/99/status: permission denied"),
            ("container 3f2a1b9c8d7e failed", "container 9c8d7e3f2a1b failed"),
            ("tmp dir /tmp/pymp-k2j3h4l5 gone", "tmp dir /tmp/pymp-x9y8z7w6 gone"),
            ("Error:   connect   ECONNREFUSED 10.0.0.5:5432", "error: connect ECONNREFUSED 10.0.0.17:5432"),
        ];
        for (a, b) in pairs {
            assert_eq!(normalise(a), normalise(b), "{a:?} vs {b:?}");
        }
        assert_eq!(normalise("Error:   connect ECONNREFUSED 10.0.0.5:5432"), "error: connect econnrefused #.#.#.#:#");
    }

    #[test]
    fn what_names_the_failure_stays() {
        let different = [
            ("KeyError: 'DATABASE_URL'", "KeyError: 'REDIS_URL'"),
            ("open /etc/app/a.conf: no such file", "open /etc/app/b.conf: no such file"),
            ("x509: certificate signed by unknown authority", "x509: certificate has expired"),
            ("exit status 1: worker", "exit status 1: scheduler"),
        ];
        for (a, b) in different {
            assert_ne!(normalise(a), normalise(b), "{a:?} vs {b:?}");
        }
        assert_eq!(normalise("x509: bad"), "x#: bad");
        assert_eq!(normalise("  "), "");
        let long = "é".repeat(MAX_CHARS * 2);
        assert_eq!(normalise(&long).chars().count(), MAX_CHARS);
    }
}
