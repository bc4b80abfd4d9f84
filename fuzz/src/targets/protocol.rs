//! The protocol crate: envelopes and their payloads, batches, signed
//! commands, labels and silences, Retry-After, settings.

use std::{collections::HashMap, sync::LazyLock, time::Duration};

use hemostat_protocol::{
    Envelope, EventKind,
    batch::{self as batch_event, BatchEvent},
    command::{Command, SignedCommand, SigningKey, VerifyingKeys},
    config,
    connection::redact,
    event::{FalseAlarm, HealthAlert, RemediationComplete, RemediationNeeded, SystemAlert},
    policy::Policy,
    probe::{Probe, Target as ProbeTarget},
    retry_after,
    silence::{self, Silence},
};

use super::{fields, text};
use crate::engine::{Target, kind, path};

const JSON_WORDS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "false",
    "\\u0000",
    "\\ud800",
    "\"timestamp\"",
    "\"agent\"",
    "\"type\"",
    "\"data\"",
    "\"health_alert\"",
    "\"remediation_needed\"",
    "\"remediation_complete\"",
    "\"false_alarm\"",
    "\"system_alert\"",
    "\"container\"",
    "\"host\"",
    "\"metrics\"",
    "\"evidence\"",
    "\"policy\"",
    "\"action\"",
    "\"restart\"",
    "\"exec\"",
    "\"args\"",
    "\"issued_at\"",
    "\"expires_at\"",
    "\"confidence\"",
    "\"stop_timeout_seconds\"",
    "\"unhealthy_grace_seconds\"",
    "\"cooldown_seconds\"",
    "\"logs\"",
    "\"lines\"",
    "\"Records\"",
    "\"body\"",
    "\"messageId\"",
    "1e308",
    "-1",
    "18446744073709551616",
];

/// `Envelope::parse`, the typed `data` of its kind, and the round trip.
pub const ENVELOPE: Target = Target {
    name: "envelope",
    about: "Envelope::parse + typed data; parse -> JSON -> parse is the identity",
    dictionary: JSON_WORDS,
    run: envelope,
};

fn envelope(input: &[u8]) -> u64 {
    let env = match Envelope::parse(input) {
        Ok(env) => env,
        Err(e) => return path(&["error", kind(&e.to_string())]),
    };
    // What is read and written again reads the same.
    let json = env.to_json();
    let again = Envelope::parse(json.as_bytes()).expect("a serialised envelope parses");
    assert_eq!(again, env, "round trip");
    let typed = match env.kind {
        EventKind::HealthAlert => payload::<HealthAlert>(&env),
        EventKind::RemediationNeeded => payload::<RemediationNeeded>(&env),
        EventKind::RemediationComplete => payload::<RemediationComplete>(&env),
        EventKind::FalseAlarm => payload::<FalseAlarm>(&env),
        EventKind::SystemAlert => payload::<SystemAlert>(&env),
        EventKind::ApprovalAnswer => payload::<hemostat_protocol::approval::ApprovalAnswer>(&env),
    };
    if let Ok(alert) = env.data_of::<HealthAlert>(EventKind::HealthAlert) {
        if let Some(mut evidence) = alert.evidence {
            // The cap the collector applies: met unless below the bare state.
            let fits = evidence.bound(4096);
            assert!(!fits || evidence.json_len() <= 4096, "bound said it fits");
        }
        if let Some(policy) = alert.policy {
            let _ = (policy.stop_timeout(), policy.unhealthy_grace(), policy.stricter(&Policy::default()));
        }
    }
    path(&[env.kind.as_str(), typed])
}

/// The typed payload, written and read again.
fn payload<T: serde::de::DeserializeOwned + serde::Serialize>(env: &Envelope) -> &'static str {
    match env.data_as::<T>() {
        Ok(data) => {
            let again = Envelope::new("fuzz", env.kind, &data).expect("a typed payload serialises");
            again.data_as::<T>().expect("a serialised payload parses");
            "typed"
        }
        Err(_) => "untyped",
    }
}

