//! Records Redis refused for good, kept on the host: `dead-letters.jsonl`
//! in the outbox folder, one JSON object a line (`time`, `seq`, `kind`,
//! `reason`, `attempts`, `envelope`), mode 0600. Past [`MAX_BYTES`] the
//! file becomes `dead-letters.jsonl.1` (replacing the one before) and a
//! new one starts: bounded at twice that.
//!
//! The envelope is what would have gone to Redis (its evidence already
//! redacted on the host); the reason is Redis' answer, redacted too
//! ([`super::refusal::redacted`]). Each line is synced: dead letters are
//! rare, and the record leaves the outbox once it is written.

use std::{
    fs::OpenOptions,
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

pub const FILE: &str = "dead-letters.jsonl";
pub const MAX_BYTES: u64 = 8 << 20;

pub struct DeadLetter<'a> {
    pub seq: u64,
    pub kind: Option<&'a str>,
    pub reason: &'a str,
    pub attempts: u64,
    /// The record as it was queued: an envelope's JSON.
    pub record: &'a [u8],
}

/// Appends `letter` to the dead-letter file in `dir`; returns the file's path.
pub fn write(dir: &Path, letter: &DeadLetter<'_>) -> io::Result<PathBuf> {
    let path = dir.join(FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= MAX_BYTES) {
        std::fs::rename(&path, dir.join(format!("{FILE}.1")))?;
    }
    let envelope = serde_json::from_slice::<serde_json::Value>(letter.record)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(letter.record).into_owned()));
    let line = serde_json::json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "seq": letter.seq,
        "kind": letter.kind,
        "reason": super::refusal::redacted(letter.reason),
        "attempts": letter.attempts,
        "envelope": envelope,
    });
    let mut file = OpenOptions::new().append(true).create(true).mode(0o600).open(&path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_data()?;
    Ok(path)
}
