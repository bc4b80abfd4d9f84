//! The collector: the checks a command passes before it runs, the
//! redaction of container output, and the reading of Docker's log frames.

use std::{sync::LazyLock, time::Duration};

use chrono::{DateTime, Utc};
use hemostat_collector::{
    evidence::MAX_LINE_BYTES,
    fuzzing::{Admission, Claimed, admit, log_lines},
    redact::{MARK, Redactor},
};
use hemostat_protocol::{
    command::{Command, SignedCommand},
    evidence::ELLIPSIS,
};

use super::{fields, protocol::KEYS, text};
use crate::engine::{Target, kind, path};

const HOST: &str = "host-a";

/// A command stream entry as the collector's reader takes it: a command
/// runs only when signed by a held key, for this host, and not expired.
pub const COMMAND_CHECKS: Target = Target {
    name: "command-checks",
    about: "the collector's admission of a stream entry (signature, host, age); a run command is the signed one",
    dictionary: &[
        "\"host\":\"host-a\"",
        "\"host\":\"host-b\"",
        "\"issued_at\"",
        "\"expires_at\"",
        "2026-12-01T12:00:00Z",
        "2026-12-01T11:00:00Z",
        "2099-01-01T00:00:00Z",
        "1764590400000-0",
        "\u{0}",
        "sign",
        "-",
        "Z",
        "+",
    ],
    run: command_checks,
};

/// Fields: the command JSON, `sign` to have it sealed with the held key
/// (or a signature of its own), the stream entry id.
fn command_checks(input: &[u8]) -> u64 {
    let parts = fields(input);
    let json = text(parts[0]);
    let (key, public) = &*KEYS;
    let signed = match parts.get(1).map(|s| text(s)) {
        Some(s) if s == "sign" => match serde_json::from_str::<Command>(&json) {
            Ok(cmd) => cmd.seal(Some(key)),
            Err(_) => SignedCommand { json, signature: None },
        },
        signature => SignedCommand { json, signature },
    };
    let entry_id = parts.get(2).map(|s| text(s)).unwrap_or_else(|| "0-0".to_owned());
    let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").expect("a fixed time").with_timezone(&Utc);
    let admission = admit(&signed, Some(public), HOST, &entry_id, Duration::from_secs(300), now);
    let claimed = Claimed::read(&signed.json);
    let _ = (claimed.id, claimed.container, claimed.action);
    match &admission {
        Admission::Run(cmd) => {
            assert_eq!(cmd.host, HOST, "a command for another host runs");
            // Sealing is deterministic (serde's field order, Ed25519): what
            // runs is exactly what the key sealed.
            assert_eq!(cmd.seal(Some(key)), signed, "ran something the key did not seal");
            if let Some(expires) = cmd.expires_at.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
                assert!(expires >= now, "an expired command runs");
            }
        }
        Admission::Refused { cmd, reason } => {
            assert!(signed.signature.is_some(), "unsigned {cmd:?} was opened");
            assert!(!reason.is_empty(), "refused without a reason");
        }
        Admission::Unopened { .. } => {}
    }
    // Without keys (the insecure mode) the same entry is only parsed.
    let _ = admit(&signed, None, HOST, &entry_id, Duration::ZERO, now);
    path(&[match &admission {
        Admission::Run(_) => "run",
        Admission::Refused { reason, .. } => kind(reason),
        Admission::Unopened { why, .. } => kind(why),
    }])
}

static REDACTOR: LazyLock<Redactor> =
    LazyLock::new(|| Redactor::new(&["(?i)internal-(?P<s>[a-z0-9]{8,})".to_owned()]).expect("the pattern compiles"));

/// Text leaving the host (health output, exec output, Docker's errors).
pub const REDACT: Target = Target {
    name: "redact",
    about: "Redactor::redact: plain text out, secrets marked",
    dictionary: &[
        "password=",
        "PASSWORD: ",
        "token\": \"",
        "Authorization: Bearer ",
        "Cookie: ",
        "postgres://user:",
        "@db:5432",
        "-----BEGIN PRIVATE KEY-----",
        "-----END PRIVATE KEY-----",
        "AKIA",
        "ghp_",
        "xoxb-",
        "sk-",
        "eyJ",
        "\u{1b}[31m",
        "\u{1b}]8;;",
        "\u{7}",
        "\r",
        "\n",
        "[REDACTED]",
        "***",
        "internal-",
        "Public-Lines: 2\n",
        "Private-Lines: 3\n",
        "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----",
        "$2b$12$",
        "cookies: PHPSESSID=",
        "Set-Cookie: s=; Max-Age=0",
        "\\r\\nX-Api-Key: ",
        "{\"kty\":\"RSA\",\"d\":\"",
        "<your-token-here>",
    ],
    run: redact,
};

fn redact(input: &[u8]) -> u64 {
    let (out, count) = REDACTOR.redact(&text(input));
    assert!(!out.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "a control character left: {out:?}");
    assert!(count == 0 || out.contains(MARK) || out.contains("***"), "counted without a mark");
    path(&[if count == 0 { "clean" } else { "redacted" }, &count.min(3).to_string()])
}

/// Docker's log frames, as the evidence reads them.
pub const LOGS: Target = Target {
    name: "logs",
    about: "log frames (NUL-separated; first byte odd = stderr) to evidence lines: bounded, redacted, ordered",
    dictionary: &[
        "2026-12-01T12:00:00.000000000Z ",
        "2026-12-01T11:00:00Z ",
        "\n",
        "\r\n",
        "\u{0}",
        "password=",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN CERTIFICATE-----\n",
    ],
    run: logs,
};

fn logs(input: &[u8]) -> u64 {
    let frames: Vec<(bool, Vec<u8>)> = fields(input)
        .into_iter()
        .filter(|f| !f.is_empty())
        .map(|f| (!f[0].is_multiple_of(2), f[1..].to_vec()))
        .collect();
    let since = DateTime::parse_from_rfc3339("2026-12-01T11:30:00Z").expect("a fixed time").with_timezone(&Utc);
    let tail = 5;
    let (lines, cut_short, _) = log_lines(&frames, Some(since), tail, &REDACTOR);
    assert!(lines.len() <= tail, "more than the tail");
    for line in &lines {
        assert!(line.line.len() <= MAX_LINE_BYTES + ELLIPSIS.len(), "a line past its cap");
        // A frame holding several lines (a TTY's raw output) keeps its newlines, as `clean` does.
        assert!(
            !line.line.chars().any(|c| c.is_control() && c != '\t' && c != '\n'),
            "a control character left: {:?}",
            line.line
        );
    }
    path(&[&lines.len().to_string(), if cut_short { "cut" } else { "" }])
}