/// The bridge's batch, as a function reads it.
pub const BATCH: Target = Target {
    name: "batch",
    about: "BatchEvent (what a function receives) and each record's envelope",
    dictionary: JSON_WORDS,
    run: batch,
};

fn batch(input: &[u8]) -> u64 {
    let Ok(batch) = serde_json::from_slice::<BatchEvent>(input) else { return path(&["not a batch"]) };
    let ok = batch.records.iter().filter(|r| batch_event::envelope(r).is_ok()).count();
    path(&[
        "batch",
        if ok == batch.records.len() {
            "all"
        } else if ok == 0 {
            "none"
        } else {
            "some"
        },
    ])
}

/// The fixed key pair commands are signed with here.
pub(super) static KEYS: LazyLock<(SigningKey, VerifyingKeys)> = LazyLock::new(|| {
    let (private, _) = SigningKey::generate().expect("a key pair");
    let key = SigningKey::from_base64(&private).expect("a generated key");
    let public = VerifyingKeys::parse(&key.public_base64()).expect("its public key");
    (key, public)
});

/// Signed commands: whatever the JSON, a signature opens only the bytes
/// it was made for, and the command opened is the one signed.
pub const COMMAND: Target = Target {
    name: "command",
    about: "SignedCommand::open: signed JSON opens as itself; tampered, forged, foreign refused",
    dictionary: &[
        "\"id\"",
        "\"host\"",
        "\"container\"",
        "\"container_id\"",
        "\"action\"",
        "\"restart\"",
        "\"exec\"",
        "\"args\"",
        "\"issued_at\"",
        "\"expires_at\"",
        "\"dry_run\"",
        "\"reason\"",
        "\"confidence\"",
        "ed25519:",
        "ed25519::",
        ":",
        "==",
        "\u{0}",
        "{",
        "}",
        "\"",
        ",",
    ],
    run: command,
};

fn command(input: &[u8]) -> u64 {
    let parts = fields(input);
    let json = text(parts[0]);
    let (key, public) = &*KEYS;
    let parsed: Result<Command, _> = serde_json::from_str(&json);
    // Signed as they are: opens iff it is a command, and as that command.
    let signed = match parsed.as_ref() {
        Ok(cmd) => {
            let sealed = cmd.seal(Some(key));
            let opened = sealed.open(Some(public)).expect("a command signed with a held key opens");
            assert_eq!(&opened, cmd, "opened as signed");
            // One byte changed: refused.
            let mut tampered = sealed.clone();
            let i = input.len() % tampered.json.len().max(1);
            let mut bytes = tampered.json.into_bytes();
            bytes[i] ^= 0x01;
            tampered.json = String::from_utf8_lossy(&bytes).into_owned();
            assert!(tampered.open(Some(public)).is_err(), "a tampered command opened");
            sealed.signature
        }
        Err(_) => None,
    };
    // Any signature text: opens only as the real signature of these bytes.
    let given = parts.get(1).map(|s| text(s));
    let candidate = SignedCommand { json: json.clone(), signature: given.clone() };
    let _ = candidate.key_id();
    let opened = candidate.open(Some(public));
    if opened.is_ok() {
        // Ed25519 signatures are deterministic and their encoding strict:
        // the one signature that opens these bytes is the key's own.
        assert_eq!(given, signed, "a signature other than the key's own opened");
    }
    // Unsigned accepted only when told so.
    let unsigned = SignedCommand { json, signature: None };
    assert!(unsigned.open(Some(public)).is_err(), "an unsigned command opened with keys");
    let _ = unsigned.open(None);
    let outcome = match &opened {
        Ok(_) => "opened".to_owned(),
        Err(e) => e.to_string(),
    };
    path(&[if parsed.is_ok() { "command" } else { "not a command" }, kind(&outcome)])
}

/// Container labels as the collector reads them: the policy, silences'
/// selectors and operators' targets.
pub const LABELS: Target = Target {
    name: "labels",
    about: "Policy::from_labels, Probe::from_labels, silence targets, label selectors and maintenance schedules (lines of key=value)",
    dictionary: &[
        "hemostat.action=",
        "hemostat.cooldown=",
        "hemostat.max_actions_per_hour=",
        "hemostat.cpu_threshold=",
        "hemostat.memory_threshold=",
        "hemostat.sustain=",
        "hemostat.unhealthy_grace=",
        "hemostat.stop_timeout=",
        "autoheal.stop.timeout=",
        "hemostat.probe=",
        "hemostat.probe.interval=",
        "hemostat.probe.timeout=",
        "hemostat.probe.retries=",
        "http://",
        "https://",
        "tcp://",
        "localhost",
        "[::1]",
        "@",
        ":8080",
        "/healthz",
        "hemostat.maintenance=",
        "every ",
        " at ",
        " for ",
        " tz ",
        "day",
        "weekdays",
        "mon,thu",
        "02:30",
        "Europe/Berlin",
        "UTC",
        "label:",
        "host:",
        "image:",
        "project:",
        "container:",
        "ms",
        "s",
        "m",
        "h",
        "%",
        "=",
        "\n",
        ".",
        "-",
    ],
    run: labels,
};

fn labels(input: &[u8]) -> u64 {
    let all = text(input);
    let mut lines = all.lines();
    let own_stop: Option<i64> = lines.next().and_then(|l| l.trim().parse().ok());
    let labels: HashMap<String, String> =
        lines.map(|l| l.split_once('=').unwrap_or((l, ""))).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let resolved = Policy::from_labels(&labels, own_stop);
    let policy = &resolved.policy;
    let (stop, grace) = (policy.stop_timeout(), policy.unhealthy_grace());
    assert!(policy.cpu_threshold.is_none_or(|p| p > 0.0 && p <= 100.0), "cpu threshold out of range");
    // A policy is never made looser by a request.
    let stricter = policy.stricter(&Policy { cooldown_seconds: Some(0), ..Policy::default() });
    assert_eq!(stricter.cooldown_seconds, policy.cooldown_seconds, "a request's 0 replaced the cooldown");
    let json = serde_json::to_string(policy).expect("a policy serialises");
    let again: Policy = serde_json::from_str(&json).expect("a policy parses");
    assert_eq!(again.action, policy.action);
    // A probe only ever aims at the container's own loopback, and its path
    // cannot end the request line.
    let probe = Probe::from_labels(&labels);
    if let Some(Ok(p)) = &probe {
        assert!(p.target.ip().is_loopback(), "a probe aimed off the container: {p:?}");
        assert!(p.timeout <= p.interval && p.retries >= 1, "probe timing out of range: {p:?}");
        if let ProbeTarget::Http { path, .. } = &p.target {
            assert!(path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic()), "probe path: {path:?}");
        }
    }
    let mut targets = 0;
    for (k, v) in &labels {
        let line = if v.is_empty() { k.clone() } else { format!("{k}={v}") };
        if let Ok((kind, value)) = silence::parse_target(&line) {
            targets += 1;
            let s = Silence {
                id: "f".into(),
                kind,
                target: value,
                reason: String::new(),
                created: "2026-01-01T00:00:00Z".into(),
                until: v.clone(),
                by: String::new(),
                window: None,
            };
            let _ = (s.selects(&labels), s.target_text(), s.refusal(), s.until_ms());
        }
    }
    // A maintenance schedule (the `hemostat.maintenance` label's value):
    // written back, it reads as the same schedule, and its windows are
    // computed without a panic at the ends of time.
    let mut schedules = 0;
    for v in labels.values() {
        if let Ok(schedule) = hemostat_protocol::maintenance::Schedule::parse(v) {
            schedules += 1;
            let again = hemostat_protocol::maintenance::Schedule::parse(&schedule.to_string());
            assert_eq!(again.as_ref(), Ok(&schedule), "a schedule written back reads differently");
            for now in [0, 1_796_212_800_000, i64::MIN, i64::MAX, -62_000_000_000_000, 253_402_300_799_000] {
                let open = schedule.window_at(now);
                assert!(open.is_none_or(|w| w.is_open_at(now)), "an open window that is not open");
                let next = schedule.next_window(now);
                assert!(open.is_none() || next == open, "the next window is not the open one");
            }
        }
    }
    path(&[
        if schedules > 0 { "schedule" } else { "" },
        if resolved.problems.is_empty() { "clean" } else { "problems" },
        if stop.is_some() { "stop" } else { "" },
        if grace.is_some() { "grace" } else { "" },
        if targets > 0 { "targets" } else { "" },
        match &probe {
            None => "",
            Some(Ok(_)) => "probe",
            Some(Err(_)) => "bad probe",
        },
    ])
}

/// `Retry-After` values from any HTTP server.
pub const RETRY_AFTER: Target = Target {
    name: "retry-after",
    about: "protocol::retry_after::parse_at: capped, digits or an HTTP date only",
    dictionary: &["Wed, 21 Oct 2015 07:28:00 GMT", "GMT", "Mon, ", " ", ".", "e", "+", "-", "99999999999999999999"],
    run: retry,
};

fn retry(input: &[u8]) -> u64 {
    let value = text(input);
    let now = chrono::DateTime::from_timestamp(1_445_412_420, 0).expect("a fixed time");
    let wait = retry_after::parse_at(&value, now);
    if let Some(wait) = wait {
        assert!(wait <= retry_after::LONGEST, "uncapped: {wait:?}");
    }
    let t = value.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        assert!(wait.is_some(), "plain seconds refused");
    }
    path(&[match wait {
        None => "none",
        Some(d) if d.is_zero() => "zero",
        Some(d) if d == retry_after::LONGEST => "capped",
        Some(_) => "wait",
    }])
}

/// Settings read from the environment: durations, flags, keys, Redis URLs.
pub const SETTINGS: Target = Target {
    name: "settings",
    about: "durations, flags, public keys, signing keys; Redis URLs redacted",
    dictionary: &["ms", "s", "m", "h", ".", "redis://", "rediss://", "@", ":", ",", "/", "%40", "true", "off"],
    run: settings,
};

fn settings(input: &[u8]) -> u64 {
    let value = text(input);
    let d = config::parse_duration(&value);
    if let Ok(d) = d {
        assert!(d <= Duration::from_secs(366 * 24 * 3600), "a duration past a year: {d:?}");
    }
    let _ = (config::parse_duration_ms(&value), config::parse_bool(&value), config::parse_seconds(&value));
    let keys = VerifyingKeys::parse(&value);
    let signing = SigningKey::from_base64(&value);
    if let Err(e) = &signing {
        assert!(value.trim().len() < 8 || !e.to_string().contains(value.trim()), "a key's error repeats it");
    }
    // A password never survives redaction, whatever else the URL holds.
    let password: String = value.chars().filter(|c| !matches!(c, '@' | '/')).take(40).collect();
    if password.len() >= 4 {
        let url = format!("redis://user:{password}@redis.example:6379/0");
        let shown = redact(&url);
        let safe = "redis://***@redis.example:6379/0";
        assert!(safe.contains(&password) || !shown.contains(&password), "{url} shown as {shown}");
    }
    let shown = redact(&value);
    path(&[
        if d.is_ok() { "duration" } else { "" },
        if keys.is_ok() { "keys" } else { "" },
        if signing.is_ok() { "signing" } else { "" },
        if shown.contains("***") { "redacted" } else { "" },
    ])
}
